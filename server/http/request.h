/*
 * request: the per-request context every handler works with, and the ways to answer.
 *
 * http_request_t lives in the h2o request's memory pool and is disposed with it; disposal writes
 * the access-log line and the metrics, and runs the handler's cancel hook (so a database or
 * Redis callback never touches a request the client has already reset). Answers always carry
 * content-length and x-request-id; errors are application/problem+json (RFC 9457).
 */
#ifndef TENANTD_HTTP_REQUEST_H
#define TENANTD_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>

#include "core/problem.h"
#include "core/reqid.h"
#include "http/router.h"

struct http_worker;
struct guard_principal;

typedef struct http_request {
    h2o_req_t *req;
    struct http_worker *worker;
    char request_id[REQID_MAX_LEN + 1];
    int route_index; /* into the route table, or -1 */
    router_params_t params;
    const char *tenant_slug; /* for the access log once known, or NULL */
    struct guard_principal *principal; /* the authenticated caller, set by the guard; NULL on public routes */
    bool answered;
    bool disposed; /* the client went away: answer functions become no-ops */
    /* set by a handler that waits on a callback; called once if the request is disposed first */
    void (*cancel)(struct http_request *hr);
    void *handler_data;
    void *guard_data; /* the guard's own state (http/guard.c); handlers leave it alone */
} http_request_t;

/* Sends a JSON body (copied) with status; adds content-type application/json. */
void http_send_json(http_request_t *hr, int status, const char *json, size_t len);

/* Sends a body with the given content type (copied). */
void http_send_body(http_request_t *hr, int status, const char *content_type, const char *body, size_t len);

/* Sends a problem+json answer of kind with a detail (may be NULL: the title is used). */
void http_send_problem(http_request_t *hr, problem_kind_t kind, const char *detail);

/* Like http_send_problem, with a retry-after header (seconds). */
void http_send_problem_retry(http_request_t *hr, problem_kind_t kind, const char *detail, int retry_after);

/* Adds a response header before answering (name lowercase; value copied). */
void http_add_header(http_request_t *hr, const char *name, const char *value, size_t value_len);

/* Renders a problem document into buf (cap bytes); returns its length. Exposed for tests. */
size_t http_render_problem(char *buf, size_t cap, problem_kind_t kind, int status, const char *detail, const char *request_id);

/* Registers the filter that turns error responses generated inside h2o (e.g. 413, 400) into problem+json. */
void http_register_problem_filter(h2o_pathconf_t *pathconf);

#endif
