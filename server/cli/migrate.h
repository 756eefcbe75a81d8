/*
 * migrate: the migration engine of tenantctl and its commands `migrate`, `status` and
 * `migration new`.
 *
 * A migration set is one folder (migrations/control or migrations/tenant) read into memory with
 * each file's sha256. The ledger tenantd.schema_migrations holds (schema, version, name, checksum,
 * applied_at, duration_ms) for the control schema and every tenant schema. One query compares the
 * ledger of every schema with the set (as "version:checksum,..." strings), so a run with nothing to
 * do costs one round trip however many tenants exist. Each migration of each schema runs in its own
 * transaction together with its ledger row (and, for tenants, the tenant role's grants), sent as
 * one script: kill -9 at any point leaves every schema at a recorded version.
 */
#ifndef TENANTD_CLI_MIGRATE_H
#define TENANTD_CLI_MIGRATE_H

#include <stddef.h>
#include <libpq-fe.h>

#include "cli/cli.h"
#include "core/migfile.h"

/* One migration file, read. */
typedef struct {
    migfile_t meta;
    char *sql;         /* file bytes, NUL-terminated */
    size_t len;
    char checksum[65]; /* sha256 hex of the file bytes */
} migrate_file_t;

/* A folder of migrations, sorted by version. */
typedef struct {
    const char *dir;
    migrate_file_t *items;
    size_t n;
    char *want; /* the ledger string a fully migrated schema has: "1:<sha>,2:<sha>" ("" when empty) */
} migrate_set_t;

/* Reads every migration of dir; 0, or -1 after printing the error. */
int migrate_load_set(const char *dir, migrate_set_t *set);

/* Frees a set loaded by migrate_load_set. */
void migrate_free_set(migrate_set_t *set);

/* Within the caller's transaction: copies the tenant set into tenantd.tenant_migrations (what
 * tenantd.create_tenant applies), refusing a stored version whose checksum differs or that has no
 * file any more; 0 or -1 (err filled). */
int migrate_release_tenant_set(PGconn *c, const migrate_set_t *set, char *err, size_t errlen);

/* `tenantctl migrate [--tenant SLUG] [--jobs N] [--dry-run]`; returns an exit code. */
int migrate_cmd(cli_env_t *env, int argc, char **argv);

/* `tenantctl status`: what is pending (or edited) where; returns an exit code. */
int migrate_status_cmd(cli_env_t *env, int argc, char **argv);

/* `tenantctl migration new NAME [--control]`: creates the next empty migration file. */
int migrate_new_cmd(cli_env_t *env, int argc, char **argv);

#endif
