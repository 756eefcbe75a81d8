/*
 * metrics: storage and Prometheus rendering (see metrics.h). Request counts live in a fixed
 * array [route][method][status slot]; statuses outside the known list share an "other" slot
 * rendered with status="other".
 */
#include "core/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_names[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"};
#define METHOD_COUNT (sizeof(method_names) / sizeof(method_names[0]))

static const int known_statuses[] = {101, 200, 201, 204, 206, 304, 400, 401, 403, 404, 405, 409, 412,
                                     413, 414, 415, 422, 429, 431, 500, 502, 503, 504};
#define STATUS_COUNT (sizeof(known_statuses) / sizeof(known_statuses[0]) + 1) /* + other */

static const double bucket_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define BUCKET_COUNT (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

static const char *route_names[METRICS_MAX_ROUTES] = {"unmatched"};
static atomic_ulong request_counts[METRICS_MAX_ROUTES][METHOD_COUNT][STATUS_COUNT];
static atomic_ulong latency_buckets[BUCKET_COUNT + 1];
static atomic_ulong latency_sum_us;
static atomic_ulong latency_count;
static atomic_long gauges[METRICS_GAUGE__COUNT];
static atomic_ulong counters[METRICS_COUNTER__COUNT];

void metrics_register_route(int idx, const char *name)
{
    if (idx > 0 && idx < METRICS_MAX_ROUTES)
        route_names[idx] = name;
}

int metrics_method_index(const char *method, size_t len)
{
    for (size_t i = 0; i + 1 < METHOD_COUNT; i++)
        if (strlen(method_names[i]) == len && memcmp(method_names[i], method, len) == 0)
            return (int)i;
    return (int)METHOD_COUNT - 1;
}

static size_t status_slot(int status)
{
    for (size_t i = 0; i + 1 < STATUS_COUNT; i++)
        if (known_statuses[i] == status)
            return i;
    return STATUS_COUNT - 1;
}

void metrics_observe_request(int route, int method, int status, double seconds)
{
    if (route < 0 || route >= METRICS_MAX_ROUTES)
        route = METRICS_ROUTE_UNMATCHED;
    if (method < 0 || (size_t)method >= METHOD_COUNT)
        method = METHOD_COUNT - 1;
    atomic_fetch_add_explicit(&request_counts[route][method][status_slot(status)], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < BUCKET_COUNT && seconds > bucket_bounds[b])
        b++;
    atomic_fetch_add_explicit(&latency_buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&latency_sum_us, (unsigned long)(seconds * 1e6), memory_order_relaxed);
    atomic_fetch_add_explicit(&latency_count, 1, memory_order_relaxed);
}

void metrics_gauge_add(metrics_gauge_t gauge, long delta)
{
    atomic_fetch_add_explicit(&gauges[gauge], delta, memory_order_relaxed);
}

long metrics_gauge_get(metrics_gauge_t gauge)
{
    return atomic_load_explicit(&gauges[gauge], memory_order_relaxed);
}

void metrics_count(metrics_counter_t counter)
{
    atomic_fetch_add_explicit(&counters[counter], 1, memory_order_relaxed);
}

/* A growable text buffer for rendering. */
typedef struct {
    char *buf;
    size_t len, cap;
} textbuf_t;

static void tb_printf(textbuf_t *tb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(textbuf_t *tb, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(tb->buf + tb->len, tb->cap - tb->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < tb->cap - tb->len) {
            tb->len += (size_t)n;
            return;
        }
        size_t ncap = tb->cap * 2 + (size_t)n;
        char *nb = realloc(tb->buf, ncap);
        if (nb == NULL)
            abort();
        tb->buf = nb;
        tb->cap = ncap;
    }
}

static void render_gauge(textbuf_t *tb, const char *name, const char *help, const char *labels, long value)
{
    tb_printf(tb, "# HELP %s %s\n# TYPE %s gauge\n%s%s %ld\n", name, help, name, name, labels, value);
}

char *metrics_render(size_t *len)
{
    textbuf_t tb = {malloc(16384), 0, 16384};
    if (tb.buf == NULL)
        abort();

    tb_printf(&tb, "# HELP tenantd_http_requests_total HTTP requests by route pattern, method and status.\n"
                   "# TYPE tenantd_http_requests_total counter\n");
    for (int r = 0; r < METRICS_MAX_ROUTES; r++) {
        if (route_names[r] == NULL)
            continue;
        for (size_t m = 0; m < METHOD_COUNT; m++) {
            for (size_t s = 0; s < STATUS_COUNT; s++) {
                unsigned long v = atomic_load_explicit(&request_counts[r][m][s], memory_order_relaxed);
                if (v == 0)
                    continue;
                char status[16];
                if (s + 1 < STATUS_COUNT)
                    snprintf(status, sizeof(status), "%d", known_statuses[s]);
                else
                    strcpy(status, "other");
                tb_printf(&tb, "tenantd_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %lu\n", route_names[r],
                          method_names[m], status, v);
            }
        }
    }

    tb_printf(&tb, "# HELP tenantd_http_request_duration_seconds Time from request start to response end.\n"
                   "# TYPE tenantd_http_request_duration_seconds histogram\n");
    unsigned long cumulative = 0;
    for (size_t b = 0; b <= BUCKET_COUNT; b++) {
        cumulative += atomic_load_explicit(&latency_buckets[b], memory_order_relaxed);
        if (b < BUCKET_COUNT)
            tb_printf(&tb, "tenantd_http_request_duration_seconds_bucket{le=\"%g\"} %lu\n", bucket_bounds[b], cumulative);
        else
            tb_printf(&tb, "tenantd_http_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n", cumulative);
    }
    tb_printf(&tb, "tenantd_http_request_duration_seconds_sum %.6f\n",
              (double)atomic_load_explicit(&latency_sum_us, memory_order_relaxed) / 1e6);
    tb_printf(&tb, "tenantd_http_request_duration_seconds_count %lu\n", cumulative);

    tb_printf(&tb, "# HELP tenantd_db_connections Postgres connections by state.\n# TYPE tenantd_db_connections gauge\n"
                   "tenantd_db_connections{state=\"up\"} %ld\ntenantd_db_connections{state=\"down\"} %ld\n",
              metrics_gauge_get(METRICS_GAUGE_DB_UP), metrics_gauge_get(METRICS_GAUGE_DB_DOWN));
    render_gauge(&tb, "tenantd_db_queue_depth", "Queries waiting for a Postgres connection.", "",
                 metrics_gauge_get(METRICS_GAUGE_DB_QUEUE));
    render_gauge(&tb, "tenantd_db_queries_in_flight", "Queries sent to Postgres awaiting results.", "",
                 metrics_gauge_get(METRICS_GAUGE_DB_INFLIGHT));
    tb_printf(&tb, "# HELP tenantd_db_queries_total Postgres queries by result.\n# TYPE tenantd_db_queries_total counter\n"
                   "tenantd_db_queries_total{result=\"ok\"} %lu\ntenantd_db_queries_total{result=\"error\"} %lu\n"
                   "tenantd_db_queries_total{result=\"timeout\"} %lu\ntenantd_db_queries_total{result=\"rejected\"} %lu\n",
              atomic_load(&counters[METRICS_COUNTER_DB_OK]), atomic_load(&counters[METRICS_COUNTER_DB_ERROR]),
              atomic_load(&counters[METRICS_COUNTER_DB_TIMEOUT]), atomic_load(&counters[METRICS_COUNTER_DB_REJECTED]));
    tb_printf(&tb, "# HELP tenantd_db_read_batching_total Read queries that shared one pipeline sync with others, and those sent again alone.\n"
                   "# TYPE tenantd_db_read_batching_total counter\n"
                   "tenantd_db_read_batching_total{event=\"shared\"} %lu\ntenantd_db_read_batching_total{event=\"resent\"} %lu\n",
              atomic_load(&counters[METRICS_COUNTER_DB_READ_SHARED]), atomic_load(&counters[METRICS_COUNTER_DB_READ_RESENT]));
    tb_printf(&tb, "# HELP tenantd_rest_read_cache_total Data API reads by read-cache outcome (first: a query's first sighting, sent to Postgres without asking or filling the cache).\n"
                   "# TYPE tenantd_rest_read_cache_total counter\n"
                   "tenantd_rest_read_cache_total{result=\"hit\"} %lu\ntenantd_rest_read_cache_total{result=\"miss\"} %lu\n"
                   "tenantd_rest_read_cache_total{result=\"first\"} %lu\n",
              atomic_load(&counters[METRICS_COUNTER_REST_CACHE_HIT]), atomic_load(&counters[METRICS_COUNTER_REST_CACHE_MISS]),
              atomic_load(&counters[METRICS_COUNTER_REST_CACHE_FIRST]));
    long redis_up = metrics_gauge_get(METRICS_GAUGE_REDIS_UP), redis_down = metrics_gauge_get(METRICS_GAUGE_REDIS_DOWN);
    tb_printf(&tb, "# HELP tenantd_redis_connections Redis connections by state.\n# TYPE tenantd_redis_connections gauge\n"
                   "tenantd_redis_connections{state=\"up\"} %ld\ntenantd_redis_connections{state=\"down\"} %ld\n",
              redis_up, redis_down);
    render_gauge(&tb, "tenantd_redis_up", "1 when every Redis connection of the process is ready.", "",
                 redis_down == 0 && redis_up > 0 ? 1 : 0);
    tb_printf(&tb, "# HELP tenantd_redis_commands_total Redis commands by result.\n# TYPE tenantd_redis_commands_total counter\n"
                   "tenantd_redis_commands_total{result=\"ok\"} %lu\ntenantd_redis_commands_total{result=\"error\"} %lu\n"
                   "tenantd_redis_commands_total{result=\"timeout\"} %lu\n",
              atomic_load(&counters[METRICS_COUNTER_REDIS_OK]), atomic_load(&counters[METRICS_COUNTER_REDIS_ERROR]),
              atomic_load(&counters[METRICS_COUNTER_REDIS_TIMEOUT]));
    render_gauge(&tb, "tenantd_open_connections", "Client connections currently open.", "",
                 metrics_gauge_get(METRICS_GAUGE_OPEN_CONNS));
    render_gauge(&tb, "tenantd_http_requests_in_flight", "HTTP requests being handled.", "",
                 metrics_gauge_get(METRICS_GAUGE_INFLIGHT_REQS));
    tb_printf(&tb, "# HELP tenantd_connections_accepted_total Client connections accepted.\n"
                   "# TYPE tenantd_connections_accepted_total counter\ntenantd_connections_accepted_total %lu\n",
              atomic_load(&counters[METRICS_COUNTER_CONNS_ACCEPTED]));
    *len = tb.len;
    return tb.buf;
}
