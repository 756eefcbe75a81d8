/*
 * rest_query: the PostgREST-compatible query language of the data API, turned into parameterised
 * SQL. Pure code (no I/O), so it is unit-tested and fuzzed on its own.
 *
 * Input: the request's query string and the table's metadata (restq_table_t: columns known from
 * the catalog, identifiers already quoted by libpq). Output: SQL text whose every value is a $n
 * parameter; identifiers come only from the metadata, never from the request. Unknown columns,
 * operators or malformed syntax fail with a message naming the culprit (answered as 400).
 *
 * Supported: select=a,b|*; filters col=[not.]op.value with op in eq neq gt gte lt lte like ilike
 * in is; or=(…) and and=(…) (nested with not.or(…)/and(…), at most RESTQ_MAX_DEPTH deep);
 * order=col[.asc|.desc][.nullsfirst|.nullslast],…; limit; offset.
 */
#ifndef TENANTD_API_REST_QUERY_H
#define TENANTD_API_REST_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#define RESTQ_MAX_DEPTH 16
#define RESTQ_MAX_PARAMS 2000
#define RESTQ_MAX_LIMIT 1000
#define RESTQ_DEFAULT_LIMIT 100

typedef struct {
    char *name;   /* as in the catalog */
    char *quoted; /* "name", quoted by libpq */
    char *type;   /* format_type() text, e.g. "uuid", "text", "timestamp with time zone" */
    bool is_pk, not_null, has_default;
} restq_column_t;

typedef struct {
    char *name;
    char *quoted;
    restq_column_t *cols;
    size_t ncols;
    int pk;       /* index of the single-column primary key, or -1 */
    int owner;    /* index of owner_id, or -1 */
} restq_table_t;

/* A growing SQL text with its parameters. */
typedef struct {
    char *sql;
    size_t len, cap;
    char **params;
    int nparams, capparams;
} restq_sql_t;

/* The parsed read options of a request. */
typedef struct {
    restq_sql_t where;      /* boolean SQL ("TRUE" when no filter); its params are numbered from 1 */
    bool has_filter;
    char *select_list;      /* quoted column list, or NULL for every column */
    char *order_by;         /* ORDER BY body, or NULL */
    long limit, offset;     /* limit defaults to RESTQ_DEFAULT_LIMIT, capped at RESTQ_MAX_LIMIT */
    bool limit_given;
} restq_request_t;

/* Finds a column by name; NULL when unknown. */
const restq_column_t *restq_column(const restq_table_t *t, const char *name, size_t len);

/* Parses a query string (len bytes, without '?'); 0, or -1 with a message in err. Free with restq_request_free. */
int restq_parse(const char *query, size_t len, const restq_table_t *t, restq_request_t *out, char *err, size_t errlen);

/* Parses a Range header value "a-b" or "a-" (optionally after "items="; numbers of at most 15
 * digits, b ≥ a): sets *offset = a and, when b is given, *limit = b - a + 1; false (nothing set)
 * when malformed. */
bool restq_parse_range(const char *value, size_t len, long *offset, long *limit);

/* Releases what restq_parse allocated. */
void restq_request_free(restq_request_t *r);

/* Appends text to s. */
void restq_sql_append(restq_sql_t *s, const char *text);

/* Appends a parameter (copied; NULL = SQL NULL) and writes "$n" into s; returns n. */
int restq_sql_param(restq_sql_t *s, const char *value, size_t len);

/* Frees s's text and parameters. */
void restq_sql_free(restq_sql_t *s);

/* Decodes %XX and '+' in place-copy: writes at most cap-1 bytes of the decoded src into dst; returns the length or -1 on a bad escape. */
long restq_url_decode(const char *src, size_t len, char *dst, size_t cap);

#endif
