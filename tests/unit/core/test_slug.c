/*
 * Unit tests of core/slug: the contract's slug rule (CONTRACT.md §3) at its edges, and the
 * tenant schema/role name derived from the tenant uuid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/slug.h"

static void test_valid_slugs(void **state)
{
    (void)state;
    char err[200];
    assert_true(slug_valid("acme", err, sizeof(err)));
    assert_string_equal(err, "");
    assert_true(slug_valid("ab", NULL, 0));
    assert_true(slug_valid("a-", NULL, 0));
    assert_true(slug_valid("a1", NULL, 0));
    assert_true(slug_valid("big-co--2", NULL, 0));
    char max[64];
    memset(max, 'a', 63);
    max[63] = '\0';
    assert_true(slug_valid(max, NULL, 0));
    max[62] = '-';
    assert_true(slug_valid(max, NULL, 0));
}

static void test_invalid_slugs(void **state)
{
    (void)state;
    char err[200];
    const char *bad[] = {"", "a", "1abc", "-abc", "Acme", "acMe", "ac_me", "ac me", "ac.me",
                         "acme\n", "é-acme", "acme/", "ac'me"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_false(slug_valid(bad[i], err, sizeof(err)));
        assert_true(strlen(err) > 0);
    }
    assert_false(slug_valid(NULL, err, sizeof(err)));
    char over[65];
    memset(over, 'a', 64);
    over[64] = '\0';
    assert_false(slug_valid(over, err, sizeof(err)));
    assert_non_null(strstr(err, "too long"));
    assert_false(slug_valid("a", err, sizeof(err)));
    assert_non_null(strstr(err, "too short"));
    assert_false(slug_valid("9a", err, sizeof(err)));
    assert_non_null(strstr(err, "start"));
}

static void test_schema_name(void **state)
{
    (void)state;
    char out[SLUG_SCHEMA_NAME_SIZE];
    assert_int_equal(slug_schema_name("6F9619FF-8B86-D011-B42D-00C04FC964FF", out), 0);
    assert_string_equal(out, "t_6f9619ff8b86d011b42d00c04fc964ff");
    assert_int_equal(strlen(out), 34);
    assert_true(slug_is_schema_name(out));
    assert_int_equal(slug_schema_name("6f9619ff8b86d011b42d00c04fc964ff", out), 0);
    assert_string_equal(out, "t_6f9619ff8b86d011b42d00c04fc964ff");
    assert_int_equal(slug_schema_name("6f9619ff-8b86-d011-b42d-00c04fc964f", out), -1);
    assert_string_equal(out, "");
    assert_int_equal(slug_schema_name("6f9619ff_8b86-d011-b42d-00c04fc964ff", out), -1);
    assert_int_equal(slug_schema_name("6f9619ff-8b86-d011-b42d-00c04fc964fg", out), -1);
    assert_int_equal(slug_schema_name("x; drop schema tenantd", out), -1);
    assert_int_equal(slug_schema_name(NULL, out), -1);
    assert_false(slug_is_schema_name("t_6F9619FF8B86D011B42D00C04FC964FF"));
    assert_false(slug_is_schema_name("tenantd"));
    assert_false(slug_is_schema_name("t_6f9619ff8b86d011b42d00c04fc964f"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_slugs),
        cmocka_unit_test(test_invalid_slugs),
        cmocka_unit_test(test_schema_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
