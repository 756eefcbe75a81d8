/*
 * body: reading JSON request bodies and writing JSON answers with jansson. Readers answer the
 * request themselves on bad input (415 wrong content type, 400 malformed JSON or not an object)
 * and return NULL; callers then just return.
 */
#ifndef TENANTD_HTTP_BODY_H
#define TENANTD_HTTP_BODY_H

#include <jansson.h>

#include "http/request.h"

/* Parses the body as a JSON object; NULL after answering 400/415. An empty body is NULL too unless allow_empty (then {}). */
json_t *body_json_object(http_request_t *hr, bool allow_empty);

/* The string member key of obj, or NULL when absent or not a string. */
const char *body_string(const json_t *obj, const char *key);

/* Serialises value compactly and sends it with status; takes ownership of value. */
void body_send_json(http_request_t *hr, int status, json_t *value);

/* The value of request header name (lowercase), or an empty iovec. */
h2o_iovec_t body_header(http_request_t *hr, const char *name);

#endif
