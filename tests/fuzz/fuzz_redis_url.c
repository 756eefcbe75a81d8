/*
 * libFuzzer target for config_parse_redis_url (REDIS_URL): arbitrary input must never crash the
 * parser; an accepted URL must give a non-empty host, a port in 1..65535, a db in 0..15 and a
 * password that fits, and re-formatting it as redis://:password@host:port/db must parse the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    config_redis_t r;
    if (config_parse_redis_url(text, &r) == 0) {
        size_t hlen = strnlen(r.host, sizeof(r.host)), plen = strnlen(r.password, sizeof(r.password));
        if (hlen == 0 || hlen >= sizeof(r.host) || plen >= sizeof(r.password) || r.port == 0 || r.db < 0 || r.db > 15)
            abort();
        if (strncmp(text, "redis://", 8) != 0)
            abort();
        char again[700];
        snprintf(again, sizeof(again), strchr(r.host, ':') ? "redis://:%s@[%s]:%u/%d" : "redis://:%s@%s:%u/%d", r.password, r.host,
                 (unsigned)r.port, r.db);
        config_redis_t s;
        if (config_parse_redis_url(again, &s) != 0 || strcmp(r.host, s.host) != 0 || strcmp(r.password, s.password) != 0 ||
            r.port != s.port || r.db != s.db)
            abort();
    }
    free(text);
    return 0;
}
