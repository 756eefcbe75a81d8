/*
 * libFuzzer target for request ids and log escaping: reqid_choose on arbitrary bytes must yield
 * a sane id (the input itself when it was sane), and log_json_escape of the raw bytes must be a
 * valid JSON string body (UTF-8 agnostic): no raw control bytes, every backslash starting a
 * complete escape, no bare quote, nothing written at or past cap, and decoding to a prefix of the
 * input (all of it when cap is large enough).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/reqid.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Checks out[0..n) is a well-formed escaped string that decodes to a prefix of in[0..len). */
static void check_escaped(const char *out, size_t n, const uint8_t *in, size_t len, int whole)
{
    size_t j = 0; /* decoded bytes so far */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)out[i];
        int decoded;
        if (c < 0x20 || c == 0x7f || c == '"')
            abort();
        if (c == '\\') {
            if (i + 1 >= n)
                abort();
            char e = out[i + 1];
            if (e == '"' || e == '\\') {
                decoded = e;
                i += 2;
            } else if (e == 'u') {
                if (i + 6 > n)
                    abort();
                int h[4];
                for (int k = 0; k < 4; k++)
                    if ((h[k] = hexval(out[i + 2 + k])) < 0)
                        abort();
                decoded = h[0] << 12 | h[1] << 8 | h[2] << 4 | h[3];
                if (decoded > 0x7f)
                    abort();
                i += 6;
            } else {
                abort();
            }
        } else {
            decoded = c;
            i++;
        }
        if (j >= len || in[j] != (uint8_t)decoded)
            abort();
        j++;
    }
    if (whole && j != len)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char id[REQID_MAX_LEN + 1];
    size_t idlen = reqid_choose((const char *)data, size, id);
    if (idlen == 0 || idlen > REQID_MAX_LEN || id[idlen] != '\0' || strlen(id) != idlen || !reqid_is_sane(id, idlen))
        abort();
    if (reqid_is_sane((const char *)data, size) && (idlen != size || memcmp(id, data, size) != 0))
        abort();
    if (!reqid_is_sane((const char *)data, size) && idlen != 32)
        abort();

    /* escaping with room for everything: the whole input comes back */
    size_t big = size * 6 + 8;
    char *out = malloc(big);
    if (out == NULL)
        abort();
    size_t pos = 0;
    log_json_escape(out, big, &pos, (const char *)data, size);
    if (pos >= big)
        abort();
    check_escaped(out, pos, data, size, 1);

    /* a tight buffer of exactly cap bytes: a clean prefix, nothing past cap */
    size_t cap = size ? data[0] % 48 : 0;
    char *small = malloc(cap ? cap : 1);
    if (small == NULL)
        abort();
    pos = 0;
    log_json_escape(small, cap, &pos, (const char *)data, size);
    if (cap > 0 ? pos >= cap : pos != 0)
        abort();
    check_escaped(small, pos, data, size, 0);

    /* a sane id needs no escaping */
    char idesc[REQID_MAX_LEN + 8];
    pos = 0;
    log_json_escape(idesc, sizeof(idesc), &pos, id, idlen);
    if (pos != idlen || memcmp(idesc, id, idlen) != 0)
        abort();
    free(small);
    free(out);
    return 0;
}
