/*
 * Unit tests of core/reqid: which inbound x-request-id values are echoed (length and character
 * set edges, CR/LF and other header-splitting bytes) and the shape and distinctness of
 * generated ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/reqid.h"

static bool sane(const char *s)
{
    return reqid_is_sane(s, strlen(s));
}

static void assert_generated_shape(const char *id)
{
    assert_int_equal(strlen(id), 32);
    for (size_t i = 0; i < 32; i++) {
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            fail_msg("generated id %s has a non-lowercase-hex character at %zu", id, i);
    }
}

static void test_sane_ids(void **state)
{
    (void)state;
    assert_true(sane("a"));
    assert_true(sane("0"));
    assert_true(sane("abc-123"));
    assert_true(sane("ABC_def.ghi:jkl-MNO"));
    assert_true(sane("f47ac10b-58cc-4372-a567-0e02b2c3d479"));
    assert_true(sane("trace:span.1_2-3"));
    assert_true(sane("..."));
    assert_true(sane("-"));
}

static void test_insane_ids(void **state)
{
    (void)state;
    assert_false(reqid_is_sane(NULL, 0));
    assert_false(reqid_is_sane(NULL, 5));
    assert_false(reqid_is_sane("", 0));
    assert_false(reqid_is_sane("abc", 0));
    assert_false(sane("abc\r\nSet-Cookie: x=1"));
    assert_false(sane("abc\n"));
    assert_false(sane("\rabc"));
    assert_false(sane("a b"));
    assert_false(sane("a\tb"));
    assert_false(sane("a\"b"));
    assert_false(sane("a\\b"));
    assert_false(sane("a/b"));
    assert_false(sane("a,b"));
    assert_false(sane("a;b"));
    assert_false(sane("a=b"));
    assert_false(sane("a+b"));
    assert_false(sane("<script>"));
    assert_false(sane("caf\xc3\xa9"));
    assert_false(sane("a\x7f"));
    assert_false(sane("a\x80"));
    assert_false(sane("a\xff"));
    /* an embedded NUL within the given length */
    assert_false(reqid_is_sane("ab\0cd", 5));
    /* only len bytes are looked at */
    assert_true(reqid_is_sane("abc\r\n", 3));
}

static void test_every_byte(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        char s[3] = {'x', (char)c, '\0'};
        bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == ':' || c == '-';
        if (reqid_is_sane(s, 2) != want)
            fail_msg("byte 0x%02x: expected %s", c, want ? "sane" : "insane");
    }
}

static void test_length_limit(void **state)
{
    (void)state;
    char s[200];
    memset(s, 'a', sizeof(s));
    assert_true(reqid_is_sane(s, 1));
    assert_true(reqid_is_sane(s, 127));
    assert_true(reqid_is_sane(s, REQID_MAX_LEN));
    assert_int_equal(REQID_MAX_LEN, 128);
    assert_false(reqid_is_sane(s, 129));
    assert_false(reqid_is_sane(s, 200));
}

static void test_generate_shape_and_distinct(void **state)
{
    (void)state;
    enum { N = 2000 };
    char (*ids)[33] = calloc(N, 33);
    assert_non_null(ids);
    for (size_t i = 0; i < N; i++) {
        memset(ids[i], 'Z', 33);
        reqid_generate(ids[i]);
        assert_generated_shape(ids[i]);
        assert_true(reqid_is_sane(ids[i], 32));
    }
    for (size_t i = 0; i < N; i++)
        for (size_t j = i + 1; j < N; j++)
            if (memcmp(ids[i], ids[j], 32) == 0)
                fail_msg("ids %zu and %zu are both %s", i, j, ids[i]);
    /* every hex digit shows up in some position: the output is not stuck */
    int seen[16] = {0};
    for (size_t i = 0; i < N; i++)
        for (size_t k = 0; k < 32; k++)
            seen[ids[i][k] <= '9' ? ids[i][k] - '0' : ids[i][k] - 'a' + 10] = 1;
    for (int d = 0; d < 16; d++)
        assert_int_equal(seen[d], 1);
    free(ids);
}

static void test_choose(void **state)
{
    (void)state;
    char out[REQID_MAX_LEN + 1];

    /* a sane inbound id is echoed verbatim */
    memset(out, 'Z', sizeof(out));
    assert_int_equal(reqid_choose("client-id.1", 11, out), 11);
    assert_string_equal(out, "client-id.1");

    /* the inbound value is length-delimited, not NUL-terminated */
    assert_int_equal(reqid_choose("abcdef", 3, out), 3);
    assert_string_equal(out, "abc");

    /* exactly 128 characters are kept and terminated within the buffer */
    char in[REQID_MAX_LEN + 2];
    memset(in, 'q', sizeof(in));
    memset(out, 'Z', sizeof(out));
    assert_int_equal(reqid_choose(in, REQID_MAX_LEN, out), REQID_MAX_LEN);
    assert_int_equal(strlen(out), REQID_MAX_LEN);
    assert_int_equal(memcmp(out, in, REQID_MAX_LEN), 0);

    /* 129 characters, CR/LF, NULL and empty get a fresh id */
    assert_int_equal(reqid_choose(in, REQID_MAX_LEN + 1, out), 32);
    assert_generated_shape(out);
    assert_int_equal(reqid_choose("bad\r\nid", 7, out), 32);
    assert_generated_shape(out);
    assert_int_equal(reqid_choose(NULL, 0, out), 32);
    assert_generated_shape(out);
    assert_int_equal(reqid_choose("", 0, out), 32);
    assert_generated_shape(out);
    char first[33];
    memcpy(first, out, 33);
    assert_int_equal(reqid_choose("x y", 3, out), 32);
    assert_string_not_equal(first, out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sane_ids),
        cmocka_unit_test(test_insane_ids),
        cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_generate_shape_and_distinct),
        cmocka_unit_test(test_choose),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
