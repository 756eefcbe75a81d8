/*
 * routes: the route table (see routes.h).
 */
#include "api/routes.h"

#include "api/ops.h"

const router_route_t api_routes[] = {
    {"GET", "/healthz", ops_healthz, ROUTER_PUBLIC},
    {"GET", "/readyz", ops_readyz, ROUTER_PUBLIC},
    {"GET", "/metrics", ops_metrics, ROUTER_PUBLIC},
};

const size_t api_route_count = sizeof(api_routes) / sizeof(api_routes[0]);

void api_init(void)
{
    ops_init();
}
