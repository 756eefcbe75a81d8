/*
 * Unit tests of http/router: table validation (incomplete entries, missing permission,
 * duplicates), path matching ({name} captures, trailing slashes, empty segments) and
 * router_find's outcomes (match, unknown path, 405 with an allow list that adds HEAD to GET).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "http/router.h"

static void h_a(struct http_request *hr)
{
    (void)hr;
}

static void h_b(struct http_request *hr)
{
    (void)hr;
}

static const router_route_t table[] = {
    {"GET", "/health", h_a, ROUTER_PUBLIC},
    {"GET", "/v1/admin/members", h_a, "members:read"},
    {"POST", "/v1/admin/members", h_b, "members:write"},
    {"GET", "/v1/admin/members/{user_id}", h_a, "members:read"},
    {"DELETE", "/v1/admin/members/{user_id}", h_b, "members:write"},
    {"PUT", "/v1/admin/members/{user_id}/roles/{role}", h_b, "roles:write"},
    {"POST", "/v1/auth/login", h_a, ROUTER_PUBLIC},
    {"PATCH", "/rest/v1/{table}", h_b, "data:write"},
    {"GET", "/rest/v1/{table}", h_a, "data:read"},
    {"DELETE", "/rest/v1/{table}", h_b, "data:write"},
};
#define TABLE_LEN (sizeof(table) / sizeof(table[0]))

static router_result_t find(const char *method, const char *path, size_t *index, router_params_t *params, char *allow, size_t cap)
{
    return router_find(table, TABLE_LEN, method, strlen(method), path, strlen(path), index, params, allow, cap);
}

static void assert_param(const router_params_t *p, size_t i, const char *name, const char *value)
{
    assert_true(i < p->count);
    assert_int_equal(p->items[i].name_len, strlen(name));
    assert_memory_equal(p->items[i].name, name, strlen(name));
    assert_int_equal(p->items[i].value_len, strlen(value));
    assert_memory_equal(p->items[i].value, value, strlen(value));
}

static void test_validate_ok(void **state)
{
    (void)state;
    char err[200] = "";
    assert_int_equal(router_validate(table, TABLE_LEN, err, sizeof(err)), 0);
    assert_int_equal(router_validate(table, 0, err, sizeof(err)), 0);
}

static void expect_invalid(const router_route_t *routes, size_t n, const char *needle)
{
    char err[200] = "";
    assert_int_equal(router_validate(routes, n, err, sizeof(err)), -1);
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_validate_rejects(void **state)
{
    (void)state;
    const router_route_t no_perm[] = {{"GET", "/a", h_a, ROUTER_PUBLIC}, {"GET", "/secret", h_a, NULL}};
    expect_invalid(no_perm, 2, "/secret");
    expect_invalid(no_perm, 2, "permission");
    const router_route_t empty_perm[] = {{"POST", "/things", h_a, ""}};
    expect_invalid(empty_perm, 1, "/things");
    const router_route_t dup[] = {{"GET", "/a", h_a, ROUTER_PUBLIC}, {"POST", "/a", h_b, "x:y"}, {"GET", "/a", h_b, "x:z"}};
    expect_invalid(dup, 3, "twice");
    expect_invalid(dup, 3, "GET /a");
    const router_route_t dup_param[] = {{"GET", "/m/{id}", h_a, "m:r"}, {"GET", "/m/{id}", h_a, "m:r"}};
    expect_invalid(dup_param, 2, "twice");
    const router_route_t no_method[] = {{NULL, "/a", h_a, ROUTER_PUBLIC}};
    expect_invalid(no_method, 1, "/a");
    const router_route_t no_pattern[] = {{"GET", NULL, h_a, ROUTER_PUBLIC}};
    expect_invalid(no_pattern, 1, "incomplete");
    const router_route_t relative[] = {{"GET", "a/b", h_a, ROUTER_PUBLIC}};
    expect_invalid(relative, 1, "a/b");
    const router_route_t empty_pattern[] = {{"GET", "", h_a, ROUTER_PUBLIC}};
    expect_invalid(empty_pattern, 1, "incomplete");
    const router_route_t no_handler[] = {{"GET", "/a", NULL, ROUTER_PUBLIC}};
    expect_invalid(no_handler, 1, "/a");
    /* {name} segments: unclosed, empty, or more than the params can carry (a match would lose one) */
    const router_route_t unclosed[] = {{"GET", "/m/{id", h_a, ROUTER_PUBLIC}};
    expect_invalid(unclosed, 1, "/m/{id");
    const router_route_t unclosed_seg[] = {{"GET", "/m/{id/x}", h_a, ROUTER_PUBLIC}};
    expect_invalid(unclosed_seg, 1, "/m/{id/x}");
    const router_route_t unnamed[] = {{"GET", "/m/{}", h_a, ROUTER_PUBLIC}};
    expect_invalid(unnamed, 1, "/m/{}");
    const router_route_t five[] = {{"GET", "/{a}/{b}/{c}/{d}/{e}", h_a, ROUTER_PUBLIC}};
    expect_invalid(five, 1, "max 4");
    const router_route_t four[] = {{"GET", "/{a}/{b}/{c}/{d}", h_a, ROUTER_PUBLIC}};
    char err4[200];
    assert_int_equal(router_validate(four, 1, err4, sizeof(err4)), 0);
    /* same pattern, different methods: fine */
    const router_route_t methods[] = {{"GET", "/a", h_a, ROUTER_PUBLIC}, {"PUT", "/a", h_a, "a:w"}};
    char err[200];
    assert_int_equal(router_validate(methods, 2, err, sizeof(err)), 0);
    /* a tiny error buffer is not overrun */
    char small[8];
    memset(small, 'x', sizeof(small));
    assert_int_equal(router_validate(no_perm, 2, small, 4), -1);
    assert_int_equal(small[3], '\0');
    assert_int_equal(small[4], 'x');
}

static void test_path_matches(void **state)
{
    (void)state;
    router_params_t p;
    const char *s;
#define M(pat, path) router_path_matches(pat, path, strlen(path), &p)
    assert_true(M("/health", "/health"));
    assert_int_equal(p.count, 0);
    assert_true(M("/", "/"));
    assert_false(M("/health", "/health/"));
    assert_false(M("/health/", "/health"));
    assert_false(M("/health", "/healthz"));
    assert_false(M("/healthz", "/health"));
    assert_false(M("/health", "/Health"));
    assert_false(M("/health", ""));
    assert_false(M("/health", "health"));
    assert_false(M("/", ""));

    assert_true(M("/m/{id}", "/m/42"));
    assert_int_equal(p.count, 1);
    assert_param(&p, 0, "id", "42");
    assert_false(M("/m/{id}", "/m/"));
    assert_false(M("/m/{id}", "/m"));
    assert_false(M("/m/{id}", "/m//"));
    assert_false(M("/m/{id}", "/m/42/"));
    assert_false(M("/m/{id}", "/m/42/x"));

    assert_true(M("/m/{user_id}/roles/{role}", "/m/u-1/roles/admin"));
    assert_int_equal(p.count, 2);
    assert_param(&p, 0, "user_id", "u-1");
    assert_param(&p, 1, "role", "admin");
    assert_false(M("/m/{user_id}/roles/{role}", "/m/u-1/roles/"));
    assert_false(M("/m/{user_id}/roles/{role}", "/m//roles/admin"));
    assert_false(M("/m/{user_id}/roles/{role}", "/m/u-1/rolez/admin"));

    /* a parameter takes bytes verbatim (no decoding), but never a '/' */
    assert_true(M("/rest/v1/{table}", "/rest/v1/a%2Fb"));
    assert_param(&p, 0, "table", "a%2Fb");
    assert_true(M("/rest/v1/{table}", "/rest/v1/.."));
    assert_param(&p, 0, "table", "..");

    /* the path is length-delimited: bytes after len are not looked at */
    s = "/m/42/extra";
    assert_true(router_path_matches("/m/{id}", s, 5, &p));
    assert_param(&p, 0, "id", "42");
    assert_false(router_path_matches("/m/{id}", s, 3, &p));

    /* params may be NULL */
    assert_true(router_path_matches("/m/{id}", "/m/1", 4, NULL));
    /* an unterminated {name} never matches */
    assert_false(M("/m/{id", "/m/1"));
#undef M
}

static void test_find_match(void **state)
{
    (void)state;
    size_t idx = 999;
    router_params_t p;
    char allow[128];
    assert_int_equal(find("GET", "/health", &idx, &p, allow, sizeof(allow)), ROUTER_MATCH);
    assert_int_equal(idx, 0);
    assert_int_equal(find("POST", "/v1/admin/members", &idx, &p, allow, sizeof(allow)), ROUTER_MATCH);
    assert_int_equal(idx, 2);
    assert_int_equal(find("DELETE", "/v1/admin/members/u7", &idx, &p, allow, sizeof(allow)), ROUTER_MATCH);
    assert_int_equal(idx, 4);
    assert_param(&p, 0, "user_id", "u7");
    assert_int_equal(find("PUT", "/v1/admin/members/u7/roles/owner", &idx, &p, allow, sizeof(allow)), ROUTER_MATCH);
    assert_int_equal(idx, 5);
    assert_int_equal(p.count, 2);
    assert_param(&p, 0, "user_id", "u7");
    assert_param(&p, 1, "role", "owner");
    assert_int_equal(find("GET", "/rest/v1/todos", &idx, &p, allow, sizeof(allow)), ROUTER_MATCH);
    assert_int_equal(idx, 8);
    assert_param(&p, 0, "table", "todos");
    /* HEAD is served by the GET route */
    assert_int_equal(find("HEAD", "/v1/admin/members/u7", &idx, &p, allow, sizeof(allow)), ROUTER_MATCH);
    assert_int_equal(idx, 3);
    assert_param(&p, 0, "user_id", "u7");
    /* the method is length-delimited */
    assert_int_equal(router_find(table, TABLE_LEN, "GETTER", 3, "/health", 7, &idx, &p, allow, sizeof(allow)), ROUTER_MATCH);
}

static void test_find_no_path(void **state)
{
    (void)state;
    size_t idx = 999;
    router_params_t p;
    char allow[128] = "stale";
    static const char *const paths[] = {"/nope", "/health/", "/v1/admin/members/", "/v1/admin/members/u7/", "/v1/admin",
                                        "/rest/v1/", "/rest/v1/a/b", "", "health", "/v1/admin/members/u7/roles/"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (find("GET", paths[i], &idx, &p, allow, sizeof(allow)) != ROUTER_NO_PATH)
            fail_msg("\"%s\" should match no route", paths[i]);
        assert_int_equal(idx, 999);
        assert_string_equal(allow, "");
    }
}

static void test_find_wrong_method(void **state)
{
    (void)state;
    size_t idx = 999;
    router_params_t p;
    char allow[128];
    assert_int_equal(find("POST", "/health", &idx, &p, allow, sizeof(allow)), ROUTER_WRONG_METHOD);
    assert_string_equal(allow, "GET, HEAD");
    assert_int_equal(idx, 999);

    assert_int_equal(find("DELETE", "/v1/admin/members", &idx, &p, allow, sizeof(allow)), ROUTER_WRONG_METHOD);
    assert_string_equal(allow, "GET, HEAD, POST");

    assert_int_equal(find("PUT", "/rest/v1/todos", &idx, &p, allow, sizeof(allow)), ROUTER_WRONG_METHOD);
    assert_string_equal(allow, "PATCH, GET, HEAD, DELETE");

    /* GET on a POST-only route: no HEAD either */
    assert_int_equal(find("GET", "/v1/auth/login", &idx, &p, allow, sizeof(allow)), ROUTER_WRONG_METHOD);
    assert_string_equal(allow, "POST");
    assert_int_equal(find("HEAD", "/v1/auth/login", &idx, &p, allow, sizeof(allow)), ROUTER_WRONG_METHOD);
    assert_string_equal(allow, "POST");

    /* methods are case-sensitive */
    assert_int_equal(find("get", "/health", &idx, &p, allow, sizeof(allow)), ROUTER_WRONG_METHOD);
    assert_string_equal(allow, "GET, HEAD");

    /* a short allow buffer truncates without overrunning, and no buffer at all is fine */
    char small[12];
    memset(small, 'x', sizeof(small));
    assert_int_equal(find("PUT", "/rest/v1/todos", &idx, &p, small, 8), ROUTER_WRONG_METHOD);
    assert_true(strlen(small) < 8);
    assert_int_equal(small[8], 'x');
    assert_int_equal(find("PUT", "/rest/v1/todos", &idx, &p, NULL, 0), ROUTER_WRONG_METHOD);
}

/* A method that is a prefix of another is not swallowed by the allow-list de-duplication. */
static void test_allow_list_distinct_methods(void **state)
{
    (void)state;
    const router_route_t t[] = {
        {"GETALL", "/x", h_a, ROUTER_PUBLIC},
        {"GET", "/x", h_a, ROUTER_PUBLIC},
        {"POST", "/x", h_a, ROUTER_PUBLIC},
        {"POST", "/x/{id}", h_a, ROUTER_PUBLIC},
    };
    size_t idx;
    router_params_t p;
    char allow[128];
    assert_int_equal(router_find(t, 4, "PUT", 3, "/x", 2, &idx, &p, allow, sizeof(allow)), ROUTER_WRONG_METHOD);
    assert_string_equal(allow, "GETALL, GET, HEAD, POST");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_ok),
        cmocka_unit_test(test_validate_rejects),
        cmocka_unit_test(test_path_matches),
        cmocka_unit_test(test_find_match),
        cmocka_unit_test(test_find_no_path),
        cmocka_unit_test(test_find_wrong_method),
        cmocka_unit_test(test_allow_list_distinct_methods),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
