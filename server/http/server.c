/*
 * server: worker threads, listeners, TLS, the request entry point and graceful shutdown
 * (see server.h).
 *
 * Start-up happens on the main thread so that every failure (a port in use, a bad certificate)
 * is reported before anything serves: it builds the h2o configuration, the TLS context and one
 * set of SO_REUSEPORT listening sockets per worker, then starts the workers and waits for
 * signals with sigwait. Workers watch two process-wide atomics from a 100 ms timer: the stop flag
 * and the reload generation.
 * Draining a worker: accept what is already queued, close the listeners, ask h2o to shut down
 * (HTTP/2 GOAWAY; HTTP/1 answers carry "connection: close"), then leave the loop once no request
 * is in flight and either no connection is open or none has had a request for a second (idle
 * keep-alive connections), or at the drain deadline at the latest.
 */
#include "http/server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <h2o/http2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/log.h"
#include "core/metrics.h"
#include "http/cors.h"

#define SERVER_QUIET_MS 1000
#define SERVER_MIN_DRAIN_MS 300
#define SERVER_MAX_QUERY 16384 /* CONTRACT.md §2: a longer query string is 414 */

const config_t *server_config;

static const server_app_t *server_app;
static h2o_globalconf_t server_globalconf;
static SSL_CTX *server_ssl_ctx;
static atomic_int server_stop_requested;
static atomic_uint server_reload_generation;
static struct worker_slot *server_slots;
static int server_slot_count;

typedef struct worker_slot {
    http_worker_t worker;
    pthread_t thread;
    int listen_fd, tls_listen_fd;
    bool exit_loop;
} worker_slot_t;

/* ---------------------------------------------------------------- requests */

typedef struct {
    http_request_t hr; /* first: handlers see only this */
    struct timespec started;
    char method[16];
    size_t method_len;
    char path[512];
    size_t path_len;
} request_slot_t;

static double elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - since->tv_sec) * 1e3 + (double)(now.tv_nsec - since->tv_nsec) / 1e6;
}

/* Runs when the request's memory pool is cleared: after the answer went out, or the client left. */
static void on_request_dispose(void *p)
{
    request_slot_t *slot = p;
    http_request_t *hr = &slot->hr;
    hr->disposed = true;
    if (hr->cancel != NULL) {
        void (*cancel)(http_request_t *) = hr->cancel;
        hr->cancel = NULL;
        cancel(hr);
    }
    if (server_app->on_request_dispose != NULL)
        server_app->on_request_dispose(hr);
    int status = hr->answered ? hr->req->res.status : 499; /* 499: the client went away first */
    double ms = elapsed_ms(&slot->started);
    metrics_observe_request(hr->route_index + 1, metrics_method_index(slot->method, slot->method_len), status, ms / 1e3);
    log_access(hr->request_id, slot->method, slot->method_len, slot->path, slot->path_len, status, ms, hr->tenant_slug,
               hr->req->version);
    hr->worker->inflight--;
    metrics_gauge_add(METRICS_GAUGE_INFLIGHT_REQS, -1);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_worker_t *w = server_worker_of(req);
    request_slot_t *slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), on_request_dispose);
    memset(slot, 0, sizeof(*slot));
    http_request_t *hr = &slot->hr;
    hr->req = req;
    hr->worker = w;
    hr->route_index = -1;
    clock_gettime(CLOCK_MONOTONIC, &slot->started);
    slot->method_len = req->method.len < sizeof(slot->method) ? req->method.len : sizeof(slot->method) - 1;
    memcpy(slot->method, req->method.base, slot->method_len);
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    slot->path_len = path_len < sizeof(slot->path) ? path_len : sizeof(slot->path);
    memcpy(slot->path, req->path.base, slot->path_len);
    w->inflight++;
    metrics_gauge_add(METRICS_GAUGE_INFLIGHT_REQS, 1);

    ssize_t in = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    size_t idlen = in != -1 ? reqid_choose(req->headers.entries[in].value.base, req->headers.entries[in].value.len, hr->request_id)
                            : reqid_choose(NULL, 0, hr->request_id);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 1, NULL, hr->request_id, idlen);

    if (req->entity.len > server_config->max_body_bytes) {
        http_send_problem(hr, PROBLEM_PAYLOAD_TOO_LARGE, "the request body is too large");
        return 0;
    }
    size_t query_len = req->query_at != SIZE_MAX ? req->path.len - req->query_at - 1 : 0;
    if (query_len > SERVER_MAX_QUERY || req->path.len - query_len > SERVER_MAX_QUERY) {
        http_send_problem(hr, PROBLEM_URI_TOO_LONG, "the query string is over 16 KiB");
        return 0;
    }

    if (cors_apply(server_config, hr))
        return 0;

    char allow[64];
    size_t index;
    const char *path = req->path_normalized.base;
    size_t plen = req->path_normalized.len;
    switch (router_find(server_app->routes, server_app->route_count, req->method.base, req->method.len, path, plen, &index,
                        &hr->params, allow, sizeof(allow))) {
    case ROUTER_NO_PATH:
        http_send_problem(hr, PROBLEM_NOT_FOUND, "no such resource");
        return 0;
    case ROUTER_WRONG_METHOD:
        http_add_header(hr, "allow", allow, strlen(allow));
        http_send_problem(hr, PROBLEM_METHOD_NOT_ALLOWED, "this method is not allowed on this resource");
        return 0;
    case ROUTER_MATCH:
        break;
    }
    hr->route_index = (int)index;
    const router_route_t *route = &server_app->routes[index];
    if (server_app->guard != NULL)
        server_app->guard(hr, route, route->handler);
    else
        route->handler(hr);
    return 0;
}

/* ---------------------------------------------------------------- connections */

static void on_conn_close(void *data)
{
    http_worker_t *w = data;
    w->open_conns--;
    metrics_gauge_add(METRICS_GAUGE_OPEN_CONNS, -1);
}

static void accept_one(http_worker_t *w, h2o_socket_t *listener, h2o_accept_ctx_t *actx)
{
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock == NULL)
        return;
    sock->on_close.cb = on_conn_close;
    sock->on_close.data = w;
    w->open_conns++;
    metrics_gauge_add(METRICS_GAUGE_OPEN_CONNS, 1);
    metrics_count(METRICS_COUNTER_CONNS_ACCEPTED);
    h2o_accept(actx, sock);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    http_worker_t *w = listener->data;
    accept_one(w, listener, &w->accept_ctx);
}

static void on_tls_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    http_worker_t *w = listener->data;
    accept_one(w, listener, &w->tls_accept_ctx);
}

/* Accepts what is queued on a listener, then closes it. */
static void close_listener(http_worker_t *w, h2o_socket_t **listener, h2o_accept_ctx_t *actx)
{
    if (*listener == NULL)
        return;
    for (int i = 0; i < 1024; i++) {
        size_t before = w->open_conns;
        accept_one(w, *listener, actx);
        if (w->open_conns == before)
            break;
    }
    h2o_socket_read_stop(*listener);
    h2o_socket_close(*listener);
    *listener = NULL;
}

/* ---------------------------------------------------------------- worker loop */

void server_reload_worker(http_worker_t *w)
{
    if (server_app->on_reload != NULL)
        server_app->on_reload(w);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    http_worker_t *w = H2O_STRUCT_FROM_MEMBER(http_worker_t, tick, entry);
    worker_slot_t *slot = H2O_STRUCT_FROM_MEMBER(worker_slot_t, worker, w);
    uint64_t now = h2o_now(w->ctx.loop);

    unsigned gen = atomic_load(&server_reload_generation);
    if (gen != w->reload_seen) {
        w->reload_seen = gen;
        server_reload_worker(w);
    }

    if (atomic_load(&server_stop_requested) && !w->draining) {
        w->draining = true;
        w->drain_deadline = now + (uint64_t)server_config->shutdown_timeout_ms;
        close_listener(w, &w->listener, &w->accept_ctx);
        close_listener(w, &w->tls_listener, &w->tls_accept_ctx);
        h2o_context_request_shutdown(&w->ctx);
        if (server_app->on_drain != NULL)
            server_app->on_drain(w);
    }
    if (w->draining) {
        /* stay a moment in any case: what closing sockets sent to Redis (presence, recovery
         * records) must get out before the connections are torn down */
        bool done = false, min_elapsed = now - (w->drain_deadline - (uint64_t)server_config->shutdown_timeout_ms) >= SERVER_MIN_DRAIN_MS;
        if (w->inflight == 0 && w->open_conns == 0)
            done = true;
        else if (w->inflight == 0) {
            if (w->quiet_since == 0)
                w->quiet_since = now;
            else if (now - w->quiet_since >= SERVER_QUIET_MS)
                done = true; /* only idle keep-alive connections remain */
        } else {
            w->quiet_since = 0;
        }
        if (now >= w->drain_deadline) {
            if (w->inflight > 0)
                log_warn(NULL, "drain deadline reached with %zu requests in flight on worker %d", w->inflight, w->index);
            done = true;
        }
        if (done && (min_elapsed || now >= w->drain_deadline)) {
            slot->exit_loop = true;
            return;
        }
    }
    h2o_timeout_link(w->ctx.loop, &w->ctx.hundred_ms_timeout, &w->tick);
}

static h2o_socket_t *listener_socket(http_worker_t *w, int fd, h2o_socket_cb cb)
{
    if (fd < 0)
        return NULL;
    h2o_socket_t *sock = h2o_evloop_socket_create(w->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    sock->data = w;
    h2o_socket_read_start(sock, cb);
    return sock;
}

static void *worker_main(void *arg)
{
    worker_slot_t *slot = arg;
    http_worker_t *w = &slot->worker;
    const config_t *cfg = server_config;

    h2o_context_init(&w->ctx, h2o_evloop_create(), &server_globalconf);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = server_globalconf.hosts;
    w->tls_accept_ctx = w->accept_ctx;
    w->tls_accept_ctx.ssl_ctx = server_ssl_ctx;

    db_pool_options_t dbo = {cfg->db_pool_size, cfg->db_queue_max, cfg->db_query_timeout_ms};
    w->db = db_pool_create(w->ctx.loop, cfg->database_url, &dbo);
    w->redis = redis_client_create(w->ctx.loop, &cfg->redis, cfg->redis_timeout_ms, REDIS_ROLE_COMMAND);
    w->redis_sub = redis_client_create(w->ctx.loop, &cfg->redis, cfg->redis_timeout_ms, REDIS_ROLE_SUBSCRIBER);
    w->reload_seen = atomic_load(&server_reload_generation);
    workpool_receiver_init(&w->workpool_rx, w->ctx.queue);
    if (server_app->on_worker_start != NULL)
        server_app->on_worker_start(w);

    w->listener = listener_socket(w, slot->listen_fd, on_accept);
    w->tls_listener = listener_socket(w, slot->tls_listen_fd, on_tls_accept);

    w->tick.cb = on_tick;
    h2o_timeout_link(w->ctx.loop, &w->ctx.hundred_ms_timeout, &w->tick);

    while (!slot->exit_loop)
        h2o_evloop_run(w->ctx.loop, 100);

    /* Open connections (idle keep-alives past the quiet period) die with the process; the pools
     * are closed so Postgres and Redis see a clean goodbye. */
    if (server_app->on_worker_stop != NULL)
        server_app->on_worker_stop(w);
    db_pool_destroy(w->db);
    redis_client_destroy(w->redis);
    redis_client_destroy(w->redis_sub);
    w->db = NULL;
    w->redis = w->redis_sub = NULL;
    return NULL;
}

http_worker_t *server_worker_at(int index)
{
    return index >= 0 && index < server_slot_count ? &server_slots[index].worker : NULL;
}

/* ---------------------------------------------------------------- start-up */

static int open_listener(const config_addr_t *addr, const char *var)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[8];
    snprintf(port, sizeof(port), "%u", addr->port);
    int gai = getaddrinfo(addr->host, port, &hints, &res);
    if (gai != 0) {
        fprintf(stderr, "%s: cannot resolve %s: %s\n", var, addr->host, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
        listen(fd, SOMAXCONN) != 0 || fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        fprintf(stderr, "%s: cannot listen on %s:%u: %s\n", var, addr->host, addr->port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int setup_tls(const config_t *cfg)
{
    server_ssl_ctx = SSL_CTX_new(TLS_server_method());
    if (server_ssl_ctx == NULL)
        return -1;
    SSL_CTX_set_min_proto_version(server_ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(server_ssl_ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(server_ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(server_ssl_ctx, cfg->tls_cert) != 1) {
        fprintf(stderr, "TENANTD_TLS_CERT: cannot load a PEM certificate from %s\n", cfg->tls_cert);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(server_ssl_ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(server_ssl_ctx) != 1) {
        fprintf(stderr, "TENANTD_TLS_KEY: cannot load a PEM private key matching the certificate from %s\n", cfg->tls_key);
        return -1;
    }
    /* h2 first, and http/1.1 named too (h2o's own list has only h2 variants, so an HTTP/1.1-only
     * client would get no ALPN answer at all) */
    static const h2o_iovec_t alpn[] = {{H2O_STRLIT("h2")}, {H2O_STRLIT("http/1.1")}, {NULL, 0}};
    h2o_ssl_register_alpn_protocols(server_ssl_ctx, alpn);
    return 0;
}

static void setup_globalconf(const config_t *cfg)
{
    h2o_config_init(&server_globalconf);
    server_globalconf.server_name = h2o_iovec_init(H2O_STRLIT("tenantd"));
    server_globalconf.max_request_entity_size = cfg->max_body_bytes;
    server_globalconf.http1.req_timeout = (uint64_t)cfg->idle_timeout_ms;
    server_globalconf.http2.idle_timeout = (uint64_t)cfg->idle_timeout_ms;
    server_globalconf.http2.graceful_shutdown_timeout = (uint64_t)(cfg->shutdown_timeout_ms > 0 ? cfg->shutdown_timeout_ms : 1);
    server_globalconf.http2.max_concurrent_requests_per_connection = (size_t)cfg->h2_max_streams;
    server_globalconf.handshake_timeout = 10000;

    h2o_hostconf_t *host = h2o_config_register_host(&server_globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_req;
    http_register_problem_filter(path);
    http_register_problem_filter(&host->fallback_path);
}

int server_run(const config_t *cfg, const server_app_t *app)
{
    char err[256];
    server_config = cfg;
    server_app = app;
    if (router_validate(app->routes, app->route_count, err, sizeof(err)) != 0) {
        fprintf(stderr, "routes: %s\n", err);
        return 2;
    }
    for (size_t i = 0; i < app->route_count && i + 1 < METRICS_MAX_ROUTES; i++)
        metrics_register_route((int)i + 1, app->routes[i].pattern);

    signal(SIGPIPE, SIG_IGN);
    setup_globalconf(cfg);
    if (cfg->tls_enabled && setup_tls(cfg) != 0)
        return 2;

    worker_slot_t *slots = calloc((size_t)cfg->threads, sizeof(*slots));
    server_slots = slots;
    server_slot_count = cfg->threads;
    for (int i = 0; i < cfg->threads; i++) {
        slots[i].worker.index = i;
        slots[i].listen_fd = open_listener(&cfg->listen, "TENANTD_LISTEN");
        slots[i].tls_listen_fd = cfg->tls_enabled ? open_listener(&cfg->tls_listen, "TENANTD_TLS_LISTEN") : -1;
        if (slots[i].listen_fd < 0 || (cfg->tls_enabled && slots[i].tls_listen_fd < 0))
            return 1;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    for (int i = 0; i < cfg->threads; i++) {
        if (pthread_create(&slots[i].thread, NULL, worker_main, &slots[i]) != 0) {
            fprintf(stderr, "TENANTD_THREADS: cannot start worker thread %d\n", i);
            return 1;
        }
    }
    log_info(NULL, "tenantd listening on http://%s:%u%s%s%s with %d threads", cfg->listen.host, cfg->listen.port,
             cfg->tls_enabled ? " and https://" : "", cfg->tls_enabled ? cfg->tls_listen.host : "",
             cfg->tls_enabled ? "" : "", cfg->threads);
    if (cfg->tls_enabled)
        log_info(NULL, "tls port %u", cfg->tls_listen.port);

    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            log_info(NULL, "SIGHUP: reloading");
            atomic_fetch_add(&server_reload_generation, 1);
            continue;
        }
        log_info(NULL, "%s: draining (deadline %d ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT", cfg->shutdown_timeout_ms);
        atomic_store(&server_stop_requested, 1);
        break;
    }
    for (int i = 0; i < cfg->threads; i++)
        pthread_join(slots[i].thread, NULL);
    log_info(NULL, "stopped");
    free(slots);
    return 0;
}
