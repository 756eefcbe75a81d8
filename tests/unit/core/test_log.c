/*
 * Unit tests of core/log: log_json_escape (quotes, backslashes and every control byte escaped,
 * other bytes passed through, truncation never splitting an escape nor writing past cap) and the
 * JSON lines log_msg and log_access write to stdout, which must parse as JSON objects even when
 * their text is long or full of control characters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

/* Escapes s (len bytes) into a fresh buffer of cap bytes and returns the escaped length. */
static size_t escape(char *out, size_t cap, const char *s, size_t len)
{
    size_t pos = 0;
    log_json_escape(out, cap, &pos, s, len);
    return pos;
}

/* Parses "<escaped>" as a JSON string; returns it (caller decrefs) or NULL. */
static json_t *parse_escaped(const char *esc, size_t len)
{
    char *doc = malloc(len + 3);
    assert_non_null(doc);
    doc[0] = '"';
    memcpy(doc + 1, esc, len);
    doc[len + 1] = '"';
    doc[len + 2] = '\0';
    json_error_t jerr;
    json_t *j = json_loadb(doc, len + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    free(doc);
    return j;
}

static void test_escape_basics(void **state)
{
    (void)state;
    char out[256];
    size_t n;
    n = escape(out, sizeof(out), "plain text", 10);
    assert_int_equal(n, 10);
    assert_memory_equal(out, "plain text", 10);
    n = escape(out, sizeof(out), "say \"hi\"", 8);
    assert_int_equal(n, 10);
    assert_memory_equal(out, "say \\\"hi\\\"", 10);
    n = escape(out, sizeof(out), "C:\\dir", 6);
    assert_memory_equal(out, "C:\\\\dir", n);
    n = escape(out, sizeof(out), "a\nb\rc\td", 7);
    assert_memory_equal(out, "a\\u000ab\\u000dc\\u0009d", n);
    n = escape(out, sizeof(out), "\x1f\x7f", 2);
    assert_memory_equal(out, "\\u001f\\u007f", n);
    n = escape(out, sizeof(out), "a\0b", 3);
    assert_memory_equal(out, "a\\u0000b", n);
    /* UTF-8 and other high bytes pass through untouched */
    n = escape(out, sizeof(out), "caf\xc3\xa9 \xe2\x82\xac", 9);
    assert_int_equal(n, 9);
    assert_memory_equal(out, "caf\xc3\xa9 \xe2\x82\xac", 9);
    /* only len bytes are read */
    n = escape(out, sizeof(out), "abcdef", 3);
    assert_int_equal(n, 3);
    n = escape(out, sizeof(out), "", 0);
    assert_int_equal(n, 0);
}

/* Every byte value round-trips through a JSON parser; no raw control byte is left. */
static void test_escape_every_byte(void **state)
{
    (void)state;
    for (int c = 0; c < 128; c++) {
        char in[3] = {'x', (char)c, 'y'};
        char out[32];
        size_t n = escape(out, sizeof(out), in, 3);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
                fail_msg("byte 0x%02x left a raw control byte", c);
        json_t *j = parse_escaped(out, n);
        if (j == NULL)
            fail_msg("byte 0x%02x: escaped form %.*s is not a JSON string", c, (int)n, out);
        assert_int_equal(json_string_length(j), 3);
        assert_memory_equal(json_string_value(j), in, 3);
        json_decref(j);
    }
}

/* Appending continues at *pos and leaves what is before it alone. */
static void test_escape_appends(void **state)
{
    (void)state;
    char out[64];
    memcpy(out, "{\"k\":\"", 6);
    size_t pos = 6;
    log_json_escape(out, sizeof(out), &pos, "v\"", 2);
    assert_int_equal(pos, 9);
    assert_memory_equal(out, "{\"k\":\"v\\\"", 9);
}

/* With any cap, nothing is written at or past cap and the output is a whole-escape prefix. */
static void test_escape_truncation(void **state)
{
    (void)state;
    const char in[] = "ab\"c\\d\ne\x01" "fgh\x7fij\"\"\"klmnop";
    size_t inlen = sizeof(in) - 1;
    for (size_t cap = 0; cap < 64; cap++) {
        char out[80];
        memset(out, '#', sizeof(out));
        size_t n = escape(out, cap, in, inlen);
        assert_true(n < cap || (cap == 0 && n == 0));
        for (size_t i = cap; i < sizeof(out); i++)
            if (out[i] != '#')
                fail_msg("cap %zu: byte %zu written", cap, i);
        json_t *j = parse_escaped(out, n);
        if (j == NULL)
            fail_msg("cap %zu: truncated output %.*s split an escape", cap, (int)n, out);
        size_t jl = json_string_length(j);
        assert_true(jl <= inlen);
        assert_memory_equal(json_string_value(j), in, jl);
        json_decref(j);
    }
    /* a position already at or past cap writes nothing */
    char out[16];
    memset(out, '#', sizeof(out));
    size_t pos = 10;
    log_json_escape(out, 8, &pos, "abc", 3);
    assert_int_equal(pos, 10);
    assert_int_equal(out[0], '#');
}

/* Captures what fn writes to stdout (fd 1) into buf; returns the length. */
static size_t capture_stdout(void (*fn)(void *), void *arg, char *buf, size_t cap)
{
    fflush(stdout);
    char path[] = "/tmp/tenantd-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDOUT_FILENO) >= 0);
    fn(arg);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    off_t end = lseek(fd, 0, SEEK_END);
    assert_true(end >= 0 && (size_t)end < cap);
    assert_int_equal(pread(fd, buf, (size_t)end, 0), end);
    close(fd);
    buf[end] = '\0';
    return (size_t)end;
}

/* Parses one captured line: exactly one '\n', at the end, and a JSON object before it. */
static json_t *parse_line(const char *buf, size_t len)
{
    if (len == 0)
        fail_msg("nothing was written");
    if (buf[len - 1] != '\n' || memchr(buf, '\n', len - 1) != NULL)
        fail_msg("not exactly one line: %s", buf);
    json_error_t jerr;
    json_t *j = json_loadb(buf, len - 1, JSON_ALLOW_NUL, &jerr);
    if (j == NULL)
        fail_msg("line is not JSON (%s at %d): %.300s", jerr.text, jerr.position, buf);
    assert_true(json_is_object(j));
    return j;
}

struct msg_args {
    config_log_level_t level;
    const char *rid;
    const char *msg;
};

static void do_log_msg(void *p)
{
    struct msg_args *a = p;
    log_msg(a->level, a->rid, "%s", a->msg);
}

static void test_log_msg_line(void **state)
{
    (void)state;
    static char buf[16384];
    log_set_level(CONFIG_LOG_INFO);
    struct msg_args a = {CONFIG_LOG_WARN, "req-1", "disk \"almost\" full\n\tat C:\\tmp"};
    size_t n = capture_stdout(do_log_msg, &a, buf, sizeof(buf));
    json_t *j = parse_line(buf, n);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), a.msg);
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "req-1");
    const char *ts = json_string_value(json_object_get(j, "ts"));
    assert_non_null(ts);
    /* 2026-01-02T03:04:05.678Z */
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    json_decref(j);

    /* without a request id the key is absent */
    a.rid = NULL;
    a.level = CONFIG_LOG_ERROR;
    a.msg = "x";
    n = capture_stdout(do_log_msg, &a, buf, sizeof(buf));
    j = parse_line(buf, n);
    assert_null(json_object_get(j, "request_id"));
    assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
    json_decref(j);
}

static void test_log_level_filter(void **state)
{
    (void)state;
    static char buf[1024];
    log_set_level(CONFIG_LOG_WARN);
    assert_false(log_enabled(CONFIG_LOG_DEBUG));
    assert_false(log_enabled(CONFIG_LOG_INFO));
    assert_true(log_enabled(CONFIG_LOG_WARN));
    assert_true(log_enabled(CONFIG_LOG_ERROR));
    struct msg_args a = {CONFIG_LOG_INFO, NULL, "dropped"};
    assert_int_equal(capture_stdout(do_log_msg, &a, buf, sizeof(buf)), 0);
    log_set_level(CONFIG_LOG_DEBUG);
    a.level = CONFIG_LOG_DEBUG;
    assert_true(capture_stdout(do_log_msg, &a, buf, sizeof(buf)) > 0);
    log_set_level(CONFIG_LOG_INFO);
}

/* Messages too long for a line are truncated, but the line stays one valid JSON object that keeps its request id. */
static void test_log_msg_long(void **state)
{
    (void)state;
    static char buf[16384];
    static char msg[5000];
    static const char *const fills[] = {"a", "\"", "\x01", "\\\n"};
    log_set_level(CONFIG_LOG_INFO);
    for (size_t f = 0; f < sizeof(fills) / sizeof(fills[0]); f++) {
        size_t fl = strlen(fills[f]), i = 0;
        while (i + fl < sizeof(msg)) {
            memcpy(msg + i, fills[f], fl);
            i += fl;
        }
        msg[i] = '\0';
        char rid[128 + 1];
        memset(rid, 'r', sizeof(rid) - 1);
        rid[sizeof(rid) - 1] = '\0';
        struct msg_args a = {CONFIG_LOG_ERROR, rid, msg};
        size_t n = capture_stdout(do_log_msg, &a, buf, sizeof(buf));
        assert_true(n <= 4096);
        json_t *j = parse_line(buf, n);
        const char *m = json_string_value(json_object_get(j, "msg"));
        assert_non_null(m);
        assert_true(strlen(m) > 0);
        assert_memory_equal(m, msg, strlen(m));
        assert_string_equal(json_string_value(json_object_get(j, "request_id")), rid);
        json_decref(j);
    }
}

struct access_args {
    const char *method;
    size_t method_len;
    const char *path;
    size_t path_len;
    const char *tenant;
};

static void do_log_access(void *p)
{
    struct access_args *a = p;
    log_access("rid-42", a->method, a->method_len, a->path, a->path_len, 404, 1.5, a->tenant, 0x200);
}

static void test_log_access_line(void **state)
{
    (void)state;
    static char buf[16384];
    log_set_level(CONFIG_LOG_INFO);
    struct access_args a = {"GETX", 3, "/v1/things?q=\"x\"", 16, "acme"};
    size_t n = capture_stdout(do_log_access, &a, buf, sizeof(buf));
    json_t *j = parse_line(buf, n);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "access");
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "rid-42");
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/v1/things?q=\"x\"");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 404);
    assert_true(json_real_value(json_object_get(j, "duration_ms")) == 1.5);
    assert_string_equal(json_string_value(json_object_get(j, "http")), "2.0");
    assert_string_equal(json_string_value(json_object_get(j, "tenant")), "acme");
    json_decref(j);

    a.tenant = NULL;
    n = capture_stdout(do_log_access, &a, buf, sizeof(buf));
    j = parse_line(buf, n);
    assert_null(json_object_get(j, "tenant"));
    json_decref(j);
}

/* A long path of bytes that need escaping is cut, yet the status and tenant fields survive intact. */
static void test_log_access_long_path(void **state)
{
    (void)state;
    static char buf[16384];
    static char path[3000];
    static const char fills[] = {'p', '"', '\x7f', '\x02'};
    log_set_level(CONFIG_LOG_INFO);
    for (size_t f = 0; f < sizeof(fills); f++) {
        path[0] = '/';
        memset(path + 1, fills[f], sizeof(path) - 1);
        struct access_args a = {"POST", 4, path, sizeof(path), "acme"};
        size_t n = capture_stdout(do_log_access, &a, buf, sizeof(buf));
        assert_true(n <= 4096);
        json_t *j = parse_line(buf, n);
        const char *p = json_string_value(json_object_get(j, "path"));
        assert_non_null(p);
        assert_true(strlen(p) <= 1024);
        assert_memory_equal(p, path, strlen(p));
        assert_int_equal(json_integer_value(json_object_get(j, "status")), 404);
        assert_string_equal(json_string_value(json_object_get(j, "tenant")), "acme");
        json_decref(j);

        /* an absurd method as well: still one valid line with its status */
        struct access_args b = {path, sizeof(path), path, sizeof(path), path};
        path[sizeof(path) - 1] = '\0';
        n = capture_stdout(do_log_access, &b, buf, sizeof(buf));
        assert_true(n <= 4096);
        j = parse_line(buf, n);
        assert_int_equal(json_integer_value(json_object_get(j, "status")), 404);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_basics),
        cmocka_unit_test(test_escape_every_byte),
        cmocka_unit_test(test_escape_appends),
        cmocka_unit_test(test_escape_truncation),
        cmocka_unit_test(test_log_msg_line),
        cmocka_unit_test(test_log_level_filter),
        cmocka_unit_test(test_log_msg_long),
        cmocka_unit_test(test_log_access_line),
        cmocka_unit_test(test_log_access_long_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
