/*
 * admin_api: the tenant admin API of CONTRACT.md §6 — members, invitations, custom roles, API
 * keys, the audit log and the tenant's settings — always inside the caller's tenant.
 *
 * The guard has checked the route's permission. On top, nobody grants what they do not hold:
 * assigning roles, creating a role or an API key, and changing or removing a member all require
 * that the caller's grants cover the grants involved (rbac_grants_cover_grants); the last owner
 * cannot be demoted or removed. Changes that alter someone's rights take effect at once: the
 * member's sessions in this tenant are revoked (every instance hears it through Redis), and a
 * change of custom roles or API keys evicts the tenant from every instance's guard cache.
 * Every action writes an audit row. Queries return their JSON from Postgres, so most handlers
 * just relay one text value.
 */
#include "api/admin_api.h"

#include "api/auth_api.h"

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
#include "http/guard.h"
#include "security/password.h"
#include "security/session.h"

#define ADMIN_MAX_ROLES 16
#define ADMIN_LIST_DEFAULT 100
#define ADMIN_LIST_MAX 1000
#define INVITATION_TTL "7 days"

/* ---------------------------------------------------------------- statements ($1 is always the tenant id) */

static db_stmt_t members_list_stmt = {
    "admin_members_list",
    "SELECT coalesce(json_agg(json_build_object('user_id', u.id, 'email', u.email, 'roles', m.roles, 'joined_at', m.joined_at)"
    " ORDER BY m.joined_at, m.user_id), '[]')::text FROM (SELECT * FROM tenantd.memberships WHERE tenant_id = $1::uuid"
    " ORDER BY joined_at, user_id LIMIT $2::int OFFSET $3::int) m JOIN tenantd.users u ON u.id = m.user_id",
    3, 0};
static db_stmt_t member_get_stmt = {"admin_member_get",
                                    "SELECT array_to_json(m.roles)::text FROM tenantd.memberships m"
                                    " WHERE m.tenant_id = $1::uuid AND m.user_id::text = $2",
                                    2, 0};
/* Refuses (0 rows) to leave the tenant without an owner. */
static db_stmt_t member_set_roles_stmt = {
    "admin_member_set_roles",
    "UPDATE tenantd.memberships m SET roles = $3::text[] WHERE m.tenant_id = $1::uuid AND m.user_id::text = $2"
    " AND ('owner' = ANY($3::text[]) OR EXISTS (SELECT 1 FROM tenantd.memberships o WHERE o.tenant_id = $1::uuid"
    " AND o.user_id <> m.user_id AND 'owner' = ANY(o.roles)))"
    " RETURNING json_build_object('user_id', m.user_id, 'email', (SELECT email FROM tenantd.users WHERE id = m.user_id),"
    " 'roles', m.roles, 'joined_at', m.joined_at)::text",
    3, 0};
static db_stmt_t member_delete_stmt = {
    "admin_member_delete",
    "DELETE FROM tenantd.memberships m WHERE m.tenant_id = $1::uuid AND m.user_id::text = $2"
    " AND (NOT 'owner' = ANY(m.roles) OR EXISTS (SELECT 1 FROM tenantd.memberships o WHERE o.tenant_id = $1::uuid"
    " AND o.user_id <> m.user_id AND 'owner' = ANY(o.roles))) RETURNING m.user_id::text",
    2, 0};
static db_stmt_t invitation_create_stmt = {
    "admin_invitation_create",
    "INSERT INTO tenantd.invitations (tenant_id, email, roles, token_hash, expires_at, created_by)"
    " VALUES ($1::uuid, $2, $3::text[], $4, now() + interval '" INVITATION_TTL "', $5::uuid)"
    " RETURNING json_build_object('id', id, 'email', email, 'roles', roles, 'expires_at', expires_at)::text",
    5, 0};
static db_stmt_t invitations_list_stmt = {
    "admin_invitations_list",
    "SELECT coalesce(json_agg(json_build_object('id', i.id, 'email', i.email, 'roles', i.roles, 'expires_at', i.expires_at,"
    " 'created_at', i.created_at) ORDER BY i.created_at, i.id), '[]')::text FROM (SELECT * FROM tenantd.invitations"
    " WHERE tenant_id = $1::uuid AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()"
    " ORDER BY created_at, id LIMIT $2::int OFFSET $3::int) i",
    3, 0};
static db_stmt_t invitation_revoke_stmt = {"admin_invitation_revoke",
                                           "UPDATE tenantd.invitations SET revoked_at = now() WHERE tenant_id = $1::uuid"
                                           " AND id::text = $2 AND accepted_at IS NULL AND revoked_at IS NULL RETURNING id::text",
                                           2, 0};
/* Accepting: the invitation (valid, unused), and the invitee's account if one exists. */
static db_stmt_t invitation_lookup_stmt = {
    "invitation_lookup",
    "SELECT i.id::text, i.tenant_id::text, i.email, array_to_json(i.roles)::text, t.slug, t.name, t.status,"
    " u.id::text, coalesce(u.password_hash, '') FROM tenantd.invitations i JOIN tenantd.tenants t ON t.id = i.tenant_id"
    " LEFT JOIN tenantd.users u ON u.email = i.email WHERE i.token_hash = $1 AND i.accepted_at IS NULL"
    " AND i.revoked_at IS NULL AND i.expires_at > now()",
    1, 0};
static db_stmt_t invitation_new_user_stmt = {"invitation_new_user",
                                             "INSERT INTO tenantd.users (email, password_hash) VALUES ($1, $2)"
                                             " ON CONFLICT (email) DO NOTHING",
                                             2, 0};
/* Marks the invitation used and adds the membership, only if still unused: single use under races. */
static db_stmt_t invitation_accept_stmt = {
    "invitation_accept",
    "WITH inv AS (UPDATE tenantd.invitations SET accepted_at = now() WHERE token_hash = $1 AND accepted_at IS NULL"
    " AND revoked_at IS NULL AND expires_at > now() RETURNING tenant_id, email, roles)"
    " INSERT INTO tenantd.memberships (tenant_id, user_id, roles) SELECT inv.tenant_id, u.id, inv.roles FROM inv"
    " JOIN tenantd.users u ON u.email = inv.email ON CONFLICT (tenant_id, user_id) DO UPDATE SET roles = EXCLUDED.roles"
    " RETURNING user_id::text, array_to_json(roles)::text",
    1, 0};
static db_stmt_t roles_list_stmt = {
    "admin_roles_list",
    "SELECT coalesce(json_agg(json_build_object('name', name, 'permissions', permissions, 'inherits', inherits)"
    " ORDER BY name), '[]')::text FROM tenantd.roles WHERE tenant_id = $1::uuid",
    1, 0};
static db_stmt_t role_insert_stmt = {
    "admin_role_insert",
    "INSERT INTO tenantd.roles (tenant_id, name, permissions, inherits) VALUES ($1::uuid, $2, $3::text[], $4::text[])"
    " RETURNING json_build_object('name', name, 'permissions', permissions, 'inherits', inherits)::text",
    4, 0};
static db_stmt_t role_update_stmt = {
    "admin_role_update",
    "UPDATE tenantd.roles SET permissions = $3::text[], inherits = $4::text[], updated_at = now()"
    " WHERE tenant_id = $1::uuid AND name = $2"
    " RETURNING json_build_object('name', name, 'permissions', permissions, 'inherits', inherits)::text",
    4, 0};
static db_stmt_t role_delete_stmt = {"admin_role_delete",
                                     "DELETE FROM tenantd.roles WHERE tenant_id = $1::uuid AND name = $2 RETURNING name", 2, 0};
static db_stmt_t keys_list_stmt = {
    "admin_keys_list",
    "SELECT coalesce(json_agg(json_build_object('id', id, 'name', name, 'prefix', prefix, 'roles', roles,"
    " 'expires_at', expires_at, 'created_at', created_at, 'last_used_at', last_used_at) ORDER BY created_at, id), '[]')::text"
    " FROM tenantd.api_keys WHERE tenant_id = $1::uuid AND revoked_at IS NULL",
    1, 0};
static db_stmt_t key_insert_stmt = {
    "admin_key_insert",
    "INSERT INTO tenantd.api_keys (tenant_id, name, prefix, key_hash, roles, expires_at, created_by)"
    " VALUES ($1::uuid, $2, $3, $4, $5::text[], $6::timestamptz, $7::uuid)"
    " RETURNING json_build_object('id', id, 'name', name, 'prefix', prefix, 'roles', roles, 'expires_at', expires_at)::text",
    7, 0};
static db_stmt_t key_revoke_stmt = {"admin_key_revoke",
                                    "UPDATE tenantd.api_keys SET revoked_at = now() WHERE tenant_id = $1::uuid AND id::text = $2"
                                    " AND revoked_at IS NULL RETURNING id::text",
                                    2, 0};
static db_stmt_t audit_list_stmt = {
    "admin_audit_list",
    "SELECT coalesce(json_agg(json_build_object('id', a.id, 'at', a.at, 'actor', a.actor, 'action', a.action, 'target', a.target,"
    " 'ip', a.ip, 'request_id', a.request_id) ORDER BY a.id DESC), '[]')::text, min(a.id)::text, count(*)::int"
    " FROM (SELECT * FROM tenantd.audit_log WHERE tenant_id = $1::uuid AND ($2::bigint IS NULL OR id < $2::bigint)"
    " ORDER BY id DESC LIMIT $3::int) a",
    3, 0};
static db_stmt_t tenant_get_stmt = {
    "admin_tenant_get",
    "SELECT json_build_object('id', id, 'slug', slug, 'name', name, 'status', status, 'created_at', created_at)::text"
    " FROM tenantd.tenants WHERE id = $1::uuid",
    1, 0};
static db_stmt_t tenant_rename_stmt = {
    "admin_tenant_rename",
    "UPDATE tenantd.tenants SET name = $2, updated_at = now() WHERE id = $1::uuid"
    " RETURNING json_build_object('id', id, 'slug', slug, 'name', name, 'status', status, 'created_at', created_at)::text",
    2, 0};
static db_stmt_t admin_audit_stmt = {"admin_audit",
                                     "INSERT INTO tenantd.audit_log (tenant_id, actor, action, target, ip, request_id)"
                                     " VALUES ($1::uuid, $2, $3, $4, $5, $6)",
                                     6, 0};

/* ---------------------------------------------------------------- the call state */

typedef struct admin_call admin_call_t;
typedef void (*admin_next_t)(admin_call_t *c, const db_result_t *res);

struct admin_call {
    http_request_t *hr;
    db_job_t *job;
    redis_cmd_t *cmd;
    admin_next_t next;
    int ok_status;
    const char *action;     /* audit action, or NULL */
    char target[128];       /* audit target */
    char subject[64];       /* a user id, invitation id, role name … taken from the path */
    char json[4096];        /* a JSON answer kept while a follow-up step runs */
    char token[128];        /* a secret shown once (invitation token, API key) */
    bool revoke_subject;    /* after success: revoke the subject user's sessions in this tenant */
    bool tenant_changed;    /* after success: evict the tenant from every guard cache */
    char email[256];
    char roles_lit[1100];
    char pw_hash[PASSWORD_HASH_MAX];
    char invitation_hash[65];
    char new_user_id[64];
    char tenant_slug[64], tenant_name[256], tenant_id[64];
};

static void call_cancel(http_request_t *hr)
{
    admin_call_t *c = hr->handler_data;
    if (c->job != NULL)
        db_cancel(c->job);
    if (c->cmd != NULL)
        redis_cancel(c->cmd);
    c->job = NULL;
    c->cmd = NULL;
}

static admin_call_t *call_new(http_request_t *hr)
{
    admin_call_t *c = h2o_mem_alloc_pool(&hr->req->pool, sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->hr = hr;
    hr->handler_data = c;
    hr->cancel = call_cancel;
    if (hr->params.count > 0)
        snprintf(c->subject, sizeof(c->subject), "%.*s", (int)hr->params.items[0].value_len, hr->params.items[0].value);
    return c;
}

static void call_fail(admin_call_t *c, problem_kind_t kind, const char *detail)
{
    c->hr->cancel = NULL;
    http_send_problem(c->hr, kind, detail);
}

static void client_ip(http_request_t *hr, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = hr->req->conn->callbacks->get_peername(hr->req->conn, (struct sockaddr *)&ss);
    if (sl > 0 && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)cap);
    else if (sl > 0 && ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)cap);
    else
        snprintf(out, cap, "unknown");
}

static void write_audit(admin_call_t *c)
{
    if (c->action == NULL)
        return;
    http_request_t *hr = c->hr;
    char ip[64];
    client_ip(hr, ip, sizeof(ip));
    const char *tid = c->tenant_id[0] != '\0' ? c->tenant_id : hr->principal->claims.tid;
    const char *actor = hr->principal != NULL ? hr->principal->claims.sub : c->email;
    const char *params[6] = {tid, actor, c->action, c->target, ip, hr->request_id};
    db_status_t st;
    db_query(hr->worker->db, &admin_audit_stmt, params, NULL, NULL, &st);
}

static void on_revoked(void *data, redisReply *reply, const char *err)
{
    admin_call_t *c = data;
    c->cmd = NULL;
    c->hr->cancel = NULL;
    if (reply == NULL) {
        /* the change is committed but the sessions could not be revoked: say so, do not pretend */
        http_send_problem_retry(c->hr, PROBLEM_UNAVAILABLE, "saved, but sessions could not be revoked yet; retry", 1);
        return;
    }
    if (c->ok_status == 204)
        http_send_body(c->hr, 204, "application/json", "", 0);
    else
        http_send_json(c->hr, c->ok_status, c->json, strlen(c->json));
}

/* The final step of a write: side effects, audit, then the answer (c->json, or 204). */
static void call_succeed(admin_call_t *c)
{
    http_request_t *hr = c->hr;
    write_audit(c);
    if (c->tenant_changed)
        guard_publish_tenant_change(hr->worker, hr->principal->claims.tid);
    if (c->revoke_subject) {
        c->cmd = session_revoke_user_tenant(hr->worker->redis, c->subject, hr->principal->claims.tid, on_revoked, c);
        if (c->cmd == NULL) {
            hr->cancel = NULL;
            http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "saved, but sessions could not be revoked yet; retry", 1);
        }
        return;
    }
    hr->cancel = NULL;
    if (c->ok_status == 204)
        http_send_body(hr, 204, "application/json", "", 0);
    else
        http_send_json(hr, c->ok_status, c->json, strlen(c->json));
}

static void on_step(void *data, const db_result_t *res)
{
    admin_call_t *c = data;
    c->job = NULL;
    if (res->status == DB_TIMEOUT || res->status == DB_UNAVAILABLE || res->status == DB_REJECTED) {
        c->hr->cancel = NULL;
        http_send_problem_retry(c->hr, PROBLEM_UNAVAILABLE, "the database is unavailable", 1);
        return;
    }
    if (res->status == DB_SQL_ERROR) {
        const char *st = res->sqlstate != NULL ? res->sqlstate : "";
        if (strcmp(st, "23505") == 0)
            call_fail(c, PROBLEM_CONFLICT, "it exists already");
        else if (strncmp(st, "22", 2) == 0 || strncmp(st, "23", 2) == 0)
            call_fail(c, PROBLEM_UNPROCESSABLE, "a value is not acceptable");
        else {
            log_error(c->hr->request_id, "admin statement failed: %s", res->message);
            call_fail(c, PROBLEM_INTERNAL, NULL);
        }
        return;
    }
    c->next(c, res);
}

static void call_run(admin_call_t *c, const db_step_t *steps, int n, admin_next_t next)
{
    db_status_t st;
    c->next = next;
    c->job = db_submit(c->hr->worker->db, steps, n, on_step, c, &st);
    if (c->job == NULL) {
        c->hr->cancel = NULL;
        http_send_problem_retry(c->hr, PROBLEM_UNAVAILABLE, "the database is unavailable", 1);
    }
}

static void call_run1(admin_call_t *c, const db_stmt_t *stmt, const char *const *params, admin_next_t next)
{
    db_step_t step = {.stmt = stmt, .params = params};
    call_run(c, &step, 1, next);
}

/* Relays the one JSON text the statement returned; 404 when it returned no row. */
static void relay_json(admin_call_t *c, const db_result_t *res)
{
    PGresult *r = res->results[res->nresults - 1];
    if (PQntuples(r) == 0) {
        call_fail(c, PROBLEM_NOT_FOUND, "no such resource in this tenant");
        return;
    }
    snprintf(c->json, sizeof(c->json), "%s", PQgetvalue(r, 0, 0));
    if ((size_t)PQgetlength(r, 0, 0) >= sizeof(c->json)) {
        /* large lists go out directly */
        c->hr->cancel = NULL;
        write_audit(c);
        http_send_json(c->hr, c->ok_status, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
        return;
    }
    call_succeed(c);
}

/* ?limit=&offset= of a listing. */
static void list_window(http_request_t *hr, char *limit, char *offset)
{
    long l = ADMIN_LIST_DEFAULT, o = 0;
    h2o_req_t *req = hr->req;
    if (req->query_at != SIZE_MAX) {
        const char *q = req->path.base + req->query_at + 1;
        size_t qlen = req->path.len - req->query_at - 1;
        char buf[256];
        snprintf(buf, sizeof(buf), "%.*s", (int)(qlen < 255 ? qlen : 255), q);
        for (char *tok = strtok(buf, "&"); tok != NULL; tok = strtok(NULL, "&")) {
            if (strncmp(tok, "limit=", 6) == 0)
                l = strtol(tok + 6, NULL, 10);
            else if (strncmp(tok, "offset=", 7) == 0)
                o = strtol(tok + 7, NULL, 10);
        }
    }
    if (l < 1 || l > ADMIN_LIST_MAX)
        l = l < 1 ? ADMIN_LIST_DEFAULT : ADMIN_LIST_MAX;
    if (o < 0)
        o = 0;
    if (o > 100000000)
        o = 100000000;
    snprintf(limit, 16, "%d", (int)l);
    snprintf(offset, 16, "%d", (int)o);
}

/* ---------------------------------------------------------------- roles: validation and escalation */

/*
 * Reads a JSON array of role names into a Postgres array literal ({a,b}); every name must exist
 * (built-in non-platform or custom) and the caller must hold every right the roles would grant.
 * Answers and returns false otherwise.
 */
static bool take_roles(admin_call_t *c, const json_t *arr, char *lit, size_t cap)
{
    http_request_t *hr = c->hr;
    if (!json_is_array(arr) || json_array_size(arr) > ADMIN_MAX_ROLES) {
        call_fail(c, PROBLEM_UNPROCESSABLE, "roles must be an array of at most 16 role names");
        return false;
    }
    const rbac_custom_role_t *custom;
    size_t ncustom;
    guard_custom_roles(hr, &custom, &ncustom);
    const rbac_policy_t *policy = guard_policy();
    const char *names[ADMIN_MAX_ROLES];
    size_t n = 0, pos = 0;
    lit[pos++] = '{';
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *name = json_string_value(v);
        if (name == NULL || !rbac_role_name_is_valid(name) || !rbac_role_exists(policy, name, custom, ncustom) ||
            rbac_is_platform_role(policy, name)) {
            call_fail(c, PROBLEM_UNPROCESSABLE, "roles names an unknown role");
            return false;
        }
        names[n++] = name;
        int w = snprintf(lit + pos, cap - pos, "%s%s", i > 0 ? "," : "", name);
        if (w < 0 || (size_t)w >= cap - pos - 1) {
            call_fail(c, PROBLEM_UNPROCESSABLE, "too many roles");
            return false;
        }
        pos += (size_t)w;
    }
    lit[pos++] = '}';
    lit[pos] = '\0';
    rbac_grants_t *g = rbac_resolve(policy, names, n, custom, ncustom);
    bool covered = g != NULL && rbac_grants_cover_grants(hr->principal->grants, g);
    rbac_grants_free(g);
    if (!covered) {
        call_fail(c, PROBLEM_FORBIDDEN, "you cannot grant rights you do not hold");
        return false;
    }
    return true;
}

/* Checks that the caller holds every right of roles_json (a member's current roles). */
static bool covers_roles_json(http_request_t *hr, const char *roles_json)
{
    json_error_t jerr;
    json_t *arr = json_loads(roles_json, 0, &jerr);
    const char *names[ADMIN_MAX_ROLES * 2];
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && n < sizeof(names) / sizeof(names[0]))
            names[n++] = json_string_value(v);
    }
    const rbac_custom_role_t *custom;
    size_t ncustom;
    guard_custom_roles(hr, &custom, &ncustom);
    rbac_grants_t *g = rbac_resolve(guard_policy(), names, n, custom, ncustom);
    bool ok = g != NULL && rbac_grants_cover_grants(hr->principal->grants, g);
    rbac_grants_free(g);
    json_decref(arr);
    return ok;
}

/* ---------------------------------------------------------------- members */

/* Answers one page (limit/offset of the query) of a tenant-scoped list statement ($1 tenant, $2 limit, $3 offset). */
static void list_page(http_request_t *hr, const db_stmt_t *stmt)
{
    admin_call_t *c = call_new(hr);
    char limit[16], offset[16];
    list_window(hr, limit, offset);
    c->ok_status = 200;
    const char *params[3] = {hr->principal->claims.tid, limit, offset};
    call_run1(c, stmt, params, relay_json);
}

void admin_members_list(http_request_t *hr)
{
    list_page(hr, &members_list_stmt);
}

static void member_after_update(admin_call_t *c, const db_result_t *res)
{
    if (PQntuples(res->results[0]) == 0) {
        call_fail(c, PROBLEM_CONFLICT, "the tenant must keep at least one owner");
        return;
    }
    snprintf(c->json, sizeof(c->json), "%s", PQgetvalue(res->results[0], 0, 0));
    c->revoke_subject = true;
    call_succeed(c);
}

static void member_after_delete(admin_call_t *c, const db_result_t *res)
{
    if (PQntuples(res->results[0]) == 0) {
        call_fail(c, PROBLEM_CONFLICT, "the tenant must keep at least one owner");
        return;
    }
    c->revoke_subject = true;
    call_succeed(c);
}

/* Loaded the member's current roles: check coverage, then update or delete. */
static void member_after_get(admin_call_t *c, const db_result_t *res)
{
    http_request_t *hr = c->hr;
    if (PQntuples(res->results[0]) == 0) {
        call_fail(c, PROBLEM_NOT_FOUND, "no such member");
        return;
    }
    if (!covers_roles_json(hr, PQgetvalue(res->results[0], 0, 0))) {
        call_fail(c, PROBLEM_FORBIDDEN, "this member holds rights you do not hold");
        return;
    }
    if (c->roles_lit[0] != '\0') {
        const char *params[3] = {hr->principal->claims.tid, c->subject, c->roles_lit};
        call_run1(c, &member_set_roles_stmt, params, member_after_update);
    } else {
        const char *params[2] = {hr->principal->claims.tid, c->subject};
        call_run1(c, &member_delete_stmt, params, member_after_delete);
    }
}

void admin_member_update(http_request_t *hr)
{
    json_t *body = body_json_object(hr, false);
    if (body == NULL)
        return;
    admin_call_t *c = call_new(hr);
    bool ok = take_roles(c, json_object_get(body, "roles"), c->roles_lit, sizeof(c->roles_lit));
    json_decref(body);
    if (!ok)
        return;
    if (strcmp(c->roles_lit, "{}") == 0) {
        call_fail(c, PROBLEM_UNPROCESSABLE, "a member needs at least one role; remove the member instead");
        return;
    }
    c->ok_status = 200;
    c->action = "member.update";
    snprintf(c->target, sizeof(c->target), "user:%.60s roles:%.50s", c->subject, c->roles_lit);
    const char *params[2] = {hr->principal->claims.tid, c->subject};
    call_run1(c, &member_get_stmt, params, member_after_get);
}

void admin_member_delete(http_request_t *hr)
{
    admin_call_t *c = call_new(hr);
    c->ok_status = 204;
    c->action = "member.remove";
    snprintf(c->target, sizeof(c->target), "user:%s", c->subject);
    const char *params[2] = {hr->principal->claims.tid, c->subject};
    call_run1(c, &member_get_stmt, params, member_after_get);
}

/* ---------------------------------------------------------------- invitations */

static void sha256_hex(const char *in, size_t len, char *out)
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, (const unsigned char *)in, len);
    sodium_bin2hex(out, 65, d, sizeof(d));
}

/* A secret "<prefix><43 url-safe chars>" into out. */
static void new_secret(const char *prefix, char *out, size_t cap)
{
    unsigned char raw[32];
    char b64[64];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(out, cap, "%s%s", prefix, b64);
}

/* Answers with the JSON Postgres returned plus the secret, which is shown this once (member: "token", "key"). */
static void succeed_with_secret(admin_call_t *c, const db_result_t *res, const char *member)
{
    json_error_t jerr;
    json_t *o = json_loads(PQgetvalue(res->results[0], 0, 0), 0, &jerr);
    json_object_set_new(o, member, json_string(c->token));
    char *text = json_dumps(o, JSON_COMPACT);
    snprintf(c->json, sizeof(c->json), "%s", text != NULL ? text : "{}");
    free(text);
    json_decref(o);
    http_add_header(c->hr, "cache-control", "no-store", 8);
    call_succeed(c);
}

static void invitation_created(admin_call_t *c, const db_result_t *res)
{
    succeed_with_secret(c, res, "token");
}

void admin_invitation_create(http_request_t *hr)
{
    json_t *body = body_json_object(hr, false);
    if (body == NULL)
        return;
    admin_call_t *c = call_new(hr);
    const char *email = body_string(body, "email");
    size_t elen = email != NULL ? strlen(email) : 0;
    bool ok = elen >= 3 && elen < sizeof(c->email) && strchr(email, '@') != NULL && strpbrk(email, " \t\r\n\"<>,;") == NULL;
    if (!ok) {
        json_decref(body);
        call_fail(c, PROBLEM_UNPROCESSABLE, "email is not a valid address");
        return;
    }
    for (size_t i = 0; i <= elen; i++)
        c->email[i] = (char)(email[i] >= 'A' && email[i] <= 'Z' ? email[i] + 32 : email[i]);
    ok = take_roles(c, json_object_get(body, "roles"), c->roles_lit, sizeof(c->roles_lit));
    json_decref(body);
    if (!ok)
        return;
    new_secret("inv_", c->token, sizeof(c->token));
    char hash[65];
    sha256_hex(c->token, strlen(c->token), hash);
    c->ok_status = 201;
    c->action = "invitation.create";
    snprintf(c->target, sizeof(c->target), "email:%.120s", c->email);
    const char *params[5] = {hr->principal->claims.tid, c->email, c->roles_lit, hash, hr->principal->claims.sub};
    call_run1(c, &invitation_create_stmt, params, invitation_created);
}

void admin_invitations_list(http_request_t *hr)
{
    list_page(hr, &invitations_list_stmt);
}

static void after_revoke(admin_call_t *c, const db_result_t *res)
{
    if (PQntuples(res->results[0]) == 0) {
        call_fail(c, PROBLEM_NOT_FOUND, "no such resource in this tenant");
        return;
    }
    call_succeed(c);
}

void admin_invitation_delete(http_request_t *hr)
{
    admin_call_t *c = call_new(hr);
    c->ok_status = 204;
    c->action = "invitation.revoke";
    snprintf(c->target, sizeof(c->target), "invitation:%s", c->subject);
    const char *params[2] = {hr->principal->claims.tid, c->subject};
    call_run1(c, &invitation_revoke_stmt, params, after_revoke);
}

/* -- accepting an invitation: lookup -> (argon2 off the loop) -> user + membership -> session */

typedef struct {
    workpool_job_t super;
    admin_call_t *call; /* NULL once the request is gone */
    char password[PASSWORD_MAX_LEN + 1];
    size_t password_len;
    char hash[PASSWORD_HASH_MAX];
    bool existing, ok;
} accept_job_t;

static void accept_work(workpool_job_t *job)
{
    accept_job_t *a = (accept_job_t *)job;
    if (a->existing)
        a->ok = password_verify(a->hash, a->password, a->password_len);
    else
        a->ok = password_hash(a->password, a->password_len, a->hash) == 0;
    sodium_memzero(a->password, sizeof(a->password));
}

static void accept_finished(admin_call_t *c, const db_result_t *res)
{
    PGresult *r = res->results[res->nresults - 1];
    if (PQntuples(r) == 0) {
        call_fail(c, PROBLEM_NOT_FOUND, "this invitation is not valid (used, revoked or expired)");
        return;
    }
    snprintf(c->new_user_id, sizeof(c->new_user_id), "%s", PQgetvalue(r, 0, 0));
    snprintf(c->roles_lit, sizeof(c->roles_lit), "%s", PQgetvalue(r, 0, 1));
    c->action = "invitation.accept";
    snprintf(c->target, sizeof(c->target), "user:%s", c->new_user_id);
    write_audit(c);
    c->action = NULL;
    auth_issue_tokens(c->hr, c->new_user_id, c->email, c->tenant_id, c->tenant_slug, c->tenant_name, c->roles_lit);
}

typedef struct {
    admin_call_t call;
    accept_job_t *job; /* owned until submitted; cleared when the job comes back */
} accept_state_t;

static void accept_done(workpool_job_t *job)
{
    accept_job_t *a = (accept_job_t *)job;
    admin_call_t *c = a->call;
    if (c != NULL) {
        ((accept_state_t *)c)->job = NULL;
        c->hr->handler_data = c;
        c->hr->cancel = call_cancel;
        if (!a->ok) {
            call_fail(c, a->existing ? PROBLEM_UNAUTHORIZED : PROBLEM_INTERNAL,
                      a->existing ? "this e-mail has an account: give its password" : "could not hash the password");
        } else {
            const char *u[2] = {c->email, a->hash};
            const char *m[1] = {c->invitation_hash};
            db_step_t steps[2] = {{.stmt = &invitation_new_user_stmt, .params = u}, {.stmt = &invitation_accept_stmt, .params = m}};
            call_run(c, a->existing ? &steps[1] : steps, a->existing ? 1 : 2, accept_finished);
        }
    }
    sodium_memzero(a, sizeof(*a));
    free(a);
}

static void accept_cancel(http_request_t *hr)
{
    admin_call_t *c = hr->handler_data;
    accept_state_t *s = (accept_state_t *)c;
    call_cancel(hr);
    if (s->job != NULL) {
        if (s->job->super.done == NULL)
            free(s->job);
        else
            s->job->call = NULL;
        s->job = NULL;
    }
}

static void accept_after_lookup(admin_call_t *c, const db_result_t *res)
{
    accept_state_t *s = (accept_state_t *)c;
    PGresult *r = res->results[0];
    if (PQntuples(r) == 0) {
        call_fail(c, PROBLEM_NOT_FOUND, "this invitation is not valid (used, revoked or expired)");
        return;
    }
    if (strcmp(PQgetvalue(r, 0, 6), "active") != 0) {
        call_fail(c, PROBLEM_FORBIDDEN, "this tenant is suspended");
        return;
    }
    snprintf(c->tenant_id, sizeof(c->tenant_id), "%s", PQgetvalue(r, 0, 1));
    snprintf(c->email, sizeof(c->email), "%s", PQgetvalue(r, 0, 2));
    snprintf(c->tenant_slug, sizeof(c->tenant_slug), "%s", PQgetvalue(r, 0, 4));
    snprintf(c->tenant_name, sizeof(c->tenant_name), "%s", PQgetvalue(r, 0, 5));
    accept_job_t *a = s->job;
    a->existing = !PQgetisnull(r, 0, 7);
    if (a->existing)
        snprintf(a->hash, sizeof(a->hash), "%s", PQgetvalue(r, 0, 8));
    a->super.work = accept_work;
    a->super.done = accept_done;
    a->call = c;
    if (workpool_submit(&c->hr->worker->workpool_rx, &a->super) != 0) {
        s->job = NULL;
        free(a);
        c->hr->cancel = NULL;
        http_send_problem_retry(c->hr, PROBLEM_UNAVAILABLE, "too many requests in progress; retry shortly", 1);
    }
}

void invitation_accept(http_request_t *hr)
{
    json_t *body = body_json_object(hr, false);
    if (body == NULL)
        return;
    accept_state_t *s = h2o_mem_alloc_pool(&hr->req->pool, sizeof(*s));
    memset(s, 0, sizeof(*s));
    admin_call_t *c = &s->call;
    c->hr = hr;
    hr->handler_data = c;
    hr->cancel = accept_cancel;
    json_t *pw = json_object_get(body, "password");
    if (!json_is_string(pw) || json_string_length(pw) < PASSWORD_MIN_LEN || json_string_length(pw) > PASSWORD_MAX_LEN) {
        json_decref(body);
        call_fail(c, PROBLEM_UNPROCESSABLE, "password of 8 to 4096 bytes is required");
        return;
    }
    s->job = calloc(1, sizeof(*s->job));
    s->job->password_len = json_string_length(pw);
    memcpy(s->job->password, json_string_value(pw), s->job->password_len);
    json_decref(body);
    const char *token = hr->params.items[0].value;
    size_t tlen = hr->params.items[0].value_len;
    sha256_hex(token, tlen, c->invitation_hash);
    const char *params[1] = {c->invitation_hash};
    call_run1(c, &invitation_lookup_stmt, params, accept_after_lookup);
}

/* ---------------------------------------------------------------- custom roles */

void admin_roles_list(http_request_t *hr)
{
    admin_call_t *c = call_new(hr);
    c->ok_status = 200;
    const char *params[1] = {hr->principal->claims.tid};
    call_run1(c, &roles_list_stmt, params, relay_json);
}

/* Reads {permissions, inherits} into array literals after validation and the coverage check. */
static bool take_role_definition(admin_call_t *c, json_t *body, const char *name, char *perms_lit, size_t pcap, char *inh_lit,
                                 size_t icap)
{
    http_request_t *hr = c->hr;
    json_t *perms = json_object_get(body, "permissions"), *inh = json_object_get(body, "inherits");
    if (!json_is_array(perms) || (inh != NULL && !json_is_array(inh)) || json_array_size(perms) > 64 || json_array_size(inh) > 16) {
        call_fail(c, PROBLEM_UNPROCESSABLE, "permissions (at most 64) and inherits (at most 16) must be arrays of strings");
        return false;
    }
    const char *p[64], *h[16];
    size_t np = 0, nh = 0, i;
    json_t *v;
    json_array_foreach(perms, i, v)
    {
        if (!json_is_string(v) || !rbac_permission_is_valid(json_string_value(v))) {
            call_fail(c, PROBLEM_UNPROCESSABLE, "permissions must look like resource:action or resource:action:own");
            return false;
        }
        p[np++] = json_string_value(v);
    }
    json_array_foreach(inh, i, v)
    {
        if (!json_is_string(v)) {
            call_fail(c, PROBLEM_UNPROCESSABLE, "inherits must name roles");
            return false;
        }
        h[nh++] = json_string_value(v);
    }
    rbac_custom_role_t role = {name, p, np, h, nh};
    char err[200];
    const rbac_policy_t *policy = guard_policy();
    const rbac_custom_role_t *custom;
    size_t ncustom;
    guard_custom_roles(hr, &custom, &ncustom);
    /* the tenant's set with this role added or replaced must stay valid */
    rbac_custom_role_t set[ncustom + 1];
    size_t n = 0;
    for (size_t k = 0; k < ncustom; k++)
        if (strcmp(custom[k].name, name) != 0)
            set[n++] = custom[k];
    set[n++] = role;
    if (rbac_validate_custom_roles(policy, set, n, err, sizeof(err)) != 0) {
        call_fail(c, PROBLEM_UNPROCESSABLE, err);
        return false;
    }
    const char *self[1] = {name};
    rbac_grants_t *g = rbac_resolve(policy, self, 1, set, n);
    bool covered = g != NULL && rbac_grants_cover_grants(hr->principal->grants, g);
    rbac_grants_free(g);
    if (!covered) {
        call_fail(c, PROBLEM_FORBIDDEN, "you cannot grant rights you do not hold");
        return false;
    }
    /* array literals: permission strings and role names contain no quotes, braces or commas (validated) */
    size_t pos = 0;
    pos += (size_t)snprintf(perms_lit, pcap, "{");
    for (size_t k = 0; k < np && pos < pcap; k++)
        pos += (size_t)snprintf(perms_lit + pos, pcap - pos, "%s\"%s\"", k ? "," : "", p[k]);
    if (pos < pcap)
        snprintf(perms_lit + pos, pcap - pos, "}");
    pos = (size_t)snprintf(inh_lit, icap, "{");
    for (size_t k = 0; k < nh && pos < icap; k++)
        pos += (size_t)snprintf(inh_lit + pos, icap - pos, "%s\"%s\"", k ? "," : "", h[k]);
    if (pos < icap)
        snprintf(inh_lit + pos, icap - pos, "}");
    return true;
}

static void role_write(http_request_t *hr, bool create)
{
    json_t *body = body_json_object(hr, false);
    if (body == NULL)
        return;
    admin_call_t *c = call_new(hr);
    char name[64];
    const char *n = create ? body_string(body, "name") : c->subject;
    if (n == NULL || strlen(n) >= sizeof(name) || !rbac_role_name_is_valid(n) || rbac_is_builtin_role(guard_policy(), n)) {
        json_decref(body);
        call_fail(c, PROBLEM_UNPROCESSABLE, "name must match ^[a-z][a-z0-9_-]{0,62}$ and not be a built-in role");
        return;
    }
    snprintf(name, sizeof(name), "%s", n);
    char perms[4096], inh[1100];
    bool ok = take_role_definition(c, body, name, perms, sizeof(perms), inh, sizeof(inh));
    json_decref(body);
    if (!ok)
        return;
    c->ok_status = create ? 201 : 200;
    c->action = create ? "role.create" : "role.update";
    c->tenant_changed = true;
    snprintf(c->target, sizeof(c->target), "role:%s", name);
    const char *params[4] = {hr->principal->claims.tid, name, perms, inh};
    call_run1(c, create ? &role_insert_stmt : &role_update_stmt, params, relay_json);
}

void admin_role_create(http_request_t *hr)
{
    role_write(hr, true);
}

void admin_role_update(http_request_t *hr)
{
    role_write(hr, false);
}

void admin_role_delete(http_request_t *hr)
{
    admin_call_t *c = call_new(hr);
    c->ok_status = 204;
    c->action = "role.delete";
    c->tenant_changed = true;
    snprintf(c->target, sizeof(c->target), "role:%s", c->subject);
    const char *params[2] = {hr->principal->claims.tid, c->subject};
    call_run1(c, &role_delete_stmt, params, after_revoke);
}

/* ---------------------------------------------------------------- API keys */

void admin_keys_list(http_request_t *hr)
{
    admin_call_t *c = call_new(hr);
    c->ok_status = 200;
    const char *params[1] = {hr->principal->claims.tid};
    call_run1(c, &keys_list_stmt, params, relay_json);
}

static void key_created(admin_call_t *c, const db_result_t *res)
{
    succeed_with_secret(c, res, "key");
}

void admin_key_create(http_request_t *hr)
{
    json_t *body = body_json_object(hr, false);
    if (body == NULL)
        return;
    admin_call_t *c = call_new(hr);
    const char *name = body_string(body, "name");
    json_t *exp = json_object_get(body, "expires_at");
    char expires[64] = "";
    if (name == NULL || strlen(name) < 1 || strlen(name) > 200) {
        json_decref(body);
        call_fail(c, PROBLEM_UNPROCESSABLE, "name must have 1 to 200 characters");
        return;
    }
    if (exp != NULL && !json_is_null(exp) && (!json_is_string(exp) || json_string_length(exp) >= sizeof(expires))) {
        json_decref(body);
        call_fail(c, PROBLEM_UNPROCESSABLE, "expires_at must be an ISO 8601 timestamp");
        return;
    }
    if (json_is_string(exp))
        snprintf(expires, sizeof(expires), "%s", json_string_value(exp));
    char key_name[256];
    snprintf(key_name, sizeof(key_name), "%s", name);
    bool ok = take_roles(c, json_object_get(body, "roles"), c->roles_lit, sizeof(c->roles_lit));
    json_decref(body);
    if (!ok)
        return;
    /* tdk_<8 hex prefix>_<secret>: the prefix finds the row, the secret's hash proves the key */
    unsigned char raw[4];
    char prefix[16], secret[96];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(prefix, sizeof(prefix), raw, sizeof(raw));
    new_secret("", secret, sizeof(secret));
    snprintf(c->token, sizeof(c->token), "tdk_%s_%s", prefix, secret);
    char hash[65];
    sha256_hex(secret, strlen(secret), hash);
    c->ok_status = 201;
    c->action = "api_key.create";
    snprintf(c->target, sizeof(c->target), "api_key:%s", prefix);
    const char *params[7] = {hr->principal->claims.tid, key_name, prefix, hash, c->roles_lit, expires[0] ? expires : NULL,
                             hr->principal->claims.sub};
    call_run1(c, &key_insert_stmt, params, key_created);
}

void admin_key_delete(http_request_t *hr)
{
    admin_call_t *c = call_new(hr);
    c->ok_status = 204;
    c->action = "api_key.revoke";
    c->tenant_changed = true; /* evicts cached key checks everywhere */
    snprintf(c->target, sizeof(c->target), "api_key:%s", c->subject);
    const char *params[2] = {hr->principal->claims.tid, c->subject};
    call_run1(c, &key_revoke_stmt, params, after_revoke);
}

/* ---------------------------------------------------------------- audit, tenant */

static void audit_listed(admin_call_t *c, const db_result_t *res)
{
    PGresult *r = res->results[0];
    char limit[16], offset[16];
    list_window(c->hr, limit, offset);
    json_error_t jerr;
    json_t *items = json_loadb(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), 0, &jerr);
    bool more = atoi(PQgetvalue(r, 0, 2)) >= atoi(limit);
    json_t *out = json_pack("{s:o, s:s?}", "items", items != NULL ? items : json_array(), "next_cursor",
                            more ? PQgetvalue(r, 0, 1) : NULL);
    if (!more)
        json_object_set_new(out, "next_cursor", json_null());
    c->hr->cancel = NULL;
    body_send_json(c->hr, 200, out);
}

void admin_audit_list(http_request_t *hr)
{
    admin_call_t *c = call_new(hr);
    char limit[16], offset[16], cursor[24] = "";
    list_window(hr, limit, offset);
    h2o_req_t *req = hr->req;
    if (req->query_at != SIZE_MAX) {
        const char *q = req->path.base + req->query_at + 1;
        size_t qlen = req->path.len - req->query_at - 1;
        const char *cur = memmem(q, qlen, "cursor=", 7);
        if (cur != NULL) {
            size_t n = 0;
            for (const char *p = cur + 7; p < q + qlen && *p >= '0' && *p <= '9' && n < sizeof(cursor) - 1; p++)
                cursor[n++] = *p;
            cursor[n] = '\0';
        }
    }
    const char *params[3] = {hr->principal->claims.tid, cursor[0] ? cursor : NULL, limit};
    call_run1(c, &audit_list_stmt, params, audit_listed);
}

void admin_tenant_get(http_request_t *hr)
{
    admin_call_t *c = call_new(hr);
    c->ok_status = 200;
    const char *params[1] = {hr->principal->claims.tid};
    call_run1(c, &tenant_get_stmt, params, relay_json);
}

void admin_tenant_update(http_request_t *hr)
{
    json_t *body = body_json_object(hr, false);
    if (body == NULL)
        return;
    admin_call_t *c = call_new(hr);
    const char *name = body_string(body, "name");
    if (name == NULL || strlen(name) < 1 || strlen(name) > 200) {
        json_decref(body);
        call_fail(c, PROBLEM_UNPROCESSABLE, "name must have 1 to 200 characters");
        return;
    }
    char n[256];
    snprintf(n, sizeof(n), "%s", name);
    json_decref(body);
    c->ok_status = 200;
    c->action = "tenant.update";
    c->tenant_changed = true;
    snprintf(c->target, sizeof(c->target), "tenant");
    const char *params[2] = {hr->principal->claims.tid, n};
    call_run1(c, &tenant_rename_stmt, params, relay_json);
}

void admin_init(void)
{
    db_stmt_t *stmts[] = {&members_list_stmt,      &member_get_stmt,        &member_set_roles_stmt, &member_delete_stmt,
                          &invitation_create_stmt, &invitations_list_stmt,  &invitation_revoke_stmt, &invitation_lookup_stmt,
                          &invitation_new_user_stmt, &invitation_accept_stmt, &roles_list_stmt,      &role_insert_stmt,
                          &role_update_stmt,       &role_delete_stmt,       &keys_list_stmt,         &key_insert_stmt,
                          &key_revoke_stmt,        &audit_list_stmt,        &tenant_get_stmt,        &tenant_rename_stmt,
                          &admin_audit_stmt};
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++)
        db_stmt_register(stmts[i]);
}
