/*
 * Unit tests of core/migfile: migration file name parsing, sorted folder listing with its error
 * cases (malformed name, repeated version, missing folder) and the next file name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/migfile.h"

static void test_parse(void **state)
{
    (void)state;
    int v = 0;
    char name[MIGFILE_NAME_MAX];
    assert_int_equal(migfile_parse("0001_control.sql", &v, name, sizeof(name)), 0);
    assert_int_equal(v, 1);
    assert_string_equal(name, "control");
    assert_int_equal(migfile_parse("9999_a_b_2.sql", &v, name, sizeof(name)), 0);
    assert_int_equal(v, 9999);
    assert_string_equal(name, "a_b_2");
    const char *bad[] = {"0000_zero.sql", "001_short.sql", "00001_long.sql", "0001-dash.sql", "0001_.sql",
                         "0001_Upper.sql", "0001_x.SQL", "0001_x.sql.bak", "abcd_x.sql", "0001_has-dash.sql",
                         "0001_sp ace.sql", "", "0001_x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(migfile_parse(bad[i], &v, name, sizeof(name)), -1);
    char longname[120];
    memset(longname, 'a', sizeof(longname));
    memcpy(longname, "0001_", 5);
    strcpy(longname + 5 + 101, ".sql");
    assert_int_equal(migfile_parse(longname, &v, name, sizeof(name)), -1);
    strcpy(longname + 5 + 100, ".sql");
    assert_int_equal(migfile_parse(longname, &v, name, sizeof(name)), 0);
}

static void touch(const char *dir, const char *fn)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, fn);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("select 1;\n", f);
    fclose(f);
}

static void test_list(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_migfile_XXXXXX";
    assert_non_null(mkdtemp(dir));
    touch(dir, "0010_ten.sql");
    touch(dir, "0002_two.sql");
    touch(dir, "README.md");
    touch(dir, ".0005_hidden.sql");
    migfile_t *files;
    size_t n;
    char err[300];
    assert_int_equal(migfile_list(dir, &files, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_int_equal(files[0].version, 2);
    assert_string_equal(files[0].file, "0002_two.sql");
    assert_int_equal(files[1].version, 10);
    char next[200];
    assert_int_equal(migfile_next(files, n, "add_col", next, sizeof(next), err, sizeof(err)), 0);
    assert_string_equal(next, "0011_add_col.sql");
    assert_int_equal(migfile_next(files, n, "Bad-Name", next, sizeof(next), err, sizeof(err)), -1);
    free(files);

    touch(dir, "0002_again.sql");
    assert_int_equal(migfile_list(dir, &files, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "same version"));
    assert_null(files);

    char path[512];
    snprintf(path, sizeof(path), "%s/0002_again.sql", dir);
    unlink(path);
    touch(dir, "3_bad.sql");
    assert_int_equal(migfile_list(dir, &files, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "3_bad.sql"));

    const char *all[] = {"0010_ten.sql", "0002_two.sql", "README.md", ".0005_hidden.sql", "3_bad.sql"};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, all[i]);
        unlink(path);
    }
    assert_int_equal(migfile_list(dir, &files, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    assert_int_equal(migfile_next(files, n, "first", next, sizeof(next), err, sizeof(err)), 0);
    assert_string_equal(next, "0001_first.sql");
    free(files);
    rmdir(dir);
    assert_int_equal(migfile_list(dir, &files, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot open"));
}

static void test_next_limit(void **state)
{
    (void)state;
    migfile_t last = {.version = 9999, .name = "x", .file = "9999_x.sql"};
    char out[200], err[200];
    assert_int_equal(migfile_next(&last, 1, "y", out, sizeof(out), err, sizeof(err)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_next_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
