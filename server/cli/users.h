/*
 * users: `tenantctl user create --email E --tenant SLUG --role R[,R...]` — creates (or updates) a
 * user with a password read from stdin, stored as an argon2id hash, and makes it a member of the
 * tenant with exactly those roles (CONTRACT.md §10).
 */
#ifndef TENANTD_CLI_USERS_H
#define TENANTD_CLI_USERS_H

#include "cli/cli.h"

/* `tenantctl user SUBCOMMAND ...` (argv starts after "user"); returns an exit code. */
int users_cmd(cli_env_t *env, int argc, char **argv);

#endif
