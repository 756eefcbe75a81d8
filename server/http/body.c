/*
 * body: JSON in and out (see body.h).
 */
#include "http/body.h"

#include <stdlib.h>
#include <string.h>

h2o_iovec_t body_header(http_request_t *hr, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&hr->req->headers, name, strlen(name), -1);
    if (i == -1)
        return h2o_iovec_init(NULL, 0);
    return hr->req->headers.entries[i].value;
}

static bool is_json_content_type(h2o_iovec_t ct)
{
    static const char want[] = "application/json";
    if (ct.len < sizeof(want) - 1 || strncasecmp(ct.base, want, sizeof(want) - 1) != 0)
        return false;
    return ct.len == sizeof(want) - 1 || ct.base[sizeof(want) - 1] == ';' || ct.base[sizeof(want) - 1] == ' ';
}

json_t *body_json_object(http_request_t *hr, bool allow_empty)
{
    h2o_iovec_t entity = hr->req->entity;
    if (entity.len == 0 || entity.base == NULL) {
        if (allow_empty)
            return json_object();
        http_send_problem(hr, PROBLEM_BAD_REQUEST, "a JSON object body is required");
        return NULL;
    }
    h2o_iovec_t ct = body_header(hr, "content-type");
    if (!is_json_content_type(ct)) {
        http_send_problem(hr, PROBLEM_UNSUPPORTED_MEDIA_TYPE, "send the body as application/json");
        return NULL;
    }
    json_error_t err;
    json_t *v = json_loadb(entity.base, entity.len, JSON_REJECT_DUPLICATES, &err);
    if (v == NULL) {
        char detail[200];
        snprintf(detail, sizeof(detail), "malformed JSON at line %d column %d: %s", err.line, err.column, err.text);
        http_send_problem(hr, PROBLEM_BAD_REQUEST, detail);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        http_send_problem(hr, PROBLEM_BAD_REQUEST, "the body must be a JSON object");
        return NULL;
    }
    return v;
}

const char *body_string(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

void body_send_json(http_request_t *hr, int status, json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(value);
    if (text == NULL) {
        http_send_problem(hr, PROBLEM_INTERNAL, NULL);
        return;
    }
    http_send_json(hr, status, text, strlen(text));
    free(text);
}
