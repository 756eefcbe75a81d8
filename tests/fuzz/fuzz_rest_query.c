/*
 * libFuzzer target for api/rest_query: restq_parse on arbitrary query strings against a fixed table
 * (the orders table of the sample application plus a boolean column and one whose name needs quoting).
 *
 * The input is passed in a buffer of exactly its size, so any read past the given length is caught.
 * Besides crashes, leaks and sanitizer reports it checks invariants and aborts when one breaks:
 * - on failure: a non-empty error message and a zeroed request;
 * - on success: the WHERE text, select list and ORDER BY body consist only of quoted identifiers of
 *   the table, $n references, a fixed set of keywords and operators, punctuation and spaces (no byte
 *   of a value ever reaches the SQL text); parentheses balance; the $n appear in order 1..nparams,
 *   each exactly once; nparams ≤ RESTQ_MAX_PARAMS; 0 ≤ limit ≤ RESTQ_MAX_LIMIT; offset ≥ 0;
 *   "TRUE" exactly when no filter was given.
 * The same bytes also go to restq_parse_range (a Range header value): on success 0 ≤ offset and
 * 1 ≤ limit with offset + limit - 1 < 10^15 (no overflow); on failure nothing is written.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/rest_query.h"

static restq_column_t cols[] = {
    {"id", "\"id\"", "uuid", true, true, true},
    {"title", "\"title\"", "text", false, true, false},
    {"status", "\"status\"", "text", false, true, true},
    {"position", "\"position\"", "integer", false, true, true},
    {"owner_id", "\"owner_id\"", "uuid", false, false, false},
    {"assignee_id", "\"assignee_id\"", "uuid", false, false, false},
    {"created_at", "\"created_at\"", "timestamp with time zone", false, true, true},
    {"urgent", "\"urgent\"", "boolean", false, false, false},
    {"we\"ird (col)", "\"we\"\"ird (col)\"", "text", false, false, false},
};
static const restq_table_t table = {"orders", "\"orders\"", cols, sizeof(cols) / sizeof(cols[0]), 0, 4};

/* Tokens the SQL text may hold besides quoted identifiers and $n; longest first where prefixes clash. */
static const char *const tokens[] = {
    "NULLS FIRST", "NULLS LAST", "::text ILIKE ", "::text LIKE ", " IS UNKNOWN", " IS NULL", " IS TRUE",
    " IS FALSE", " IN (", " AND ", " OR ", "NOT (", "TRUE", "FALSE", " ASC", " DESC", " <> ", " <= ",
    " >= ", " = ", " < ", " > ", ", ", "(", ")", " ",
};

/* Checks that sql is made of allowed pieces; counts $n references into *next (expects them in order). */
static void check_sql(const char *sql, int *next, int nparams, bool allow_params)
{
    int depth = 0;
    const char *p = sql;
    while (*p != '\0') {
        if (*p == '"') {
            size_t i;
            for (i = 0; i < table.ncols; i++) {
                size_t n = strlen(cols[i].quoted);
                if (strncmp(p, cols[i].quoted, n) == 0) {
                    p += n;
                    break;
                }
            }
            if (i == table.ncols)
                abort(); /* a quoted name that is not one of the table's */
            continue;
        }
        if (*p == '$') {
            if (!allow_params || !isdigit((unsigned char)p[1]))
                abort();
            char *e;
            long n = strtol(p + 1, &e, 10);
            if (n != *next + 1 || n > nparams)
                abort(); /* out of order, repeated or beyond the parameters */
            *next = (int)n;
            p = e;
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof(tokens) / sizeof(tokens[0]); k++) {
            size_t n = strlen(tokens[k]);
            if (strncmp(p, tokens[k], n) == 0) {
                for (size_t j = 0; j < n; j++)
                    depth += tokens[k][j] == '(' ? 1 : tokens[k][j] == ')' ? -1 : 0;
                if (depth < 0)
                    abort();
                p += n;
                break;
            }
        }
        if (k == sizeof(tokens) / sizeof(tokens[0]))
            abort(); /* a byte that no allowed piece explains */
    }
    if (depth != 0)
        abort();
}

static void check_range(const char *v, size_t len)
{
    long off = -1, lim = -1;
    if (!restq_parse_range(v, len, &off, &lim)) {
        if (off != -1 || lim != -1)
            abort();
        return;
    }
    if (off < 0 || off >= 1000000000000000L || lim == 0 || lim < -1 || (lim > 0 && off + lim - 1 >= 1000000000000000L))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *q = malloc(size ? size : 1);
    if (q == NULL)
        return 0;
    memcpy(q, data, size);
    check_range(q, size);
    restq_request_t r;
    char err[200];
    err[0] = '\0';
    if (restq_parse(q, size, &table, &r, err, sizeof(err)) != 0) {
        if (err[0] == '\0')
            abort();
        restq_request_t zero;
        memset(&zero, 0, sizeof(zero));
        if (memcmp(&r, &zero, sizeof(r)) != 0)
            abort();
        free(q);
        return 0;
    }
    if (r.where.sql == NULL)
        abort();
    if (r.where.nparams < 0 || r.where.nparams > RESTQ_MAX_PARAMS)
        abort();
    if (r.has_filter == (strcmp(r.where.sql, "TRUE") == 0))
        abort();
    int next = 0;
    check_sql(r.where.sql, &next, r.where.nparams, true);
    if (next != r.where.nparams)
        abort(); /* a parameter the text never references */
    if (r.select_list != NULL)
        check_sql(r.select_list, &next, 0, false);
    if (r.order_by != NULL)
        check_sql(r.order_by, &next, 0, false);
    if (r.limit < 0 || r.limit > RESTQ_MAX_LIMIT || r.offset < 0)
        abort();
    restq_request_free(&r);
    free(q);
    return 0;
}
