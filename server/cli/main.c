/*
 * tenantctl: the operator CLI of tenantd (CONTRACT.md §10) — migrations, the tenant lifecycle,
 * fixtures and the schema snapshot. This file only dispatches the command words to the modules
 * (migrate, tenants, dataio, users, seed, schemadump, backup, policy, keys) and maps "no such command" to exit code 2.
 * Configuration comes from the environment (config_load); the database work is done as the
 * schema owner (DATABASE_OWNER_URL).
 */
#include <stdio.h>
#include <string.h>

#include "cli/backup.h"
#include "cli/cli.h"
#include "cli/keys.h"
#include "cli/migrate.h"
#include "cli/policy.h"
#include "cli/schemadump.h"
#include "cli/seed.h"
#include "cli/tenants.h"
#include "cli/users.h"

static const char USAGE[] =
    "usage: tenantctl COMMAND [ARGS] [--help]\n"
    "\n"
    "Commands:\n"
    "  migrate [--tenant SLUG] [--jobs N] [--dry-run]   apply pending migrations (control, then tenants)\n"
    "  status                                          show pending migrations per schema\n"
    "  migration new NAME [--control]                  create the next migration file\n"
    "  tenant create SLUG --name NAME [--owner-email E]\n"
    "  tenant list | suspend SLUG | resume SLUG | drop SLUG [--yes]\n"
    "  tenant export SLUG [--out FILE] | tenant import FILE [--slug SLUG]\n"
    "  user create --email E --tenant SLUG --role R    add a user to a tenant (password from stdin)\n"
    "  seed [DIR]                                      load fixtures (default: fixtures/)\n"
    "  policy check [DIR] | policy test [DIR]          validate policies / run policy test cases\n"
    "  keys generate | keys rotate                     manage the JWT signing key set\n"
    "  schema dump [--out DIR]                         write schema/control.sql and schema/tenant.sql\n"
    "  backup [--out FILE] | restore FILE              whole-database archive (pg_dump custom format)\n"
    "\n"
    "Environment: DATABASE_OWNER_URL (the schema owner; defaults to DATABASE_URL), DATABASE_URL\n"
    "(its user is the server's role, granted access), TENANTD_MIGRATIONS (default: migrations).\n"
    "Exit codes: 0 ok, 1 failure, 2 usage error.\n";

/* True when the arguments ask for help: the command then runs without configuration. */
static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

typedef int (*command_fn)(cli_env_t *env, int argc, char **argv);

/* Resolves argv to a command; *consumed is the number of command words. */
static command_fn resolve(int argc, char **argv, int *consumed)
{
    const char *a = argv[1], *b = argc > 2 ? argv[2] : "";
    *consumed = 1;
    if (strcmp(a, "migrate") == 0)
        return migrate_cmd;
    if (strcmp(a, "status") == 0)
        return migrate_status_cmd;
    if (strcmp(a, "tenant") == 0)
        return tenants_cmd;
    if (strcmp(a, "seed") == 0)
        return seed_cmd;
    if (strcmp(a, "user") == 0)
        return users_cmd;
    if (strcmp(a, "backup") == 0)
        return backup_cmd;
    if (strcmp(a, "restore") == 0)
        return backup_restore_cmd;
    *consumed = 2;
    if (strcmp(a, "migration") == 0 && strcmp(b, "new") == 0)
        return migrate_new_cmd;
    if (strcmp(a, "schema") == 0 && strcmp(b, "dump") == 0)
        return schemadump_cmd;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    /* Commands that need neither configuration nor a database. */
    if (strcmp(argv[1], "policy") == 0)
        return policy_command(argc - 2, argv + 2);
    if (strcmp(argv[1], "keys") == 0)
        return keys_command(argc - 2, argv + 2);
    int consumed;
    command_fn fn = resolve(argc, argv, &consumed);
    if (fn == NULL) {
        if (argc > 2 && (strcmp(argv[1], "migration") == 0 || strcmp(argv[1], "schema") == 0))
            cli_error("unknown command '%s %s'", argv[1], argv[2]);
        else
            cli_error("unknown command '%s'", argv[1]);
        fputs(USAGE, stderr);
        return CLI_USAGE;
    }
    cli_env_t env;
    if (wants_help(argc, argv)) {
        memset(&env, 0, sizeof(env));
        return fn(&env, argc - 1 - consumed, argv + 1 + consumed);
    }
    if (cli_env_init(&env) != 0)
        return CLI_FAIL;
    int rc = fn(&env, argc - 1 - consumed, argv + 1 + consumed);
    cli_env_free(&env);
    fflush(stdout);
    return rc;
}
