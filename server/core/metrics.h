/*
 * metrics: process-wide counters, gauges and one latency histogram, rendered in the Prometheus
 * text format (version 0.0.4) for GET /metrics. Every update is a relaxed atomic add, so worker
 * threads record without locks; rendering reads a slightly moving snapshot, as Prometheus expects.
 * Request counters are labelled by route (the router's pattern, never the raw path: bounded
 * cardinality), method and status.
 */
#ifndef TENANTD_CORE_METRICS_H
#define TENANTD_CORE_METRICS_H

#include <stddef.h>

#define METRICS_MAX_ROUTES 128
#define METRICS_ROUTE_UNMATCHED 0 /* route index for requests that matched no route */

typedef enum {
    METRICS_GAUGE_DB_UP,          /* Postgres connections ready */
    METRICS_GAUGE_DB_DOWN,        /* Postgres connections connecting or broken */
    METRICS_GAUGE_DB_QUEUE,       /* queries waiting for a connection */
    METRICS_GAUGE_DB_INFLIGHT,    /* queries sent, awaiting results */
    METRICS_GAUGE_REDIS_UP,       /* Redis connections ready (command + subscriber, per thread) */
    METRICS_GAUGE_REDIS_DOWN,     /* Redis connections connecting or broken */
    METRICS_GAUGE_OPEN_CONNS,     /* accepted client connections still open */
    METRICS_GAUGE_INFLIGHT_REQS,  /* HTTP requests being handled */
    METRICS_GAUGE__COUNT
} metrics_gauge_t;

typedef enum {
    METRICS_COUNTER_DB_OK,       /* queries that completed */
    METRICS_COUNTER_DB_ERROR,    /* queries that failed (SQL error or connection loss) */
    METRICS_COUNTER_DB_TIMEOUT,  /* queries cancelled by the per-query timeout */
    METRICS_COUNTER_DB_REJECTED, /* queries refused because the wait queue was full or the pool down */
    METRICS_COUNTER_DB_READ_SHARED, /* read jobs sent sharing one sync with other reads (db_submit_read) */
    METRICS_COUNTER_DB_READ_RESENT, /* read jobs sent again alone because another job of their batch failed */
    METRICS_COUNTER_REST_CACHE_HIT,      /* data API reads answered from the Redis read cache */
    METRICS_COUNTER_REST_CACHE_MISS,     /* reads looked up in the cache and not found (then stored) */
    METRICS_COUNTER_REST_CACHE_FIRST,    /* first sightings of a query: not looked up, not stored */
    METRICS_COUNTER_REDIS_OK,
    METRICS_COUNTER_REDIS_ERROR,
    METRICS_COUNTER_REDIS_TIMEOUT,
    METRICS_COUNTER_CONNS_ACCEPTED,
    METRICS_COUNTER__COUNT
} metrics_counter_t;

/* Names route index idx (1..METRICS_MAX_ROUTES-1) for the route label; call before serving. */
void metrics_register_route(int idx, const char *name);

/* Maps an HTTP method to the method label index. */
int metrics_method_index(const char *method, size_t len);

/* Records one finished request. */
void metrics_observe_request(int route, int method, int status, double seconds);

/* Adds delta to a gauge. */
void metrics_gauge_add(metrics_gauge_t gauge, long delta);

/* Reads a gauge. */
long metrics_gauge_get(metrics_gauge_t gauge);

/* Adds one to a counter. */
void metrics_count(metrics_counter_t counter);

/* Renders everything as Prometheus text; returns a malloc'd buffer (caller frees) and its length. */
char *metrics_render(size_t *len);

#endif
