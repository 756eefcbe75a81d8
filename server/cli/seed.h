/*
 * seed: `tenantctl seed [DIR]` — loads the development fixtures (DIR/tenants.json, format in
 * fixtures/README.md) idempotently: users with argon2id password hashes, tenants, memberships
 * and sample orders, in one transaction.
 */
#ifndef TENANTD_CLI_SEED_H
#define TENANTD_CLI_SEED_H

#include "cli/cli.h"

/* `tenantctl seed [DIR]`; returns an exit code. */
int seed_cmd(cli_env_t *env, int argc, char **argv);

#endif
