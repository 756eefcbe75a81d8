/*
 * libFuzzer target for realtime/sio_packet (the Socket.IO v5 packet text): on arbitrary bytes
 * siop_parse must not read out of bounds or leak, must answer 0 or -1, and a packet it accepts
 * must have a known type, a namespace that starts with '/' and fits, and no attachment count
 * outside binary packets. An accepted packet re-encoded with siop_encode must parse again to the
 * same type, namespace and ack id.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "realtime/sio_packet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    siop_packet_t p;
    memset(&p, 0, sizeof(p));
    int rc = siop_parse((const char *)data, size, &p);
    if (rc != 0 && rc != -1)
        abort();
    if (rc != 0)
        return 0;
    if (p.type < SIOP_CONNECT || p.type > SIOP_BINARY_ACK)
        abort();
    size_t nlen = strnlen(p.nsp, sizeof(p.nsp));
    if (nlen == 0 || nlen > SIOP_MAX_NAMESPACE || p.nsp[0] != '/')
        abort();
    if (p.type != SIOP_BINARY_EVENT && p.type != SIOP_BINARY_ACK && p.attachments != 0)
        abort();
    if (p.type != SIOP_BINARY_EVENT && p.type != SIOP_BINARY_ACK) {
        char *payload = p.data != NULL ? json_dumps(p.data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        size_t len = 0;
        char *enc = siop_encode(p.type, p.nsp, p.has_ack, p.ack_id, payload, &len);
        if (enc == NULL || len == 0 || enc[0] != '4')
            abort();
        siop_packet_t q;
        memset(&q, 0, sizeof(q));
        if (siop_parse(enc + 1, len - 1, &q) != 0 || q.type != p.type || strcmp(q.nsp, p.nsp) != 0 || q.has_ack != p.has_ack ||
            (p.has_ack && q.ack_id != p.ack_id))
            abort();
        siop_free(&q);
        free(enc);
        free(payload);
    }
    siop_free(&p);
    return 0;
}
