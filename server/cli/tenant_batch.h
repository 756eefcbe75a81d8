/*
 * tenant_batch: `tenantctl tenant create --from-file FILE [--jobs N] [--timings FILE] [--dry-run]`
 * — many tenants from one list (core/tenantline: `slug<TAB>name[<TAB>owner-email]` a line, `-` for
 * stdin) over N persistent connections.
 *
 * Every line is checked before anything is created (format, slug, name, e-mail, a slug repeated in
 * the file, a slug that already exists); a refused line is reported with its number and skipped.
 * Each tenant is then created in its own transaction by the same code as `tenant create SLUG`
 * (tenants_create and tenants_member: row, role, schema, released migrations, grants, owner), so
 * a failing tenant leaves nothing behind and the others go on. The run ends with a summary that
 * includes the per-tenant creation time (p50, p99) measured inside tenantctl, and exits 1 when
 * any line was refused or failed.
 */
#ifndef TENANTD_CLI_TENANT_BATCH_H
#define TENANTD_CLI_TENANT_BATCH_H

#include "cli/cli.h"

/* True when argv[0..argc) (after "tenant create") asks for the batch form (--from-file). */
bool tenant_batch_requested(int argc, char **argv);

/* `tenantctl tenant create --from-file ...` (argv starts after "create"); returns an exit code. */
int tenant_batch_cmd(cli_env_t *env, int argc, char **argv);

#endif
