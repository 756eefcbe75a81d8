/*
 * request: answering requests (see request.h), plus a response filter that rewrites the
 * text/plain errors h2o produces on its own (413 for an oversized body, 400 for a malformed
 * request) into problem+json carrying a request id, so every error looks the same to clients.
 */
#include "http/request.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"

void http_add_header(http_request_t *hr, const char *name, const char *value, size_t value_len)
{
    if (hr->disposed)
        return;
    h2o_req_t *req = hr->req;
    h2o_iovec_t v = h2o_strdup(&req->pool, value, value_len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, v.base, v.len);
}

/* The standard reason phrase of a status (HTTP/1.1 status lines). */
static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    default:
        if (status >= 400)
            return problem_title(problem_for_status(status));
        return "";
    }
}

void http_send_body(http_request_t *hr, int status, const char *content_type, const char *body, size_t len)
{
    if (hr->disposed || hr->answered)
        return;
    hr->answered = true;
    h2o_req_t *req = hr->req;
    static h2o_generator_t generator = {NULL, NULL};
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_iovec_t buf = h2o_strdup(&req->pool, body, len);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        buf.len = 0;
    h2o_start_response(req, &generator);
    /* no buffer for an empty body: h2o 2.2.5's HTTP/1 writer otherwise follows the head with a
     * second, empty write (an extra writev and epoll round on every 204 and 304) */
    h2o_send(req, &buf, buf.len > 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
}

void http_send_json(http_request_t *hr, int status, const char *json, size_t len)
{
    http_send_body(hr, status, "application/json", json, len);
}

size_t http_render_problem(char *buf, size_t cap, problem_kind_t kind, int status, const char *detail, const char *request_id)
{
    size_t pos = 0;
    int n = snprintf(buf, cap, "{\"type\":\"urn:tenantd:problem:%s\",\"title\":\"%s\",\"status\":%d,\"detail\":\"",
                     problem_slug(kind), problem_title(kind), status);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    pos = (size_t)n;
    const char *d = detail != NULL ? detail : problem_title(kind);
    size_t reserve = 64 + strlen(request_id); /* room for the closing members */
    log_json_escape(buf, cap > reserve ? cap - reserve : 0, &pos, d, strlen(d));
    n = snprintf(buf + pos, cap - pos, "\",\"request_id\":\"%s\"}", request_id);
    if (n < 0 || (size_t)n >= cap - pos)
        return 0;
    return pos + (size_t)n;
}

void http_send_problem_retry(http_request_t *hr, problem_kind_t kind, const char *detail, int retry_after)
{
    if (hr->disposed || hr->answered)
        return;
    char body[1024];
    size_t len = http_render_problem(body, sizeof(body), kind, problem_status(kind), detail, hr->request_id);
    if (retry_after > 0) {
        char ra[16];
        int n = snprintf(ra, sizeof(ra), "%d", retry_after);
        http_add_header(hr, "retry-after", ra, (size_t)n);
    }
    http_send_body(hr, problem_status(kind), "application/problem+json", body, len);
}

void http_send_problem(http_request_t *hr, problem_kind_t kind, const char *detail)
{
    http_send_problem_retry(hr, kind, detail, 0);
}

/* ---------------------------------------------------------------- h2o error rewriting */

typedef struct {
    h2o_ostream_t super;
    h2o_iovec_t body;
    bool sent;
} problem_ostream_t;

static void problem_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *inbufs, size_t inbufcnt, h2o_send_state_t state)
{
    problem_ostream_t *os = (problem_ostream_t *)self;
    h2o_iovec_t out = os->body;
    size_t cnt = 1;
    if (os->sent || h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        cnt = 0;
    os->sent = true;
    h2o_ostream_send_next(&os->super, req, cnt ? &out : NULL, cnt, state);
}

static void on_setup_problem_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    /* Only errors h2o made itself: they are text/plain and carry no x-request-id of ours. */
    ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (req->res.status >= 400 && ct != -1 && h2o_memis(req->res.headers.entries[ct].value.base, req->res.headers.entries[ct].value.len,
                                                         H2O_STRLIT("text/plain; charset=utf-8")) &&
        h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1) == -1) {
        char id[REQID_MAX_LEN + 1];
        ssize_t in = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
        if (in != -1)
            reqid_choose(req->headers.entries[in].value.base, req->headers.entries[in].value.len, id);
        else
            reqid_generate(id);
        char body[512];
        problem_kind_t kind = problem_for_status(req->res.status);
        const char *detail = req->res.status == 413 ? "the request body is too large" : "the request could not be parsed";
        size_t len = http_render_problem(body, sizeof(body), kind, req->res.status, detail, id);
        req->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT("application/problem+json"));
        h2o_iovec_t idv = h2o_strdup(&req->pool, id, strlen(id));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 1, NULL, idv.base, idv.len);
        req->res.content_length = len;
        problem_ostream_t *os = (void *)h2o_add_ostream(req, sizeof(*os), slot);
        os->super.do_send = problem_do_send;
        os->body = h2o_strdup(&req->pool, body, len);
        os->sent = false;
        slot = &os->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

void http_register_problem_filter(h2o_pathconf_t *pathconf)
{
    h2o_filter_t *f = h2o_create_filter(pathconf, sizeof(*f));
    f->on_setup_ostream = on_setup_problem_ostream;
}
