/*
 * libFuzzer target for config_parse_addr (TENANTD_LISTEN / TENANTD_TLS_LISTEN values): the input,
 * copied and NUL-terminated, must never crash the parser; an accepted address must have a
 * non-empty host of allowed characters, a port in 1..65535, and survive a format/parse round trip.
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

    config_addr_t a;
    if (config_parse_addr(text, &a) == 0) {
        size_t hlen = strnlen(a.host, sizeof(a.host));
        if (hlen == 0 || hlen >= sizeof(a.host) || a.port == 0)
            abort();
        int has_colon = 0;
        for (size_t i = 0; i < hlen; i++) {
            char c = a.host[i];
            if (c == ':')
                has_colon = 1;
            else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
                abort();
        }
        /* a host with ':' is only accepted in brackets */
        if (has_colon && text[0] != '[')
            abort();
        char again[300];
        snprintf(again, sizeof(again), has_colon ? "[%s]:%u" : "%s:%u", a.host, (unsigned)a.port);
        config_addr_t b;
        if (config_parse_addr(again, &b) != 0 || strcmp(a.host, b.host) != 0 || a.port != b.port)
            abort();
    }
    free(text);
    return 0;
}
