/*
 * cors: see cors.h.
 */
#include "http/cors.h"

#include <string.h>

#define CORS_ALLOW_METHODS "GET, HEAD, POST, PATCH, PUT, DELETE, OPTIONS"
#define CORS_ALLOW_HEADERS "authorization, content-type, prefer, range, if-none-match, x-csrf-token, x-request-id, x-tenant"
#define CORS_EXPOSE_HEADERS "x-request-id, content-range, etag, retry-after, location"

bool cors_origin_allowed(const config_t *cfg, const char *origin, size_t len)
{
    for (size_t i = 0; i < cfg->cors_origins_count; i++)
        if (strlen(cfg->cors_origins[i]) == len && memcmp(cfg->cors_origins[i], origin, len) == 0)
            return true;
    return false;
}

bool cors_apply(const config_t *cfg, http_request_t *hr)
{
    h2o_req_t *req = hr->req;
    ssize_t oi = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    bool preflight = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) &&
                     h2o_find_header_by_str(&req->headers, H2O_STRLIT("access-control-request-method"), -1) != -1;
    if (oi == -1)
        return false;
    h2o_iovec_t origin = req->headers.entries[oi].value;
    bool allowed = cors_origin_allowed(cfg, origin.base, origin.len);
    http_add_header(hr, "vary", "origin", 6);
    if (allowed) {
        http_add_header(hr, "access-control-allow-origin", origin.base, origin.len);
        http_add_header(hr, "access-control-allow-credentials", "true", 4);
    }
    if (!preflight) {
        if (allowed)
            http_add_header(hr, "access-control-expose-headers", CORS_EXPOSE_HEADERS, strlen(CORS_EXPOSE_HEADERS));
        return false;
    }
    if (!allowed) {
        http_send_problem(hr, PROBLEM_FORBIDDEN, "this Origin is not allowed");
        return true;
    }
    http_add_header(hr, "access-control-allow-methods", CORS_ALLOW_METHODS, strlen(CORS_ALLOW_METHODS));
    http_add_header(hr, "access-control-allow-headers", CORS_ALLOW_HEADERS, strlen(CORS_ALLOW_HEADERS));
    http_add_header(hr, "access-control-max-age", "600", 3);
    http_send_body(hr, 204, "text/plain", "", 0);
    return true;
}
