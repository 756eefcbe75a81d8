/*
 * auth_api: the endpoints of CONTRACT.md §4 — signup, login, refresh, logout, switch, me,
 * sessions and the public key set.
 *
 * Every flow is a chain of asynchronous steps kept in an auth_flow_t in the request's pool:
 * Redis (rate limits, sessions), Postgres (users, memberships, tenant creation) and the workpool
 * (argon2id, never on the loop). If the client leaves mid-chain, the request's cancel hook
 * detaches whatever is pending; a workpool job still finishes on its thread and is then dropped.
 * Credentials failures are uniform: an unknown e-mail and a wrong password give the same 401 after
 * the same argon2 verification (against a dummy hash).
 */
#include "api/auth_api.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <jansson.h>
#include <sodium.h>

#include "core/log.h"
#include "http/body.h"
#include "http/cors.h"
#include "http/server.h"
#include "http/guard.h"
#include "security/password.h"
#include "security/session.h"

#define AUTH_PLATFORM_SLUG "platform" /* the pseudo-tenant a platform admin logs in to */
#define LOGIN_FAILURES_MAX 5
#define LOGIN_FAILURE_WINDOW_S 900
#define LOGINS_PER_IP_MAX 600 /* per minute: a ceiling for credential stuffing from one address */
#define LOGIN_IP_WINDOW_S 60
#define REFRESHES_PER_IP_MAX 600 /* per minute */
#define SIGNUPS_PER_IP_MAX 60
#define SIGNUP_WINDOW_S 3600

/* ---------------------------------------------------------------- statements */

static db_stmt_t signup_user_stmt = {"auth_signup_user",
                                     "INSERT INTO tenantd.users (email, password_hash) VALUES ($1, $2) RETURNING id::text", 2, 0};
static db_stmt_t signup_tenant_stmt = {"auth_signup_tenant",
                                       "SELECT tenant_id::text, schema_name FROM tenantd.create_tenant($1, $2)", 2, 0};
static db_stmt_t signup_member_stmt = {
    "auth_signup_member",
    "INSERT INTO tenantd.memberships (tenant_id, user_id, roles)"
    " SELECT t.id, u.id, ARRAY['owner'] FROM tenantd.tenants t, tenantd.users u WHERE t.slug = $1 AND u.email = $2",
    2, 0};
static db_stmt_t audit_stmt = {"auth_audit",
                               "INSERT INTO tenantd.audit_log (tenant_id, actor, action, target, ip, request_id)"
                               " VALUES ($1::uuid, $2, $3, $4, $5, $6)",
                               6, 0};
static db_stmt_t audit_by_slug_stmt = {"auth_audit_slug",
                                       "INSERT INTO tenantd.audit_log (tenant_id, actor, action, target, ip, request_id)"
                                       " SELECT t.id, $2, $3, $4, $5, $6 FROM tenantd.tenants t WHERE t.slug = $1",
                                       6, 0};
/* A user's credentials and memberships (active or not) as JSON. */
static db_stmt_t login_user_stmt = {
    "auth_login_user",
    "SELECT u.id::text, coalesce(u.password_hash, ''),"
    " coalesce((SELECT json_agg(x.o ORDER BY x.slug) FROM (SELECT t.slug, json_build_object('id', t.id, 'slug', t.slug, 'name', t.name,"
    " 'status', t.status, 'roles', m.roles) AS o FROM tenantd.memberships m JOIN tenantd.tenants t ON t.id = m.tenant_id"
    " WHERE m.user_id = u.id UNION ALL SELECT '" AUTH_PLATFORM_SLUG "', json_build_object('id', '" GUARD_PLATFORM_TID "', 'slug', '"
    AUTH_PLATFORM_SLUG "', 'name', 'Platform', 'status', 'active', 'roles', ARRAY['platform_admin']) WHERE u.is_platform_admin) x),"
    " '[]')::text FROM tenantd.users u WHERE u.email = $1",
    1, 0};
static db_stmt_t rehash_stmt = {"auth_rehash", "UPDATE tenantd.users SET password_hash = $2, updated_at = now() WHERE id = $1::uuid",
                                2, 0};
/* One membership of a user, by tenant id or slug. */
static db_stmt_t membership_stmt = {"auth_membership",
                                    "SELECT t.id::text, t.slug, t.name, t.status, array_to_json(m.roles)::text, u.email"
                                    " FROM tenantd.memberships m JOIN tenantd.tenants t ON t.id = m.tenant_id"
                                    " JOIN tenantd.users u ON u.id = m.user_id"
                                    " WHERE m.user_id = $1::uuid AND (t.slug = $2 OR t.id = (CASE WHEN $2 ~"
                                    " '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN $2::uuid END))"
                                    " UNION ALL SELECT '" GUARD_PLATFORM_TID "', '" AUTH_PLATFORM_SLUG "', 'Platform', 'active',"
                                    " '[\"platform_admin\"]', u.email FROM tenantd.users u WHERE u.id = $1::uuid"
                                    " AND u.is_platform_admin AND ($2 = '" GUARD_PLATFORM_TID "' OR $2 = '" AUTH_PLATFORM_SLUG "')",
                                    2, 0};

/* ---------------------------------------------------------------- the flow state */

typedef struct auth_flow auth_flow_t;

typedef struct {
    workpool_job_t super;
    auth_flow_t *flow; /* NULL once the request is gone */
    char password[PASSWORD_MAX_LEN + 1];
    size_t password_len;
    char hash[PASSWORD_HASH_MAX]; /* in: the stored hash (verify); out: the new hash (hash, or rehash) */
    bool verify, ok, rehashed;
} pw_job_t;

struct auth_flow {
    http_request_t *hr;
    redis_cmd_t *cmd;
    db_job_t *job;
    pw_job_t *pw;
    char email[256];
    char tenant_hint[64];   /* slug asked for, or empty */
    char slug[64], name[256];
    char ip[64];
    bool cookie;
    char user_id[64];
    char sid[SESSION_ID_LEN + 1];
    char refresh[SESSION_REFRESH_MAX];
    char refresh_hash[65];
    /* the tenant the tokens are for */
    char tenant_id[64], tenant_slug[64], tenant_name[256];
    char roles_json[1024];
    int success_status; /* 201 for signup, else 200 */
};

static void flow_cancel(http_request_t *hr)
{
    auth_flow_t *f = hr->handler_data;
    if (f->cmd != NULL)
        redis_cancel(f->cmd);
    if (f->job != NULL)
        db_cancel(f->job);
    if (f->pw != NULL) {
        if (f->pw->super.done == NULL)
            free(f->pw); /* never submitted: still ours (it heads a login_job_t for logins) */
        else
            f->pw->flow = NULL; /* the pool thread has it; its done() frees it */
    }
    f->cmd = NULL;
    f->job = NULL;
    f->pw = NULL;
}

static auth_flow_t *flow_new(http_request_t *hr)
{
    auth_flow_t *f = h2o_mem_alloc_pool(&hr->req->pool, sizeof(*f));
    memset(f, 0, sizeof(*f));
    f->hr = hr;
    hr->handler_data = f;
    hr->cancel = flow_cancel;
    struct sockaddr_storage ss;
    socklen_t sl = hr->req->conn->callbacks->get_peername(hr->req->conn, (struct sockaddr *)&ss);
    if (sl > 0 && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, f->ip, sizeof(f->ip));
    else if (sl > 0 && ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, f->ip, sizeof(f->ip));
    else
        strcpy(f->ip, "unknown");
    return f;
}

static void flow_fail(auth_flow_t *f, problem_kind_t kind, const char *detail)
{
    f->hr->cancel = NULL;
    if (kind == PROBLEM_UNAUTHORIZED)
        http_add_header(f->hr, "www-authenticate", "Bearer realm=\"tenantd\"", 22);
    http_send_problem(f->hr, kind, detail);
}

static void flow_unavailable(auth_flow_t *f, const char *what)
{
    f->hr->cancel = NULL;
    http_send_problem_retry(f->hr, PROBLEM_UNAVAILABLE, what, 1);
}

/* ---------------------------------------------------------------- validation */

/* A pragmatic address check: one @, a dot in the domain, no spaces or controls, ≤ 254 bytes; lowercases into out. */
static bool normalize_email(const char *in, char *out, size_t cap)
{
    size_t len = in != NULL ? strlen(in) : 0;
    if (len < 3 || len > 254 || len >= cap)
        return false;
    const char *at = strchr(in, '@');
    if (at == NULL || at == in || strchr(at + 1, '@') != NULL || strchr(at + 1, '.') == NULL || at[1] == '.' || in[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c <= ' ' || c == 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == ',' || c == ';')
            return false;
        out[i] = (char)tolower(c);
    }
    out[len] = '\0';
    return true;
}

static bool valid_slug(const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    if (len < 2 || len > 63 || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

/* Checks the password member; answers 422 and returns false when unusable. */
static bool take_password(auth_flow_t *f, const json_t *body, pw_job_t *pw, bool enforce_min)
{
    json_t *v = json_object_get(body, "password");
    if (!json_is_string(v)) {
        flow_fail(f, PROBLEM_UNPROCESSABLE, "password is required");
        return false;
    }
    size_t len = json_string_length(v);
    if (len > PASSWORD_MAX_LEN) {
        flow_fail(f, PROBLEM_UNPROCESSABLE, "password is longer than 4096 bytes");
        return false;
    }
    if (enforce_min && len < PASSWORD_MIN_LEN) {
        flow_fail(f, PROBLEM_UNPROCESSABLE, "password must have at least 8 characters");
        return false;
    }
    memcpy(pw->password, json_string_value(v), len);
    pw->password_len = len;
    return true;
}

/* ---------------------------------------------------------------- password work off the loop */

static void pw_work(workpool_job_t *job)
{
    pw_job_t *pw = (pw_job_t *)job;
    if (pw->verify) {
        pw->ok = password_verify(pw->hash, pw->password, pw->password_len);
        /* hashed with older parameters: replace the hash while the password is at hand */
        if (pw->ok && password_needs_rehash(pw->hash) && password_hash(pw->password, pw->password_len, pw->hash) == 0)
            pw->rehashed = true;
    } else
        pw->ok = password_hash(pw->password, pw->password_len, pw->hash) == 0;
    sodium_memzero(pw->password, sizeof(pw->password));
}

/* ---------------------------------------------------------------- token responses */

static void set_cookie(http_request_t *hr, const char *name, const char *value, int max_age, bool http_only)
{
    char buf[TOKEN_MAX_LEN + 256];
    int n = snprintf(buf, sizeof(buf), "%s=%s; Path=/; Secure; SameSite=Lax; Max-Age=%d%s", name, value, max_age,
                     http_only ? "; HttpOnly" : "");
    if (n > 0 && (size_t)n < sizeof(buf))
        http_add_header(hr, "set-cookie", buf, (size_t)n);
}

static void audit(http_worker_t *w, const char *tenant_id, const char *actor, const char *action, const char *target, const char *ip,
                  const char *request_id)
{
    const char *params[6] = {tenant_id, actor, action, target, ip, request_id};
    db_status_t st;
    db_query(w->db, &audit_stmt, params, NULL, NULL, &st);
}

/* Signs the access token for the flow's user/tenant/session and answers with the token response. */
static void send_tokens(auth_flow_t *f, int status)
{
    http_request_t *hr = f->hr;
    hr->cancel = NULL;
    token_claims_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.sub, sizeof(c.sub), "%s", f->user_id);
    snprintf(c.tid, sizeof(c.tid), "%s", f->tenant_id);
    snprintf(c.sid, sizeof(c.sid), "%s", f->sid);
    json_error_t jerr;
    json_t *roles = json_loads(f->roles_json, 0, &jerr);
    if (!json_is_array(roles)) {
        json_decref(roles);
        roles = json_array();
    }
    size_t i;
    json_t *r;
    json_array_foreach(roles, i, r)
    {
        if (c.nroles < TOKEN_MAX_ROLES && json_is_string(r))
            snprintf(c.roles[c.nroles++], sizeof(c.roles[0]), "%s", json_string_value(r));
    }
    char access[TOKEN_MAX_LEN];
    if (guard_issue_access_token(&c, access, sizeof(access)) < 0) {
        json_decref(roles);
        http_send_problem(hr, PROBLEM_INTERNAL, "could not sign a token");
        return;
    }
    json_t *out = json_object();
    if (f->cookie) {
        unsigned char raw[24];
        char csrf[48];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2base64(csrf, sizeof(csrf), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        set_cookie(hr, "__Host-access", access, guard_access_ttl(), true);
        set_cookie(hr, "__Host-refresh", f->refresh, SESSION_LIFETIME_S, true);
        set_cookie(hr, "__Host-csrf", csrf, SESSION_LIFETIME_S, false);
        json_object_set_new(out, "csrf_token", json_string(csrf));
    } else {
        json_object_set_new(out, "access_token", json_string(access));
        json_object_set_new(out, "refresh_token", json_string(f->refresh));
    }
    json_object_set_new(out, "token_type", json_string("Bearer"));
    json_object_set_new(out, "expires_in", json_integer(guard_access_ttl()));
    json_object_set_new(out, "user", json_pack("{s:s, s:s}", "id", f->user_id, "email", f->email));
    json_object_set_new(out, "tenant", json_pack("{s:s, s:s, s:s}", "id", f->tenant_id, "slug", f->tenant_slug, "name", f->tenant_name));
    json_object_set_new(out, "roles", roles);
    http_add_header(hr, "cache-control", "no-store", 8);
    body_send_json(hr, status, out);
}

static void on_session_created(void *data, redisReply *reply, const char *err)
{
    auth_flow_t *f = data;
    f->cmd = NULL;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        flow_unavailable(f, "the session store is unavailable");
        return;
    }
    send_tokens(f, f->success_status != 0 ? f->success_status : 200);
}

/* Opens a new session for the flow's user and tenant, then answers with tokens. */
static void start_session(auth_flow_t *f)
{
    http_request_t *hr = f->hr;
    session_new(f->sid, f->refresh, f->refresh_hash);
    h2o_iovec_t ua = body_header(hr, "user-agent");
    char uabuf[200];
    snprintf(uabuf, sizeof(uabuf), "%.*s", (int)(ua.len < 199 ? ua.len : 199), ua.base != NULL ? ua.base : "");
    f->cmd = session_create(hr->worker->redis, f->sid, f->user_id, f->tenant_id, f->refresh_hash, f->ip, uabuf, on_session_created, f);
    if (f->cmd == NULL)
        flow_unavailable(f, "the session store is unavailable");
}

void auth_issue_tokens(http_request_t *hr, const char *user_id, const char *email, const char *tenant_id, const char *tenant_slug,
                       const char *tenant_name, const char *roles_json)
{
    auth_flow_t *f = flow_new(hr);
    snprintf(f->user_id, sizeof(f->user_id), "%s", user_id);
    snprintf(f->email, sizeof(f->email), "%s", email);
    snprintf(f->tenant_id, sizeof(f->tenant_id), "%s", tenant_id);
    snprintf(f->tenant_slug, sizeof(f->tenant_slug), "%s", tenant_slug);
    snprintf(f->tenant_name, sizeof(f->tenant_name), "%s", tenant_name);
    snprintf(f->roles_json, sizeof(f->roles_json), "%s", roles_json);
    start_session(f);
}

/* ---------------------------------------------------------------- signup */

static void on_signup_committed(void *data, const db_result_t *res)
{
    auth_flow_t *f = data;
    f->job = NULL;
    if (res->status == DB_SQL_ERROR && res->sqlstate != NULL && strcmp(res->sqlstate, "23505") == 0) {
        bool email_taken = res->results[0] == NULL || PQresultStatus(res->results[0]) != PGRES_TUPLES_OK;
        flow_fail(f, PROBLEM_CONFLICT, email_taken ? "an account with this e-mail exists already; log in instead"
                                                    : "this tenant slug is taken");
        return;
    }
    if (res->status == DB_SQL_ERROR && res->sqlstate != NULL && strcmp(res->sqlstate, "22023") == 0) {
        flow_fail(f, PROBLEM_UNPROCESSABLE, "invalid tenant slug or name");
        return;
    }
    if (res->status != DB_OK) {
        log_error(f->hr->request_id, "signup failed: %s", res->message);
        if (res->status == DB_SQL_ERROR)
            flow_fail(f, PROBLEM_INTERNAL, NULL);
        else
            flow_unavailable(f, "the database is unavailable");
        return;
    }
    snprintf(f->user_id, sizeof(f->user_id), "%s", PQgetvalue(res->results[0], 0, 0));
    snprintf(f->tenant_id, sizeof(f->tenant_id), "%s", PQgetvalue(res->results[1], 0, 0));
    snprintf(f->tenant_slug, sizeof(f->tenant_slug), "%s", f->slug);
    snprintf(f->tenant_name, sizeof(f->tenant_name), "%s", f->name);
    strcpy(f->roles_json, "[\"owner\"]");
    start_session(f);
}

/* The hash is ready: create user, tenant, membership and audit row in one transaction. */
static void signup_pw_done(workpool_job_t *job)
{
    pw_job_t *pw = (pw_job_t *)job;
    auth_flow_t *f = pw->flow;
    if (f != NULL) {
        f->pw = NULL;
        if (!pw->ok) {
            flow_fail(f, PROBLEM_INTERNAL, "could not hash the password");
        } else {
            http_worker_t *w = f->hr->worker;
            char owner[300], role_target[300];
            snprintf(owner, sizeof(owner), "%s", f->email);
            snprintf(role_target, sizeof(role_target), "tenant:%s", f->slug);
            const char *u[2] = {f->email, pw->hash};
            const char *t[2] = {f->slug, f->name};
            const char *m[2] = {f->slug, f->email};
            const char *a[6] = {f->slug, owner, "auth.signup", role_target, f->ip, f->hr->request_id};
            db_step_t steps[4] = {{.stmt = &signup_user_stmt, .params = u},
                                  {.stmt = &signup_tenant_stmt, .params = t},
                                  {.stmt = &signup_member_stmt, .params = m},
                                  {.stmt = &audit_by_slug_stmt, .params = a}};
            db_status_t st;
            f->job = db_submit(w->db, steps, 4, on_signup_committed, f, &st);
            if (f->job == NULL)
                flow_unavailable(f, "the database is unavailable");
        }
    }
    sodium_memzero(pw, sizeof(*pw));
    free(pw);
}

static void on_signup_rate(void *data, redisReply *reply, const char *err)
{
    auth_flow_t *f = data;
    f->cmd = NULL;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        flow_unavailable(f, "rate limits cannot be checked right now");
        return;
    }
    if (reply->element[0]->integer > SIGNUPS_PER_IP_MAX) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%lld", reply->element[1]->integer > 0 ? reply->element[1]->integer : 1);
        http_add_header(f->hr, "retry-after", ra, strlen(ra));
        flow_fail(f, PROBLEM_TOO_MANY_REQUESTS, "too many signups from this address");
        return;
    }
    pw_job_t *pw = f->pw; /* prepared by auth_signup */
    f->pw = NULL;
    pw->super.done = signup_pw_done;
    pw->super.work = pw_work;
    pw->flow = f;
    f->pw = pw;
    if (workpool_submit(&f->hr->worker->workpool_rx, &pw->super) != 0) {
        f->pw = NULL;
        free(pw);
        flow_unavailable(f, "too many signups in progress; retry shortly");
    }
}

void auth_signup(http_request_t *hr)
{
    json_t *body = body_json_object(hr, false);
    if (body == NULL)
        return;
    auth_flow_t *f = flow_new(hr);
    json_t *tenant = json_object_get(body, "tenant");
    const char *slug = json_is_object(tenant) ? body_string(tenant, "slug") : NULL;
    const char *name = json_is_object(tenant) ? body_string(tenant, "name") : NULL;
    pw_job_t *pw = calloc(1, sizeof(*pw));
    if (!normalize_email(body_string(body, "email"), f->email, sizeof(f->email))) {
        flow_fail(f, PROBLEM_UNPROCESSABLE, "email is not a valid address");
    } else if (!take_password(f, body, pw, true)) {
        /* answered */
    } else if (!valid_slug(slug) || strcmp(slug, AUTH_PLATFORM_SLUG) == 0) {
        flow_fail(f, PROBLEM_UNPROCESSABLE, "tenant.slug must match ^[a-z][a-z0-9-]{1,62}$ and not be \"platform\"");
    } else if (name == NULL || strlen(name) < 1 || strlen(name) > 200) {
        flow_fail(f, PROBLEM_UNPROCESSABLE, "tenant.name must have 1 to 200 characters");
    } else {
        snprintf(f->slug, sizeof(f->slug), "%s", slug);
        snprintf(f->name, sizeof(f->name), "%s", name);
        f->success_status = 201;
        json_decref(body);
        f->pw = pw; /* held until the rate check passes */
        char bucket[128];
        snprintf(bucket, sizeof(bucket), "signup:ip:%s", f->ip);
        f->cmd = session_rate_hit(hr->worker->redis, bucket, SIGNUP_WINDOW_S, on_signup_rate, f);
        if (f->cmd == NULL) {
            f->pw = NULL;
            free(pw);
            flow_unavailable(f, "rate limits cannot be checked right now");
        }
        return;
    }
    sodium_memzero(pw, sizeof(*pw));
    free(pw);
    json_decref(body);
}

/* ---------------------------------------------------------------- login */

/* Picks the tenant among the user's memberships (JSON array); answers and returns false on failure. */
static bool choose_tenant(auth_flow_t *f, const char *memberships_json)
{
    json_error_t jerr;
    json_t *ms = json_loads(memberships_json, 0, &jerr);
    json_t *chosen = NULL;
    size_t i;
    json_t *m;
    if (f->tenant_hint[0] != '\0') {
        json_array_foreach(ms, i, m)
        {
            const char *slug = body_string(m, "slug");
            if (slug != NULL && strcmp(slug, f->tenant_hint) == 0)
                chosen = m;
        }
        if (chosen == NULL) {
            json_decref(ms);
            flow_fail(f, PROBLEM_FORBIDDEN, "you are not a member of that tenant");
            return false;
        }
    } else if (json_array_size(ms) == 1) {
        chosen = json_array_get(ms, 0);
    } else {
        bool none = json_array_size(ms) == 0;
        json_decref(ms);
        flow_fail(f, none ? PROBLEM_FORBIDDEN : PROBLEM_BAD_REQUEST,
                  none ? "this account belongs to no tenant" : "this account belongs to several tenants: name one in `tenant`");
        return false;
    }
    const char *status = body_string(chosen, "status");
    if (status == NULL || strcmp(status, "active") != 0) {
        json_decref(ms);
        flow_fail(f, PROBLEM_FORBIDDEN, "this tenant is suspended");
        return false;
    }
    snprintf(f->tenant_id, sizeof(f->tenant_id), "%s", body_string(chosen, "id"));
    snprintf(f->tenant_slug, sizeof(f->tenant_slug), "%s", body_string(chosen, "slug"));
    snprintf(f->tenant_name, sizeof(f->tenant_name), "%s", body_string(chosen, "name"));
    char *roles = json_dumps(json_object_get(chosen, "roles"), JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(f->roles_json, sizeof(f->roles_json), "%s", roles != NULL ? roles : "[]");
    free(roles);
    json_decref(ms);
    return true;
}

typedef struct {
    pw_job_t pw;
    char memberships[16384];
    bool user_exists;
} login_job_t;

/* Gives back the attempt reserved in on_login_rate: only failures count against the account. */
static void release_login_attempt(auth_flow_t *f)
{
    char key[300];
    snprintf(key, sizeof(key), "tenantd:rl:login:acct:%s", f->email);
    const char *argv[2] = {"DECR", key};
    size_t lens[2] = {4, strlen(key)};
    redis_command_argv(f->hr->worker->redis, NULL, NULL, 2, argv, lens);
}

static void login_pw_done(workpool_job_t *job)
{
    login_job_t *lj = (login_job_t *)job;
    auth_flow_t *f = lj->pw.flow;
    if (f != NULL) {
        f->pw = NULL;
        if (!lj->pw.ok || !lj->user_exists) {
            flow_fail(f, PROBLEM_UNAUTHORIZED, "invalid email or password"); /* the attempt stays counted */
        } else {
            release_login_attempt(f);
            if (lj->pw.rehashed) {
                const char *params[2] = {f->user_id, lj->pw.hash};
                db_status_t st;
                db_query(f->hr->worker->db, &rehash_stmt, params, NULL, NULL, &st);
            }
            if (choose_tenant(f, lj->memberships)) {
                audit(f->hr->worker, f->tenant_id, f->email, "auth.login", f->user_id, f->ip, f->hr->request_id);
                start_session(f);
            }
        }
    }
    sodium_memzero(lj, sizeof(*lj));
    free(lj);
}

static void on_login_user(void *data, const db_result_t *res)
{
    auth_flow_t *f = data;
    f->job = NULL;
    login_job_t *lj = (login_job_t *)f->pw;
    f->pw = NULL;
    if (res->status != DB_OK) {
        free(lj);
        flow_unavailable(f, "the database is unavailable");
        return;
    }
    PGresult *r = res->results[0];
    lj->user_exists = PQntuples(r) == 1;
    if (lj->user_exists) {
        snprintf(f->user_id, sizeof(f->user_id), "%s", PQgetvalue(r, 0, 0));
        snprintf(lj->pw.hash, sizeof(lj->pw.hash), "%s", PQgetvalue(r, 0, 1));
        snprintf(lj->memberships, sizeof(lj->memberships), "%s", PQgetvalue(r, 0, 2));
    } else {
        lj->pw.hash[0] = '\0'; /* verified against the dummy hash: same time as a real miss */
    }
    lj->pw.verify = true;
    lj->pw.super.work = pw_work;
    lj->pw.super.done = login_pw_done;
    lj->pw.flow = f;
    f->pw = &lj->pw;
    if (workpool_submit(&f->hr->worker->workpool_rx, &lj->pw.super) != 0) {
        f->pw = NULL;
        free(lj);
        flow_unavailable(f, "too many logins in progress; retry shortly");
    }
}

/* Answers 429 with retry-after when a [count, ttl] reply is over max; true when it did. */
static bool over_limit(auth_flow_t *f, redisReply *reply, long long max, const char *detail)
{
    if (reply->element[0]->integer <= max)
        return false;
    char ra[24];
    snprintf(ra, sizeof(ra), "%lld", reply->element[1]->integer > 0 ? reply->element[1]->integer : 1);
    http_add_header(f->hr, "retry-after", ra, strlen(ra));
    flow_fail(f, PROBLEM_TOO_MANY_REQUESTS, detail);
    return true;
}

static void on_login_rate(void *data, redisReply *reply, const char *err);

/* The per-address limit passed: now the per-account one. */
static void on_login_ip_rate(void *data, redisReply *reply, const char *err)
{
    auth_flow_t *f = data;
    f->cmd = NULL;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        free(f->pw); /* the login job, not submitted yet */
        f->pw = NULL;
        flow_unavailable(f, "rate limits cannot be checked right now");
        return;
    }
    if (reply->element[0]->integer > LOGINS_PER_IP_MAX) {
        free(f->pw);
        f->pw = NULL;
        over_limit(f, reply, LOGINS_PER_IP_MAX, "too many logins from this address; retry later");
        return;
    }
    char bucket[300];
    snprintf(bucket, sizeof(bucket), "login:acct:%s", f->email);
    f->cmd = session_rate_hit(f->hr->worker->redis, bucket, LOGIN_FAILURE_WINDOW_S, on_login_rate, f);
    if (f->cmd == NULL) {
        free(f->pw);
        f->pw = NULL;
        flow_unavailable(f, "rate limits cannot be checked right now");
    }
}

static void on_login_rate(void *data, redisReply *reply, const char *err)
{
    auth_flow_t *f = data;
    f->cmd = NULL;
    login_job_t *lj = (login_job_t *)f->pw;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        f->pw = NULL;
        free(lj);
        flow_unavailable(f, "rate limits cannot be checked right now");
        return;
    }
    /* every attempt is counted before the password is checked (so parallel guesses cannot slip
     * past the limit) and given back when it succeeds */
    if (reply->element[0]->integer > LOGIN_FAILURES_MAX) {
        release_login_attempt(f); /* a refused attempt checked no password: it does not count */
        f->pw = NULL;
        free(lj);
        char ra[24];
        snprintf(ra, sizeof(ra), "%lld", reply->element[1]->integer > 0 ? reply->element[1]->integer : 1);
        http_add_header(f->hr, "retry-after", ra, strlen(ra));
        flow_fail(f, PROBLEM_TOO_MANY_REQUESTS, "too many failed logins for this account; retry later");
        return;
    }
    const char *params[1] = {f->email};
    db_status_t st;
    f->job = db_query(f->hr->worker->db, &login_user_stmt, params, on_login_user, f, &st);
    if (f->job == NULL) {
        f->pw = NULL;
        free(lj);
        flow_unavailable(f, "the database is unavailable");
    }
}

void auth_login(http_request_t *hr)
{
    json_t *body = body_json_object(hr, false);
    if (body == NULL)
        return;
    auth_flow_t *f = flow_new(hr);
    login_job_t *lj = calloc(1, sizeof(*lj));
    const char *tenant = body_string(body, "tenant");
    f->cookie = json_is_true(json_object_get(body, "cookie"));
    if (!normalize_email(body_string(body, "email"), f->email, sizeof(f->email))) {
        flow_fail(f, PROBLEM_UNPROCESSABLE, "email is not a valid address");
    } else if (!take_password(f, body, &lj->pw, false)) {
        /* answered */
    } else if (tenant != NULL && !valid_slug(tenant)) {
        flow_fail(f, PROBLEM_UNPROCESSABLE, "tenant must be a tenant slug");
    } else {
        snprintf(f->tenant_hint, sizeof(f->tenant_hint), "%s", tenant != NULL ? tenant : "");
        json_decref(body);
        f->pw = &lj->pw;
        char bucket[300];
        snprintf(bucket, sizeof(bucket), "login:ip:%s", f->ip);
        f->cmd = session_rate_hit(hr->worker->redis, bucket, LOGIN_IP_WINDOW_S, on_login_ip_rate, f);
        if (f->cmd == NULL) {
            f->pw = NULL;
            free(lj);
            flow_unavailable(f, "rate limits cannot be checked right now");
        }
        return;
    }
    free(lj);
    json_decref(body);
}

/* ---------------------------------------------------------------- refresh and switch */

static void on_membership_for_tokens(void *data, const db_result_t *res)
{
    auth_flow_t *f = data;
    f->job = NULL;
    if (res->status != DB_OK) {
        flow_unavailable(f, "the database is unavailable");
        return;
    }
    PGresult *r = res->results[0];
    if (PQntuples(r) != 1) {
        /* membership gone: this session must not continue */
        if (f->refresh[0] != '\0' && f->tenant_hint[0] == '\0')
            session_revoke(f->hr->worker->redis, f->sid, NULL, NULL);
        flow_fail(f, f->tenant_hint[0] != '\0' ? PROBLEM_FORBIDDEN : PROBLEM_UNAUTHORIZED, "not a member of this tenant");
        return;
    }
    if (strcmp(PQgetvalue(r, 0, 3), "active") != 0) {
        flow_fail(f, PROBLEM_FORBIDDEN, "this tenant is suspended");
        return;
    }
    snprintf(f->tenant_id, sizeof(f->tenant_id), "%s", PQgetvalue(r, 0, 0));
    snprintf(f->tenant_slug, sizeof(f->tenant_slug), "%s", PQgetvalue(r, 0, 1));
    snprintf(f->tenant_name, sizeof(f->tenant_name), "%s", PQgetvalue(r, 0, 2));
    snprintf(f->roles_json, sizeof(f->roles_json), "%s", PQgetvalue(r, 0, 4));
    snprintf(f->email, sizeof(f->email), "%s", PQgetvalue(r, 0, 5));
    if (f->tenant_hint[0] != '\0')
        start_session(f); /* switch: a new session for the other tenant */
    else
        send_tokens(f, 200); /* refresh: same session, rotated secret */
}

static void lookup_membership(auth_flow_t *f, const char *tenant)
{
    const char *params[2] = {f->user_id, tenant};
    db_status_t st;
    f->job = db_query(f->hr->worker->db, &membership_stmt, params, on_membership_for_tokens, f, &st);
    if (f->job == NULL)
        flow_unavailable(f, "the database is unavailable");
}

static void on_rotated(void *data, redisReply *reply, const char *err)
{
    auth_flow_t *f = data;
    f->cmd = NULL;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        flow_unavailable(f, "the session store is unavailable");
        return;
    }
    long long verdict = reply->element[0]->integer;
    if (verdict == -1) {
        flow_fail(f, PROBLEM_UNAUTHORIZED, "this refresh token was used before; the session is revoked");
        return;
    }
    if (verdict != 1 || reply->elements != 3) {
        flow_fail(f, PROBLEM_UNAUTHORIZED, "unknown or expired refresh token");
        return;
    }
    snprintf(f->user_id, sizeof(f->user_id), "%.*s", (int)reply->element[1]->len, reply->element[1]->str);
    char tid[64];
    snprintf(tid, sizeof(tid), "%.*s", (int)reply->element[2]->len, reply->element[2]->str);
    lookup_membership(f, tid);
}

static bool cookie_value(http_request_t *hr, const char *name, char *out, size_t cap)
{
    h2o_iovec_t c = body_header(hr, "cookie");
    size_t nlen = strlen(name);
    for (const char *p = c.base, *end = c.base + c.len; p != NULL && p < end;) {
        while (p < end && (*p == ' ' || *p == ';'))
            p++;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi != NULL ? semi : end;
        if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=' && (size_t)(stop - p - nlen - 1) < cap) {
            snprintf(out, cap, "%.*s", (int)(stop - p - nlen - 1), p + nlen + 1);
            return true;
        }
        p = stop;
    }
    return false;
}

/* The per-address refresh limit passed: rotate. */
static void on_refresh_rate(void *data, redisReply *reply, const char *err)
{
    auth_flow_t *f = data;
    f->cmd = NULL;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        flow_unavailable(f, "rate limits cannot be checked right now");
        return;
    }
    if (over_limit(f, reply, REFRESHES_PER_IP_MAX, "too many refreshes from this address; retry later"))
        return;
    char presented[65];
    snprintf(presented, sizeof(presented), "%s", f->refresh_hash);
    session_next_refresh(f->sid, f->refresh, f->refresh_hash);
    f->cmd = session_rotate(f->hr->worker->redis, f->sid, presented, f->refresh_hash, on_rotated, f);
    if (f->cmd == NULL)
        flow_unavailable(f, "the session store is unavailable");
}

void auth_refresh(http_request_t *hr)
{
    json_t *body = body_json_object(hr, true);
    if (body == NULL)
        return;
    auth_flow_t *f = flow_new(hr);
    const char *token = body_string(body, "refresh_token");
    char from_cookie[SESSION_REFRESH_MAX];
    if (token == NULL && cookie_value(hr, "__Host-refresh", from_cookie, sizeof(from_cookie))) {
        token = from_cookie;
        f->cookie = true;
        h2o_iovec_t csrf = body_header(hr, "x-csrf-token");
        char csrf_cookie[64];
        if (!cookie_value(hr, "__Host-csrf", csrf_cookie, sizeof(csrf_cookie)) || csrf.len != strlen(csrf_cookie) ||
            memcmp(csrf.base, csrf_cookie, csrf.len) != 0) {
            json_decref(body);
            flow_fail(f, PROBLEM_FORBIDDEN, "a cookie refresh needs the x-csrf-token header");
            return;
        }
        h2o_iovec_t origin = body_header(hr, "origin");
        if (origin.len > 0 && !cors_origin_allowed(server_config, origin.base, origin.len)) {
            json_decref(body);
            flow_fail(f, PROBLEM_FORBIDDEN, "this Origin may not use cookie authentication");
            return;
        }
    }
    char presented[65];
    if (token == NULL || !session_parse_refresh(token, strlen(token), f->sid, presented)) {
        json_decref(body);
        flow_fail(f, PROBLEM_UNAUTHORIZED, "a valid refresh_token is required");
        return;
    }
    json_decref(body);
    snprintf(f->refresh_hash, sizeof(f->refresh_hash), "%s", presented); /* kept until the rate check passed */
    char bucket[128];
    snprintf(bucket, sizeof(bucket), "refresh:ip:%s", f->ip);
    f->cmd = session_rate_hit(hr->worker->redis, bucket, LOGIN_IP_WINDOW_S, on_refresh_rate, f);
    if (f->cmd == NULL)
        flow_unavailable(f, "rate limits cannot be checked right now");
}

void auth_switch(http_request_t *hr)
{
    json_t *body = body_json_object(hr, false);
    if (body == NULL)
        return;
    auth_flow_t *f = flow_new(hr);
    const char *tenant = body_string(body, "tenant");
    if (!valid_slug(tenant)) {
        json_decref(body);
        flow_fail(f, PROBLEM_UNPROCESSABLE, "tenant must be a tenant slug");
        return;
    }
    snprintf(f->tenant_hint, sizeof(f->tenant_hint), "%s", tenant);
    json_decref(body);
    snprintf(f->user_id, sizeof(f->user_id), "%s", hr->principal->claims.sub);
    f->cookie = hr->principal->via_cookie;
    lookup_membership(f, f->tenant_hint);
}

/* ---------------------------------------------------------------- logout, sessions */

static void on_logged_out(void *data, redisReply *reply, const char *err)
{
    auth_flow_t *f = data;
    f->cmd = NULL;
    http_request_t *hr = f->hr;
    hr->cancel = NULL;
    if (reply == NULL) {
        http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "the session store is unavailable", 1);
        return;
    }
    guard_revoke_session_local(hr->principal->claims.sid); /* the other workers here, before pub/sub reaches them */
    if (hr->principal->via_cookie) {
        set_cookie(hr, "__Host-access", "", 0, true);
        set_cookie(hr, "__Host-refresh", "", 0, true);
        set_cookie(hr, "__Host-csrf", "", 0, false);
    }
    audit(hr->worker, hr->principal->claims.tid, hr->principal->claims.sub, "auth.logout", hr->principal->claims.sid, f->ip,
          hr->request_id);
    http_send_body(hr, 204, "application/json", "", 0);
}

void auth_logout(http_request_t *hr)
{
    auth_flow_t *f = flow_new(hr);
    f->cmd = session_revoke(hr->worker->redis, hr->principal->claims.sid, on_logged_out, f);
    if (f->cmd == NULL)
        flow_unavailable(f, "the session store is unavailable");
}

static void on_sessions_listed(void *data, redisReply *reply, const char *err)
{
    auth_flow_t *f = data;
    f->cmd = NULL;
    http_request_t *hr = f->hr;
    hr->cancel = NULL;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "the session store is unavailable", 1);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < reply->elements; i++) {
        redisReply *s = reply->element[i];
        if (s->type != REDIS_REPLY_ARRAY || s->elements != 6)
            continue;
        json_t *o = json_object();
        static const char *const names[] = {"id", "tenant_id", "created_at", "last_used_at", "ip", "user_agent"};
        for (size_t k = 0; k < 6; k++) {
            redisReply *v = s->element[k];
            if (v->type != REDIS_REPLY_STRING)
                continue;
            if (k == 2 || k == 3)
                json_object_set_new(o, names[k], json_integer(strtoll(v->str, NULL, 10)));
            else
                json_object_set_new(o, names[k], json_stringn(v->str, v->len));
        }
        json_object_set_new(o, "current", json_boolean(strcmp(json_string_value(json_object_get(o, "id")) ?: "", hr->principal->claims.sid) == 0));
        json_array_append_new(items, o);
    }
    body_send_json(hr, 200, json_pack("{s:o}", "items", items));
}

void auth_sessions_list(http_request_t *hr)
{
    auth_flow_t *f = flow_new(hr);
    f->cmd = session_list(hr->worker->redis, hr->principal->claims.sub, on_sessions_listed, f);
    if (f->cmd == NULL)
        flow_unavailable(f, "the session store is unavailable");
}

static void on_session_revoked(void *data, redisReply *reply, const char *err)
{
    auth_flow_t *f = data;
    f->cmd = NULL;
    http_request_t *hr = f->hr;
    hr->cancel = NULL;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "the session store is unavailable", 1);
        return;
    }
    if (reply->integer != 1) {
        http_send_problem(hr, PROBLEM_NOT_FOUND, "no such session");
        return;
    }
    audit(hr->worker, hr->principal->claims.tid, hr->principal->claims.sub, "auth.session_revoke", f->sid, f->ip, hr->request_id);
    http_send_body(hr, 204, "application/json", "", 0);
}

void auth_sessions_revoke(http_request_t *hr)
{
    auth_flow_t *f = flow_new(hr);
    const char *id = hr->params.items[0].value;
    size_t len = hr->params.items[0].value_len;
    bool ok = len == SESSION_ID_LEN;
    for (size_t i = 0; ok && i < len; i++)
        ok = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
    if (!ok) {
        flow_fail(f, PROBLEM_NOT_FOUND, "no such session");
        return;
    }
    memcpy(f->sid, id, len);
    f->sid[len] = '\0';
    f->cmd = session_revoke_own(hr->worker->redis, f->sid, hr->principal->claims.sub, on_session_revoked, f);
    if (f->cmd == NULL)
        flow_unavailable(f, "the session store is unavailable");
}

/* ---------------------------------------------------------------- me, jwks */

/* /me needs only the e-mail from Postgres (the guard has the rest); the rendered answer is kept per
 * session in a per-thread cache, so the hot path does no query and no JSON work. E-mail addresses
 * do not change through the API; entries live ME_CACHE_MS. */
#define ME_CACHE_SLOTS 1024
#define ME_CACHE_MS 60000

typedef struct {
    char sid[64];   /* the session the answer is for: roles and permissions are the session's */
    char *body;     /* the rendered answer */
    size_t len;
    uint64_t at;
} me_entry_t;

static _Thread_local me_entry_t *me_cache;

static me_entry_t *me_slot(const char *sid)
{
    if (me_cache == NULL)
        me_cache = calloc(ME_CACHE_SLOTS, sizeof(*me_cache));
    uint64_t h = 1469598103934665603ull;
    for (const char *p = sid; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return &me_cache[h % ME_CACHE_SLOTS];
}

static db_stmt_t user_email_stmt = {"auth_user_email", "SELECT email FROM tenantd.users WHERE id = $1::uuid", 1, 0};

/* Renders /me for the request's principal with email, remembers it for the session, and answers. */
static void send_me(http_request_t *hr, const char *email)
{
    const guard_principal_t *p = hr->principal;
    json_t *roles = json_array();
    for (int i = 0; i < p->claims.nroles; i++)
        json_array_append_new(roles, json_string(p->claims.roles[i]));
    char *perms_text = rbac_grants_to_json(p->grants);
    json_error_t jerr;
    json_t *perms = perms_text != NULL ? json_loads(perms_text, 0, &jerr) : NULL;
    free(perms_text);
    json_t *out = json_pack("{s:{s:s, s:s}, s:{s:s, s:s, s:s}, s:o, s:o, s:s}", "user", "id", p->claims.sub, "email", email, "tenant",
                            "id", p->claims.tid, "slug", p->tenant_slug, "name", p->tenant_name, "roles", roles, "permissions",
                            perms != NULL ? perms : json_array(), "session_id", p->claims.sid);
    char *text = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    if (text == NULL) {
        http_send_problem(hr, PROBLEM_INTERNAL, NULL);
        return;
    }
    me_entry_t *e = me_slot(p->claims.sid);
    free(e->body);
    snprintf(e->sid, sizeof(e->sid), "%s", p->claims.sid);
    e->body = text;
    e->len = strlen(text);
    e->at = h2o_now(hr->worker->ctx.loop);
    http_send_json(hr, 200, e->body, e->len);
}

static void on_me_email(void *data, const db_result_t *res)
{
    auth_flow_t *f = data;
    f->job = NULL;
    http_request_t *hr = f->hr;
    hr->cancel = NULL;
    if (res->status != DB_OK) {
        http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "the database is unavailable", 1);
        return;
    }
    if (PQntuples(res->results[0]) != 1) {
        http_send_problem(hr, PROBLEM_UNAUTHORIZED, "the user no longer exists");
        return;
    }
    send_me(hr, PQgetvalue(res->results[0], 0, 0));
}

void auth_me(http_request_t *hr)
{
    const guard_principal_t *p = hr->principal;
    if (strncmp(p->claims.sid, "key:", 4) == 0) {
        /* an API key has no user: describe the key instead */
        json_t *roles = json_array();
        for (int i = 0; i < p->claims.nroles; i++)
            json_array_append_new(roles, json_string(p->claims.roles[i]));
        char *perms_text = rbac_grants_to_json(p->grants);
        json_error_t jerr;
        json_t *perms = perms_text != NULL ? json_loads(perms_text, 0, &jerr) : NULL;
        free(perms_text);
        body_send_json(hr, 200,
                       json_pack("{s:n, s:{s:s}, s:{s:s, s:s, s:s}, s:o, s:o}", "user", "api_key", "id", p->claims.sub, "tenant", "id",
                                 p->claims.tid, "slug", p->tenant_slug, "name", p->tenant_name, "roles", roles, "permissions",
                                 perms != NULL ? perms : json_array()));
        return;
    }
    /* the session's answer is cached for ME_CACHE_MS: its roles cannot change without revoking it */
    me_entry_t *e = me_slot(p->claims.sid);
    if (e->body != NULL && strcmp(e->sid, p->claims.sid) == 0 && h2o_now(hr->worker->ctx.loop) - e->at < ME_CACHE_MS) {
        http_send_json(hr, 200, e->body, e->len);
        return;
    }
    auth_flow_t *f = flow_new(hr);
    const char *params[1] = {p->claims.sub};
    db_status_t st;
    f->job = db_query(hr->worker->db, &user_email_stmt, params, on_me_email, f, &st);
    if (f->job == NULL)
        flow_unavailable(f, "the database is unavailable");
}

void auth_jwks(http_request_t *hr)
{
    size_t len;
    const char *jwks = token_keyset_public_jwks(guard_keys(), &len);
    http_add_header(hr, "cache-control", "public, max-age=300", 19);
    http_send_json(hr, 200, jwks, len);
}

void auth_init(void)
{
    db_stmt_t *stmts[] = {&signup_user_stmt, &signup_tenant_stmt, &signup_member_stmt, &audit_stmt,
                          &audit_by_slug_stmt, &login_user_stmt, &membership_stmt, &rehash_stmt, &user_email_stmt};
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++)
        db_stmt_register(stmts[i]);
}
