/*
 * libFuzzer target for realtime/ws's client-frame reader (ws_parse_header) and its UTF-8 check:
 * arbitrary bytes are read as a stream of frames the way parse_input reads a socket buffer. A
 * header it accepts must lie inside the bytes it was given, with the 4-byte mask right before the
 * payload, a final control frame of at most 125 bytes, no RSV bits and the mask bit set; a frame
 * written by ws_frame_header (plus a mask) must read back as what was written.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "realtime/ws.h"

/* Writes a masked frame of len payload bytes (payload left as zeros) into out; returns its size. */
static size_t masked_frame(uint8_t *out, int op, size_t len)
{
    uint8_t head[WS_HEADER_MAX];
    size_t hl = ws_frame_header(head, op, len);
    memcpy(out, head, hl);
    out[1] |= 0x80;
    memcpy(out + hl, "\x01\x02\x03\x04", 4);
    memset(out + hl + 4, 0, len);
    return hl + 4 + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    size_t off = 0;
    while (off < size) {
        ws_frame_t f;
        int rc = ws_parse_header(buf + off, size - off, &f);
        if (rc < -1 || rc > 1)
            abort();
        if (rc != 1)
            break;
        if (f.header_len < 6 || f.header_len > 14 || f.header_len > size - off || f.mask != buf + off + f.header_len - 4)
            abort();
        if (f.opcode >= 8 && (!f.fin || f.payload_len > 125))
            abort();
        if ((buf[off] & 0x70) != 0 || (buf[off + 1] & 0x80) == 0)
            abort();
        if (f.payload_len > size - off - f.header_len)
            break; /* incomplete payload: the reader would wait */
        uint8_t *payload = buf + off + f.header_len;
        for (size_t i = 0; i < f.payload_len; i++)
            payload[i] ^= f.mask[i & 3];
        (void)ws_utf8_valid(payload, (size_t)f.payload_len);
        off += f.header_len + (size_t)f.payload_len;
    }
    free(buf);

    /* round trip: the first bytes choose an opcode and a length */
    if (size >= 3) {
        int op = (data[0] & 1) ? WS_OP_BINARY : WS_OP_TEXT;
        size_t len = ((size_t)data[1] << 8 | data[2]) % 70000;
        uint8_t *frame = malloc(len + WS_HEADER_MAX + 4);
        if (frame == NULL)
            return 0;
        size_t n = masked_frame(frame, op, len);
        ws_frame_t f;
        if (ws_parse_header(frame, n, &f) != 1 || !f.fin || f.opcode != op || f.payload_len != len ||
            f.header_len + len != n)
            abort();
        free(frame);
    }
    return 0;
}
