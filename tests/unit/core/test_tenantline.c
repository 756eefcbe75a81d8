/*
 * Unit tests of core/tenantline: the `tenant create --from-file` line format — fields, skipped
 * lines, CRLF, and every refusal (slug, name length in characters, UTF-8, controls, field count).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/tenantline.h"

/* Parses a copy of s (the parser works in place); returns its result. */
static int parse(const char *s, char *buf, size_t cap, tenantline_t *t, char *err, size_t errlen)
{
    size_t len = strlen(s);
    assert_true(len < cap);
    memcpy(buf, s, len + 1);
    return tenantline_parse(buf, len, t, err, errlen);
}

static void test_fields(void **state)
{
    (void)state;
    char buf[1024], err[200];
    tenantline_t t;
    assert_int_equal(parse("acme\tAcme Inc.", buf, sizeof(buf), &t, err, sizeof(err)), 1);
    assert_string_equal(t.slug, "acme");
    assert_string_equal(t.name, "Acme Inc.");
    assert_null(t.email);
    assert_string_equal(err, "");
    assert_int_equal(parse("big-co-2\tBig Co\tBoss@Big.test\r", buf, sizeof(buf), &t, err, sizeof(err)), 1);
    assert_string_equal(t.slug, "big-co-2");
    assert_string_equal(t.name, "Big Co");
    assert_string_equal(t.email, "Boss@Big.test");
    /* spaces inside a name are kept as they are; a UTF-8 name */
    assert_int_equal(parse("ex\t Ünïcødé  name ", buf, sizeof(buf), &t, err, sizeof(err)), 1);
    assert_string_equal(t.name, " Ünïcødé  name ");
}

static void test_skipped(void **state)
{
    (void)state;
    char buf[64], err[200];
    tenantline_t t;
    const char *skip[] = {"", "\r", "   ", "\t\t", " \t \r", "# a comment", "#acme\tAcme"};
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        assert_int_equal(parse(skip[i], buf, sizeof(buf), &t, err, sizeof(err)), 0);
}

static void test_refused(void **state)
{
    (void)state;
    char buf[2048], err[200];
    tenantline_t t;
    struct {
        const char *line;
        const char *says;
    } bad[] = {
        {"acme", "missing name"},
        {"acme\t", "name is empty"},
        {"acme\tAcme\t", "e-mail field is empty"},
        {"acme\tAcme\ta@b.c\textra", "too many fields"},
        {"acme\tAcme\ta@\rb.c", "e-mail contains a control character"},
        {"Acme\tAcme", "invalid slug"},
        {"a\tAcme", "invalid slug"},
        {" acme\tAcme", "invalid slug"},
        {"ac_me\tAcme", "invalid slug"},
        {"\tAcme", "invalid slug"},
        {"acme\tA\x01" "cme", "control character"},
        {"acme\tA\x7f", "control character"},
        {"acme\t\xff", "not valid UTF-8"},
        {"acme\t\xc3", "not valid UTF-8"},                 /* cut short */
        {"acme\t\xc0\xaf", "not valid UTF-8"},             /* overlong '/' */
        {"acme\t\xed\xa0\x80", "not valid UTF-8"},         /* surrogate */
        {"acme\t\xf4\x90\x80\x80", "not valid UTF-8"},     /* above U+10FFFF */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(parse(bad[i].line, buf, sizeof(buf), &t, err, sizeof(err)), -1);
        if (strstr(err, bad[i].says) == NULL)
            fail_msg("line %zu: expected '%s' in '%s'", i, bad[i].says, err);
    }
    /* a NUL byte inside the line */
    char nul[] = "acme\tA\0me";
    assert_int_equal(tenantline_parse(nul, sizeof(nul) - 1, &t, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "NUL"));
    /* err may be NULL */
    memcpy(buf, "Bad\tx", 6);
    assert_int_equal(tenantline_parse(buf, 5, &t, NULL, 0), -1);
}

static void test_name_length_in_characters(void **state)
{
    (void)state;
    char name[1024], err[200];
    memset(name, 'n', 201);
    assert_true(tenantline_name_valid(name, 200, err, sizeof(err)));
    assert_false(tenantline_name_valid(name, 201, err, sizeof(err)));
    assert_non_null(strstr(err, "too long"));
    /* 200 two-byte characters (400 bytes) are fine, 201 are not; so are 200 four-byte ones */
    for (size_t i = 0; i < 201; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    assert_true(tenantline_name_valid(name, 400, err, sizeof(err)));
    assert_false(tenantline_name_valid(name, 402, err, sizeof(err)));
    for (size_t i = 0; i < 200; i++)
        memcpy(name + 4 * i, "\xf0\x9f\x98\x80", 4);
    assert_true(tenantline_name_valid(name, 800, err, sizeof(err)));
    assert_false(tenantline_name_valid(name, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "empty"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_skipped),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_name_length_in_characters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
