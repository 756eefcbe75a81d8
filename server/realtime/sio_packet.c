/*
 * sio_packet: parser and writers for Socket.IO packets (see sio_packet.h). The parser walks the
 * header by hand (type, attachments, namespace, ack id) and hands the rest to jansson, which must
 * consume it whole; anything else is a malformed packet.
 */
#include "realtime/sio_packet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int siop_parse(const char *s, size_t len, siop_packet_t *out)
{
    memset(out, 0, sizeof(*out));
    strcpy(out->nsp, "/");
    if (len == 0 || s[0] < '0' || s[0] > '6')
        return -1;
    out->type = (siop_type_t)(s[0] - '0');
    size_t i = 1;
    if (out->type == SIOP_BINARY_EVENT || out->type == SIOP_BINARY_ACK) {
        int n = 0;
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 6)
            n = n * 10 + (s[i++] - '0');
        if (i == start || i >= len || s[i] != '-')
            return -1;
        i++;
        out->attachments = n;
    }
    if (i < len && s[i] == '/') {
        size_t start = i;
        while (i < len && s[i] != ',')
            i++;
        size_t n = i - start;
        if (n > SIOP_MAX_NAMESPACE)
            return -1;
        memcpy(out->nsp, s + start, n);
        out->nsp[n] = '\0';
        if (i < len)
            i++; /* the comma */
    }
    if (i < len && s[i] >= '0' && s[i] <= '9') {
        uint64_t id = 0;
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (i - start >= 15)
                return -1;
            id = id * 10 + (uint64_t)(s[i++] - '0');
        }
        out->has_ack = true;
        out->ack_id = id;
    }
    if (i < len) {
        json_error_t err;
        /* U+0000 is valid JSON: accept it here, handlers refuse such strings where they matter */
        out->data = json_loadb(s + i, len - i, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
        if (out->data == NULL)
            return -1;
    }
    switch (out->type) {
    case SIOP_EVENT:
    case SIOP_BINARY_EVENT:
        /* an event is a non-empty array whose first element is the name */
        if (!json_is_array(out->data) || json_array_size(out->data) == 0 || !json_is_string(json_array_get(out->data, 0))) {
            siop_free(out);
            return -1;
        }
        break;
    case SIOP_ACK:
    case SIOP_BINARY_ACK:
        if (!out->has_ack || !json_is_array(out->data)) {
            siop_free(out);
            return -1;
        }
        break;
    case SIOP_CONNECT:
        if (out->data != NULL && !json_is_object(out->data)) {
            siop_free(out);
            return -1;
        }
        break;
    case SIOP_DISCONNECT: /* no payload (Socket.IO's isPayloadValid) */
        if (out->data != NULL) {
            siop_free(out);
            return -1;
        }
        break;
    case SIOP_CONNECT_ERROR: /* a string or an object */
        if (!json_is_string(out->data) && !json_is_object(out->data)) {
            siop_free(out);
            return -1;
        }
        break;
    }
    return 0;
}

void siop_free(siop_packet_t *p)
{
    if (p->data != NULL)
        json_decref(p->data);
    p->data = NULL;
}

char *siop_encode(siop_type_t type, const char *nsp, bool has_ack, uint64_t ack_id, const char *payload, size_t *len)
{
    size_t plen = payload != NULL ? strlen(payload) : 0;
    size_t cap = plen + strlen(nsp) + 48;
    char *out = malloc(cap);
    int n = snprintf(out, cap, "4%d", (int)type);
    if (strcmp(nsp, "/") != 0)
        n += snprintf(out + n, cap - (size_t)n, "%s,", nsp);
    if (has_ack)
        n += snprintf(out + n, cap - (size_t)n, "%llu", (unsigned long long)ack_id);
    if (payload != NULL) {
        memcpy(out + n, payload, plen);
        n += (int)plen;
    }
    out[n] = '\0';
    *len = (size_t)n;
    return out;
}

char *siop_encode_event(const char *event, size_t event_len, const char *data, size_t data_len, size_t *len)
{
    json_t *name = json_stringn(event, event_len);
    char *name_text = json_dumps(name, JSON_ENCODE_ANY);
    json_decref(name);
    size_t cap = strlen(name_text) + data_len + 8;
    char *out = malloc(cap);
    int n = snprintf(out, cap, "42[%s,", name_text);
    memcpy(out + n, data, data_len);
    n += (int)data_len;
    out[n++] = ']';
    out[n] = '\0';
    free(name_text);
    *len = (size_t)n;
    return out;
}

char *siop_encode_event_offset(const char *event, size_t event_len, const char *data, size_t data_len, uint64_t seq, size_t *len)
{
    char *base = siop_encode_event(event, event_len, data, data_len, len);
    if (seq == 0)
        return base;
    /* 42[...] -> 42[...,"<seq>"] */
    char *out = malloc(*len + 32);
    memcpy(out, base, *len - 1);
    int n = snprintf(out + *len - 1, 32, ",\"%llu\"]", (unsigned long long)seq);
    *len = *len - 1 + (size_t)n;
    free(base);
    return out;
}
