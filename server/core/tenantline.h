/*
 * tenantline: one line of the tenant list that `tenantctl tenant create --from-file` reads.
 *
 * The format is tab-separated text, one tenant a line: `slug<TAB>name[<TAB>owner-email]`.
 * A trailing CR (a file written on Windows) is dropped; blank lines and lines whose first byte is
 * '#' are skipped. The slug follows the contract's rule (core/slug), the name is 1 to 200
 * characters of valid UTF-8 without control characters (tenantd.create_tenant counts characters,
 * not bytes), and the e-mail field, when present, must be non-empty and free of control characters
 * (its shape is checked by the caller, which owns the e-mail rule). The parser works in place and allocates nothing.
 */
#ifndef TENANTD_CORE_TENANTLINE_H
#define TENANTD_CORE_TENANTLINE_H

#include <stdbool.h>
#include <stddef.h>

/* Most characters (Unicode code points) a tenant name may have. */
#define TENANTLINE_NAME_MAX_CHARS 200

/* What a parsed line holds; the pointers point into the parsed buffer. */
typedef struct {
    const char *slug;
    const char *name;
    const char *email; /* NULL when the line has no third field */
} tenantline_t;

/* Parses line[0..len) in place (tabs and a trailing CR become NUL; line[len] must be writable and
 * is set to NUL). Returns 1 with the fields in *out, 0 for a blank or comment line, or -1 with one
 * sentence saying what is wrong in err (never echoing more than a few bytes of the line). */
int tenantline_parse(char *line, size_t len, tenantline_t *out, char *err, size_t errlen);

/* True when name[0..len) is 1..TENANTLINE_NAME_MAX_CHARS characters of valid UTF-8 without
 * control characters; otherwise false with the reason in err (when err is not NULL). */
bool tenantline_name_valid(const char *name, size_t len, char *err, size_t errlen);

#endif
