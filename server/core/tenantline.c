/*
 * tenantline: the parser of `tenantctl tenant create --from-file` lines (see tenantline.h).
 *
 * A hand-written scan: split on tabs, then check each field with the rule that tenantd itself
 * applies (slug_valid; tenantd.create_tenant's 1..200 characters for the name), so a line that
 * passes here is refused by the database only for reasons the file cannot show (a taken slug).
 */
#include "core/tenantline.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/slug.h"

static bool fail(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
    return false;
}

/* Length of the UTF-8 sequence at s[0..left) (1..4), or 0 when it is not a valid, shortest-form
 * encoding of a Unicode scalar value (no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

bool tenantline_name_valid(const char *name, size_t len, char *err, size_t errlen)
{
    if (len == 0)
        return fail(err, errlen, "the name is empty: use 1 to 200 characters");
    const unsigned char *s = (const unsigned char *)name;
    size_t chars = 0;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x20 || s[i] == 0x7f)
            return fail(err, errlen, "the name contains a control character");
        size_t n = utf8_seq(s + i, len - i);
        if (n == 0)
            return fail(err, errlen, "the name is not valid UTF-8");
        i += n;
        if (++chars > TENANTLINE_NAME_MAX_CHARS)
            return fail(err, errlen, "the name is too long: at most 200 characters");
    }
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    return true;
}

int tenantline_parse(char *line, size_t len, tenantline_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    line[len] = '\0';
    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    if (memchr(line, '\0', len) != NULL) {
        fail(err, errlen, "the line contains a NUL byte");
        return -1;
    }
    size_t blank = strspn(line, " \t");
    if (blank == len || line[0] == '#')
        return 0;
    char *fields[3];
    size_t lens[3], nfields = 0;
    char *p = line;
    for (;;) {
        char *tab = memchr(p, '\t', len - (size_t)(p - line));
        if (nfields == 3) {
            fail(err, errlen, "too many fields: expected slug<TAB>name[<TAB>owner-email]");
            return -1;
        }
        fields[nfields] = p;
        lens[nfields] = tab != NULL ? (size_t)(tab - p) : len - (size_t)(p - line);
        nfields++;
        if (tab == NULL)
            break;
        *tab = '\0';
        p = tab + 1;
    }
    if (nfields < 2) {
        fail(err, errlen, "missing name: expected slug<TAB>name[<TAB>owner-email]");
        return -1;
    }
    char why[160];
    if (!slug_valid(fields[0], why, sizeof(why))) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "invalid slug: %s", why);
        return -1;
    }
    if (!tenantline_name_valid(fields[1], lens[1], why, sizeof(why))) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "invalid name: %s", why);
        return -1;
    }
    if (nfields == 3 && lens[2] == 0) {
        fail(err, errlen, "the owner e-mail field is empty (leave out the tab instead)");
        return -1;
    }
    for (size_t i = 0; nfields == 3 && i < lens[2]; i++) {
        if ((unsigned char)fields[2][i] < 0x20 || fields[2][i] == 0x7f) {
            fail(err, errlen, "the owner e-mail contains a control character");
            return -1;
        }
    }
    out->slug = fields[0];
    out->name = fields[1];
    out->email = nfields == 3 ? fields[2] : NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    return 1;
}
