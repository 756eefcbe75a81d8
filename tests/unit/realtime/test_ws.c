/*
 * Unit tests of realtime/ws: the pure parts of the WebSocket layer — frame headers at the length
 * boundaries of RFC 6455 (7-bit, 16-bit and 64-bit lengths), written and read back (client frames:
 * incomplete headers, protocol errors), and the UTF-8 check text messages must
 * pass (overlong forms, surrogates, code points over U+10FFFF and truncated sequences refused).
 * The socket side is covered by tests/integration/realtime-ws.test.mjs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "realtime/ws.h"

static void test_frame_header(void **state)
{
    (void)state;
    uint8_t h[WS_HEADER_MAX];
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 0), 2);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 0);
    assert_int_equal(ws_frame_header(h, WS_OP_BINARY, 125), 2);
    assert_int_equal(h[0], 0x82);
    assert_int_equal(h[1], 125);
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 126), 4);
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2], 0);
    assert_int_equal(h[3], 126);
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 65535), 4);
    assert_int_equal(h[2], 0xff);
    assert_int_equal(h[3], 0xff);
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 65536), 10);
    assert_int_equal(h[1], 127);
    static const uint8_t len65536[8] = {0, 0, 0, 0, 0, 1, 0, 0};
    assert_memory_equal(h + 2, len65536, 8);
    assert_int_equal(ws_frame_header(h, WS_OP_TEXT, 1000000), 10);
    static const uint8_t len1m[8] = {0, 0, 0, 0, 0, 0x0f, 0x42, 0x40};
    assert_memory_equal(h + 2, len1m, 8);
}

static bool valid(const char *s)
{
    return ws_utf8_valid((const uint8_t *)s, strlen(s));
}

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(ws_utf8_valid((const uint8_t *)"", 0));
    assert_true(valid("plain ascii 42[\"x\"]"));
    assert_true(valid("\xc3\xa9t\xc3\xa9"));         /* été */
    assert_true(valid("\xe2\x82\xac"));              /* € */
    assert_true(valid("\xf0\x9f\x98\x80"));          /* U+1F600 */
    assert_true(valid("\xf4\x8f\xbf\xbf"));          /* U+10FFFF */
    assert_true(valid("\xed\x9f\xbf"));              /* U+D7FF, just below the surrogates */
    assert_true(ws_utf8_valid((const uint8_t *)"a\0b", 3)); /* U+0000 is valid UTF-8 */
}

static void test_utf8_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "\xff",             /* never in UTF-8 */
        "\x80",             /* a lone continuation byte */
        "\xc3",             /* truncated at the end */
        "\xe2\x82",         /* truncated at the end */
        "\xc3(",            /* a bad continuation byte */
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong '/' in 3 bytes */
        "\xf0\x80\x80\xaf", /* overlong '/' in 4 bytes */
        "\xed\xa0\x80",     /* U+D800, a surrogate */
        "\xed\xbf\xbf",     /* U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf8\x88\x80\x80\x80", /* 5-byte forms */
        "ok\xe2\x82",       /* truncated after valid text */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (valid(bad[i]))
            fail_msg("accepted bad UTF-8 #%zu", i);
    }
}

/* A masked client frame header for len bytes, as a browser writes it. */
static size_t client_header(uint8_t *out, uint8_t first, size_t len)
{
    uint8_t h[WS_HEADER_MAX];
    size_t n = ws_frame_header(h, WS_OP_TEXT, len);
    memcpy(out, h, n);
    out[0] = first;
    out[1] |= 0x80;
    memcpy(out + n, "\xaa\xbb\xcc\xdd", 4);
    return n + 4;
}

static void test_parse_header(void **state)
{
    (void)state;
    uint8_t b[32];
    ws_frame_t f;
    /* complete headers at the three length forms */
    size_t sizes[] = {0, 125, 126, 65535, 65536, 1000000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = client_header(b, 0x81, sizes[i]);
        assert_int_equal(ws_parse_header(b, n, &f), 1);
        assert_true(f.fin);
        assert_int_equal(f.opcode, WS_OP_TEXT);
        assert_int_equal(f.payload_len, sizes[i]);
        assert_int_equal(f.header_len, n);
        assert_ptr_equal(f.mask, b + n - 4);
        /* every shorter prefix asks for more */
        for (size_t k = 0; k < n; k++)
            assert_int_equal(ws_parse_header(b, k, &f), 0);
    }
    /* a non-final text frame, a continuation */
    size_t n = client_header(b, 0x01, 3);
    assert_int_equal(ws_parse_header(b, n, &f), 1);
    assert_false(f.fin);
    n = client_header(b, 0x80, 3);
    assert_int_equal(ws_parse_header(b, n, &f), 1);
    assert_int_equal(f.opcode, 0);
    /* protocol errors: unmasked, RSV bits, fragmented or long control frames */
    n = client_header(b, 0x81, 5);
    b[1] &= 0x7f;
    assert_int_equal(ws_parse_header(b, n, &f), -1);
    n = client_header(b, 0xc1, 5); /* RSV1 (no extension was negotiated) */
    assert_int_equal(ws_parse_header(b, n, &f), -1);
    n = client_header(b, 0x09, 5); /* a ping that is not final */
    assert_int_equal(ws_parse_header(b, n, &f), -1);
    n = client_header(b, 0x89, 126); /* a ping of 126 bytes */
    assert_int_equal(ws_parse_header(b, n, &f), -1);
    n = client_header(b, 0x89, 125);
    assert_int_equal(ws_parse_header(b, n, &f), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_header),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_invalid),
        cmocka_unit_test(test_parse_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
