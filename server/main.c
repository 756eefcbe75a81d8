/*
 * tenantd: the server's entry point. Loads and validates the configuration (a bad value exits 2
 * with one line naming the variable), then hands over to the HTTP server until SIGTERM/SIGINT.
 */
#include <stdio.h>
#include <string.h>

#include "api/routes.h"
#include "core/config.h"
#include "core/log.h"
#include "http/server.h"

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        puts("usage: tenantd\nConfigured entirely from the environment; see README.md (Configuration).");
        return 0;
    }
    config_t cfg;
    char err[512];
    if (config_load(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "tenantd: %s\n", err);
        return 2;
    }
    log_set_level(cfg.log_level);
    api_init();
    server_app_t app = {api_routes, api_route_count, NULL};
    int rc = server_run(&cfg, &app);
    config_free(&cfg);
    return rc;
}
