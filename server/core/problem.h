/*
 * problem: the catalogue of error kinds the API answers with (RFC 9457 problem details). One
 * X-macro row per kind: its enum name, HTTP status, title and the slug used in its "type" URI
 * (urn:tenantd:problem:<slug>). Handlers name a kind and a detail; http/response.c renders it.
 */
#ifndef TENANTD_CORE_PROBLEM_H
#define TENANTD_CORE_PROBLEM_H

#define PROBLEM_LIST(X)                                                                                                            \
    X(BAD_REQUEST, 400, "Bad Request", "bad-request")                                                                              \
    X(UNAUTHORIZED, 401, "Unauthorized", "unauthorized")                                                                           \
    X(FORBIDDEN, 403, "Forbidden", "forbidden")                                                                                    \
    X(NOT_FOUND, 404, "Not Found", "not-found")                                                                                    \
    X(METHOD_NOT_ALLOWED, 405, "Method Not Allowed", "method-not-allowed")                                                         \
    X(CONFLICT, 409, "Conflict", "conflict")                                                                                       \
    X(PRECONDITION_FAILED, 412, "Precondition Failed", "precondition-failed")                                                      \
    X(PAYLOAD_TOO_LARGE, 413, "Content Too Large", "payload-too-large")                                                            \
    X(URI_TOO_LONG, 414, "URI Too Long", "uri-too-long")                                                                           \
    X(UNSUPPORTED_MEDIA_TYPE, 415, "Unsupported Media Type", "unsupported-media-type")                                             \
    X(UNPROCESSABLE, 422, "Unprocessable Content", "validation-failed")                                                            \
    X(TOO_MANY_REQUESTS, 429, "Too Many Requests", "rate-limited")                                                                 \
    X(HEADERS_TOO_LARGE, 431, "Request Header Fields Too Large", "headers-too-large")                                              \
    X(INTERNAL, 500, "Internal Server Error", "internal")                                                                          \
    X(UNAVAILABLE, 503, "Service Unavailable", "unavailable")                                                                      \
    X(GATEWAY_TIMEOUT, 504, "Gateway Timeout", "timeout")

typedef enum {
#define PROBLEM_ENUM(name, status, title, slug) PROBLEM_##name,
    PROBLEM_LIST(PROBLEM_ENUM)
#undef PROBLEM_ENUM
        PROBLEM__COUNT
} problem_kind_t;

/* HTTP status of a kind. */
int problem_status(problem_kind_t kind);
/* Title of a kind (a static string). */
const char *problem_title(problem_kind_t kind);
/* Slug of a kind for its type URI (a static string). */
const char *problem_slug(problem_kind_t kind);
/* The kind whose status is status, or PROBLEM_INTERNAL when none matches (used for errors h2o made). */
problem_kind_t problem_for_status(int status);

#endif
