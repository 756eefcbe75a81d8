/*
 * openapi: the OpenAPI 3.1 document of the HTTP API (CONTRACT.md §9).
 */
#ifndef TENANTD_API_OPENAPI_H
#define TENANTD_API_OPENAPI_H

#include "http/request.h"

/* GET /openapi.json: every route of the route table plus one path per data API table. */
void openapi_document(http_request_t *hr);

#endif
