/*
 * slug: validation of tenant slugs and derivation of tenant schema/role names (see slug.h).
 *
 * Validation is a hand-written scan of the contract's regex so that the error can say which rule
 * failed (length, first character, a forbidden character) — the CLI and the signup endpoint show
 * it as a 422-style message.
 */
#include "core/slug.h"

#include <stdio.h>
#include <string.h>

static bool fail(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
    return false;
}

bool slug_valid(const char *s, char *err, size_t errlen)
{
    if (s == NULL || *s == '\0')
        return fail(err, errlen, "slug is empty: use 2 to 63 characters a-z, 0-9 and '-', starting with a letter");
    size_t len = strnlen(s, SLUG_MAX_LEN + 1);
    if (len < 2)
        return fail(err, errlen, "slug is too short: use 2 to 63 characters");
    if (len > SLUG_MAX_LEN)
        return fail(err, errlen, "slug is too long: at most 63 characters");
    if (!(s[0] >= 'a' && s[0] <= 'z'))
        return fail(err, errlen, "slug must start with a lowercase letter a-z");
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return fail(err, errlen, "slug may contain only lowercase letters a-z, digits 0-9 and '-'");
    }
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int slug_schema_name(const char *uuid, char out[SLUG_SCHEMA_NAME_SIZE])
{
    static const char digits[] = "0123456789abcdef";
    out[0] = '\0';
    if (uuid == NULL)
        return -1;
    size_t len = strlen(uuid);
    bool dashed = len == 36;
    if (!dashed && len != 32)
        return -1;
    char buf[SLUG_SCHEMA_NAME_SIZE] = "t_";
    size_t n = 2;
    for (size_t i = 0; i < len; i++) {
        if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (uuid[i] != '-')
                return -1;
            continue;
        }
        int v = hexval(uuid[i]);
        if (v < 0)
            return -1;
        buf[n++] = digits[v];
    }
    buf[n] = '\0';
    memcpy(out, buf, SLUG_SCHEMA_NAME_SIZE);
    return 0;
}

bool slug_is_schema_name(const char *name)
{
    if (name == NULL || strncmp(name, "t_", 2) != 0 || strlen(name) != SLUG_SCHEMA_NAME_SIZE - 1)
        return false;
    for (const char *p = name + 2; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}
