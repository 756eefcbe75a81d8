/*
 * Unit tests of realtime/sio_packet: the Socket.IO v5 packet text — every type with and without a
 * namespace and an ack id, binary attachment counts, the payload shapes each type allows (as
 * socket.io-parser's isPayloadValid), malformed input refused, and encode → parse round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "realtime/sio_packet.h"

static int parse(const char *s, siop_packet_t *p)
{
    return siop_parse(s, strlen(s), p);
}

static void test_valid_packets(void **state)
{
    (void)state;
    siop_packet_t p;
    assert_int_equal(parse("0", &p), 0);
    assert_int_equal(p.type, SIOP_CONNECT);
    assert_string_equal(p.nsp, "/");
    assert_null(p.data);
    siop_free(&p);

    assert_int_equal(parse("0/admin,{\"token\":\"t\"}", &p), 0);
    assert_string_equal(p.nsp, "/admin");
    assert_string_equal(json_string_value(json_object_get(p.data, "token")), "t");
    siop_free(&p);

    assert_int_equal(parse("212[\"join\",{\"room\":\"a\"}]", &p), 0);
    assert_int_equal(p.type, SIOP_EVENT);
    assert_true(p.has_ack);
    assert_int_equal(p.ack_id, 12);
    assert_string_equal(json_string_value(json_array_get(p.data, 0)), "join");
    siop_free(&p);

    assert_int_equal(parse("3/chat,7[]", &p), 0);
    assert_int_equal(p.type, SIOP_ACK);
    assert_string_equal(p.nsp, "/chat");
    assert_int_equal(p.ack_id, 7);
    siop_free(&p);

    assert_int_equal(parse("52-[\"up\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]", &p), 0);
    assert_int_equal(p.type, SIOP_BINARY_EVENT);
    assert_int_equal(p.attachments, 2);
    siop_free(&p);

    assert_int_equal(parse("1", &p), 0);
    assert_int_equal(p.type, SIOP_DISCONNECT);
    siop_free(&p);
    assert_int_equal(parse("1/admin,", &p), 0);
    assert_string_equal(p.nsp, "/admin");
    siop_free(&p);

    assert_int_equal(parse("4{\"message\":\"no\"}", &p), 0);
    siop_free(&p);
    assert_int_equal(parse("4\"no\"", &p), 0);
    siop_free(&p);
}

static void test_invalid_packets(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",                    /* empty */
        "7",                   /* unknown type */
        "x",                   /* not a type */
        "2",                   /* an event without payload */
        "2[]",                 /* an event without a name */
        "2[1]",                /* a name that is not a string */
        "2{\"a\":1}",          /* an event that is not an array */
        "2[\"a\"",             /* truncated JSON */
        "3[]",                 /* an ack without id */
        "37{}",                /* an ack that is not an array */
        "0[1]",                /* a CONNECT payload that is not an object */
        "1{}",                 /* a DISCONNECT with a payload */
        "1 44",                /* ditto, a number after whitespace */
        "4",                   /* a CONNECT_ERROR without payload */
        "444444\n44",          /* a CONNECT_ERROR whose payload is a number (found by the fuzzer) */
        "5[\"a\"]",            /* a binary event without attachment count */
        "5x-[\"a\"]",          /* a malformed attachment count */
        "21234567890123456[\"a\"]", /* an ack id of 16 digits */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        siop_packet_t p;
        if (parse(bad[i], &p) != -1)
            fail_msg("accepted bad packet #%zu: %s", i, bad[i]);
    }
    /* a namespace longer than SIOP_MAX_NAMESPACE */
    char longnsp[SIOP_MAX_NAMESPACE + 8];
    longnsp[0] = '0';
    longnsp[1] = '/';
    memset(longnsp + 2, 'n', SIOP_MAX_NAMESPACE);
    longnsp[SIOP_MAX_NAMESPACE + 2] = '\0';
    siop_packet_t p;
    assert_int_equal(parse(longnsp, &p), -1);
}

static void test_encode_round_trip(void **state)
{
    (void)state;
    size_t len = 0;
    char *enc = siop_encode(SIOP_ACK, "/chat", true, 42, "[\"ok\"]", &len);
    assert_non_null(enc);
    assert_int_equal(enc[0], '4');
    siop_packet_t p;
    assert_int_equal(siop_parse(enc + 1, len - 1, &p), 0);
    assert_int_equal(p.type, SIOP_ACK);
    assert_string_equal(p.nsp, "/chat");
    assert_int_equal(p.ack_id, 42);
    assert_string_equal(json_string_value(json_array_get(p.data, 0)), "ok");
    siop_free(&p);
    free(enc);

    enc = siop_encode_event("change", 6, "{\"seq\":3}", 9, &len);
    assert_non_null(enc);
    assert_int_equal(siop_parse(enc + 1, len - 1, &p), 0);
    assert_int_equal(p.type, SIOP_EVENT);
    assert_string_equal(json_string_value(json_array_get(p.data, 0)), "change");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(p.data, 1), "seq")), 3);
    siop_free(&p);
    free(enc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_packets),
        cmocka_unit_test(test_invalid_packets),
        cmocka_unit_test(test_encode_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
