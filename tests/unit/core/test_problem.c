/*
 * Unit tests of core/problem: the problem-kind catalogue (statuses, titles, type slugs) and the
 * status-to-kind lookup used for errors h2o generates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/problem.h"

static void test_known_rows(void **state)
{
    (void)state;
    assert_int_equal(problem_status(PROBLEM_BAD_REQUEST), 400);
    assert_string_equal(problem_title(PROBLEM_BAD_REQUEST), "Bad Request");
    assert_string_equal(problem_slug(PROBLEM_BAD_REQUEST), "bad-request");
    assert_int_equal(problem_status(PROBLEM_METHOD_NOT_ALLOWED), 405);
    assert_string_equal(problem_title(PROBLEM_METHOD_NOT_ALLOWED), "Method Not Allowed");
    assert_int_equal(problem_status(PROBLEM_UNPROCESSABLE), 422);
    assert_string_equal(problem_slug(PROBLEM_UNPROCESSABLE), "validation-failed");
    assert_int_equal(problem_status(PROBLEM_TOO_MANY_REQUESTS), 429);
    assert_string_equal(problem_slug(PROBLEM_TOO_MANY_REQUESTS), "rate-limited");
    assert_int_equal(problem_status(PROBLEM_INTERNAL), 500);
    assert_int_equal(problem_status(PROBLEM_UNAVAILABLE), 503);
    assert_int_equal(problem_status(PROBLEM_GATEWAY_TIMEOUT), 504);
}

/* Every status the contract (CONTRACT.md §2) names has a kind. */
static void test_contract_statuses_covered(void **state)
{
    (void)state;
    static const int statuses[] = {400, 401, 403, 404, 405, 409, 412, 413, 414, 415, 422, 429, 431, 503};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        problem_kind_t k = problem_for_status(statuses[i]);
        if (problem_status(k) != statuses[i])
            fail_msg("no problem kind for status %d", statuses[i]);
    }
}

/* Each row is well formed: an error status, a non-empty title, a distinct lowercase slug. */
static void test_table_well_formed(void **state)
{
    (void)state;
    for (int i = 0; i < PROBLEM__COUNT; i++) {
        problem_kind_t k = (problem_kind_t)i;
        assert_in_range(problem_status(k), 400, 599);
        assert_non_null(problem_title(k));
        assert_true(strlen(problem_title(k)) > 0);
        const char *slug = problem_slug(k);
        assert_true(strlen(slug) > 0);
        for (const char *p = slug; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || *p == '-'))
                fail_msg("slug %s has '%c'", slug, *p);
        /* titles and slugs go into JSON unescaped */
        assert_null(strpbrk(problem_title(k), "\"\\"));
        for (int j = 0; j < i; j++) {
            if (problem_status((problem_kind_t)j) == problem_status(k))
                fail_msg("status %d appears twice", problem_status(k));
            assert_string_not_equal(problem_slug((problem_kind_t)j), slug);
        }
        /* the lookup by status finds the same row */
        assert_int_equal(problem_for_status(problem_status(k)), k);
    }
}

static void test_unknown_status_is_internal(void **state)
{
    (void)state;
    assert_int_equal(problem_for_status(0), PROBLEM_INTERNAL);
    assert_int_equal(problem_for_status(200), PROBLEM_INTERNAL);
    assert_int_equal(problem_for_status(418), PROBLEM_INTERNAL);
    assert_int_equal(problem_for_status(502), PROBLEM_INTERNAL);
    assert_int_equal(problem_for_status(-1), PROBLEM_INTERNAL);
    assert_int_equal(problem_for_status(99999), PROBLEM_INTERNAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_rows),
        cmocka_unit_test(test_contract_statuses_covered),
        cmocka_unit_test(test_table_well_formed),
        cmocka_unit_test(test_unknown_status_is_internal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
