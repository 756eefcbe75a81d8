/*
 * schemadump: `tenantctl schema dump [--out DIR]` — writes DIR/control.sql and DIR/tenant.sql
 * (default DIR: schema), a normalized, deterministic description of what the migrations produce.
 *
 * Each set is applied to a scratch schema inside a transaction that is rolled back, then described
 * from pg_catalog (sequences, tables with columns/defaults, constraints, indexes, triggers, views,
 * functions), sorted by name, unqualified. Unlike pg_dump the output does not depend on the server
 * version's dump format or on object creation order, so a test can compare it with the committed
 * snapshot (drift check).
 */
#ifndef TENANTD_CLI_SCHEMADUMP_H
#define TENANTD_CLI_SCHEMADUMP_H

#include "cli/cli.h"

/* `tenantctl schema dump [--out DIR]`; returns an exit code. */
int schemadump_cmd(cli_env_t *env, int argc, char **argv);

#endif
