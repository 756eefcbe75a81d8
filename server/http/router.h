/*
 * router: the route table and path matching. Every route names its method, its path pattern
 * ("/v1/admin/members/{user_id}": a {name} matches one non-empty segment), its handler and the
 * permission it needs ("public" for unauthenticated endpoints). router_validate refuses a table
 * in which a route lacks a permission, so such a server does not start.
 */
#ifndef TENANTD_HTTP_ROUTER_H
#define TENANTD_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#define ROUTER_PUBLIC "public"
#define ROUTER_MAX_PARAMS 4

struct http_request;

/* A handler answers the request (now or later, from a callback); it must answer exactly once. */
typedef void (*router_handler_t)(struct http_request *hr);

typedef struct {
    const char *method;     /* "GET", "POST", ... (GET also serves HEAD) */
    const char *pattern;    /* absolute path pattern */
    router_handler_t handler;
    const char *permission; /* "resource:action", or ROUTER_PUBLIC */
} router_route_t;

/* The values captured by {name} segments, pointing into the matched path. */
typedef struct {
    size_t count;
    struct {
        const char *name; /* into the pattern, not NUL-terminated at '}' */
        size_t name_len;
        const char *value;
        size_t value_len;
    } items[ROUTER_MAX_PARAMS];
} router_params_t;

typedef enum { ROUTER_MATCH, ROUTER_NO_PATH, ROUTER_WRONG_METHOD } router_result_t;

/* Checks a table (non-NULL method, pattern starting with '/', handler, permission); 0, or -1 with err filled. */
int router_validate(const router_route_t *routes, size_t count, char *err, size_t errlen);

/* True when path (len bytes, no query) matches pattern; fills params when not NULL. */
bool router_path_matches(const char *pattern, const char *path, size_t len, router_params_t *params);

/*
 * Finds the route for method + path. ROUTER_MATCH sets *index and params; ROUTER_WRONG_METHOD
 * writes the allowed methods ("GET, HEAD, POST") into allow (allow_cap bytes).
 */
router_result_t router_find(const router_route_t *routes, size_t count, const char *method, size_t method_len, const char *path,
                            size_t path_len, size_t *index, router_params_t *params, char *allow, size_t allow_cap);

#endif
