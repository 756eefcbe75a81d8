/*
 * cli: what every tenantctl command shares — the loaded configuration, the owner connection,
 * error printing, option parsing, file reading and checksums, and the control-schema bootstrap.
 *
 * tenantctl is a blocking libpq program: each command connects with DATABASE_OWNER_URL, does its
 * work in explicit transactions and exits with CLI_OK, CLI_FAIL or CLI_USAGE (CONTRACT.md §10).
 * Every SQL value goes through parameters; every identifier through PQescapeIdentifier
 * (cli_ident). Errors are printed once, as "tenantctl: <what failed>", by the function that
 * detects them; callers only propagate the return code.
 */
#ifndef TENANTD_CLI_CLI_H
#define TENANTD_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>

#include "core/config.h"

/* Exit codes (CONTRACT.md §10). */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Returned by cli_parse when --help was printed: the command exits CLI_OK. */
#define CLI_HELP_SHOWN (-100)

/* The advisory-lock key serializing migrations and migration-set changes in one database. */
#define CLI_MIGRATE_LOCK_KEY 7420113500017

/* Held (shared) by every migrate worker connection for its lifetime; a new run takes and drops it
 * exclusively once, which waits until the backends of a killed run's workers have finished. */
#define CLI_WORKER_LOCK_KEY 7420113500018

/* Name of the control schema. */
#define CLI_CONTROL_SCHEMA "tenantd"

/* Process-wide state of one tenantctl run. */
typedef struct {
    config_t cfg;          /* config_load() result */
    char app_role[64];     /* user name in DATABASE_URL: the server's login role */
    char control_dir[4096]; /* <TENANTD_MIGRATIONS>/control */
    char tenant_dir[4096];  /* <TENANTD_MIGRATIONS>/tenant */
    bool tty;              /* stderr is a terminal: progress bars and confirmation prompts */
} cli_env_t;

/* One command-line option of a command: "--name" with a value (value != NULL) or a flag. */
typedef struct {
    const char *name;   /* without the leading "--" */
    const char **value; /* receives the value when the option takes one */
    bool *flag;         /* set to true when the option is a flag */
} cli_opt_t;

/* Prints "tenantctl: <message>\n" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Loads configuration and derived paths into env; prints the error and returns -1 on failure. */
int cli_env_init(cli_env_t *env);

/* Frees what cli_env_init allocated. */
void cli_env_free(cli_env_t *env);

/* Parses argv[0..argc) (after the command words) against opts (terminated by {NULL}); positional
 * arguments go to pos[0..maxpos) and their number to *npos. "--opt value" and "--opt=value" are
 * accepted; "--help"/"-h" prints usage to stdout and returns CLI_HELP_SHOWN. An unknown option,
 * a missing value or too many/few positionals (fewer than minpos) prints usage to stderr and
 * returns CLI_USAGE; otherwise 0. */
int cli_parse(int argc, char **argv, const cli_opt_t *opts, const char **pos, int minpos, int maxpos, int *npos,
              const char *usage);

/* Opens a blocking connection to conninfo (application_name tenantctl); prints and returns NULL
 * on failure. Notices are silenced. */
PGconn *cli_connect(const char *conninfo);

/* Opens a connection with the owner URL of env. */
PGconn *cli_connect_owner(const cli_env_t *env);

/* Runs sql with text parameters; returns the result when its status is COMMAND_OK or TUPLES_OK,
 * else writes the server's message into err (when not NULL), clears the result and returns NULL. */
PGresult *cli_exec(PGconn *c, const char *sql, int nparams, const char *const *params, char *err, size_t errlen);

/* Like cli_exec for statements without a result; returns 0 or -1 (err filled). */
int cli_run(PGconn *c, const char *sql, int nparams, const char *const *params, char *err, size_t errlen);

/* Runs sql (may hold several statements) with the simple protocol; 0 or -1 (err filled). */
int cli_run_script(PGconn *c, const char *sql, char *err, size_t errlen);

/* SQLSTATE of the last failed cli_exec/cli_run on this thread ("" if none). */
const char *cli_last_sqlstate(void);

/* Returns PQescapeIdentifier(name) as a malloc'ed string (free() it), or NULL after printing. */
char *cli_ident(PGconn *c, const char *name);

/* Reads a whole file into a malloc'ed NUL-terminated buffer (*len excludes the NUL); NULL on error
 * with the reason in err. */
char *cli_read_file(const char *path, size_t *len, char *err, size_t errlen);

/* Writes sha256(data) as 64 lowercase hex digits plus NUL into out. */
void cli_sha256_hex(const void *data, size_t len, char out[65]);

/* Seconds since an arbitrary fixed point (CLOCK_MONOTONIC). */
double cli_now(void);

/* Creates schema `schema` and the migration ledger <schema>.schema_migrations if missing (for the
 * control schema, under the migrate lock; `schema dump` uses a scratch schema); 0 or -1 (err). */
int cli_bootstrap(PGconn *c, const char *schema, char *err, size_t errlen);

/* Grants the server's login role what it needs on the control schema and records it as
 * settings.app_role (see README "tenantctl and migrations"); 0 or -1 (printed). */
int cli_grant_app(PGconn *c, const cli_env_t *env);

/* Builds the SQL that grants tenant role `schema` its rights on its schema (malloc'ed). */
char *cli_tenant_grants_sql(PGconn *c, const char *schema);

/* Asks "question [y/N]" on the terminal; true only for an answer starting with y. */
bool cli_confirm(const char *question);

#endif
