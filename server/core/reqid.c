/*
 * reqid: validation and generation of request ids (see reqid.h). Generation uses a per-thread
 * xorshift state seeded from getrandom(2): ids must be unique, not secret.
 */
#include "core/reqid.h"

#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static _Thread_local uint64_t reqid_state[2];

static uint64_t next_random(void)
{
    if (reqid_state[0] == 0 && reqid_state[1] == 0) {
        if (getrandom(reqid_state, sizeof(reqid_state), 0) != sizeof(reqid_state) || (reqid_state[0] | reqid_state[1]) == 0) {
            reqid_state[0] = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&reqid_state;
            reqid_state[1] = 0x9e3779b97f4a7c15ull;
        }
    }
    /* xorshift128+ */
    uint64_t s1 = reqid_state[0];
    const uint64_t s0 = reqid_state[1];
    reqid_state[0] = s0;
    s1 ^= s1 << 23;
    reqid_state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return reqid_state[1] + s0;
}

bool reqid_is_sane(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > REQID_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
              c == '-'))
            return false;
    }
    return true;
}

void reqid_generate(char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = next_random(), b = next_random();
    for (int i = 0; i < 16; i++) {
        out[i] = hex[(a >> (i * 4)) & 15];
        out[16 + i] = hex[(b >> (i * 4)) & 15];
    }
    out[32] = '\0';
}

size_t reqid_choose(const char *in, size_t in_len, char *out)
{
    if (reqid_is_sane(in, in_len)) {
        memcpy(out, in, in_len);
        out[in_len] = '\0';
        return in_len;
    }
    reqid_generate(out);
    return 32;
}
