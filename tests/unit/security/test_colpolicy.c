/*
 * Unit tests of security/colpolicy: the document format and its errors, and the rule that a
 * column is hidden (read-only) only when every role of the caller hides it (makes it read-only).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "security/colpolicy.h"

static const char doc[] = "{\"$comment\": \"test\", \"tables\": {\"orders\": {"
                          "\"hidden\": {\"viewer\": [\"assignee_id\"], \"member\": [\"assignee_id\"]},"
                          "\"readonly\": {\"member\": [\"position\"], \"viewer\": [\"position\"]}}}}";

static void rules_apply_when_every_role_restricts(void **state)
{
    (void)state;
    colpol_t *p;
    char err[256];
    assert_int_equal(colpol_load_buffer("t.json", doc, strlen(doc), &p, err, sizeof(err)), 0);
    const char *viewer[] = {"viewer"}, *member[] = {"member"}, *admin[] = {"admin"}, *both[] = {"viewer", "admin"};
    assert_true(colpol_has_table(p, "orders"));
    assert_false(colpol_has_table(p, "notifications"));
    assert_true(colpol_hidden(p, "orders", "assignee_id", viewer, 1));
    assert_true(colpol_hidden(p, "orders", "assignee_id", member, 1));
    assert_false(colpol_hidden(p, "orders", "assignee_id", admin, 1));
    assert_false(colpol_hidden(p, "orders", "assignee_id", both, 2)); /* admin lifts it */
    assert_false(colpol_hidden(p, "orders", "position", member, 1));
    assert_true(colpol_readonly(p, "orders", "position", member, 1));
    assert_true(colpol_readonly(p, "orders", "assignee_id", member, 1)); /* hidden implies read-only */
    assert_false(colpol_readonly(p, "orders", "title", member, 1));
    assert_false(colpol_hidden(p, "orders", "assignee_id", NULL, 0));
    colpol_free(p);
}

static void bad_documents_name_the_problem(void **state)
{
    (void)state;
    static const char *bad[] = {
        "[]",
        "{\"tables\": []}",
        "{\"other\": {}}",
        "{\"tables\": {\"Orders\": {}}}",
        "{\"tables\": {\"orders\": {\"secret\": {}}}}",
        "{\"tables\": {\"orders\": {\"hidden\": {\"viewer\": \"x\"}}}}",
        "{\"tables\": {\"orders\": {\"hidden\": {\"viewer\": [1]}}}}",
        "{\"tables\": {\"orders\": {\"hidden\": {\"viewer\": [\"a\"], \"viewer\": [\"b\"]}}}}",
        "{\"tables\": ",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        colpol_t *p = (colpol_t *)1;
        char err[256] = "";
        assert_int_equal(colpol_load_buffer("bad.json", bad[i], strlen(bad[i]), &p, err, sizeof(err)), -1);
        assert_null(p);
        assert_non_null(strstr(err, "bad.json"));
    }
}

static void missing_dir_is_empty(void **state)
{
    (void)state;
    colpol_t *p;
    char err[256];
    assert_int_equal(colpol_load_dir("/nonexistent/columns", &p, err, sizeof(err)), 0);
    const char *r[] = {"viewer"};
    assert_false(colpol_has_table(p, "orders"));
    assert_false(colpol_hidden(p, "orders", "x", r, 1));
    colpol_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rules_apply_when_every_role_restricts),
        cmocka_unit_test(bad_documents_name_the_problem),
        cmocka_unit_test(missing_dir_is_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
