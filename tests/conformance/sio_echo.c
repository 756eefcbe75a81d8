/*
 * sio_echo: the echo server the official Engine.IO and Socket.IO conformance suites run against
 * (the test-suite/ folders of socketio/engine.io-protocol and socketio/socket.io-protocol), built
 * from tenantd's own protocol module, server/realtime/sio.c, in its echo mode.
 *
 * It listens on TENANTD_LISTEN (default 127.0.0.1:3000, cleartext only) with pingInterval 300 ms
 * and pingTimeout 200 ms (TENANTD_EIO_PING_INTERVAL_MS / _TIMEOUT_MS override them) and routes
 * /engine.io/ (Engine.IO echo) and /socket.io/ (Socket.IO echo) to sio_handle, with no guard.
 * The workers start exactly as tenantd's do; they also open a Postgres pool and Redis clients,
 * which nothing here uses: without Postgres or Redis they just keep retrying in the background.
 * Used by tests/conformance/run.sh and tests/integration/sio-protocol.test.mjs; never deployed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "http/guard.h"
#include "http/router.h"
#include "http/server.h"
#include "realtime/hub.h"
#include "realtime/sio.h"

static const router_route_t echo_routes[] = {
    {"GET", "/socket.io/", sio_handle, ROUTER_PUBLIC},
    {"POST", "/socket.io/", sio_handle, ROUTER_PUBLIC},
    {"PUT", "/socket.io/", sio_handle, ROUTER_PUBLIC}, /* answered 400 by sio_handle, as the suites expect */
    {"GET", "/engine.io/", sio_handle, ROUTER_PUBLIC},
    {"POST", "/engine.io/", sio_handle, ROUTER_PUBLIC},
    {"PUT", "/engine.io/", sio_handle, ROUTER_PUBLIC},
};

static void on_worker_start(http_worker_t *w)
{
    guard_worker_start(w);
    hub_worker_start(w);
    sio_worker_start(w);
}

static void on_worker_stop(http_worker_t *w)
{
    sio_worker_stop(w);
    hub_worker_stop(w);
    guard_worker_stop(w);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        fputs("usage: sio_echo\nThe conformance-suite echo server (see tests/conformance/README.md); configured from the\n"
              "environment: TENANTD_LISTEN (default 127.0.0.1:3000), TENANTD_THREADS, TENANTD_EIO_PING_INTERVAL_MS (300),\n"
              "TENANTD_EIO_PING_TIMEOUT_MS (200), TENANTD_LOG_LEVEL.\n",
              strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ? stdout : stderr);
        return strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ? 0 : 2;
    }
    setenv("TENANTD_LISTEN", "127.0.0.1:3000", 0);
    setenv("TENANTD_TLS_LISTEN", "", 1);
    setenv("TENANTD_EIO_PING_INTERVAL_MS", "300", 0);
    setenv("TENANTD_EIO_PING_TIMEOUT_MS", "200", 0);
    config_t cfg;
    char err[512];
    if (config_load(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "sio_echo: %s\n", err);
        return 2;
    }
    log_set_level(cfg.log_level);
    sio_configure(cfg.eio_ping_interval_ms, cfg.eio_ping_timeout_ms);
    sio_set_echo_mode(true);
    server_app_t app = {
        .routes = echo_routes,
        .route_count = sizeof(echo_routes) / sizeof(echo_routes[0]),
        .on_worker_start = on_worker_start,
        .on_worker_stop = on_worker_stop,
    };
    int rc = server_run(&cfg, &app);
    config_free(&cfg);
    return rc;
}
