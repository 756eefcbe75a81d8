/*
 * tenantd: the server's entry point. Loads and validates the configuration, the signing keys and
 * the policies (a bad value exits 2 with one line naming the variable), starts the password
 * workpool, then hands over to the HTTP server until SIGTERM/SIGINT.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "api/rest_api.h"
#include "api/routes.h"
#include "core/config.h"
#include "core/log.h"
#include "http/guard.h"
#include "http/server.h"
#include "infra/workpool.h"
#include "realtime/hub.h"
#include "realtime/sio.h"
#include "security/password.h"

/* Argon2id INTERACTIVE needs 64 MiB and ~70 ms of a core per hash: half the cores (at least one,
 * at most 4, i.e. 256 MiB) hash, so a login flood cannot starve the event loops. */
#define PASSWORD_THREADS_MAX 4
#define PASSWORD_QUEUE_MAX 256

static void on_reload(http_worker_t *w)
{
    if (w->index == 0)
        guard_reload_policies();
    rest_reload(w);
}

static void on_worker_start(http_worker_t *w)
{
    guard_worker_start(w);
    hub_worker_start(w);
    sio_worker_start(w);
}

static void on_drain(http_worker_t *w)
{
    hub_kill_all(w, "the server is shutting down");
}

static void on_worker_stop(http_worker_t *w)
{
    sio_worker_stop(w);
    hub_worker_stop(w);
    rest_worker_stop(w);
    guard_worker_stop(w);
}

/* Prints the route table as JSON, for the route x role matrix test and the OpenAPI check. */
static void print_routes(void)
{
    json_t *routes = json_array();
    for (size_t i = 0; i < api_route_count; i++)
        json_array_append_new(routes, json_pack("{s:s, s:s, s:s}", "method", api_routes[i].method, "pattern", api_routes[i].pattern,
                                                "permission", api_routes[i].permission));
    json_dumpf(routes, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(routes);
}

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        puts("usage: tenantd [--routes]\nConfigured entirely from the environment; see README.md (Configuration).\n"
             "--routes  print the route table (method, pattern, permission) as JSON and exit");
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--routes") == 0) {
        print_routes();
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "tenantd: unknown argument %s (see --help)\n", argv[1]);
        return 2;
    }
    config_t cfg;
    char err[512];
    if (config_load(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "tenantd: %s\n", err);
        return 2;
    }
    log_set_level(cfg.log_level);
    if (guard_init(&cfg) != 0)
        return 2;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int pw_threads = cores >= 2 ? (int)(cores / 2) : 1;
    if (pw_threads > PASSWORD_THREADS_MAX)
        pw_threads = PASSWORD_THREADS_MAX;
    if (password_init() != 0 || workpool_start(pw_threads, PASSWORD_QUEUE_MAX) != 0) {
        fprintf(stderr, "tenantd: cannot start the password workers\n");
        return 1;
    }
    sio_configure(cfg.eio_ping_interval_ms, cfg.eio_ping_timeout_ms);
    api_init();
    server_app_t app = {
        .routes = api_routes,
        .route_count = api_route_count,
        .on_reload = on_reload,
        .on_worker_start = on_worker_start,
        .on_worker_stop = on_worker_stop,
        .on_drain = on_drain,
        .guard = guard_check,
        .on_request_dispose = guard_request_dispose,
    };
    int rc = server_run(&cfg, &app);
    config_free(&cfg);
    return rc;
}
