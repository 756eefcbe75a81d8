/*
 * dataio: `tenantctl tenant export` and `tenant import` — one tenant's business data as JSON lines.
 *
 * Format (one JSON object per line, UTF-8):
 *   line 1: {"format":"tenantd-export","version":1,"tenant":{"slug","name","status"},
 *            "migrations":"<ledger string: 1:<sha256>,2:<sha256>...>","tables":["notifications",...]}
 *   then:   {"table":"orders","row":{<row_to_json of the row>}}  (tables by name, rows in a stable order)
 * Import recreates the tenant (tenantd.create_tenant) under the file's slug or --slug, refuses a
 * file whose migration ledger differs from the tenant set being released, inserts the rows with
 * json_populate_recordset (every column, ids included), resets owned sequences, all in one
 * transaction: an import that fails leaves nothing. Control-plane rows (memberships, keys) are not
 * part of an export.
 */
#ifndef TENANTD_CLI_DATAIO_H
#define TENANTD_CLI_DATAIO_H

#include "cli/cli.h"

/* `tenantctl tenant export SLUG [--out FILE]`; returns an exit code. */
int dataio_export_cmd(cli_env_t *env, int argc, char **argv);

/* `tenantctl tenant import FILE [--slug SLUG]`; returns an exit code. */
int dataio_import_cmd(cli_env_t *env, int argc, char **argv);

#endif
