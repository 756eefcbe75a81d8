/*
 * backup: `tenantctl backup [--out FILE]` and `tenantctl restore FILE` (CONTRACT.md §10) — the
 * whole database (control plane and every tenant schema) as a pg_dump custom-format archive.
 *
 * Roles are cluster-wide and not part of a pg_dump, so restore does not take privileges from the
 * archive: it restores objects and data (--no-owner --no-acl, one transaction) into a database
 * without a `tenantd` schema, then re-creates every tenant's NOLOGIN role and re-applies the grant
 * scheme (README "tenantctl and migrations") for the server role of DATABASE_URL. pg_dump and
 * pg_restore get the connection through PG* environment variables, never on their command line,
 * so the password does not show in the process list.
 */
#ifndef TENANTD_CLI_BACKUP_H
#define TENANTD_CLI_BACKUP_H

#include "cli/cli.h"

/* `tenantctl backup [--out FILE]`; returns an exit code. */
int backup_cmd(cli_env_t *env, int argc, char **argv);

/* `tenantctl restore FILE`; returns an exit code. */
int backup_restore_cmd(cli_env_t *env, int argc, char **argv);

#endif
