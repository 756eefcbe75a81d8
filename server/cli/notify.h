/*
 * notify: tells running tenantd instances that the tenant schemas changed (after tenantctl
 * migrate applied tenant migrations), over the Redis channel they all subscribe to.
 */
#ifndef TENANTD_CLI_NOTIFY_H
#define TENANTD_CLI_NOTIFY_H

#include "cli/cli.h"

/* Publishes what on CHANNEL_SCHEMA at REDIS_URL (2 s bound); returns the number of tenantd workers
 * that heard it, or -1 after printing a warning (the migration itself stands: SIGHUP does the same). */
long cli_notify_schema_change(const cli_env_t *env, const char *what);

#endif
