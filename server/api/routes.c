/*
 * routes: the route table (see routes.h). The permission column is what the guard checks before
 * the handler runs: ROUTER_PUBLIC, GUARD_AUTHENTICATED (any signed-in caller) or "resource:action".
 */
#include "api/routes.h"

#include "api/auth_api.h"
#include "api/ops.h"
#include "api/rest_api.h"
#include "http/guard.h"

const router_route_t api_routes[] = {
    {"GET", "/healthz", ops_healthz, ROUTER_PUBLIC},
    {"GET", "/readyz", ops_readyz, ROUTER_PUBLIC},
    {"GET", "/metrics", ops_metrics, ROUTER_PUBLIC},
    {"GET", "/.well-known/jwks.json", auth_jwks, ROUTER_PUBLIC},
    {"POST", "/v1/auth/signup", auth_signup, ROUTER_PUBLIC},
    {"POST", "/v1/auth/login", auth_login, ROUTER_PUBLIC},
    {"POST", "/v1/auth/refresh", auth_refresh, ROUTER_PUBLIC},
    {"POST", "/v1/auth/logout", auth_logout, GUARD_AUTHENTICATED},
    {"POST", "/v1/auth/switch", auth_switch, GUARD_AUTHENTICATED},
    {"GET", "/v1/auth/me", auth_me, GUARD_AUTHENTICATED},
    {"GET", "/v1/auth/sessions", auth_sessions_list, GUARD_AUTHENTICATED},
    {"DELETE", "/v1/auth/sessions/{id}", auth_sessions_revoke, GUARD_AUTHENTICATED},
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
}
