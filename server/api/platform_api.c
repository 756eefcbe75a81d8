/*
 * platform_api: tenant lifecycle for platform admins (see platform_api.h). Creation and deletion go
 * through the control plane's SECURITY DEFINER functions (create_tenant, drop_tenant), the same
 * code tenantctl uses, so the server's role still owns nothing. Status and name changes are
 * announced on Redis so every instance's guard forgets the tenant at once.
 */
#include "api/platform_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/log.h"
#include "http/body.h"
#include "http/guard.h"

#define TENANT_JSON                                                                                                               \
    "json_build_object('id', t.id, 'slug', t.slug, 'name', t.name, 'status', t.status, 'created_at', t.created_at,"             \
    " 'members', (SELECT count(*) FROM tenantd.memberships m WHERE m.tenant_id = t.id))"

static db_stmt_t list_stmt = {"platform_list",
                              "SELECT coalesce(json_agg(" TENANT_JSON " ORDER BY t.created_at, t.id), '[]')::text"
                              " FROM (SELECT * FROM tenantd.tenants ORDER BY created_at, id LIMIT $1::int OFFSET $2::int) t",
                              2, 0};
static db_stmt_t create_stmt = {"platform_create", "SELECT tenant_id::text FROM tenantd.create_tenant($1, $2)", 2, 0};
static db_stmt_t get_stmt = {"platform_get", "SELECT " TENANT_JSON "::text, t.id::text FROM tenantd.tenants t WHERE t.slug = $1", 1, 0};
static db_stmt_t update_stmt = {"platform_update",
                                "UPDATE tenantd.tenants t SET name = coalesce($2, t.name), status = coalesce($3, t.status),"
                                " updated_at = now() WHERE t.slug = $1 RETURNING " TENANT_JSON "::text, t.id::text",
                                3, 0};
static db_stmt_t delete_stmt = {"platform_delete",
                                "SELECT t.id::text, tenantd.drop_tenant(t.slug) FROM tenantd.tenants t WHERE t.slug = $1", 1, 0};
static db_stmt_t audit_stmt = {"platform_audit",
                               "INSERT INTO tenantd.audit_log (tenant_id, actor, action, target, ip, request_id)"
                               " VALUES ($1::uuid, $2, $3, $4, NULL, $5)",
                               5, 0};

typedef struct {
    http_request_t *hr;
    db_job_t *job;
    int status;
    const char *action;
    char slug[64];
} platform_call_t;

static void call_cancel(http_request_t *hr)
{
    platform_call_t *c = hr->handler_data;
    if (c->job != NULL)
        db_cancel(c->job);
    c->job = NULL;
}

static void audit(platform_call_t *c, const char *tenant_id)
{
    const char *params[5] = {tenant_id, c->hr->principal->claims.sub, c->action, c->slug, c->hr->request_id};
    db_status_t st;
    db_query(c->hr->worker->db, &audit_stmt, params, NULL, NULL, &st);
}

static void on_result(void *data, const db_result_t *res)
{
    platform_call_t *c = data;
    c->job = NULL;
    http_request_t *hr = c->hr;
    hr->cancel = NULL;
    if (res->status == DB_SQL_ERROR) {
        const char *st = res->sqlstate != NULL ? res->sqlstate : "";
        if (strcmp(st, "23505") == 0)
            http_send_problem(hr, PROBLEM_CONFLICT, "this tenant slug is taken");
        else if (strcmp(st, "22023") == 0 || strcmp(st, "23514") == 0)
            http_send_problem(hr, PROBLEM_UNPROCESSABLE, "invalid slug, name or status");
        else {
            log_error(hr->request_id, "platform statement failed: %s", res->message);
            http_send_problem(hr, PROBLEM_INTERNAL, NULL);
        }
        return;
    }
    if (res->status != DB_OK) {
        http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "the database is unavailable", 1);
        return;
    }
    PGresult *r = res->results[res->nresults - 1];
    if (PQntuples(r) == 0) {
        http_send_problem(hr, PROBLEM_NOT_FOUND, "no such tenant");
        return;
    }
    if (c->action != NULL && strcmp(c->action, "platform.tenant.delete") == 0) {
        audit(c, PQgetvalue(r, 0, 0));
        guard_publish_tenant_change(hr->worker, PQgetvalue(r, 0, 0));
        http_send_body(hr, 204, "application/json", "", 0);
        return;
    }
    if (PQnfields(r) > 1) {
        audit(c, PQgetvalue(r, 0, 1));
        guard_publish_tenant_change(hr->worker, PQgetvalue(r, 0, 1));
    }
    http_send_json(hr, c->status, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
}

static platform_call_t *call_new(http_request_t *hr, int status, const char *action)
{
    platform_call_t *c = h2o_mem_alloc_pool(&hr->req->pool, sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->hr = hr;
    c->status = status;
    c->action = action;
    if (hr->params.count > 0)
        snprintf(c->slug, sizeof(c->slug), "%.*s", (int)hr->params.items[0].value_len, hr->params.items[0].value);
    hr->handler_data = c;
    hr->cancel = call_cancel;
    return c;
}

static void run(platform_call_t *c, const db_step_t *steps, int n)
{
    db_status_t st;
    c->job = db_submit(c->hr->worker->db, steps, n, on_result, c, &st);
    if (c->job == NULL) {
        c->hr->cancel = NULL;
        http_send_problem_retry(c->hr, PROBLEM_UNAVAILABLE, "the database is unavailable", 1);
    }
}

void platform_tenants_list(http_request_t *hr)
{
    platform_call_t *c = call_new(hr, 200, NULL);
    long limit = 100, offset = 0;
    h2o_req_t *req = hr->req;
    if (req->query_at != SIZE_MAX) {
        char q[128];
        snprintf(q, sizeof(q), "%.*s", (int)(req->path.len - req->query_at - 1), req->path.base + req->query_at + 1);
        for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv != NULL; kv = strtok_r(NULL, "&", &save)) {
            if (strncmp(kv, "limit=", 6) == 0)
                limit = strtol(kv + 6, NULL, 10);
            else if (strncmp(kv, "offset=", 7) == 0)
                offset = strtol(kv + 7, NULL, 10);
        }
    }
    if (limit < 1 || limit > 1000)
        limit = limit < 1 ? 100 : 1000;
    if (offset < 0 || offset > 100000000)
        offset = 0;
    char l[16], o[16];
    snprintf(l, sizeof(l), "%d", (int)limit);
    snprintf(o, sizeof(o), "%d", (int)offset);
    const char *params[2] = {l, o};
    db_step_t step = {.stmt = &list_stmt, .params = params};
    run(c, &step, 1);
}

void platform_tenant_create(http_request_t *hr)
{
    json_t *body = body_json_object(hr, false);
    if (body == NULL)
        return;
    const char *slug = body_string(body, "slug"), *name = body_string(body, "name");
    if (slug == NULL || name == NULL || strlen(slug) > 63 || strcmp(slug, "platform") == 0) {
        json_decref(body);
        http_send_problem(hr, PROBLEM_UNPROCESSABLE, "slug (^[a-z][a-z0-9-]{1,62}$, not \"platform\") and name are required");
        return;
    }
    platform_call_t *c = call_new(hr, 201, "platform.tenant.create");
    snprintf(c->slug, sizeof(c->slug), "%s", slug);
    char n[256];
    snprintf(n, sizeof(n), "%s", name);
    json_decref(body);
    /* create, then read it back (with its id) in the same transaction */
    const char *cp[2] = {c->slug, n};
    const char *gp[1] = {c->slug};
    db_step_t steps[2] = {{.stmt = &create_stmt, .params = cp}, {.stmt = &get_stmt, .params = gp}};
    run(c, steps, 2);
}

void platform_tenant_update(http_request_t *hr)
{
    json_t *body = body_json_object(hr, false);
    if (body == NULL)
        return;
    json_t *name = json_object_get(body, "name"), *status = json_object_get(body, "status");
    bool ok = (name == NULL || (json_is_string(name) && json_string_length(name) >= 1 && json_string_length(name) <= 200)) &&
              (status == NULL || (json_is_string(status) && (strcmp(json_string_value(status), "active") == 0 ||
                                                             strcmp(json_string_value(status), "suspended") == 0))) &&
              (name != NULL || status != NULL);
    if (!ok) {
        json_decref(body);
        http_send_problem(hr, PROBLEM_UNPROCESSABLE, "give name (1-200 characters) and/or status (active, suspended)");
        return;
    }
    platform_call_t *c = call_new(hr, 200, "platform.tenant.update");
    char n[256] = "", st[16] = "";
    if (name != NULL)
        snprintf(n, sizeof(n), "%s", json_string_value(name));
    if (status != NULL)
        snprintf(st, sizeof(st), "%s", json_string_value(status));
    json_decref(body);
    const char *params[3] = {c->slug, name != NULL ? n : NULL, status != NULL ? st : NULL};
    db_step_t step = {.stmt = &update_stmt, .params = params};
    run(c, &step, 1);
}

void platform_tenant_delete(http_request_t *hr)
{
    platform_call_t *c = call_new(hr, 204, "platform.tenant.delete");
    const char *params[1] = {c->slug};
    db_step_t step = {.stmt = &delete_stmt, .params = params};
    run(c, &step, 1);
}

void platform_init(void)
{
    db_stmt_t *stmts[] = {&list_stmt, &create_stmt, &get_stmt, &update_stmt, &delete_stmt, &audit_stmt};
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++)
        db_stmt_register(stmts[i]);
}
