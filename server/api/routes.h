/*
 * routes: the route table of tenantd — every HTTP endpoint, its handler and the permission it
 * needs. Adding an endpoint means adding a row here (and to the route x role test matrix).
 */
#ifndef TENANTD_API_ROUTES_H
#define TENANTD_API_ROUTES_H

#include <stddef.h>

#include "http/router.h"

/* The table and its length. */
extern const router_route_t api_routes[];
extern const size_t api_route_count;

/* Registers every statement the handlers use; call once before the server starts. */
void api_init(void);

#endif
