/*
 * rest_query: parser and SQL builder for the data API's query strings (see rest_query.h).
 *
 * Each key=value pair is URL-decoded, then interpreted: reserved keys (select, order, limit,
 * offset, or, and, not.or, not.and) or a column name with a filter. Logic trees are parsed by
 * recursive descent over the decoded text: item := [not.](or|and)(list) | col.[not.]op.value,
 * where a value ends at ',' or ')' unless double-quoted (with \" and \\ escapes), and an in-list
 * keeps its own parentheses. Every value becomes a $n parameter; the SQL text only ever holds
 * quoted identifiers from the table metadata, operators from a fixed table and punctuation.
 */
#include "api/rest_query.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- SQL buffer */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL)
        abort();
    return q;
}

void restq_sql_append(restq_sql_t *s, const char *text)
{
    size_t n = strlen(text);
    if (s->len + n + 1 > s->cap) {
        s->cap = (s->len + n + 1) * 2 + 64;
        s->sql = xrealloc(s->sql, s->cap);
    }
    memcpy(s->sql + s->len, text, n + 1);
    s->len += n;
}

int restq_sql_param(restq_sql_t *s, const char *value, size_t len)
{
    if (s->nparams == s->capparams) {
        s->capparams = s->capparams ? s->capparams * 2 : 8;
        s->params = xrealloc(s->params, (size_t)s->capparams * sizeof(char *));
    }
    char *copy = NULL;
    if (value != NULL) {
        copy = malloc(len + 1);
        if (copy == NULL)
            abort();
        memcpy(copy, value, len);
        copy[len] = '\0';
    }
    s->params[s->nparams++] = copy;
    char ref[16];
    snprintf(ref, sizeof(ref), "$%d", s->nparams);
    restq_sql_append(s, ref);
    return s->nparams;
}

void restq_sql_free(restq_sql_t *s)
{
    for (int i = 0; i < s->nparams; i++)
        free(s->params[i]);
    free(s->params);
    free(s->sql);
    memset(s, 0, sizeof(*s));
}

void restq_request_free(restq_request_t *r)
{
    restq_sql_free(&r->where);
    free(r->select_list);
    free(r->order_by);
    memset(r, 0, sizeof(*r));
}

const restq_column_t *restq_column(const restq_table_t *t, const char *name, size_t len)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strlen(t->cols[i].name) == len && memcmp(t->cols[i].name, name, len) == 0)
            return &t->cols[i];
    return NULL;
}

long restq_url_decode(const char *src, size_t len, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            if (!isxdigit((unsigned char)src[i + 1]) || !isxdigit((unsigned char)src[i + 2]))
                return -1;
            char hex[3] = {src[i + 1], src[i + 2], 0};
            c = (char)strtol(hex, NULL, 16);
            if (c == '\0')
                return -1; /* %00 would cut the value short when bound as text: refuse it */
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= cap)
            return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return (long)o;
}

/* ---------------------------------------------------------------- parser state */

typedef struct {
    const restq_table_t *table;
    restq_sql_t *out;
    char *err;
    size_t errlen;
} ctx_t;

static int fail(ctx_t *c, const char *fmt, const char *what, size_t len)
{
    char buf[80];
    size_t n = len < sizeof(buf) - 1 ? len : sizeof(buf) - 1;
    memcpy(buf, what, n);
    buf[n] = '\0';
    snprintf(c->err, c->errlen, fmt, buf);
    return -1;
}

static const struct {
    const char *name;
    const char *sql;
} comparison_ops[] = {{"eq", " = "}, {"neq", " <> "}, {"gt", " > "}, {"gte", " >= "}, {"lt", " < "}, {"lte", " <= "}};

/* Emits "col <op> value" for a filter whose operator text is op (len oplen) and value val (vlen). */
static int emit_filter(ctx_t *c, const restq_column_t *col, const char *op, size_t oplen, const char *val, size_t vlen)
{
    restq_sql_t *o = c->out;
    if (o->nparams >= RESTQ_MAX_PARAMS) /* also inside or=(…) lists, not only for top-level filters */
        return fail(c, "too many values in filters (at most 2000)%s", "", 0);
    for (size_t i = 0; i < sizeof(comparison_ops) / sizeof(comparison_ops[0]); i++) {
        if (strlen(comparison_ops[i].name) == oplen && memcmp(comparison_ops[i].name, op, oplen) == 0) {
            restq_sql_append(o, col->quoted);
            restq_sql_append(o, comparison_ops[i].sql);
            restq_sql_param(o, val, vlen);
            return 0;
        }
    }
    if ((oplen == 4 && memcmp(op, "like", 4) == 0) || (oplen == 5 && memcmp(op, "ilike", 5) == 0)) {
        char *pat = malloc(vlen + 1);
        for (size_t i = 0; i < vlen; i++)
            pat[i] = val[i] == '*' ? '%' : val[i];
        restq_sql_append(o, col->quoted);
        restq_sql_append(o, oplen == 4 ? "::text LIKE " : "::text ILIKE ");
        restq_sql_param(o, pat, vlen);
        free(pat);
        return 0;
    }
    if (oplen == 2 && memcmp(op, "is", 2) == 0) {
        static const struct {
            const char *v, *sql;
        } is_values[] = {{"null", " IS NULL"}, {"true", " IS TRUE"}, {"false", " IS FALSE"}, {"unknown", " IS UNKNOWN"}};
        for (size_t i = 0; i < 4; i++) {
            if (strlen(is_values[i].v) == vlen && strncasecmp(is_values[i].v, val, vlen) == 0) {
                /* IS TRUE/FALSE/UNKNOWN exist only for booleans (anything else fails in Postgres, 42804) */
                if (i > 0 && (col->type == NULL || strcmp(col->type, "boolean") != 0))
                    return fail(c, "is.true, is.false and is.unknown need a boolean column, %s is not", col->name, strlen(col->name));
                restq_sql_append(o, col->quoted);
                restq_sql_append(o, is_values[i].sql);
                return 0;
            }
        }
        return fail(c, "is. takes null, true, false or unknown, not %s", val, vlen);
    }
    if (oplen == 2 && memcmp(op, "in", 2) == 0) {
        if (vlen < 2 || val[0] != '(' || val[vlen - 1] != ')')
            return fail(c, "in. takes a parenthesised list, e.g. in.(1,2,3): %s", val, vlen);
        const char *p = val + 1, *end = val + vlen - 1;
        if (p == end) {
            restq_sql_append(o, "FALSE");
            return 0;
        }
        restq_sql_append(o, col->quoted);
        restq_sql_append(o, " IN (");
        bool first = true;
        char *item = malloc(vlen + 1);
        for (;;) {
            size_t n = 0;
            if (p < end && *p == '"') {
                p++;
                while (p < end && *p != '"') {
                    if (*p == '\\' && p + 1 < end)
                        p++;
                    item[n++] = *p++;
                }
                if (p == end) {
                    free(item);
                    return fail(c, "unterminated quote in in.() list%s", "", 0);
                }
                p++;
            } else {
                while (p < end && *p != ',')
                    item[n++] = *p++;
            }
            if (c->out->nparams >= RESTQ_MAX_PARAMS) {
                free(item);
                return fail(c, "too many values in filters (at most 2000)%s", "", 0);
            }
            if (!first)
                restq_sql_append(o, ", ");
            restq_sql_param(o, item, n);
            first = false;
            if (p == end)
                break;
            if (*p != ',') {
                free(item);
                return fail(c, "malformed in.() list near %s", p, (size_t)(end - p));
            }
            p++;
        }
        free(item);
        restq_sql_append(o, ")");
        return 0;
    }
    return fail(c, "unknown operator %s", op, oplen);
}

/* Parses "[not.]op.value" for column col (the text after "col="); not an entire tree. */
static int parse_column_filter(ctx_t *c, const restq_column_t *col, const char *s, size_t len)
{
    bool negate = false;
    if (len >= 4 && memcmp(s, "not.", 4) == 0) {
        negate = true;
        s += 4;
        len -= 4;
    }
    const char *dot = memchr(s, '.', len);
    if (dot == NULL)
        return fail(c, "a filter needs operator.value, got %s", s, len);
    if (c->out->nparams >= RESTQ_MAX_PARAMS)
        return fail(c, "too many values in filters (at most 2000)%s", "", 0);
    if (negate)
        restq_sql_append(c->out, "NOT (");
    if (emit_filter(c, col, s, (size_t)(dot - s), dot + 1, len - (size_t)(dot - s) - 1) != 0)
        return -1;
    if (negate)
        restq_sql_append(c->out, ")");
    return 0;
}

static int parse_list(ctx_t *c, const char **pp, const char *end, const char *joiner, int depth);

/* Scans one value inside a logic tree: up to ',' or ')' at depth 0, honouring quotes and in-lists. */
static const char *scan_value(const char *p, const char *end, bool in_list)
{
    if (in_list && p < end && *p == '(') {
        int d = 0;
        bool quoted = false;
        for (; p < end; p++) {
            if (quoted) {
                if (*p == '\\')
                    p++;
                else if (*p == '"')
                    quoted = false;
            } else if (*p == '"') {
                quoted = true;
            } else if (*p == '(') {
                d++;
            } else if (*p == ')' && --d == 0) {
                return p + 1;
            }
        }
        return end;
    }
    if (p < end && *p == '"') {
        for (p++; p < end && *p != '"'; p++)
            if (*p == '\\')
                p++;
        return p < end ? p + 1 : end;
    }
    while (p < end && *p != ',' && *p != ')')
        p++;
    return p;
}

/* One item of a logic list. */
static int parse_item(ctx_t *c, const char **pp, const char *end, int depth)
{
    const char *p = *pp;
    bool negate = false;
    if (end - p >= 4 && memcmp(p, "not.", 4) == 0 && (end - p >= 7 && (memcmp(p + 4, "or(", 3) == 0 || memcmp(p + 4, "and(", 4) == 0))) {
        negate = true;
        p += 4;
    }
    bool is_or = end - p >= 3 && memcmp(p, "or(", 3) == 0;
    bool is_and = end - p >= 4 && memcmp(p, "and(", 4) == 0;
    if (is_or || is_and) {
        if (depth >= RESTQ_MAX_DEPTH)
            return fail(c, "logic trees nest at most 16 deep%s", "", 0);
        p += is_or ? 3 : 4;
        restq_sql_append(c->out, negate ? "NOT (" : "(");
        if (parse_list(c, &p, end, is_or ? " OR " : " AND ", depth + 1) != 0)
            return -1;
        if (p >= end || *p != ')')
            return fail(c, "missing ) in logic tree%s", "", 0);
        p++;
        restq_sql_append(c->out, ")");
        *pp = p;
        return 0;
    }
    /* col.[not.]op.value */
    const char *dot = memchr(p, '.', (size_t)(end - p));
    if (dot == NULL)
        return fail(c, "malformed condition %s", p, (size_t)(end - p));
    const restq_column_t *col = restq_column(c->table, p, (size_t)(dot - p));
    if (col == NULL)
        return fail(c, "unknown column %s", p, (size_t)(dot - p));
    const char *q = dot + 1;
    bool neg = false;
    if (end - q >= 4 && memcmp(q, "not.", 4) == 0) {
        neg = true;
        q += 4;
    }
    const char *opdot = memchr(q, '.', (size_t)(end - q));
    if (opdot == NULL)
        return fail(c, "a condition needs operator.value: %s", p, (size_t)(end - p));
    bool in_list = opdot - q == 2 && memcmp(q, "in", 2) == 0;
    const char *vstart = opdot + 1;
    const char *vend = scan_value(vstart, end, in_list);
    /* unquote a plain quoted value */
    char *val = NULL;
    size_t vlen = (size_t)(vend - vstart);
    if (!in_list && vlen >= 2 && vstart[0] == '"' && vend[-1] == '"') {
        val = malloc(vlen);
        size_t n = 0;
        for (const char *s = vstart + 1; s < vend - 1; s++) {
            if (*s == '\\' && s + 1 < vend - 1)
                s++;
            val[n++] = *s;
        }
        vlen = n;
    } else {
        val = malloc(vlen + 1);
        memcpy(val, vstart, vlen);
    }
    if (neg)
        restq_sql_append(c->out, "NOT (");
    int rc = emit_filter(c, col, q, (size_t)(opdot - q), val, vlen);
    free(val);
    if (rc != 0)
        return -1;
    if (neg)
        restq_sql_append(c->out, ")");
    *pp = vend;
    return 0;
}

static int parse_list(ctx_t *c, const char **pp, const char *end, const char *joiner, int depth)
{
    const char *p = *pp;
    bool first = true;
    for (;;) {
        if (!first)
            restq_sql_append(c->out, joiner);
        restq_sql_append(c->out, "(");
        if (parse_item(c, &p, end, depth) != 0)
            return -1;
        restq_sql_append(c->out, ")");
        first = false;
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        break;
    }
    *pp = p;
    return 0;
}

/* ---------------------------------------------------------------- top level */

static int parse_select(ctx_t *c, const char *v, size_t len, restq_request_t *r)
{
    free(r->select_list); /* a repeated select= replaces the earlier one */
    r->select_list = NULL;
    if (len == 1 && v[0] == '*')
        return 0;
    restq_sql_t list = {0};
    const char *p = v, *end = v + len;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma != NULL ? comma : end;
        if (stop == p) {
            restq_sql_free(&list);
            return fail(c, "empty column in select%s", "", 0);
        }
        if (stop - p == 1 && *p == '*') {
            restq_sql_free(&list);
            return 0;
        }
        const restq_column_t *col = restq_column(c->table, p, (size_t)(stop - p));
        if (col == NULL) {
            restq_sql_free(&list);
            return fail(c, "unknown column %s in select", p, (size_t)(stop - p));
        }
        if (list.len > 0)
            restq_sql_append(&list, ", ");
        restq_sql_append(&list, col->quoted);
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    r->select_list = list.sql;
    return 0;
}

static int parse_columns(ctx_t *c, const char *v, size_t len)
{
    const char *p = v, *end = v + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma != NULL ? comma : end;
        const char *a = p, *b = stop;
        if (b - a >= 2 && *a == '"' && b[-1] == '"')
            a++, b--;
        if (restq_column(c->table, a, (size_t)(b - a)) == NULL)
            return fail(c, "unknown column %s in columns", a, (size_t)(b - a));
        p = stop + 1;
    }
    return 0;
}

static int parse_order(ctx_t *c, const char *v, size_t len, restq_request_t *r)
{
    free(r->order_by); /* a repeated order= replaces the earlier one */
    r->order_by = NULL;
    restq_sql_t ob = {0};
    const char *p = v, *end = v + len;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma != NULL ? comma : end;
        const char *dot = memchr(p, '.', (size_t)(stop - p));
        const char *name_end = dot != NULL ? dot : stop;
        const restq_column_t *col = restq_column(c->table, p, (size_t)(name_end - p));
        if (col == NULL) {
            restq_sql_free(&ob);
            return fail(c, "unknown column %s in order", p, (size_t)(name_end - p));
        }
        if (ob.len > 0)
            restq_sql_append(&ob, ", ");
        restq_sql_append(&ob, col->quoted);
        const char *m = dot;
        int stage = 0; /* 1 after a direction, 2 after a nulls placement: col[.asc|.desc][.nullsfirst|.nullslast] */
        while (m != NULL && m < stop) {
            const char *next = memchr(m + 1, '.', (size_t)(stop - m - 1));
            const char *mend = next != NULL ? next : stop;
            size_t ml = (size_t)(mend - m - 1);
            bool dir = (ml == 3 && memcmp(m + 1, "asc", 3) == 0) || (ml == 4 && memcmp(m + 1, "desc", 4) == 0);
            bool nulls = (ml == 10 && memcmp(m + 1, "nullsfirst", 10) == 0) || (ml == 9 && memcmp(m + 1, "nullslast", 9) == 0);
            if ((dir && stage >= 1) || (nulls && stage >= 2)) {
                restq_sql_free(&ob);
                return fail(c, "misplaced order modifier %s (use col.asc|desc.nullsfirst|nullslast)", m + 1, ml);
            }
            stage = dir ? 1 : 2;
            if (ml == 3 && memcmp(m + 1, "asc", 3) == 0)
                restq_sql_append(&ob, " ASC");
            else if (ml == 4 && memcmp(m + 1, "desc", 4) == 0)
                restq_sql_append(&ob, " DESC");
            else if (ml == 10 && memcmp(m + 1, "nullsfirst", 10) == 0)
                restq_sql_append(&ob, " NULLS FIRST");
            else if (ml == 9 && memcmp(m + 1, "nullslast", 9) == 0)
                restq_sql_append(&ob, " NULLS LAST");
            else {
                restq_sql_free(&ob);
                return fail(c, "unknown order modifier %s", m + 1, ml);
            }
            m = next;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    r->order_by = ob.sql;
    return 0;
}

static int parse_number(ctx_t *c, const char *name, const char *v, size_t len, long *out)
{
    if (len == 0 || len > 9)
        return fail(c, "%s must be a whole number", name, strlen(name));
    long n = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)v[i]))
            return fail(c, "%s must be a whole number", name, strlen(name));
        n = n * 10 + (v[i] - '0');
    }
    *out = n;
    return 0;
}

/* key (kl bytes, may hold a decoded NUL) is exactly the reserved word k */
#define KEY_IS(k) ((size_t)kl == sizeof(k) - 1 && memcmp(key, k, sizeof(k) - 1) == 0)

int restq_parse(const char *query, size_t len, const restq_table_t *t, restq_request_t *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    r->limit = RESTQ_DEFAULT_LIMIT;
    ctx_t c = {t, &r->where, err, errlen};
    restq_sql_append(&r->where, "");
    size_t bufcap = len + 1;
    char *key = malloc(bufcap), *val = malloc(bufcap);
    const char *p = query, *end = query + len;
    int rc = 0;
    while (p < end && rc == 0) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (stop == p) {
            p = stop + 1;
            continue;
        }
        if (eq == NULL) {
            rc = fail(&c, "query parameter without a value: %s", p, (size_t)(stop - p));
            break;
        }
        long kl = restq_url_decode(p, (size_t)(eq - p), key, bufcap);
        long vl = restq_url_decode(eq + 1, (size_t)(stop - eq - 1), val, bufcap);
        if (kl < 0 || vl < 0) {
            rc = fail(&c, "bad percent-encoding in %s", p, (size_t)(stop - p));
            break;
        }
        if (KEY_IS("columns")) {
            /* POST ?columns="a","b" (postgrest-js bulk inserts): every name must be a column; the
             * insert itself uses the keys of the body */
            rc = parse_columns(&c, val, (size_t)vl);
        } else if (KEY_IS("select")) {
            rc = parse_select(&c, val, (size_t)vl, r);
        } else if (KEY_IS("order")) {
            rc = parse_order(&c, val, (size_t)vl, r);
        } else if (KEY_IS("limit")) {
            rc = parse_number(&c, "limit", val, (size_t)vl, &r->limit);
            r->limit_given = true;
            if (r->limit > RESTQ_MAX_LIMIT)
                r->limit = RESTQ_MAX_LIMIT;
        } else if (KEY_IS("offset")) {
            rc = parse_number(&c, "offset", val, (size_t)vl, &r->offset);
        } else if (KEY_IS("or") || KEY_IS("and") || KEY_IS("not.or") || KEY_IS("not.and")) {
            bool is_or = KEY_IS("or") || KEY_IS("not.or");
            bool neg = KEY_IS("not.or") || KEY_IS("not.and");
            const char *v = val, *vend = val + vl;
            if (vl < 2 || v[0] != '(' || vend[-1] != ')') {
                rc = fail(&c, "%s takes a parenthesised list, e.g. or=(a.eq.1,b.eq.2)", key, (size_t)kl);
                break;
            }
            v++;
            if (r->has_filter)
                restq_sql_append(&r->where, " AND ");
            restq_sql_append(&r->where, neg ? "NOT (" : "(");
            rc = parse_list(&c, &v, vend - 1, is_or ? " OR " : " AND ", 1);
            if (rc == 0 && v != vend - 1)
                rc = fail(&c, "unexpected text after the list: %s", v, (size_t)(vend - v));
            restq_sql_append(&r->where, ")");
            r->has_filter = true;
        } else {
            const restq_column_t *col = restq_column(t, key, (size_t)kl);
            if (col == NULL) {
                rc = fail(&c, "unknown column %s", key, (size_t)kl);
                break;
            }
            if (r->has_filter)
                restq_sql_append(&r->where, " AND ");
            restq_sql_append(&r->where, "(");
            rc = parse_column_filter(&c, col, val, (size_t)vl);
            restq_sql_append(&r->where, ")");
            r->has_filter = true;
        }
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    free(key);
    free(val);
    if (rc != 0) {
        restq_request_free(r);
        return -1;
    }
    if (!r->has_filter)
        restq_sql_append(&r->where, "TRUE");
    return 0;
}

/* Reads 1 to 15 decimal digits at p[*i] (advancing *i, bounded by len) into *out. */
static bool range_number(const char *p, size_t len, size_t *i, long *out)
{
    long n = 0;
    size_t start = *i;
    while (*i < len && p[*i] >= '0' && p[*i] <= '9') {
        if (*i - start >= 15)
            return false;
        n = n * 10 + (p[*i] - '0');
        (*i)++;
    }
    *out = n;
    return *i > start;
}

bool restq_parse_range(const char *value, size_t len, long *offset, long *limit)
{
    size_t i = len >= 6 && memcmp(value, "items=", 6) == 0 ? 6 : 0;
    long a, b;
    if (!range_number(value, len, &i, &a) || i >= len || value[i++] != '-')
        return false;
    if (i == len) {
        *offset = a;
        return true;
    }
    if (!range_number(value, len, &i, &b) || i != len || b < a)
        return false;
    *offset = a;
    *limit = b - a + 1;
    return true;
}
