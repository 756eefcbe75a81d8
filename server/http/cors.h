/*
 * cors: Cross-Origin Resource Sharing for browser clients of TENANTD_CORS_ORIGINS. An allowed
 * Origin gets its own value echoed (never "*", since credentials are allowed), with Vary: Origin;
 * a preflight (OPTIONS + Access-Control-Request-Method) is answered here, before routing: 204
 * with the allowed methods and headers for an allowed origin, 403 otherwise.
 */
#ifndef TENANTD_HTTP_CORS_H
#define TENANTD_HTTP_CORS_H

#include <stdbool.h>

#include "core/config.h"
#include "http/request.h"

/* True when origin (len bytes) is one of cfg's allowed origins. */
bool cors_origin_allowed(const config_t *cfg, const char *origin, size_t len);

/* Adds the CORS response headers for an allowed Origin; answers a preflight and returns true (handled). */
bool cors_apply(const config_t *cfg, http_request_t *hr);

#endif
