/*
 * realtime_api: POST /v1/realtime/emit — backends send an event to a user, a role, a room or the
 * whole tenant (CONTRACT.md §8).
 */
#ifndef TENANTD_API_REALTIME_API_H
#define TENANTD_API_REALTIME_API_H

#include "http/request.h"

/* POST /v1/realtime/emit {to, event, data} -> 202 {seq}. */
void realtime_emit(http_request_t *hr);

#endif
