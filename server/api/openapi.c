/*
 * openapi: GET /openapi.json — an OpenAPI 3.1 description of the whole HTTP API, generated from
 * the route table (so no endpoint can be missing) plus the data API's tables from the metadata
 * (one path per table with its columns as the row schema). Summaries of the fixed endpoints live
 * in the table below; a route without one still appears, with a generic summary.
 */
#include "api/openapi.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/rest_api.h"
#include "api/routes.h"
#include "http/body.h"
#include "http/guard.h"

static const struct {
    const char *key; /* "METHOD pattern" */
    const char *summary;
} summaries[] = {
    {"GET /healthz", "Liveness: 200 while the process serves"},
    {"GET /readyz", "Readiness: Postgres and Redis reachable"},
    {"GET /metrics", "Prometheus metrics"},
    {"GET /openapi.json", "This document"},
    {"GET /.well-known/jwks.json", "Public signing keys"},
    {"POST /v1/auth/signup", "Create a user and a tenant; the user is owner"},
    {"POST /v1/auth/login", "Log in; tokens, or cookies with {cookie: true}"},
    {"POST /v1/auth/refresh", "Rotate a refresh token (single use)"},
    {"POST /v1/auth/logout", "End this session everywhere"},
    {"POST /v1/auth/switch", "Tokens for another tenant of the caller"},
    {"GET /v1/auth/me", "The caller: user, tenant, roles, effective permissions"},
    {"GET /v1/auth/sessions", "The caller's sessions"},
    {"DELETE /v1/auth/sessions/{id}", "Revoke one of the caller's sessions"},
    {"GET /v1/admin/members", "Members of the tenant"},
    {"PATCH /v1/admin/members/{user_id}", "Change a member's roles"},
    {"DELETE /v1/admin/members/{user_id}", "Remove a member"},
    {"POST /v1/admin/invitations", "Invite by e-mail (token shown once)"},
    {"GET /v1/admin/invitations", "Pending invitations"},
    {"DELETE /v1/admin/invitations/{id}", "Revoke an invitation"},
    {"POST /v1/invitations/{token}/accept", "Accept an invitation"},
    {"GET /v1/admin/roles", "Custom roles"},
    {"POST /v1/admin/roles", "Create a custom role"},
    {"PATCH /v1/admin/roles/{name}", "Change a custom role"},
    {"DELETE /v1/admin/roles/{name}", "Delete a custom role"},
    {"GET /v1/admin/api-keys", "API keys"},
    {"POST /v1/admin/api-keys", "Create an API key (key shown once)"},
    {"DELETE /v1/admin/api-keys/{id}", "Revoke an API key"},
    {"GET /v1/admin/audit", "Audit log, newest first, cursor-paginated"},
    {"GET /v1/admin/tenant", "The tenant"},
    {"PATCH /v1/admin/tenant", "Rename the tenant"},
    {"GET /v1/platform/tenants", "Every tenant (platform admins)"},
    {"POST /v1/platform/tenants", "Create a tenant (platform admins)"},
    {"PATCH /v1/platform/tenants/{slug}", "Rename, suspend or resume a tenant (platform admins)"},
    {"DELETE /v1/platform/tenants/{slug}", "Drop a tenant and its data (platform admins)"},
    {"POST /v1/realtime/emit", "Emit an event to a user, role, room or the tenant"},
    {"GET /v1/events", "Realtime events as Server-Sent Events (?rooms=a,b)"},
    {"GET /socket.io/", "Socket.IO (Engine.IO 4): handshake, long-polling, WebSocket upgrade"},
    {"POST /socket.io/", "Socket.IO long-polling: client packets"},
    {"PUT /socket.io/", "Refused with 400 (Engine.IO: bad request method)"},
    {"GET /rest/v1/{table}", "Read rows (PostgREST filters)"},
    {"POST /rest/v1/{table}", "Insert rows"},
    {"PATCH /rest/v1/{table}", "Update the filtered rows"},
    {"DELETE /rest/v1/{table}", "Delete the filtered rows"},
};

static const char *summary_of(const char *method, const char *pattern)
{
    char key[256];
    snprintf(key, sizeof(key), "%s %s", method, pattern);
    for (size_t i = 0; i < sizeof(summaries) / sizeof(summaries[0]); i++)
        if (strcmp(summaries[i].key, key) == 0)
            return summaries[i].summary;
    return "Undocumented endpoint";
}

static json_t *problem_response(const char *description)
{
    return json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", description, "content", "application/problem+json", "schema", "$ref",
                     "#/components/schemas/Problem");
}

/* An operation object for one route. */
static json_t *operation(const router_route_t *r)
{
    json_t *op = json_pack("{s:s, s:s}", "summary", summary_of(r->method, r->pattern), "operationId", "");
    char opid[256];
    size_t n = 0;
    for (const char *p = r->method; *p && n < sizeof(opid) - 1; p++)
        opid[n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    for (const char *p = r->pattern; *p && n < sizeof(opid) - 1; p++)
        opid[n++] = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ? *p : '_';
    opid[n] = '\0';
    json_object_set_new(op, "operationId", json_string(opid));
    json_t *params = json_array();
    for (const char *p = strchr(r->pattern, '{'); p != NULL; p = strchr(p + 1, '{')) {
        const char *close = strchr(p, '}');
        if (close == NULL)
            break;
        json_array_append_new(params, json_pack("{s:s%, s:s, s:b, s:{s:s}}", "name", p + 1, (size_t)(close - p - 1), "in", "path",
                                                "required", 1, "schema", "type", "string"));
    }
    if (json_array_size(params) > 0)
        json_object_set_new(op, "parameters", params);
    else
        json_decref(params);
    json_t *responses = json_object();
    json_object_set_new(responses, "200", json_pack("{s:s}", "description", "Success"));
    json_object_set_new(responses, "400", problem_response("Malformed input"));
    if (strcmp(r->permission, ROUTER_PUBLIC) != 0) {
        json_object_set_new(op, "security", json_pack("[{s:[]}, {s:[]}]", "bearer", "cookie"));
        json_object_set_new(responses, "401", problem_response("No or invalid credentials"));
        json_object_set_new(responses, "403", problem_response("Not allowed"));
        json_object_set_new(op, "x-permission", json_string(r->permission));
    } else {
        json_object_set_new(op, "security", json_array());
    }
    json_object_set_new(responses, "503", problem_response("A dependency is down"));
    json_object_set_new(op, "responses", responses);
    return op;
}

/* A JSON Schema type for a Postgres type name (best effort; unknown types are strings). */
static json_t *schema_for_type(const char *t)
{
    if (strcmp(t, "integer") == 0 || strcmp(t, "bigint") == 0 || strcmp(t, "smallint") == 0)
        return json_pack("{s:s}", "type", "integer");
    if (strcmp(t, "numeric") == 0 || strcmp(t, "real") == 0 || strcmp(t, "double precision") == 0)
        return json_pack("{s:s}", "type", "number");
    if (strcmp(t, "boolean") == 0)
        return json_pack("{s:s}", "type", "boolean");
    if (strcmp(t, "json") == 0 || strcmp(t, "jsonb") == 0)
        return json_object();
    if (strcmp(t, "uuid") == 0)
        return json_pack("{s:s, s:s}", "type", "string", "format", "uuid");
    if (strncmp(t, "timestamp", 9) == 0)
        return json_pack("{s:s, s:s}", "type", "string", "format", "date-time");
    return json_pack("{s:s}", "type", "string");
}

static json_t *build_document(http_worker_t *w)
{
    json_t *paths = json_object();
    for (size_t i = 0; i < api_route_count; i++) {
        const router_route_t *r = &api_routes[i];
        json_t *item = json_object_get(paths, r->pattern);
        if (item == NULL) {
            item = json_object();
            json_object_set_new(paths, r->pattern, item);
        }
        char method[16];
        size_t n = 0;
        for (const char *p = r->method; *p && n < sizeof(method) - 1; p++)
            method[n++] = (char)(*p + 32);
        method[n] = '\0';
        json_object_set_new(item, method, operation(r));
    }
    json_t *schemas = json_object();
    json_object_set_new(schemas, "Problem",
                        json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}, s:[s,s,s]}", "type", "object", "properties", "type",
                                  "type", "string", "title", "type", "string", "status", "type", "integer", "detail", "type", "string",
                                  "request_id", "type", "string", "required", "type", "title", "status"));
    /* the data API's tables, as far as this worker's metadata knows them */
    size_t ntables = rest_table_count(w);
    for (size_t t = 0; t < ntables; t++) {
        const restq_table_t *tab = rest_table_at(w, t);
        json_t *props = json_object();
        for (size_t c = 0; c < tab->ncols; c++)
            json_object_set_new(props, tab->cols[c].name, schema_for_type(tab->cols[c].type));
        char ref[200], path[200];
        snprintf(ref, sizeof(ref), "#/components/schemas/%s", tab->name);
        json_object_set_new(schemas, tab->name, json_pack("{s:s, s:o}", "type", "object", "properties", props));
        snprintf(path, sizeof(path), "/rest/v1/%s", tab->name);
        json_t *rows = json_pack("{s:s, s:{s:{s:{s:s, s:{s:s}}}}}", "description", "Rows", "content", "application/json", "schema",
                                 "type", "array", "items", "$ref", ref);
        json_object_set_new(paths, path,
                            json_pack("{s:{s:s, s:[{s:[]}], s:{s:o}}}", "get", "summary", "Read rows of this table", "security",
                                      "bearer", "responses", "200", rows));
    }
    json_t *doc = json_pack("{s:s, s:{s:s, s:s, s:s}, s:o, s:{s:o, s:{s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}}}}", "openapi", "3.1.0",
                            "info", "title", "tenantd", "version", "1.0.0", "description",
                            "Multi-tenant SaaS backend: auth, tenant admin, PostgREST-style data API, realtime.", "paths", paths,
                            "components", "schemas", schemas, "securitySchemes", "bearer", "type", "http", "scheme", "bearer",
                            "bearerFormat", "JWT", "cookie", "type", "apiKey", "in", "cookie", "name", "__Host-access");
    return doc;
}

static void send_document(http_request_t *hr)
{
    json_t *doc = build_document(hr->worker);
    http_add_header(hr, "cache-control", "public, max-age=60", 18);
    body_send_json(hr, 200, doc);
}

void openapi_document(http_request_t *hr)
{
    rest_meta_ensure(hr, send_document);
}
