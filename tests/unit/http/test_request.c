/*
 * Unit tests of http/request's http_render_problem (no h2o request needed): the problem+json
 * document has the RFC 9457 members, escapes quotes and control characters in the detail,
 * parses as JSON, and stays within (and valid in) small or exactly-sized buffers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "http/request.h"

/* Parses a rendered document, checks its members and returns it (caller decrefs). */
static json_t *parse_problem(const char *buf, size_t len, problem_kind_t kind, int status, const char *rid)
{
    assert_true(len > 0);
    assert_int_equal(strlen(buf), len);
    json_error_t jerr;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        fail_msg("not JSON (%s): %s", jerr.text, buf);
    assert_true(json_is_object(j));
    assert_int_equal(json_object_size(j), 5);
    char type[128];
    snprintf(type, sizeof(type), "urn:tenantd:problem:%s", problem_slug(kind));
    assert_string_equal(json_string_value(json_object_get(j, "type")), type);
    assert_string_equal(json_string_value(json_object_get(j, "title")), problem_title(kind));
    assert_true(json_is_integer(json_object_get(j, "status")));
    assert_int_equal(json_integer_value(json_object_get(j, "status")), status);
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), rid);
    assert_true(json_is_string(json_object_get(j, "detail")));
    return j;
}

static void test_render_plain(void **state)
{
    (void)state;
    char buf[1024];
    size_t n = http_render_problem(buf, sizeof(buf), PROBLEM_NOT_FOUND, 404, "no such member", "abc123");
    json_t *j = parse_problem(buf, n, PROBLEM_NOT_FOUND, 404, "abc123");
    assert_string_equal(json_string_value(json_object_get(j, "detail")), "no such member");
    json_decref(j);
    assert_string_equal(buf, "{\"type\":\"urn:tenantd:problem:not-found\",\"title\":\"Not Found\",\"status\":404,"
                             "\"detail\":\"no such member\",\"request_id\":\"abc123\"}");
}

static void test_render_null_detail_uses_title(void **state)
{
    (void)state;
    char buf[1024];
    size_t n = http_render_problem(buf, sizeof(buf), PROBLEM_TOO_MANY_REQUESTS, 429, NULL, "r");
    json_t *j = parse_problem(buf, n, PROBLEM_TOO_MANY_REQUESTS, 429, "r");
    assert_string_equal(json_string_value(json_object_get(j, "detail")), "Too Many Requests");
    json_decref(j);
}

/* The status given wins over the kind's (h2o errors mapped to a kind keep their own status). */
static void test_render_status_override(void **state)
{
    (void)state;
    char buf[1024];
    size_t n = http_render_problem(buf, sizeof(buf), PROBLEM_INTERNAL, 502, "upstream", "r");
    json_t *j = parse_problem(buf, n, PROBLEM_INTERNAL, 502, "r");
    json_decref(j);
}

static void test_render_escapes_detail(void **state)
{
    (void)state;
    char buf[1024];
    const char *detail = "column \"name\" at C:\\x\nline 2\r\tend\x01\x1f\x7f caf\xc3\xa9 </script>";
    size_t n = http_render_problem(buf, sizeof(buf), PROBLEM_UNPROCESSABLE, 422, detail, "rid");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20)
            fail_msg("raw control byte 0x%02x at %zu", buf[i], i);
    json_t *j = parse_problem(buf, n, PROBLEM_UNPROCESSABLE, 422, "rid");
    assert_string_equal(json_string_value(json_object_get(j, "detail")), detail);
    json_decref(j);

    /* a detail trying to close the string and inject a member */
    const char *inject = "x\",\"status\":200,\"y\":\"";
    n = http_render_problem(buf, sizeof(buf), PROBLEM_FORBIDDEN, 403, inject, "rid");
    j = parse_problem(buf, n, PROBLEM_FORBIDDEN, 403, "rid");
    assert_string_equal(json_string_value(json_object_get(j, "detail")), inject);
    json_decref(j);
}

/* Every kind renders as valid JSON with its own title and slug. */
static void test_render_every_kind(void **state)
{
    (void)state;
    char buf[1024];
    for (int k = 0; k < PROBLEM__COUNT; k++) {
        size_t n = http_render_problem(buf, sizeof(buf), (problem_kind_t)k, problem_status((problem_kind_t)k), "d", "id");
        json_t *j = parse_problem(buf, n, (problem_kind_t)k, problem_status((problem_kind_t)k), "id");
        json_decref(j);
    }
}

/* A detail longer than the buffer is cut (never mid-escape); the document stays valid and complete. */
static void test_render_long_detail(void **state)
{
    (void)state;
    static char detail[4000];
    static const char fills[] = {'a', '"', '\n', '\\', '\x01'};
    char rid[REQID_MAX_LEN + 1];
    memset(rid, 'r', REQID_MAX_LEN);
    rid[REQID_MAX_LEN] = '\0';
    for (size_t f = 0; f < sizeof(fills); f++) {
        memset(detail, fills[f], sizeof(detail) - 1);
        detail[sizeof(detail) - 1] = '\0';
        char buf[1024 + 16];
        memset(buf, '#', sizeof(buf));
        size_t n = http_render_problem(buf, 1024, PROBLEM_BAD_REQUEST, 400, detail, rid);
        assert_true(n > 0 && n < 1024);
        for (size_t i = 1024; i < sizeof(buf); i++)
            assert_int_equal(buf[i], '#');
        json_t *j = parse_problem(buf, n, PROBLEM_BAD_REQUEST, 400, rid);
        const char *d = json_string_value(json_object_get(j, "detail"));
        assert_true(strlen(d) > 0);
        assert_memory_equal(d, detail, strlen(d));
        json_decref(j);
    }
}

/* For every buffer size the result is either 0 or a complete valid document within cap bytes. */
static void test_render_every_cap(void **state)
{
    (void)state;
    char rid[REQID_MAX_LEN + 1];
    memset(rid, 'q', REQID_MAX_LEN);
    rid[REQID_MAX_LEN] = '\0';
    const char *rids[] = {"r1", rid};
    const char *detail = "bad \"value\"\n in field";
    for (size_t r = 0; r < 2; r++) {
        size_t ok = 0;
        for (size_t cap = 1; cap < 600; cap++) {
            char buf[600 + 16];
            memset(buf, '#', sizeof(buf));
            size_t n = http_render_problem(buf, cap, PROBLEM_CONFLICT, 409, detail, rids[r]);
            for (size_t i = cap; i < sizeof(buf); i++)
                if (buf[i] != '#')
                    fail_msg("cap %zu: byte %zu written", cap, i);
            if (n == 0)
                continue;
            assert_true(n < cap);
            json_t *j = parse_problem(buf, n, PROBLEM_CONFLICT, 409, rids[r]);
            const char *d = json_string_value(json_object_get(j, "detail"));
            assert_memory_equal(d, detail, strlen(d));
            json_decref(j);
            ok++;
        }
        assert_true(ok > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_plain),
        cmocka_unit_test(test_render_null_detail_uses_title),
        cmocka_unit_test(test_render_status_override),
        cmocka_unit_test(test_render_escapes_detail),
        cmocka_unit_test(test_render_every_kind),
        cmocka_unit_test(test_render_long_detail),
        cmocka_unit_test(test_render_every_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
