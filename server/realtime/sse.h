/*
 * sse: the realtime stream over Server-Sent Events (CONTRACT.md §8), GET /v1/events?rooms=a,b.
 */
#ifndef TENANTD_REALTIME_SSE_H
#define TENANTD_REALTIME_SSE_H

#include "http/request.h"

/* GET /v1/events?rooms=a,b[&last_event_id=N]: streams the rooms' events until the client leaves. */
void sse_events(http_request_t *hr);

#endif
