/*
 * guard: the request gate (see guard.h for what it checks and in which order).
 *
 * Per worker thread it keeps two direct-mapped caches, touched only by that thread:
 *   - tokens: full token text -> verified claims + grants, until the token's exp; evicted by a
 *     revocation message naming its sid, by a tenant change, or by a policy reload;
 *   - tenants: tenant id -> slug, name, schema, status and custom roles, for GUARD_TENANT_TTL_MS
 *     or until a change message names it.
 * Grants are shared between a cache entry and the requests using it through a small reference
 * count, so evicting an entry never frees grants a request still holds.
 * Asynchronous steps (the session check in Redis, the tenant lookup in Postgres) park the
 * request in a guard_wait_t; if the client goes away first, the request's cancel hook detaches
 * the pending callback.
 */
#include "http/guard.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "core/log.h"
#include "http/body.h"
#include "http/cors.h"
#include "security/session.h"

#define GUARD_TOKEN_SLOTS 4096
#define GUARD_TENANT_SLOTS 1024
#define GUARD_TENANT_TTL_MS 900 /* a suspension made by tenantctl (Postgres only) is seen within a second */
#define GUARD_ACCESS_TTL_S 900
#define GUARD_ISSUER "tenantd"
#define GUARD_AUDIENCE "tenantd"

/* ---------------------------------------------------------------- shared state */

static token_keyset_t *guard_keyset;
static _Atomic(rbac_policy_t *) guard_current_policy;
static _Atomic(colpol_t *) guard_current_columns;
static atomic_uint guard_policy_generation;

/* Sessions revoked by a request of this process (logout): the revoking worker answers only after
 * putting the id here, and every worker drops it from its token cache before its next check, so
 * the token stops working at once on this instance — pub/sub (SESSION_REVOCATION_CHANNEL) reaches
 * the other instances, and would reach this one's other workers only a moment later. */
#define GUARD_LOCAL_REVOKED 64
static pthread_mutex_t local_revoked_mu = PTHREAD_MUTEX_INITIALIZER;
static char local_revoked[GUARD_LOCAL_REVOKED][64];
static atomic_uint local_revoked_gen;
static const config_t *guard_cfg;

static db_stmt_t tenant_stmt = {"guard_tenant",
                                "SELECT t.slug, t.name, t.schema_name, t.status,"
                                " coalesce((SELECT json_agg(json_build_object('name', r.name, 'permissions', r.permissions,"
                                " 'inherits', r.inherits)) FROM tenantd.roles r WHERE r.tenant_id = t.id), '[]')::text"
                                " FROM tenantd.tenants t WHERE t.id = $1::uuid",
                                1, 0};

typedef struct {
    int refs;
    rbac_grants_t *grants;
} grants_ref_t;

typedef struct {
    char id[64];
    char slug[64];
    char name[256];
    char schema[40];
    bool suspended;
    bool used;
    uint64_t loaded_at;
    json_t *custom_json;          /* owns the strings custom[] points into */
    rbac_custom_role_t *custom;
    size_t ncustom;
} tenant_entry_t;

/* An API key's row, by its public prefix. */
static db_stmt_t api_key_stmt = {"guard_api_key",
                                 "SELECT k.id::text, k.tenant_id::text, array_to_json(k.roles)::text, k.key_hash,"
                                 " coalesce(extract(epoch FROM k.expires_at)::bigint, 0)::text"
                                 " FROM tenantd.api_keys k WHERE k.prefix = $1 AND k.revoked_at IS NULL"
                                 " AND (k.expires_at IS NULL OR k.expires_at > now())",
                                 1, 0};

#define GUARD_API_KEY_CACHE_S 60 /* a cached key check lives this long (revocation evicts it at once) */

typedef struct {
    uint64_t hash;
    char *token;
    size_t len;
    token_claims_t claims;
    grants_ref_t *grants;
} token_entry_t;

typedef struct guard_state {
    redis_message_cb other_messages; /* receives pub/sub messages on channels the guard does not own */
    void *other_data;
    token_entry_t tokens[GUARD_TOKEN_SLOTS];
    tenant_entry_t tenants[GUARD_TENANT_SLOTS];
    unsigned policy_generation;
    unsigned revoked_seen; /* local_revoked_gen when this worker last caught up */
} guard_state_t;

/* ---------------------------------------------------------------- helpers */

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Copies src into dst of cap bytes, cut to fit, always terminated (snprintf "%s" without the formatting cost). */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The token cache's slot hash: the length and the last 48 bytes (a JWT's signature, an API key's
 * random part) pick a slot as well as the whole token would; hits still compare every byte. */
static uint64_t token_hash(const char *token, size_t len)
{
    size_t tail = len < 48 ? len : 48;
    return fnv1a(token + len - tail, tail) ^ (uint64_t)len;
}

static void grants_release(grants_ref_t *ref)
{
    if (ref != NULL && --ref->refs == 0) {
        rbac_grants_free(ref->grants);
        free(ref);
    }
}

static void token_entry_clear(token_entry_t *e)
{
    free(e->token);
    grants_release(e->grants);
    memset(e, 0, sizeof(*e));
}

static void tenant_entry_clear(tenant_entry_t *e)
{
    if (e->custom_json != NULL)
        json_decref(e->custom_json);
    if (e->custom != NULL) {
        for (size_t i = 0; i < e->ncustom; i++) {
            free((void *)e->custom[i].permissions);
            free((void *)e->custom[i].inherits);
        }
        free(e->custom);
    }
    memset(e, 0, sizeof(*e));
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* ---------------------------------------------------------------- initialisation */

int guard_init(const config_t *cfg)
{
    char err[512];
    guard_cfg = cfg;
    if (token_keyset_load(cfg->jwt_keys, false, GUARD_ISSUER, GUARD_AUDIENCE, &guard_keyset, err, sizeof(err)) != 0) {
        fprintf(stderr, "TENANTD_JWT_KEYS: %s\n", err);
        return -1;
    }
    rbac_policy_t *p;
    if (rbac_load_dir(cfg->policies_dir, &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "TENANTD_POLICIES: %s\n", err);
        return -1;
    }
    atomic_store(&guard_current_policy, p);
    colpol_t *cols;
    char coldir[1024];
    snprintf(coldir, sizeof(coldir), "%s/columns", cfg->policies_dir);
    if (colpol_load_dir(coldir, &cols, err, sizeof(err)) != 0) {
        fprintf(stderr, "TENANTD_POLICIES: %s\n", err);
        return -1;
    }
    atomic_store(&guard_current_columns, cols);
    db_stmt_register(&tenant_stmt);
    db_stmt_register(&api_key_stmt);
    return 0;
}

const token_keyset_t *guard_keys(void)
{
    return guard_keyset;
}

const rbac_policy_t *guard_policy(void)
{
    return atomic_load(&guard_current_policy);
}

const colpol_t *guard_columns(void)
{
    return atomic_load(&guard_current_columns);
}

void guard_reload_policies(void)
{
    char err[512];
    rbac_policy_t *p;
    if (rbac_load_dir(guard_cfg->policies_dir, &p, err, sizeof(err)) != 0) {
        log_error(NULL, "policy reload refused, keeping the current set: %s", err);
        return;
    }
    colpol_t *cols;
    char coldir[1024];
    snprintf(coldir, sizeof(coldir), "%s/columns", guard_cfg->policies_dir);
    if (colpol_load_dir(coldir, &cols, err, sizeof(err)) != 0) {
        log_error(NULL, "policy reload refused, keeping the current set: %s", err);
        rbac_policy_free(p);
        return;
    }
    /* The old sets stay allocated: requests on other threads may still use them. Reloads are
     * rare and a set is small. */
    atomic_store(&guard_current_policy, p);
    atomic_store(&guard_current_columns, cols);
    atomic_fetch_add(&guard_policy_generation, 1);
    log_info(NULL, "policies reloaded from %s", guard_cfg->policies_dir);
}

int guard_access_ttl(void)
{
    return GUARD_ACCESS_TTL_S;
}

int guard_issue_access_token(token_claims_t *claims, char *out, size_t cap)
{
    claims->iat = now_s();
    claims->exp = claims->iat + GUARD_ACCESS_TTL_S;
    claims->nbf = 0;
    return token_sign(guard_keyset, claims, out, cap);
}

/* ---------------------------------------------------------------- caches */

void guard_worker_flush(http_worker_t *w)
{
    guard_state_t *g = w->guard;
    for (size_t i = 0; i < GUARD_TOKEN_SLOTS; i++)
        if (g->tokens[i].token != NULL)
            token_entry_clear(&g->tokens[i]);
    for (size_t i = 0; i < GUARD_TENANT_SLOTS; i++)
        if (g->tenants[i].used)
            tenant_entry_clear(&g->tenants[i]);
}

static void evict_sid(guard_state_t *g, const char *sid, size_t len)
{
    for (size_t i = 0; i < GUARD_TOKEN_SLOTS; i++) {
        token_entry_t *e = &g->tokens[i];
        if (e->token != NULL && strlen(e->claims.sid) == len && memcmp(e->claims.sid, sid, len) == 0)
            token_entry_clear(e);
    }
}

static void evict_tenant(guard_state_t *g, const char *tid, size_t len)
{
    for (size_t i = 0; i < GUARD_TOKEN_SLOTS; i++) {
        token_entry_t *e = &g->tokens[i];
        if (e->token != NULL && strlen(e->claims.tid) == len && memcmp(e->claims.tid, tid, len) == 0)
            token_entry_clear(e);
    }
    for (size_t i = 0; i < GUARD_TENANT_SLOTS; i++) {
        tenant_entry_t *t = &g->tenants[i];
        if (t->used && strlen(t->id) == len && memcmp(t->id, tid, len) == 0)
            tenant_entry_clear(t);
    }
}

static void on_pubsub_message(void *data, const char *channel, size_t channel_len, const char *msg, size_t msg_len)
{
    http_worker_t *w = data;
    if (channel_len == sizeof(SESSION_REVOCATION_CHANNEL) - 1 && memcmp(channel, SESSION_REVOCATION_CHANNEL, channel_len) == 0)
        evict_sid(w->guard, msg, msg_len);
    else if (channel_len == sizeof(GUARD_TENANT_CHANNEL) - 1 && memcmp(channel, GUARD_TENANT_CHANNEL, channel_len) == 0)
        evict_tenant(w->guard, msg, msg_len);
    else if (channel_len == sizeof(GUARD_SCHEMA_CHANNEL) - 1 && memcmp(channel, GUARD_SCHEMA_CHANNEL, channel_len) == 0) {
        log_info(NULL, "schema change announced (%.*s): reloading", (int)(msg_len < 64 ? msg_len : 64), msg);
        server_reload_worker(w);
    }
    /* the realtime hub hears everything too: revocations close sockets, tenant changes re-check them */
    if (w->guard->other_messages != NULL)
        w->guard->other_messages(w->guard->other_data, channel, channel_len, msg, msg_len);
}

/* While the subscription is down, anything could have been revoked: forget it all. */
static void on_subscriber_state(void *data, bool up)
{
    http_worker_t *w = data;
    if (!up)
        guard_worker_flush(w);
}

void guard_worker_start(http_worker_t *w)
{
    w->guard = calloc(1, sizeof(guard_state_t));
    if (w->guard == NULL)
        abort();
    w->guard->policy_generation = atomic_load(&guard_policy_generation);
    w->guard->revoked_seen = atomic_load(&local_revoked_gen);
    redis_client_on_message(w->redis_sub, on_pubsub_message, w);
    redis_client_on_state(w->redis_sub, on_subscriber_state, w);
    redis_subscribe(w->redis_sub, SESSION_REVOCATION_CHANNEL);
    redis_subscribe(w->redis_sub, GUARD_TENANT_CHANNEL);
    redis_subscribe(w->redis_sub, GUARD_SCHEMA_CHANNEL);
}

void guard_on_other_messages(http_worker_t *w, redis_message_cb cb, void *data)
{
    w->guard->other_messages = cb;
    w->guard->other_data = data;
}

void guard_worker_stop(http_worker_t *w)
{
    if (w->guard == NULL)
        return;
    /* the subscriber outlives the guard state (the server destroys it later): detach first */
    redis_client_on_state(w->redis_sub, NULL, NULL);
    redis_client_on_message(w->redis_sub, NULL, NULL);
    guard_worker_flush(w);
    free(w->guard);
    w->guard = NULL;
}

static void publish_reply_ignored(void *data, redisReply *reply, const char *err)
{
}

void guard_publish_tenant_change(http_worker_t *w, const char *tenant_id)
{
    evict_tenant(w->guard, tenant_id, strlen(tenant_id));
    const char *argv[3] = {"PUBLISH", GUARD_TENANT_CHANNEL, tenant_id};
    size_t lens[3] = {7, sizeof(GUARD_TENANT_CHANNEL) - 1, strlen(tenant_id)};
    redis_command_argv(w->redis, publish_reply_ignored, NULL, 3, argv, lens);
}

void guard_custom_roles(http_request_t *hr, const rbac_custom_role_t **roles, size_t *n)
{
    tenant_entry_t *t = &hr->worker->guard->tenants[fnv1a(hr->principal->claims.tid, strlen(hr->principal->claims.tid)) % GUARD_TENANT_SLOTS];
    if (t->used && strcmp(t->id, hr->principal->claims.tid) == 0) {
        *roles = t->custom;
        *n = t->ncustom;
    } else {
        *roles = NULL;
        *n = 0;
    }
}

/* ---------------------------------------------------------------- the check */

typedef struct {
    http_request_t *hr;
    const router_route_t *route;
    router_handler_t next;
    char *token;
    size_t token_len;
    token_claims_t claims;
    grants_ref_t *grants; /* set when the token came from the cache */
    bool via_cookie;
    redis_cmd_t *cmd;
    db_job_t *job;
} guard_wait_t;

static void guard_cancel(http_request_t *hr)
{
    guard_wait_t *gw = hr->guard_data;
    if (gw->cmd != NULL)
        redis_cancel(gw->cmd);
    if (gw->job != NULL)
        db_cancel(gw->job);
    gw->cmd = NULL;
    gw->job = NULL;
}

static void deny(http_request_t *hr, problem_kind_t kind, const char *detail)
{
    hr->cancel = NULL;
    if (kind == PROBLEM_UNAUTHORIZED)
        http_add_header(hr, "www-authenticate", "Bearer realm=\"tenantd\"", 22);
    http_send_problem(hr, kind, detail);
}

static tenant_entry_t *tenant_slot(guard_state_t *g, const char *tid)
{
    return &g->tenants[fnv1a(tid, strlen(tid)) % GUARD_TENANT_SLOTS];
}

/* Builds the custom-role view rbac wants from the tenant's JSON array; false when malformed. */
static bool tenant_parse_custom(tenant_entry_t *t, const char *json)
{
    json_error_t err;
    t->custom_json = json_loads(json, 0, &err);
    if (!json_is_array(t->custom_json))
        return false;
    t->ncustom = json_array_size(t->custom_json);
    t->custom = calloc(t->ncustom + 1, sizeof(*t->custom));
    for (size_t i = 0; i < t->ncustom; i++) {
        json_t *r = json_array_get(t->custom_json, i);
        json_t *perms = json_object_get(r, "permissions"), *inh = json_object_get(r, "inherits");
        rbac_custom_role_t *c = &t->custom[i];
        c->name = json_string_value(json_object_get(r, "name"));
        c->npermissions = json_array_size(perms);
        c->ninherits = json_array_size(inh);
        const char **p = calloc(c->npermissions + 1, sizeof(char *)), **h = calloc(c->ninherits + 1, sizeof(char *));
        for (size_t k = 0; k < c->npermissions; k++)
            p[k] = json_string_value(json_array_get(perms, k));
        for (size_t k = 0; k < c->ninherits; k++)
            h[k] = json_string_value(json_array_get(inh, k));
        c->permissions = p;
        c->inherits = h;
        if (c->name == NULL)
            return false;
    }
    return true;
}

/* Final step: tenant known, grants known; check tenant state, x-tenant and the permission. */
static void guard_finish(guard_wait_t *gw, tenant_entry_t *t)
{
    http_request_t *hr = gw->hr;
    hr->cancel = NULL;
    guard_state_t *g = hr->worker->guard;
    if (t->suspended) {
        deny(hr, PROBLEM_FORBIDDEN, "this tenant is suspended");
        return;
    }
    h2o_iovec_t named = body_header(hr, "x-tenant");
    if (named.len > 0 && !(named.len == strlen(t->slug) && memcmp(named.base, t->slug, named.len) == 0)) {
        deny(hr, PROBLEM_FORBIDDEN, "the x-tenant header names another tenant than the token");
        return;
    }
    grants_ref_t *ref = gw->grants;
    if (ref == NULL) {
        /* platform roles count only in platform tokens, whatever a tenant's data says */
        const char *roles[TOKEN_MAX_ROLES];
        size_t nroles = 0;
        bool platform = strcmp(gw->claims.tid, GUARD_PLATFORM_TID) == 0;
        for (int i = 0; i < gw->claims.nroles; i++)
            if (platform == rbac_is_platform_role(guard_policy(), gw->claims.roles[i]))
                roles[nroles++] = gw->claims.roles[i];
        ref = calloc(1, sizeof(*ref));
        ref->grants = rbac_resolve(guard_policy(), roles, nroles, t->custom, t->ncustom);
        ref->refs = 1;
        if (ref->grants == NULL) {
            free(ref);
            deny(hr, PROBLEM_INTERNAL, NULL);
            return;
        }
        /* remember the verified token */
        uint64_t h = token_hash(gw->token, gw->token_len);
        token_entry_t *e = &g->tokens[h % GUARD_TOKEN_SLOTS];
        if (e->token != NULL)
            token_entry_clear(e);
        e->hash = h;
        e->token = malloc(gw->token_len);
        memcpy(e->token, gw->token, gw->token_len);
        e->len = gw->token_len;
        e->claims = gw->claims;
        e->grants = ref;
        ref->refs++; /* the cache's reference; the request takes the first */
    } else {
        ref->refs++;
    }

    guard_principal_t *p = h2o_mem_alloc_pool(&hr->req->pool, sizeof(*p));
    memset(p, 0, sizeof(*p));
    p->claims = gw->claims;
    copy_str(p->tenant_slug, sizeof(p->tenant_slug), t->slug);
    copy_str(p->tenant_name, sizeof(p->tenant_name), t->name);
    copy_str(p->tenant_schema, sizeof(p->tenant_schema), t->schema);
    p->grants = ref->grants;
    p->via_cookie = gw->via_cookie;
    hr->principal = p;
    hr->guard_data = ref; /* released in guard_request_dispose */
    hr->tenant_slug = p->tenant_slug;

    const char *perm = gw->route->permission;
    char expanded[160];
    if (strncmp(perm, "{table}:", 8) == 0) {
        /* a per-table permission: the resource is the {table} path parameter */
        size_t tlen = hr->params.count > 0 ? hr->params.items[0].value_len : 0;
        bool ok = tlen > 0 && tlen <= 63;
        for (size_t i = 0; ok && i < tlen; i++) {
            char ch = hr->params.items[0].value[i];
            ok = (ch >= 'a' && ch <= 'z') || ch == '_' || (i > 0 && ch >= '0' && ch <= '9');
        }
        if (!ok) {
            deny(hr, PROBLEM_NOT_FOUND, "no such table");
            return;
        }
        snprintf(expanded, sizeof(expanded), "%.*s:%s", (int)tlen, hr->params.items[0].value, perm + 8);
        perm = expanded;
    }
    if (strcmp(perm, GUARD_AUTHENTICATED) == 0) {
        p->decision = RBAC_ALLOW;
    } else {
        char resource[64], action[64];
        const char *colon = strchr(perm, ':');
        size_t rlen = colon != NULL ? (size_t)(colon - perm) : strlen(perm);
        if (colon == NULL || rlen >= sizeof(resource) || strlen(colon + 1) >= sizeof(action)) {
            deny(hr, PROBLEM_INTERNAL, NULL);
            return;
        }
        memcpy(resource, perm, rlen);
        resource[rlen] = '\0';
        strcpy(action, colon + 1);
        p->decision = rbac_check(p->grants, resource, action);
        if (p->decision == RBAC_DENY) {
            deny(hr, PROBLEM_FORBIDDEN, "your roles do not allow this");
            return;
        }
    }
    gw->next(hr);
}

static void on_tenant_loaded(void *data, const db_result_t *res)
{
    guard_wait_t *gw = data;
    gw->job = NULL;
    http_request_t *hr = gw->hr;
    if (res->status == DB_TIMEOUT || res->status == DB_UNAVAILABLE || res->status == DB_REJECTED) {
        hr->cancel = NULL;
        http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "the database is unavailable", 1);
        return;
    }
    PGresult *r = res->results[0];
    if (res->status != DB_OK || r == NULL || PQntuples(r) != 1) {
        deny(hr, PROBLEM_UNAUTHORIZED, "the token's tenant does not exist");
        return;
    }
    guard_state_t *g = hr->worker->guard;
    tenant_entry_t *t = tenant_slot(g, gw->claims.tid);
    if (t->used)
        tenant_entry_clear(t);
    snprintf(t->id, sizeof(t->id), "%s", gw->claims.tid);
    snprintf(t->slug, sizeof(t->slug), "%s", PQgetvalue(r, 0, 0));
    snprintf(t->name, sizeof(t->name), "%s", PQgetvalue(r, 0, 1));
    snprintf(t->schema, sizeof(t->schema), "%s", PQgetvalue(r, 0, 2));
    t->suspended = strcmp(PQgetvalue(r, 0, 3), "active") != 0;
    t->used = true;
    t->loaded_at = h2o_now(hr->worker->ctx.loop);
    if (!tenant_parse_custom(t, PQgetvalue(r, 0, 4))) {
        tenant_entry_clear(t);
        deny(hr, PROBLEM_INTERNAL, NULL);
        return;
    }
    guard_finish(gw, t);
}

/* The token is verified (and its session alive); find its tenant. */
static void guard_with_tenant(guard_wait_t *gw)
{
    http_request_t *hr = gw->hr;
    http_worker_t *w = hr->worker;
    if (strcmp(gw->claims.tid, GUARD_PLATFORM_TID) == 0) {
        /* platform-admin tokens belong to no tenant: no schema, no custom roles */
        static tenant_entry_t platform = {.id = GUARD_PLATFORM_TID, .slug = "platform", .name = "Platform", .used = true};
        guard_finish(gw, &platform);
        return;
    }
    tenant_entry_t *t = tenant_slot(w->guard, gw->claims.tid);
    /* The admin API reads the tenant afresh: it validates role names and rights against the
     * tenant's custom roles, which another thread or instance may have changed a moment ago
     * (its eviction message may still be on the way). Admin calls are rare; one query is cheap. */
    bool admin = strncmp(gw->route->pattern, "/v1/admin/", 10) == 0;
    if (!admin && t->used && strcmp(t->id, gw->claims.tid) == 0 && h2o_now(w->ctx.loop) - t->loaded_at < GUARD_TENANT_TTL_MS) {
        guard_finish(gw, t);
        return;
    }
    /* Going asynchronous: the cached grants may be evicted meanwhile, so resolve afresh later. */
    gw->grants = NULL;
    hr->cancel = guard_cancel;
    const char *params[1] = {gw->claims.tid};
    db_status_t st;
    gw->job = db_query(w->db, &tenant_stmt, params, on_tenant_loaded, gw, &st);
    if (gw->job == NULL) {
        hr->cancel = NULL;
        http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "the database is unavailable", 1);
    }
}

static void on_session_checked(void *data, redisReply *reply, const char *err)
{
    guard_wait_t *gw = data;
    gw->cmd = NULL;
    http_request_t *hr = gw->hr;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        hr->cancel = NULL;
        http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "the session store is unavailable", 1);
        return;
    }
    /* the session must exist and belong to the token's user and tenant */
    redisReply *uid = reply->element[0], *tid = reply->element[1];
    if (uid->type != REDIS_REPLY_STRING || tid->type != REDIS_REPLY_STRING || strcmp(uid->str, gw->claims.sub) != 0 ||
        strcmp(tid->str, gw->claims.tid) != 0) {
        deny(hr, PROBLEM_UNAUTHORIZED, "the session has ended");
        return;
    }
    guard_with_tenant(gw);
}

static void on_api_key(void *data, const db_result_t *res)
{
    guard_wait_t *gw = data;
    gw->job = NULL;
    http_request_t *hr = gw->hr;
    if (res->status != DB_OK) {
        hr->cancel = NULL;
        http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "the database is unavailable", 1);
        return;
    }
    PGresult *r = res->results[0];
    /* tdk_<8 hex>_<secret>: compare the secret's SHA-256 with the stored one in constant time */
    const char *secret = gw->token + 13;
    size_t slen = gw->token_len - 13;
    unsigned char digest[crypto_hash_sha256_BYTES];
    char hex[65];
    crypto_hash_sha256(digest, (const unsigned char *)secret, slen);
    sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
    if (PQntuples(r) != 1 || PQgetlength(r, 0, 3) != 64 || sodium_memcmp(hex, PQgetvalue(r, 0, 3), 64) != 0) {
        deny(hr, PROBLEM_UNAUTHORIZED, "invalid API key");
        return;
    }
    memset(&gw->claims, 0, sizeof(gw->claims));
    snprintf(gw->claims.sub, sizeof(gw->claims.sub), "%s", PQgetvalue(r, 0, 0));
    snprintf(gw->claims.tid, sizeof(gw->claims.tid), "%s", PQgetvalue(r, 0, 1));
    snprintf(gw->claims.sid, sizeof(gw->claims.sid), "key:%.32s", PQgetvalue(r, 0, 0));
    json_error_t jerr;
    json_t *roles = json_loads(PQgetvalue(r, 0, 2), 0, &jerr);
    size_t i;
    json_t *v;
    json_array_foreach(roles, i, v)
    {
        if (json_is_string(v) && gw->claims.nroles < TOKEN_MAX_ROLES)
            snprintf(gw->claims.roles[gw->claims.nroles++], sizeof(gw->claims.roles[0]), "%s", json_string_value(v));
    }
    json_decref(roles);
    gw->claims.iat = now_s();
    gw->claims.exp = gw->claims.iat + GUARD_API_KEY_CACHE_S;
    int64_t key_exp = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
    if (key_exp > 0 && key_exp < gw->claims.exp)
        gw->claims.exp = key_exp; /* the cached check ends with the key */
    guard_with_tenant(gw);
}

/* Checks an API key (Authorization: Bearer tdk_…) against its stored hash. */
static void guard_api_key(guard_wait_t *gw, h2o_iovec_t cred)
{
    http_request_t *hr = gw->hr;
    bool ok = cred.len > 14 && cred.len < 200 && cred.base[12] == '_';
    for (size_t i = 4; ok && i < 12; i++)
        ok = (cred.base[i] >= '0' && cred.base[i] <= '9') || (cred.base[i] >= 'a' && cred.base[i] <= 'f');
    if (!ok) {
        deny(hr, PROBLEM_UNAUTHORIZED, "malformed API key");
        return;
    }
    char prefix[9];
    memcpy(prefix, cred.base + 4, 8);
    prefix[8] = '\0';
    const char *params[1] = {prefix};
    db_status_t st;
    hr->cancel = guard_cancel;
    gw->job = db_query(hr->worker->db, &api_key_stmt, params, on_api_key, gw, &st);
    if (gw->job == NULL) {
        hr->cancel = NULL;
        http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "the database is unavailable", 1);
    }
}

/* Reads one cookie's value from the Cookie header(s); false when absent. */
static bool find_cookie(h2o_req_t *req, const char *name, h2o_iovec_t *out)
{
    size_t nlen = strlen(name);
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1;) {
        h2o_iovec_t v = req->headers.entries[i].value;
        const char *p = v.base, *end = v.base + v.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *stop = semi != NULL ? semi : end;
            if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
                *out = h2o_iovec_init(p + nlen + 1, (size_t)(stop - p - nlen - 1));
                return true;
            }
            p = stop;
        }
    }
    return false;
}

static bool method_is_safe(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
           h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")) ||
           h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"));
}

void guard_revoke_session_local(const char *sid)
{
    pthread_mutex_lock(&local_revoked_mu);
    unsigned gen = atomic_load(&local_revoked_gen);
    copy_str(local_revoked[gen % GUARD_LOCAL_REVOKED], sizeof(local_revoked[0]), sid);
    atomic_store(&local_revoked_gen, gen + 1);
    pthread_mutex_unlock(&local_revoked_mu);
}

/* Drops from w's token cache the sessions revoked in this process since it last looked. */
static void catch_up_local_revocations(http_worker_t *w)
{
    guard_state_t *g = w->guard;
    if (atomic_load(&local_revoked_gen) == g->revoked_seen)
        return;
    pthread_mutex_lock(&local_revoked_mu);
    unsigned gen = atomic_load(&local_revoked_gen);
    if (gen - g->revoked_seen > GUARD_LOCAL_REVOKED) {
        guard_worker_flush(w); /* fell too far behind the ring: forget everything */
    } else {
        for (unsigned i = g->revoked_seen; i != gen; i++) {
            const char *sid = local_revoked[i % GUARD_LOCAL_REVOKED];
            evict_sid(g, sid, strlen(sid));
        }
    }
    g->revoked_seen = gen;
    pthread_mutex_unlock(&local_revoked_mu);
}

void guard_check(http_request_t *hr, const router_route_t *route, router_handler_t next)
{
    if (strcmp(route->permission, ROUTER_PUBLIC) == 0) {
        next(hr);
        return;
    }
    http_worker_t *w = hr->worker;
    guard_state_t *g = w->guard;
    if (g->policy_generation != atomic_load(&guard_policy_generation)) {
        guard_worker_flush(w);
        g->policy_generation = atomic_load(&guard_policy_generation);
    }
    catch_up_local_revocations(w);

    h2o_iovec_t cred = {NULL, 0};
    bool via_cookie = false;
    h2o_iovec_t auth = body_header(hr, "authorization");
    if (auth.len > 0) {
        if (auth.len <= 7 || strncasecmp(auth.base, "Bearer ", 7) != 0) {
            deny(hr, PROBLEM_UNAUTHORIZED, "use Authorization: Bearer <token>");
            return;
        }
        cred = h2o_iovec_init(auth.base + 7, auth.len - 7);
    } else if (find_cookie(hr->req, "__Host-access", &cred)) {
        via_cookie = true;
        if (!method_is_safe(hr->req)) {
            h2o_iovec_t csrf_cookie, csrf_header = body_header(hr, "x-csrf-token");
            if (!find_cookie(hr->req, "__Host-csrf", &csrf_cookie) || csrf_cookie.len == 0 || csrf_header.len != csrf_cookie.len ||
                memcmp(csrf_header.base, csrf_cookie.base, csrf_cookie.len) != 0) {
                deny(hr, PROBLEM_FORBIDDEN, "a cookie-authenticated change needs the x-csrf-token header");
                return;
            }
            h2o_iovec_t origin = body_header(hr, "origin");
            if (origin.len > 0 && !cors_origin_allowed(guard_cfg, origin.base, origin.len)) {
                deny(hr, PROBLEM_FORBIDDEN, "this Origin may not use cookie authentication");
                return;
            }
        }
    } else {
        deny(hr, PROBLEM_UNAUTHORIZED, "authentication required");
        return;
    }
    if (cred.len == 0 || cred.len > TOKEN_MAX_LEN) {
        deny(hr, PROBLEM_UNAUTHORIZED, "malformed credentials");
        return;
    }
    if (!redis_client_is_up(w->redis_sub)) {
        http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "revocations cannot be checked right now", 1);
        return;
    }

    guard_wait_t *gw = h2o_mem_alloc_pool(&hr->req->pool, sizeof(*gw));
    memset(gw, 0, sizeof(*gw));
    gw->hr = hr;
    gw->route = route;
    gw->next = next;
    gw->via_cookie = via_cookie;
    gw->token = cred.base;
    gw->token_len = cred.len;
    hr->guard_data = gw;

    int64_t now = now_s();
    uint64_t h = token_hash(cred.base, cred.len);
    token_entry_t *e = &g->tokens[h % GUARD_TOKEN_SLOTS];
    if (e->token != NULL && e->hash == h && e->len == cred.len && memcmp(e->token, cred.base, cred.len) == 0) {
        if (e->claims.exp > now) {
            gw->claims = e->claims;
            gw->grants = e->grants;
            guard_with_tenant(gw);
            return;
        }
        token_entry_clear(e);
    }

    if (cred.len > 4 && memcmp(cred.base, "tdk_", 4) == 0) {
        guard_api_key(gw, cred);
        return;
    }
    token_status_t st = token_verify(guard_keyset, cred.base, cred.len, now, &gw->claims);
    if (st != TOKEN_OK) {
        char detail[96];
        snprintf(detail, sizeof(detail), "invalid token: %s", token_status_name(st));
        deny(hr, PROBLEM_UNAUTHORIZED, detail);
        return;
    }
    hr->cancel = guard_cancel;
    gw->cmd = session_exists(w->redis, gw->claims.sid, on_session_checked, gw);
    if (gw->cmd == NULL) {
        hr->cancel = NULL;
        http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "the session store is unavailable", 1);
    }
}

void guard_request_dispose(http_request_t *hr)
{
    if (hr->principal != NULL && hr->guard_data != NULL) {
        /* guard_finish left the request's grants reference in guard_data */
        grants_ref_t *ref = hr->guard_data;
        hr->guard_data = NULL;
        grants_release(ref);
    }
}
