/*
 * ops: the operations endpoints of CONTRACT.md §9 — liveness, readiness and Prometheus metrics.
 */
#ifndef TENANTD_API_OPS_H
#define TENANTD_API_OPS_H

#include "http/request.h"

/* Registers the statements ops uses; call once before workers start. */
void ops_init(void);

/* GET /healthz: 200 {"status":"ok"} while the process serves. */
void ops_healthz(http_request_t *hr);

/* GET /readyz: 200 when a real SELECT 1 and a Redis PING succeed, else 503 problem+json naming what is down. */
void ops_readyz(http_request_t *hr);

/* GET /metrics: Prometheus text format. */
void ops_metrics(http_request_t *hr);

#endif
