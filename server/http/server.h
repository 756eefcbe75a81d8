/*
 * server: the HTTP front of tenantd — worker threads, listeners, TLS, request entry and shutdown.
 *
 * server_run starts one worker per configured thread. Each worker owns an h2o context and event
 * loop, its own SO_REUSEPORT listeners (cleartext HTTP/1.1 + h2c by prior knowledge, and TLS with
 * ALPN h2/http/1.1), its Postgres pool and its Redis command and subscriber connections; workers
 * share nothing mutable. The main thread only waits for signals: SIGTERM/SIGINT drain and stop
 * (listeners closed, HTTP/2 GOAWAY, in-flight requests finished, idle keep-alive connections closed
 * after a short quiet period or the drain deadline), SIGHUP calls the reload hook on every worker.
 */
#ifndef TENANTD_HTTP_SERVER_H
#define TENANTD_HTTP_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>

#include "core/config.h"
#include "http/request.h"
#include "http/router.h"
#include "infra/db.h"
#include "infra/redis.h"
#include "infra/workpool.h"

/* One event-loop thread and everything it owns. */
typedef struct http_worker {
    int index;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx, tls_accept_ctx;
    h2o_socket_t *listener, *tls_listener;
    db_pool_t *db;
    redis_client_t *redis;     /* commands */
    redis_client_t *redis_sub; /* pub/sub */
    struct guard_state *guard; /* per-thread token and tenant caches (http/guard.c) */
    void *api_state;           /* per-thread state of the application layer (api/) */
    void *realtime;            /* per-thread realtime hub (realtime/hub.c) */
    void *sio;                 /* per-thread Engine.IO/Socket.IO state (realtime/sio.c) */
    workpool_receiver_t workpool_rx; /* where this loop's workpool jobs report back */
    size_t inflight;           /* requests of this worker not yet disposed */
    size_t open_conns;         /* client connections of this worker */
    h2o_timeout_entry_t tick;  /* 100 ms housekeeping: shutdown and reload flags */
    bool draining;
    uint64_t drain_deadline, quiet_since;
    unsigned reload_seen;
} http_worker_t;

/* What the server needs from the application layer. */
typedef struct {
    const router_route_t *routes;
    size_t route_count;
    void (*on_reload)(http_worker_t *worker); /* SIGHUP, on each worker's thread; may be NULL */
    void (*on_worker_start)(http_worker_t *worker); /* on each worker's thread before it serves; may be NULL */
    void (*on_worker_stop)(http_worker_t *worker);  /* on each worker's thread after its loop ended; may be NULL */
    void (*on_drain)(http_worker_t *worker);        /* when draining starts (close long-lived streams); may be NULL */
    /* runs before the route's handler: answers (401/403/503) or calls next; NULL = call the handler directly */
    void (*guard)(http_request_t *hr, const router_route_t *route, router_handler_t next);
    void (*on_request_dispose)(http_request_t *hr); /* releases what the guard attached; may be NULL */
} server_app_t;

/* The loaded configuration, readable from every thread once server_run has started. */
extern const config_t *server_config;

/* Runs the server until SIGTERM/SIGINT; returns the process exit code (0 after a clean drain, 1 on a start-up failure). */
int server_run(const config_t *cfg, const server_app_t *app);

/* Runs the app's reload hook (what SIGHUP runs on every worker) on w alone; call on w's own thread. */
void server_reload_worker(http_worker_t *w);

/* Worker number index (0 .. threads-1), or NULL; workers exist from server_run until it returns. */
http_worker_t *server_worker_at(int index);

/* The worker that runs the calling request's loop. */
static inline http_worker_t *server_worker_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(http_worker_t, ctx, req->conn->ctx);
}

#endif
