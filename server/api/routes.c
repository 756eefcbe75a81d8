/*
 * routes: the route table (see routes.h). The permission column is what the guard checks before
 * the handler runs: ROUTER_PUBLIC, GUARD_AUTHENTICATED (any signed-in caller) or "resource:action".
 */
#include "api/routes.h"

#include "api/admin_api.h"
#include "api/auth_api.h"
#include "api/openapi.h"
#include "api/ops.h"
#include "api/platform_api.h"
#include "api/realtime_api.h"
#include "api/rest_api.h"
#include "http/guard.h"
#include "realtime/sio.h"
#include "realtime/sse.h"

const router_route_t api_routes[] = {
    {"GET", "/healthz", ops_healthz, ROUTER_PUBLIC},
    {"GET", "/readyz", ops_readyz, ROUTER_PUBLIC},
    {"GET", "/metrics", ops_metrics, ROUTER_PUBLIC},
    {"GET", "/openapi.json", openapi_document, ROUTER_PUBLIC},
    {"GET", "/.well-known/jwks.json", auth_jwks, ROUTER_PUBLIC},
    {"POST", "/v1/auth/signup", auth_signup, ROUTER_PUBLIC},
    {"POST", "/v1/auth/login", auth_login, ROUTER_PUBLIC},
    {"POST", "/v1/auth/refresh", auth_refresh, ROUTER_PUBLIC},
    {"POST", "/v1/auth/logout", auth_logout, GUARD_AUTHENTICATED},
    {"POST", "/v1/auth/switch", auth_switch, GUARD_AUTHENTICATED},
    {"GET", "/v1/auth/me", auth_me, GUARD_AUTHENTICATED},
    {"GET", "/v1/auth/sessions", auth_sessions_list, GUARD_AUTHENTICATED},
    {"DELETE", "/v1/auth/sessions/{id}", auth_sessions_revoke, GUARD_AUTHENTICATED},
    {"GET", "/v1/admin/members", admin_members_list, "members:read"},
    {"PATCH", "/v1/admin/members/{user_id}", admin_member_update, "members:manage"},
    {"DELETE", "/v1/admin/members/{user_id}", admin_member_delete, "members:manage"},
    {"POST", "/v1/admin/invitations", admin_invitation_create, "invitations:manage"},
    {"GET", "/v1/admin/invitations", admin_invitations_list, "invitations:manage"},
    {"DELETE", "/v1/admin/invitations/{id}", admin_invitation_delete, "invitations:manage"},
    {"POST", "/v1/invitations/{token}/accept", invitation_accept, ROUTER_PUBLIC},
    {"GET", "/v1/admin/roles", admin_roles_list, "roles:read"},
    {"POST", "/v1/admin/roles", admin_role_create, "roles:manage"},
    {"PATCH", "/v1/admin/roles/{name}", admin_role_update, "roles:manage"},
    {"DELETE", "/v1/admin/roles/{name}", admin_role_delete, "roles:manage"},
    {"GET", "/v1/admin/api-keys", admin_keys_list, "api_keys:manage"},
    {"POST", "/v1/admin/api-keys", admin_key_create, "api_keys:manage"},
    {"DELETE", "/v1/admin/api-keys/{id}", admin_key_delete, "api_keys:manage"},
    {"GET", "/v1/admin/audit", admin_audit_list, "audit:read"},
    {"GET", "/v1/admin/tenant", admin_tenant_get, "tenant:read"},
    {"PATCH", "/v1/admin/tenant", admin_tenant_update, "tenant:manage"},
    {"GET", "/v1/platform/tenants", platform_tenants_list, "platform:manage"},
    {"POST", "/v1/platform/tenants", platform_tenant_create, "platform:manage"},
    {"PATCH", "/v1/platform/tenants/{slug}", platform_tenant_update, "platform:manage"},
    {"DELETE", "/v1/platform/tenants/{slug}", platform_tenant_delete, "platform:manage"},
    {"POST", "/v1/realtime/emit", realtime_emit, "realtime:emit"},
    {"GET", "/v1/events", sse_events, GUARD_AUTHENTICATED},
    {"GET", "/socket.io/", sio_handle, ROUTER_PUBLIC}, /* authenticated inside, at Socket.IO CONNECT */
    {"POST", "/socket.io/", sio_handle, ROUTER_PUBLIC},
    {"PUT", "/socket.io/", sio_handle, ROUTER_PUBLIC}, /* answered 400 "Bad request method", as Engine.IO servers do */
    {"GET", "/rest/v1/{table}", rest_select, "{table}:read"},
    {"POST", "/rest/v1/{table}", rest_insert, "{table}:create"},
    {"PATCH", "/rest/v1/{table}", rest_update, "{table}:update"},
    {"DELETE", "/rest/v1/{table}", rest_delete, "{table}:delete"},
};

const size_t api_route_count = sizeof(api_routes) / sizeof(api_routes[0]);

void api_init(void)
{
    ops_init();
    auth_init();
    rest_init();
    admin_init();
    sio_init();
    platform_init();
}
