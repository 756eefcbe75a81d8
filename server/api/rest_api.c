/*
 * rest_api: the data API of CONTRACT.md §7 — /rest/v1/{table} over every table of the caller's
 * tenant schema, PostgREST-style.
 *
 * Metadata (tables, columns, types, primary keys) is read from pg_catalog once per worker thread,
 * from the first caller's schema: every tenant schema is built by the same migration set, so one
 * introspection serves all tenants (no per-tenant catalog scan); SIGHUP re-reads it after a
 * migration. Identifiers are quoted by libpq (PQescapeIdentifier) when the metadata is loaded.
 *
 * Every request runs as one pipelined job: step 1 sets the tenant's role and search_path with
 * set_config(…, true), step 2 is the statement; both sit before one Sync, i.e. in one implicit
 * transaction, so nothing tenant-specific survives on the pooled connection (and db.c drops a
 * connection that is left inside a transaction). Reads may share that Sync with other reads of
 * the same dispatch pass (db_submit_read): each sets its own role and search_path first, unless
 * the batch's previous read set the same. The guard has already checked
 * `{table}:read|create|update|delete`; an `own` grant adds `owner_id = caller` to reads and
 * writes, and inserts always get owner_id from the server. After a write commits, each changed
 * row is published as a change event (Redis: per-tenant sequence, pub/sub channel and a capped
 * stream) for the realtime layer.
 */
#include "api/rest_api.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "api/rest_query.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/body.h"
#include "http/guard.h"

#define REST_EVENT_STREAM_MAX "10000"

typedef struct rest_meta {
    restq_table_t *tables;
    size_t ntables;
    bool loaded;
    struct rest_meta *retired; /* earlier sets, kept until the worker stops: requests may still point into them */
} rest_meta_t;

static db_stmt_t catalog_stmt = {
    "rest_catalog",
    "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef,"
    " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnatts = 1 AND a.attnum = i.indkey[0])"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid"
    " WHERE n.nspname = coalesce($1, (SELECT schema_name FROM tenantd.tenants ORDER BY created_at, id LIMIT 1))"
    " AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped"
    " ORDER BY c.relname, a.attnum",
    1, 0};

static db_stmt_t tenant_ctx_stmt = {"rest_tenant_ctx",
                                    "SELECT set_config('role', $1, true), set_config('search_path', $1, true)", 1, 0};

/* Publishes change events in the hub's message format (realtime/hub.h): KEYS[1] seq counter,
 * KEYS[2] stream; ARGV[1] tenant id, ARGV[2] table, ARGV[3] op, ARGV[4] rows JSON. */
static const char publish_lua[] =
    "local rows = cjson.decode(ARGV[4])\n"
    "local room = 'table:' .. ARGV[2]\n"
    "redis.call('INCR', 't:' .. ARGV[1] .. ':tv:' .. ARGV[2])\n"
    "for _, row in ipairs(rows) do\n"
    "  local seq = redis.call('INCR', KEYS[1])\n"
    "  local data = cjson.encode({table = ARGV[2], op = ARGV[3], id = row.id, record = row, seq = seq})\n"
    "  local msg = '{\"event\":\"change\",\"room\":' .. cjson.encode(room) .. ',\"seq\":' .. seq .. ',\"data\":' .. data .. '}'\n"
    "  redis.call('PUBLISH', 't:' .. ARGV[1] .. ':room:' .. room, msg)\n"
    "  redis.call('XADD', KEYS[2], 'MAXLEN', '~', '" REST_EVENT_STREAM_MAX "', seq .. '-1', 'msg', msg)\n"
    "end\n"
    "return #rows\n";

/* ---------------------------------------------------------------- metadata */

static void meta_free(rest_meta_t *m)
{
    for (size_t i = 0; i < m->ntables; i++) {
        restq_table_t *t = &m->tables[i];
        for (size_t k = 0; k < t->ncols; k++) {
            free(t->cols[k].name);
            free(t->cols[k].quoted);
            free(t->cols[k].type);
        }
        free(t->cols);
        free(t->name);
        free(t->quoted);
    }
    free(m->tables);
    m->tables = NULL;
    m->ntables = 0;
    m->loaded = false;
}

/* Builds metadata from the catalog rows; false when a name could not be quoted. */
static bool meta_build(rest_meta_t *m, db_pool_t *db, PGresult *r)
{
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        const char *tname = PQgetvalue(r, i, 0);
        restq_table_t *t = m->ntables > 0 ? &m->tables[m->ntables - 1] : NULL;
        if (t == NULL || strcmp(t->name, tname) != 0) {
            m->tables = realloc(m->tables, (m->ntables + 1) * sizeof(*m->tables));
            t = &m->tables[m->ntables++];
            memset(t, 0, sizeof(*t));
            t->name = strdup(tname);
            t->quoted = db_escape_identifier(db, tname);
            t->pk = t->owner = -1;
            if (t->quoted == NULL)
                return false;
        }
        t->cols = realloc(t->cols, (t->ncols + 1) * sizeof(*t->cols));
        restq_column_t *c = &t->cols[t->ncols];
        memset(c, 0, sizeof(*c));
        c->name = strdup(PQgetvalue(r, i, 1));
        c->quoted = db_escape_identifier(db, c->name);
        c->type = strdup(PQgetvalue(r, i, 2));
        c->not_null = PQgetvalue(r, i, 3)[0] == 't';
        c->has_default = PQgetvalue(r, i, 4)[0] == 't';
        c->is_pk = PQgetvalue(r, i, 5)[0] == 't';
        if (c->quoted == NULL)
            return false;
        if (c->is_pk)
            t->pk = (int)t->ncols;
        if (strcmp(c->name, "owner_id") == 0 && strcmp(c->type, "uuid") == 0)
            t->owner = (int)t->ncols;
        t->ncols++;
    }
    m->loaded = true;
    return true;
}

static rest_meta_t *worker_meta(http_worker_t *w)
{
    if (w->api_state == NULL)
        w->api_state = calloc(1, sizeof(rest_meta_t));
    return w->api_state;
}

static const restq_table_t *meta_table(const rest_meta_t *m, const char *name, size_t len)
{
    for (size_t i = 0; i < m->ntables; i++)
        if (strlen(m->tables[i].name) == len && memcmp(m->tables[i].name, name, len) == 0)
            return &m->tables[i];
    return NULL;
}

/* ---------------------------------------------------------------- request state */

typedef enum { OP_SELECT, OP_INSERT, OP_UPDATE, OP_DELETE } rest_op_t;

typedef struct {
    http_request_t *hr;
    rest_op_t op;
    db_job_t *job;
    const restq_table_t *table; /* valid while the worker's metadata is (reload waits for no request) */
    const restq_table_t *view;  /* the columns this caller may see (== table when nothing is hidden) */
    char *visible_list;         /* quoted list of the visible columns when some are hidden, else NULL */
    char table_name[64];
    bool want_count, return_representation;
    long offset;
    redis_cmd_t *cmd;        /* pending cache read, or change publication */
    restq_sql_t query;       /* the SELECT, kept while the cache is asked */
    char cache_key[256];     /* t:{tid}:rc:{table}:{hash}, or empty: do not store the answer */
    char cache_version[24]; /* the table's write counter the cache was asked under */
    char *write_rows;        /* a write's returned rows, answered once the change is published */
    int write_status;
} rest_call_t;

static void rest_cancel(http_request_t *hr)
{
    rest_call_t *rc = hr->handler_data;
    if (rc->job != NULL)
        db_cancel(rc->job);
    if (rc->cmd != NULL)
        redis_cancel(rc->cmd);
    rc->job = NULL;
    rc->cmd = NULL;
    restq_sql_free(&rc->query);
    free(rc->write_rows);
    rc->write_rows = NULL;
}

static void rest_unavailable(http_request_t *hr)
{
    hr->cancel = NULL;
    http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "the database is unavailable", 1);
}

/* Maps a failed statement to a client-facing problem (never the SQL text). */
static void rest_sql_error(rest_call_t *rc, const db_result_t *res)
{
    http_request_t *hr = rc->hr;
    hr->cancel = NULL;
    PGresult *r = NULL;
    for (int i = 0; i < res->nresults; i++)
        if (res->results[i] != NULL && PQresultStatus(res->results[i]) == PGRES_FATAL_ERROR)
            r = res->results[i];
    const char *state = res->sqlstate != NULL ? res->sqlstate : "";
    const char *constraint = r != NULL ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : NULL;
    const char *column = r != NULL ? PQresultErrorField(r, PG_DIAG_COLUMN_NAME) : NULL;
    char detail[256];
    if (strncmp(state, "22", 2) == 0 || strcmp(state, "42804") == 0 || strcmp(state, "42883") == 0 || strcmp(state, "42P18") == 0) {
        http_send_problem(hr, PROBLEM_BAD_REQUEST, "a value or operator does not fit its column's type");
    } else if (strcmp(state, "23505") == 0 || strcmp(state, "23503") == 0 || strcmp(state, "23P01") == 0) {
        snprintf(detail, sizeof(detail), "conflict with constraint %s", constraint != NULL ? constraint : "(unnamed)");
        http_send_problem(hr, PROBLEM_CONFLICT, detail);
    } else if (strcmp(state, "23502") == 0) {
        snprintf(detail, sizeof(detail), "column %s may not be null", column != NULL ? column : "(unknown)");
        http_send_problem(hr, PROBLEM_UNPROCESSABLE, detail);
    } else if (strcmp(state, "23514") == 0) {
        snprintf(detail, sizeof(detail), "the row violates check %s", constraint != NULL ? constraint : "(unnamed)");
        http_send_problem(hr, PROBLEM_UNPROCESSABLE, detail);
    } else if (strcmp(state, "42501") == 0) {
        http_send_problem(hr, PROBLEM_FORBIDDEN, "the tenant's role may not do this");
    } else if (strcmp(state, "57014") == 0) {
        http_send_problem(hr, PROBLEM_GATEWAY_TIMEOUT, "the query took too long");
    } else if (strcmp(state, "42P01") == 0 || strcmp(state, "42703") == 0) {
        /* this tenant's schema lags the metadata (a migration in progress) */
        http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "this table is being migrated; retry shortly", 1);
    } else {
        log_error(hr->request_id, "data API statement failed (%s): %s", state, res->message);
        http_send_problem(hr, PROBLEM_INTERNAL, NULL);
    }
}

/* ---------------------------------------------------------------- change events */

static void answer_write(rest_call_t *rc)
{
    http_request_t *hr = rc->hr;
    hr->cancel = NULL;
    size_t len = strlen(rc->write_rows);
    if (rc->return_representation)
        http_send_json(hr, rc->write_status, rc->write_rows, len);
    else
        http_send_body(hr, rc->op == OP_INSERT ? 201 : 204, "application/json", "", 0);
    free(rc->write_rows);
    rc->write_rows = NULL;
}

/* The change is out (and the read cache version bumped): now the write may be answered, so the
 * writer's next read anywhere cannot see a cached older result. */
static void publish_done(void *data, redisReply *reply, const char *err)
{
    rest_call_t *rc = data;
    rc->cmd = NULL;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        log_warn(rc->hr->request_id, "change events not published: %s", reply != NULL ? reply->str : err);
    answer_write(rc);
}

static redis_cmd_t *publish_changes(rest_call_t *rc, http_request_t *hr, const char *table, rest_op_t op, const char *rows_json)
{
    static const char *const op_names[] = {"SELECT", "INSERT", "UPDATE", "DELETE"};
    const char *tid = hr->principal->claims.tid;
    char seq_key[128], stream_key[128];
    snprintf(seq_key, sizeof(seq_key), "t:%s:seq", tid);
    snprintf(stream_key, sizeof(stream_key), "t:%s:events", tid);
    const char *argv[] = {"EVAL", publish_lua, "2", seq_key, stream_key, tid, table, op_names[op], rows_json};
    size_t lens[9];
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(argv[i]);
    return redis_command_argv(hr->worker->redis, publish_done, rc, 9, argv, lens);
}

/* ---------------------------------------------------------------- answering */

/* The weak ETag of a representation: FNV-1a over its bytes and, for a counted read, the exact
 * count (Content-Range is part of what a client caches: a count change alone is a new ETag). */
static void rows_etag(const char *rows, size_t rows_len, const char *count, char etag[40])
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < rows_len; i++)
        h = (h ^ (unsigned char)rows[i]) * 1099511628211ull;
    if (count != NULL) {
        h = (h ^ '\n') * 1099511628211ull;
        for (const char *c = count; *c != '\0'; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211ull;
    }
    snprintf(etag, 40, "W/\"%016llx\"", (unsigned long long)h);
}

/* Answers a read of nrows rows: Content-Range, the ETag, 304 on a matching If-None-Match. */
static void send_rows(rest_call_t *rc, const char *count, long nrows, const char *etag, const char *rows, size_t rows_len)
{
    http_request_t *hr = rc->hr;
    char range[96];
    if (nrows <= 0)
        snprintf(range, sizeof(range), "*/%s", count != NULL ? count : "*");
    else
        snprintf(range, sizeof(range), "%ld-%ld/%s", rc->offset, rc->offset + nrows - 1, count != NULL ? count : "*");
    http_add_header(hr, "content-range", range, strlen(range));
    http_add_header(hr, "etag", etag, strlen(etag));
    h2o_iovec_t inm = body_header(hr, "if-none-match");
    if (inm.len > 0 && h2o_strstr(inm.base, inm.len, etag, strlen(etag)) != SIZE_MAX) {
        http_send_body(hr, 304, "application/json", "", 0);
        return;
    }
    http_send_json(hr, 200, rows, rows_len);
}

/* ---------------------------------------------------------------- the read cache
 *
 * Hot reads are cached in Redis under t:{tenant}:rc:{table}:{hash} for REST_CACHE_TTL seconds,
 * where hash covers the caller's role set and the exact statement with its parameters (which
 * already carry the tenant schema and any own-row condition). The entry records the table's
 * per-tenant write counter t:{tenant}:tv:{table} it was read under; one MGET fetches the counter
 * and the entry together (atomically: Redis runs one command at a time), and an entry of another
 * version is a miss. Every committed write bumps the counter before it is answered, so no reader
 * anywhere is served an entry from before that write; an entry stored late by a reader that saw
 * an older counter only misses. A cache that cannot be reached is skipped, never waited for.
 *
 * Entry: "{version}\n{count or empty}\n{rows in the array}\n{etag}\n{rows JSON}" — what a hit
 * needs to answer (Content-Range, ETag) without parsing the rows.
 *
 * Admission: a query is asked of (and stored into) the cache only from its second sighting in
 * this process. The first goes straight to Postgres — one round trip instead of three (MGET, the
 * query, SET) — so one-off queries (a unique filter, a cursor page) cost no Redis work and fill no
 * Redis memory, while a query read twice is cached from then on. Sightings are remembered in a
 * process-wide direct-mapped table of hash tags (REST_ADMIT_SLOTS, relaxed atomics: a lost race
 * only delays admission by one read or admits one read early). Skipping the cache never serves
 * anything stale: Postgres is the truth the cache copies. */

#define REST_CACHE_TTL "60"

static EVP_MD *rest_sha256; /* fetched once: EVP_Digest then skips the provider lookup */
#define REST_CACHE_MAX_BYTES (256 * 1024)
#define REST_ADMIT_SLOTS 32768 /* a power of two: 128 KB of tags */

static _Atomic uint32_t rest_admit_tags[REST_ADMIT_SLOTS];

/* True when the query of this cache-key digest was seen before (and still remembered); records it. */
static bool cache_admit(const unsigned char digest[32])
{
    uint32_t slot, tag;
    memcpy(&slot, digest, sizeof(slot));
    memcpy(&tag, digest + sizeof(slot), sizeof(tag));
    tag |= 1; /* 0 is an empty slot */
    _Atomic uint32_t *cell = &rest_admit_tags[slot & (REST_ADMIT_SLOTS - 1)];
    if (atomic_load_explicit(cell, memory_order_relaxed) == tag)
        return true;
    atomic_store_explicit(cell, tag, memory_order_relaxed);
    return false;
}

static void cache_store(rest_call_t *rc, const char *count, long nrows, const char *etag, const char *rows, size_t rows_len)
{
    if (rc->cache_key[0] == '\0' || rows_len > REST_CACHE_MAX_BYTES)
        return;
    char head[160];
    int hlen = snprintf(head, sizeof(head), "%s\n%s\n%ld\n%s\n", rc->cache_version, count != NULL ? count : "", nrows, etag);
    if (hlen < 0 || (size_t)hlen >= sizeof(head))
        return;
    char *value = malloc((size_t)hlen + rows_len);
    if (value == NULL)
        return;
    memcpy(value, head, (size_t)hlen);
    memcpy(value + hlen, rows, rows_len);
    const char *argv[5] = {"SET", rc->cache_key, value, "EX", REST_CACHE_TTL};
    size_t lens[5] = {3, strlen(rc->cache_key), (size_t)hlen + rows_len, 2, strlen(REST_CACHE_TTL)};
    redis_command_argv(rc->hr->worker->redis, NULL, NULL, 5, argv, lens);
    free(value);
}

/* Cuts the next '\n'-terminated field off *p (of *left bytes); NULL when there is none. */
static const char *entry_field(const char **p, size_t *left, size_t *len)
{
    const char *nl = memchr(*p, '\n', *left);
    if (nl == NULL)
        return NULL;
    const char *field = *p;
    *len = (size_t)(nl - field);
    *left -= *len + 1;
    *p = nl + 1;
    return field;
}

/* Answers from a cache entry read under version (NUL-terminated); false when it is not a hit. */
static bool cache_answer(rest_call_t *rc, const char *version, const char *entry, size_t entry_len)
{
    const char *p = entry;
    size_t left = entry_len, vlen, clen, nlen, elen;
    const char *v = entry_field(&p, &left, &vlen);
    const char *c = v != NULL ? entry_field(&p, &left, &clen) : NULL;
    const char *n = c != NULL ? entry_field(&p, &left, &nlen) : NULL;
    const char *e = n != NULL ? entry_field(&p, &left, &elen) : NULL;
    if (e == NULL || vlen != strlen(version) || memcmp(v, version, vlen) != 0)
        return false;
    char count[32], nrows[24], etag[40];
    if (clen >= sizeof(count) || nlen == 0 || nlen >= sizeof(nrows) || elen == 0 || elen >= sizeof(etag))
        return false;
    memcpy(count, c, clen);
    count[clen] = '\0';
    memcpy(nrows, n, nlen);
    nrows[nlen] = '\0';
    memcpy(etag, e, elen);
    etag[elen] = '\0';
    rc->hr->cancel = NULL;
    restq_sql_free(&rc->query);
    send_rows(rc, clen > 0 ? count : NULL, strtol(nrows, NULL, 10), etag, p, left);
    return true;
}

static void rest_submit(rest_call_t *rc, restq_sql_t *q);

static void on_cache_read(void *data, redisReply *reply, const char *err)
{
    rest_call_t *rc = data;
    rc->cmd = NULL;
    (void)err;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        redisReply *ver = reply->element[0], *entry = reply->element[1];
        if (ver->type == REDIS_REPLY_NIL)
            snprintf(rc->cache_version, sizeof(rc->cache_version), "0");
        else if (ver->type == REDIS_REPLY_STRING && ver->len < sizeof(rc->cache_version))
            snprintf(rc->cache_version, sizeof(rc->cache_version), "%s", ver->str);
        else
            rc->cache_key[0] = '\0'; /* a counter we cannot read: do not store under it */
        if (rc->cache_key[0] != '\0' && entry->type == REDIS_REPLY_STRING &&
            cache_answer(rc, rc->cache_version, entry->str, entry->len)) {
            metrics_count(METRICS_COUNTER_REST_CACHE_HIT);
            return;
        }
        metrics_count(METRICS_COUNTER_REST_CACHE_MISS);
    } else {
        rc->cache_key[0] = '\0'; /* the version is unknown: do not store this answer */
    }
    restq_sql_t q = rc->query;
    memset(&rc->query, 0, sizeof(rc->query));
    rest_submit(rc, &q);
    restq_sql_free(&q);
}

/* Looks the SELECT up in the cache, else runs it; takes over q. */
static void cached_select(rest_call_t *rc, restq_sql_t *q)
{
    http_request_t *hr = rc->hr;
    const guard_principal_t *p = hr->principal;
    /* the key material: roles, count flag, statement and parameters, each NUL-terminated */
    char stackbuf[2048];
    size_t need = 2 + q->len + 1;
    for (int i = 0; i < p->claims.nroles; i++)
        need += strlen(p->claims.roles[i]) + 1;
    for (int i = 0; i < q->nparams; i++)
        need += 1 + (q->params[i] != NULL ? strlen(q->params[i]) : 0) + 1;
    char *buf = need <= sizeof(stackbuf) ? stackbuf : malloc(need);
    size_t len = 0;
#define KEY_PUT(src, n) (memcpy(buf + len, (src), (n)), len += (n))
    for (int i = 0; i < p->claims.nroles; i++) /* roles in token order; the same set in another order only misses */
        KEY_PUT(p->claims.roles[i], strlen(p->claims.roles[i]) + 1);
    KEY_PUT(rc->want_count ? "c" : "n", 1);
    KEY_PUT(q->sql, q->len + 1);
    for (int i = 0; i < q->nparams; i++) {
        const char *v = q->params[i] != NULL ? q->params[i] : "";
        KEY_PUT(q->params[i] != NULL ? "v" : "n", 1);
        KEY_PUT(v, strlen(v) + 1);
    }
#undef KEY_PUT
    unsigned char digest[32];
    /* OpenSSL's SHA-256 (SHA-NI where the CPU has it): a quarter of libsodium's portable one's cost */
    bool hashed = buf != NULL && EVP_Digest(buf, len, digest, NULL, rest_sha256, NULL) == 1;
    if (buf != stackbuf)
        free(buf);
    if (!hashed || !cache_admit(digest)) { /* no key, or a first sighting: straight to Postgres */
        if (hashed)
            metrics_count(METRICS_COUNTER_REST_CACHE_FIRST);
        rc->cache_key[0] = '\0';
        rest_submit(rc, q);
        return;
    }
    char hex[65];
    sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
    snprintf(rc->cache_key, sizeof(rc->cache_key), "t:%s:rc:%s:%s", p->claims.tid, rc->table_name, hex);
    char vkey[160];
    snprintf(vkey, sizeof(vkey), "t:%s:tv:%s", p->claims.tid, rc->table_name);
    rc->query = *q;
    memset(q, 0, sizeof(*q));
    const char *argv[3] = {"MGET", vkey, rc->cache_key};
    size_t lens[3] = {4, strlen(vkey), strlen(rc->cache_key)};
    hr->cancel = rest_cancel;
    rc->cmd = redis_command_argv(hr->worker->redis, on_cache_read, rc, 3, argv, lens);
    if (rc->cmd == NULL) {
        rc->cache_key[0] = '\0'; /* no cache now: straight to Postgres */
        restq_sql_t again = rc->query;
        memset(&rc->query, 0, sizeof(rc->query));
        rest_submit(rc, &again);
        restq_sql_free(&again);
    }
}

/* Answers a read from Postgres: ETag, a copy into the read cache (when the query was admitted), the rows or a 304. */
static void answer_read(rest_call_t *rc, const char *count, long nrows, const char *rows, size_t rows_len)
{
    char etag[40];
    rows_etag(rows, rows_len, count, etag);
    cache_store(rc, count, nrows, etag, rows, rows_len);
    rc->hr->cancel = NULL;
    send_rows(rc, count, nrows, etag, rows, rows_len);
}

static void on_rest_result(void *data, const db_result_t *res)
{
    rest_call_t *rc = data;
    rc->job = NULL;
    http_request_t *hr = rc->hr;
    if (res->status == DB_SQL_ERROR) {
        rest_sql_error(rc, res);
        return;
    }
    if (res->status != DB_OK) {
        if (res->status == DB_TIMEOUT) {
            hr->cancel = NULL;
            http_send_problem(hr, PROBLEM_GATEWAY_TIMEOUT, "the query took too long");
        } else {
            rest_unavailable(hr);
        }
        return;
    }
    PGresult *r = res->results[1];
    if (rc->op == OP_SELECT && !rc->want_count) {
        /* one JSON object per result row: joined here into the array Postgres would have built */
        int n = PQntuples(r);
        size_t rows_len = 2 + (n > 1 ? (size_t)n - 1 : 0);
        for (int i = 0; i < n; i++)
            rows_len += (size_t)PQgetlength(r, i, 0);
        char *rows = h2o_mem_alloc_pool(&hr->req->pool, rows_len), *w = rows;
        *w++ = '[';
        for (int i = 0; i < n; i++) {
            if (i > 0)
                *w++ = ',';
            size_t len = (size_t)PQgetlength(r, i, 0);
            memcpy(w, PQgetvalue(r, i, 0), len);
            w += len;
        }
        *w = ']';
        answer_read(rc, NULL, n, rows, rows_len);
        return;
    }
    const char *rows = PQgetvalue(r, 0, 0);
    size_t rows_len = (size_t)PQgetlength(r, 0, 0);
    if (rc->op == OP_SELECT) { /* a counted read: rows JSON, the number of rows in it, the exact count */
        answer_read(rc, PQnfields(r) > 2 ? PQgetvalue(r, 0, 2) : NULL, PQnfields(r) > 1 ? strtol(PQgetvalue(r, 0, 1), NULL, 10) : 0,
                    rows, rows_len);
        return;
    }
    rc->write_rows = strdup(PQnfields(r) > 1 ? PQgetvalue(r, 0, 1) : rows);
    rc->write_status = rc->op == OP_INSERT ? 201 : 200;
    if (rows_len > 2 && (rc->cmd = publish_changes(rc, hr, rc->table_name, rc->op, rows)) != NULL)
        return; /* answered in publish_done */
    answer_write(rc);
}

/* Submits [tenant context, sql] for the request. */
static void rest_submit(rest_call_t *rc, restq_sql_t *q)
{
    http_request_t *hr = rc->hr;
    const char *ctx_params[1] = {hr->principal->tenant_schema};
    db_step_t steps[2] = {{.stmt = &tenant_ctx_stmt, .params = ctx_params},
                          {.stmt = NULL, .params = (const char *const *)q->params, .sql = q->sql, .nparams = q->nparams}};
    db_status_t st;
    hr->cancel = rest_cancel;
    /* a SELECT may share its sync (and implicit transaction) with other reads: its first step
     * sets the role and search_path it runs under; writes always get their own */
    rc->job = (rc->op == OP_SELECT ? db_submit_read : db_submit)(hr->worker->db, steps, 2, on_rest_result, rc, &st);
    if (rc->job == NULL) {
        if (st == DB_REJECTED) {
            hr->cancel = NULL;
            http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "the server is busy", 1);
        } else {
            rest_unavailable(hr);
        }
    }
}

/* Appends " AND owner_id = $me" when the caller's grant is row-conditional. */
static void append_own_condition(rest_call_t *rc, restq_sql_t *q)
{
    if (rc->hr->principal->decision != RBAC_ALLOW_OWN)
        return;
    const guard_principal_t *p = rc->hr->principal;
    restq_sql_append(q, " AND ");
    if (rc->table->owner < 0) {
        restq_sql_append(q, "FALSE"); /* an own-grant on a table without owner_id reaches no row */
        return;
    }
    restq_sql_append(q, rc->table->cols[rc->table->owner].quoted);
    restq_sql_append(q, " = ");
    restq_sql_param(q, p->claims.sub, strlen(p->claims.sub));
    restq_sql_append(q, "::uuid");
}

/* Ends a write: the changed rows in full (for change events) and as the caller selected them. */
static void append_write_tail(restq_sql_t *q, const char *select_list)
{
    restq_sql_append(q, " RETURNING *) SELECT coalesce(array_to_json(array_agg(row_to_json(_w))), '[]')::text,"
                        " coalesce((SELECT array_to_json(array_agg(row_to_json(_s))) FROM (SELECT ");
    restq_sql_append(q, select_list != NULL ? select_list : "*");
    restq_sql_append(q, " FROM _w) _s), '[]')::text FROM _w");
}

/* "schema"."table" */
static void append_qualified(http_request_t *hr, restq_sql_t *q, const restq_table_t *t)
{
    char *schema = db_escape_identifier(hr->worker->db, hr->principal->tenant_schema);
    restq_sql_append(q, schema != NULL ? schema : "\"\"");
    free(schema);
    restq_sql_append(q, ".");
    restq_sql_append(q, t->quoted);
}

static bool prefer_has(http_request_t *hr, const char *token)
{
    h2o_iovec_t prefer = body_header(hr, "prefer");
    return prefer.len > 0 && h2o_strstr(prefer.base, prefer.len, token, strlen(token)) != SIZE_MAX;
}

/* Applies a "Range: a-b" / "a-" header (restq_parse_range); false when absent or malformed (then
 * it is ignored, as PostgREST does). */
static bool parse_range(http_request_t *hr, long *offset, long *limit)
{
    h2o_iovec_t r = body_header(hr, "range");
    return r.len > 0 && restq_parse_range(r.base, r.len, offset, limit);
}

/* ---------------------------------------------------------------- the verbs */

/* Parses the request's query string for rc's table; answers 400 and returns false when malformed. */
static bool parse_query(rest_call_t *rc, restq_request_t *rq)
{
    h2o_req_t *req = rc->hr->req;
    const char *qs = req->query_at != SIZE_MAX ? req->path.base + req->query_at + 1 : "";
    size_t qlen = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;
    char err[200];
    if (restq_parse(qs, qlen, rc->view, rq, err, sizeof(err)) != 0) {
        rc->hr->cancel = NULL;
        http_send_problem(rc->hr, PROBLEM_BAD_REQUEST, err);
        return false;
    }
    return true;
}

/* A statement buffer that starts with the filter's parameters ($1..$n), taken from rq. */
static restq_sql_t take_where_params(restq_request_t *rq)
{
    restq_sql_t q = {0};
    q.params = rq->where.params;
    q.nparams = rq->where.nparams;
    q.capparams = rq->where.capparams;
    rq->where.params = NULL;
    rq->where.nparams = rq->where.capparams = 0;
    return q;
}

static void run_select(rest_call_t *rc)
{
    http_request_t *hr = rc->hr;
    restq_request_t rq;
    if (!parse_query(rc, &rq))
        return;
    long offset = rq.offset, limit = rq.limit;
    if (parse_range(hr, &offset, &limit) && limit > RESTQ_MAX_LIMIT)
        limit = RESTQ_MAX_LIMIT;
    rc->offset = offset;
    rc->want_count = prefer_has(hr, "count=exact");

    restq_sql_t q = take_where_params(&rq);

    restq_sql_t where = {0};
    restq_sql_append(&where, " WHERE (");
    restq_sql_append(&where, rq.where.sql);
    restq_sql_append(&where, ")");
    append_own_condition(rc, &q); /* the own parameter gets its number now, its text goes into where */
    if (q.len > 0) {
        restq_sql_append(&where, q.sql);
        free(q.sql);
        q.sql = NULL;
        q.len = q.cap = 0;
    }

    /* Without a count, one row_to_json per row (joined into the array in on_rest_result): Postgres
     * then runs no aggregate, about 1.4× the reads per second of the array_agg form. A counted read
     * needs its count even when no row is returned: one row with the array, its length and the count. */
    if (rc->want_count) {
        restq_sql_append(&q, "SELECT coalesce(array_to_json(array_agg(row_to_json(_r))), '[]')::text, count(*), (SELECT count(*) FROM ");
        append_qualified(hr, &q, rc->table);
        restq_sql_append(&q, where.sql);
        restq_sql_append(&q, ")");
    } else {
        restq_sql_append(&q, "SELECT row_to_json(_r)::text");
    }
    restq_sql_append(&q, " FROM (SELECT ");
    restq_sql_append(&q, rq.select_list != NULL ? rq.select_list : rc->visible_list != NULL ? rc->visible_list : "*");
    restq_sql_append(&q, " FROM ");
    append_qualified(hr, &q, rc->table);
    restq_sql_append(&q, where.sql);
    if (rq.order_by != NULL) {
        restq_sql_append(&q, " ORDER BY ");
        restq_sql_append(&q, rq.order_by);
    } else if (rc->table->pk >= 0) {
        restq_sql_append(&q, " ORDER BY ");
        restq_sql_append(&q, rc->table->cols[rc->table->pk].quoted);
    }
    /* LIMIT and OFFSET are written as integer literals (numbers this code parsed and bounded, never
     * the client's text): given as parameters, Postgres cannot cost the generic plan and plans
     * every execution anew (custom plans forever, about half of a single-row read's time). */
    char num[64];
    snprintf(num, sizeof(num), " LIMIT %ld OFFSET %ld", limit, offset);
    restq_sql_append(&q, num);
    restq_sql_append(&q, ") _r");
    restq_sql_free(&where);
    restq_request_free(&rq);
    cached_select(rc, &q);
    restq_sql_free(&q);
}

/* Validates the keys of one object against the table; answers and returns false when one is unknown or not writable. */
/* The caller's roles, as rbac and the column rules see them. */
static size_t caller_roles(const http_request_t *hr, const char **roles)
{
    const guard_principal_t *p = hr->principal;
    for (int i = 0; i < p->claims.nroles; i++)
        roles[i] = p->claims.roles[i];
    return (size_t)p->claims.nroles;
}

static bool column_readonly(rest_call_t *rc, const char *column)
{
    const char *roles[TOKEN_MAX_ROLES];
    size_t n = caller_roles(rc->hr, roles);
    return colpol_readonly(guard_columns(), rc->table->name, column, roles, n);
}

/* Sets rc->view (and rc->visible_list) to the columns the column rules let this caller see. */
static void apply_column_rules(rest_call_t *rc)
{
    rc->view = rc->table;
    rc->visible_list = NULL;
    const colpol_t *cp = guard_columns();
    if (!colpol_has_table(cp, rc->table->name))
        return;
    const char *roles[TOKEN_MAX_ROLES];
    size_t nroles = caller_roles(rc->hr, roles);
    h2o_mem_pool_t *pool = &rc->hr->req->pool;
    restq_table_t *v = h2o_mem_alloc_pool(pool, sizeof(*v));
    *v = *rc->table;
    v->cols = h2o_mem_alloc_pool(pool, sizeof(restq_column_t) * (rc->table->ncols + 1));
    v->ncols = 0;
    v->pk = v->owner = -1;
    restq_sql_t list = {0};
    for (size_t i = 0; i < rc->table->ncols; i++) {
        const restq_column_t *c = &rc->table->cols[i];
        if (colpol_hidden(cp, rc->table->name, c->name, roles, nroles))
            continue;
        if ((int)i == rc->table->pk)
            v->pk = (int)v->ncols;
        if ((int)i == rc->table->owner)
            v->owner = (int)v->ncols;
        v->cols[v->ncols++] = *c;
        restq_sql_append(&list, list.len > 0 ? ", " : "");
        restq_sql_append(&list, c->quoted);
    }
    if (v->ncols < rc->table->ncols) {
        rc->view = v;
        rc->visible_list = h2o_mem_alloc_pool(pool, list.len + 1);
        memcpy(rc->visible_list, list.sql != NULL ? list.sql : "", list.len + 1);
        if (v->ncols == 0) {
            rc->visible_list = "NULL AS nothing_visible";
        }
    }
    restq_sql_free(&list);
}

static bool check_keys(rest_call_t *rc, json_t *obj)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        const restq_column_t *c = restq_column(rc->table, key, strlen(key));
        char detail[160];
        if (c == NULL) {
            snprintf(detail, sizeof(detail), "unknown column %.100s", key);
            rc->hr->cancel = NULL;
            http_send_problem(rc->hr, PROBLEM_BAD_REQUEST, detail);
            return false;
        }
        if (restq_column(rc->view, key, strlen(key)) == NULL || column_readonly(rc, key)) {
            snprintf(detail, sizeof(detail), "column %.100s cannot be written with your roles", key);
            rc->hr->cancel = NULL;
            http_send_problem(rc->hr, PROBLEM_FORBIDDEN, detail);
            return false;
        }
        if (rc->table->owner >= 0 && c == &rc->table->cols[rc->table->owner] &&
            (rc->op == OP_INSERT || rc->hr->principal->decision == RBAC_ALLOW_OWN)) {
            if (rc->op == OP_INSERT)
                continue; /* set by the server below */
            rc->hr->cancel = NULL;
            http_send_problem(rc->hr, PROBLEM_FORBIDDEN, "owner_id cannot be changed with your roles");
            return false;
        }
    }
    return true;
}

static void run_insert(rest_call_t *rc)
{
    http_request_t *hr = rc->hr;
    /* ?select= shapes the representation returned; other query parameters have no meaning here */
    restq_request_t rq;
    if (!parse_query(rc, &rq))
        return;
    char *select_list = rq.select_list;
    rq.select_list = NULL;
    restq_request_free(&rq);
    h2o_iovec_t ct = body_header(hr, "content-type");
    if (ct.len < 16 || strncasecmp(ct.base, "application/json", 16) != 0) {
        hr->cancel = NULL;
        http_send_problem(hr, PROBLEM_UNSUPPORTED_MEDIA_TYPE, "send the body as application/json");
        free(select_list);
        return;
    }
    json_error_t jerr;
    json_t *body = json_loadb(hr->req->entity.base, hr->req->entity.len, JSON_REJECT_DUPLICATES, &jerr);
    if (json_is_object(body)) {
        json_t *arr = json_array();
        json_array_append_new(arr, body);
        body = arr;
    }
    if (!json_is_array(body) || json_array_size(body) == 0) {
        json_decref(body);
        hr->cancel = NULL;
        http_send_problem(hr, PROBLEM_BAD_REQUEST, "the body must be a JSON object or a non-empty array of objects");
        free(select_list);
        return;
    }
    /* the column list: every key used by any object (validated), owner_id forced by the server */
    bool used[512] = {false};
    size_t i;
    json_t *row;
    json_array_foreach(body, i, row)
    {
        if (!json_is_object(row)) {
            json_decref(body);
            hr->cancel = NULL;
            http_send_problem(hr, PROBLEM_BAD_REQUEST, "every element must be an object");
            free(select_list);
            return;
        }
        if (!check_keys(rc, row)) {
            json_decref(body);
            free(select_list);
            return;
        }
        const char *key;
        json_t *v;
        json_object_foreach(row, key, v)
        {
            const restq_column_t *c = restq_column(rc->table, key, strlen(key));
            if ((size_t)(c - rc->table->cols) < 512)
                used[c - rc->table->cols] = true;
        }
    }
    if (rc->table->owner >= 0)
        used[rc->table->owner] = true;
    char *rows = json_dumps(body, JSON_COMPACT);
    json_decref(body);

    restq_sql_t q = {0}, cols = {0}, vals = {0};
    for (size_t k = 0; k < rc->table->ncols && k < 512; k++) {
        if (!used[k])
            continue;
        if (cols.len > 0) {
            restq_sql_append(&cols, ", ");
            restq_sql_append(&vals, ", ");
        }
        restq_sql_append(&cols, rc->table->cols[k].quoted);
        if ((int)k == rc->table->owner) {
            restq_sql_param(&q, hr->principal->claims.sub, strlen(hr->principal->claims.sub));
            restq_sql_append(&vals, q.sql);
            restq_sql_append(&vals, "::uuid");
            free(q.sql);
            q.sql = NULL;
            q.len = q.cap = 0;
        } else {
            restq_sql_append(&vals, "_j.");
            restq_sql_append(&vals, rc->table->cols[k].quoted);
        }
    }
    restq_sql_append(&q, "WITH _w AS (INSERT INTO ");
    append_qualified(hr, &q, rc->table);
    restq_sql_append(&q, " (");
    restq_sql_append(&q, cols.sql);
    restq_sql_append(&q, ") SELECT ");
    restq_sql_append(&q, vals.sql);
    restq_sql_append(&q, " FROM json_populate_recordset(NULL::");
    append_qualified(hr, &q, rc->table);
    restq_sql_append(&q, ", ");
    restq_sql_param(&q, rows, strlen(rows));
    restq_sql_append(&q, "::json) _j");
    append_write_tail(&q, select_list != NULL ? select_list : rc->visible_list);
    free(select_list);
    free(rows);
    restq_sql_free(&cols);
    restq_sql_free(&vals);
    rest_submit(rc, &q);
    restq_sql_free(&q);
}

static void run_update_or_delete(rest_call_t *rc)
{
    http_request_t *hr = rc->hr;
    restq_request_t rq;
    if (!parse_query(rc, &rq))
        return;
    if (!rq.has_filter) {
        restq_request_free(&rq);
        hr->cancel = NULL;
        http_send_problem(hr, PROBLEM_BAD_REQUEST, "a write needs a filter, e.g. ?id=eq.<id>");
        return;
    }
    json_t *body = NULL;
    if (rc->op == OP_UPDATE) {
        body = body_json_object(hr, false);
        if (body == NULL) {
            hr->cancel = NULL;
            restq_request_free(&rq);
            return;
        }
        if (json_object_size(body) == 0 || !check_keys(rc, body)) {
            if (!hr->answered) {
                hr->cancel = NULL;
                http_send_problem(hr, PROBLEM_BAD_REQUEST, "the body names no column to change");
            }
            json_decref(body);
            restq_request_free(&rq);
            return;
        }
    }
    restq_sql_t q = take_where_params(&rq);
    restq_sql_t tail = {0};
    append_own_condition(rc, &q);
    if (q.len > 0) {
        restq_sql_append(&tail, q.sql);
        free(q.sql);
        q.sql = NULL;
        q.len = q.cap = 0;
    }
    if (rc->op == OP_UPDATE) {
        /* SET (a, b) = (SELECT _j.a, _j.b FROM json_populate_record(…)): values typed by the table's
         * own row type, and no second relation in scope to make filter columns ambiguous */
        restq_sql_append(&q, "WITH _w AS (UPDATE ");
        append_qualified(hr, &q, rc->table);
        restq_sql_t names = {0}, values = {0};
        const char *key;
        json_t *v;
        bool sets_updated_at = false;
        json_object_foreach(body, key, v)
        {
            const restq_column_t *c = restq_column(rc->table, key, strlen(key));
            if (names.len > 0) {
                restq_sql_append(&names, ", ");
                restq_sql_append(&values, ", ");
            }
            restq_sql_append(&names, c->quoted);
            restq_sql_append(&values, "_j.");
            restq_sql_append(&values, c->quoted);
            sets_updated_at |= strcmp(key, "updated_at") == 0;
        }
        const restq_column_t *upd = restq_column(rc->table, "updated_at", 10);
        if (upd != NULL && !sets_updated_at) {
            restq_sql_append(&names, ", ");
            restq_sql_append(&names, upd->quoted);
            restq_sql_append(&values, ", now()");
        }
        restq_sql_append(&q, " SET (");
        restq_sql_append(&q, names.sql);
        restq_sql_append(&q, ") = (SELECT ");
        restq_sql_append(&q, values.sql);
        restq_sql_append(&q, " FROM json_populate_record(NULL::");
        append_qualified(hr, &q, rc->table);
        restq_sql_append(&q, ", ");
        char *text = json_dumps(body, JSON_COMPACT);
        restq_sql_param(&q, text, strlen(text));
        restq_sql_append(&q, "::json) _j) WHERE (");
        free(text);
        restq_sql_free(&names);
        restq_sql_free(&values);
        json_decref(body);
    } else {
        restq_sql_append(&q, "WITH _w AS (DELETE FROM ");
        append_qualified(hr, &q, rc->table);
        restq_sql_append(&q, " WHERE (");
    }
    restq_sql_append(&q, rq.where.sql);
    restq_sql_append(&q, ")");
    if (tail.sql != NULL)
        restq_sql_append(&q, tail.sql);
    append_write_tail(&q, rq.select_list != NULL ? rq.select_list : rc->visible_list);
    restq_sql_free(&tail);
    restq_request_free(&rq);
    rest_submit(rc, &q);
    restq_sql_free(&q);
}

static void rest_dispatch(rest_call_t *rc)
{
    rest_meta_t *m = worker_meta(rc->hr->worker);
    rc->table = meta_table(m, rc->table_name, strlen(rc->table_name));
    if (rc->table == NULL) {
        rc->hr->cancel = NULL;
        http_send_problem(rc->hr, PROBLEM_NOT_FOUND, "no such table");
        return;
    }
    rc->return_representation = prefer_has(rc->hr, "return=representation");
    apply_column_rules(rc);
    switch (rc->op) {
    case OP_SELECT:
        run_select(rc);
        break;
    case OP_INSERT:
        run_insert(rc);
        break;
    case OP_UPDATE:
    case OP_DELETE:
        run_update_or_delete(rc);
        break;
    }
}

static void on_catalog(void *data, const db_result_t *res)
{
    rest_call_t *rc = data;
    rc->job = NULL;
    if (res->status != DB_OK) {
        rest_unavailable(rc->hr);
        return;
    }
    rest_meta_t *m = worker_meta(rc->hr->worker);
    if (!m->loaded && !meta_build(m, rc->hr->worker->db, res->results[0])) {
        meta_free(m);
        rest_unavailable(rc->hr);
        return;
    }
    rest_dispatch(rc);
}

static void rest_begin(http_request_t *hr, rest_op_t op)
{
    rest_call_t *rc = h2o_mem_alloc_pool(&hr->req->pool, sizeof(*rc));
    memset(rc, 0, sizeof(*rc));
    rc->hr = hr;
    rc->op = op;
    hr->handler_data = rc;
    snprintf(rc->table_name, sizeof(rc->table_name), "%.*s", (int)hr->params.items[0].value_len, hr->params.items[0].value);
    rest_meta_t *m = worker_meta(hr->worker);
    if (m->loaded) {
        rest_dispatch(rc);
        return;
    }
    const char *params[1] = {hr->principal->tenant_schema};
    db_status_t st;
    hr->cancel = rest_cancel;
    rc->job = db_query(hr->worker->db, &catalog_stmt, params, on_catalog, rc, &st);
    if (rc->job == NULL)
        rest_unavailable(hr);
}

size_t rest_table_count(http_worker_t *w)
{
    rest_meta_t *m = worker_meta(w);
    return m->loaded ? m->ntables : 0;
}

const restq_table_t *rest_table_at(http_worker_t *w, size_t i)
{
    return &worker_meta(w)->tables[i];
}

typedef struct {
    http_request_t *hr;
    db_job_t *job;
    void (*then)(http_request_t *hr);
} ensure_t;

static void ensure_cancel(http_request_t *hr)
{
    ensure_t *e = hr->handler_data;
    if (e->job != NULL)
        db_cancel(e->job);
    e->job = NULL;
}

static void on_ensure_catalog(void *data, const db_result_t *res)
{
    ensure_t *e = data;
    e->job = NULL;
    e->hr->cancel = NULL;
    rest_meta_t *m = worker_meta(e->hr->worker);
    if (res->status == DB_OK && !m->loaded && !meta_build(m, e->hr->worker->db, res->results[0]))
        meta_free(m);
    e->then(e->hr); /* with or without tables: the caller decides */
}

void rest_meta_ensure(http_request_t *hr, void (*then)(http_request_t *hr))
{
    if (worker_meta(hr->worker)->loaded) {
        then(hr);
        return;
    }
    ensure_t *e = h2o_mem_alloc_pool(&hr->req->pool, sizeof(*e));
    e->hr = hr;
    e->then = then;
    hr->handler_data = e;
    hr->cancel = ensure_cancel;
    const char *params[1] = {NULL};
    db_status_t st;
    e->job = db_query(hr->worker->db, &catalog_stmt, params, on_ensure_catalog, e, &st);
    if (e->job == NULL) {
        hr->cancel = NULL;
        then(hr);
    }
}

void rest_select(http_request_t *hr)
{
    rest_begin(hr, OP_SELECT);
}

void rest_insert(http_request_t *hr)
{
    rest_begin(hr, OP_INSERT);
}

void rest_update(http_request_t *hr)
{
    rest_begin(hr, OP_UPDATE);
}

void rest_delete(http_request_t *hr)
{
    rest_begin(hr, OP_DELETE);
}

void rest_reload(http_worker_t *w)
{
    rest_meta_t *m = w->api_state;
    if (m == NULL || !m->loaded)
        return;
    rest_meta_t *old = malloc(sizeof(*old));
    *old = *m;
    memset(m, 0, sizeof(*m));
    m->retired = old;
}

void rest_worker_stop(http_worker_t *w)
{
    rest_meta_t *m = w->api_state;
    while (m != NULL) {
        rest_meta_t *next = m->retired;
        meta_free(m);
        free(m);
        m = next;
    }
    w->api_state = NULL;
}

void rest_init(void)
{
    rest_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (rest_sha256 == NULL)
        abort();
    db_stmt_register(&catalog_stmt);
    db_stmt_register(&tenant_ctx_stmt);
}
