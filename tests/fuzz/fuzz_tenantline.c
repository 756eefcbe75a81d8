/*
 * libFuzzer target for core/tenantline (the `tenant create --from-file` line format): on arbitrary
 * bytes tenantline_parse must not read or write out of bounds, and whatever it accepts must be
 * what the rest of tenantctl relies on: a valid slug, a valid name, a non-empty e-mail field, all
 * pointing inside the buffer and free of tabs, CR and NUL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/slug.h"
#include "core/tenantline.h"

/* Aborts unless s is a NUL-terminated string inside buf[0..len] without tab or CR. */
static void check_field(const char *s, const char *buf, size_t len)
{
    if (s < buf || s > buf + len)
        abort();
    size_t n = strlen(s);
    if (s + n > buf + len || memchr(s, '\t', n) != NULL || memchr(s, '\r', n) != NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    tenantline_t t;
    char err[160];
    int rc = tenantline_parse(buf, size, &t, err, sizeof(err));
    if (rc < -1 || rc > 1)
        abort();
    if (rc == -1 && (strlen(err) == 0 || strlen(err) >= sizeof(err)))
        abort();
    if (rc == 1) {
        check_field(t.slug, buf, size);
        check_field(t.name, buf, size);
        if (!slug_valid(t.slug, NULL, 0) || !tenantline_name_valid(t.name, strlen(t.name), NULL, 0))
            abort();
        if (t.email != NULL) {
            check_field(t.email, buf, size);
            if (t.email[0] == '\0')
                abort();
        }
    }
    if (rc == 0 && size > 0 && data[0] != '#' && data[0] != ' ' && data[0] != '\t' && data[0] != '\r')
        abort(); /* only blank and comment lines are skipped */
    /* the name check alone, on the raw bytes */
    tenantline_name_valid((const char *)data, size, err, sizeof(err));
    free(buf);
    return 0;
}
