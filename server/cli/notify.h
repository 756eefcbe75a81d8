/*
 * notify: tells running tenantd instances what tenantctl changed — the tenant schemas (migrate) or
 * a tenant (suspend, resume, drop) — over the Redis channels they all subscribe to.
 */
#ifndef TENANTD_CLI_NOTIFY_H
#define TENANTD_CLI_NOTIFY_H

#include "cli/cli.h"

/* Publishes what on CHANNEL_SCHEMA at REDIS_URL (2 s bound); returns the number of tenantd workers
 * that heard it, or -1 after printing a warning (the migration itself stands: SIGHUP does the same). */
long cli_notify_schema_change(const cli_env_t *env, const char *what);

/* Publishes tenant_id on CHANNEL_TENANTS after its status changed or it was dropped: running servers
 * forget their cached copy at once (else within the tenant cache's second); as above for the result. */
long cli_notify_tenant_change(const cli_env_t *env, const char *tenant_id);

#endif
