/*
 * backup: whole-database backup and restore around pg_dump / pg_restore (see backup.h).
 *
 * The tools are looked up in $PGBIN, then /usr/lib/postgresql/15/bin, then PATH. The owner URL
 * is split with PQconninfoParse into PGHOST, PGPORT, PGUSER, PGPASSWORD, ... for the child; a
 * connection option without an environment variable is refused rather than silently dropped.
 */
#include "cli/backup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* libpq connection keywords and the environment variables libpq reads for them. */
static const struct {
    const char *keyword, *var;
} ENV_MAP[] = {
    {"host", "PGHOST"},
    {"hostaddr", "PGHOSTADDR"},
    {"port", "PGPORT"},
    {"dbname", "PGDATABASE"},
    {"user", "PGUSER"},
    {"password", "PGPASSWORD"},
    {"passfile", "PGPASSFILE"},
    {"service", "PGSERVICE"},
    {"options", "PGOPTIONS"},
    {"connect_timeout", "PGCONNECT_TIMEOUT"},
    {"sslmode", "PGSSLMODE"},
    {"sslcert", "PGSSLCERT"},
    {"sslkey", "PGSSLKEY"},
    {"sslrootcert", "PGSSLROOTCERT"},
    {"sslcrl", "PGSSLCRL"},
    {"channel_binding", "PGCHANNELBINDING"},
    {"gssencmode", "PGGSSENCMODE"},
    {"target_session_attrs", "PGTARGETSESSIONATTRS"},
    {"application_name", "PGAPPNAME"},
};

/* The connection of url as "VAR=value" strings (malloc'ed, NULL-terminated) and its dbname;
 * NULL after printing when url uses an option without an environment variable. */
static char **conn_env(const char *url, char *dbname, size_t dblen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (opts == NULL) {
        cli_error("DATABASE_OWNER_URL: cannot parse: %s", perr != NULL ? perr : "out of memory");
        PQfreemem(perr);
        return NULL;
    }
    size_t n = sizeof(ENV_MAP) / sizeof(ENV_MAP[0]);
    char **vars = calloc(n + 1, sizeof(char *));
    size_t used = 0;
    bool ok = vars != NULL;
    dbname[0] = '\0';
    for (PQconninfoOption *o = opts; ok && o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        size_t i = 0;
        while (i < n && strcmp(ENV_MAP[i].keyword, o->keyword) != 0)
            i++;
        if (i == n) {
            cli_error("DATABASE_OWNER_URL: option '%s' cannot be passed to pg_dump/pg_restore", o->keyword);
            ok = false;
            break;
        }
        if (strcmp(o->keyword, "dbname") == 0)
            snprintf(dbname, dblen, "%s", o->val);
        if (asprintf(&vars[used++], "%s=%s", ENV_MAP[i].var, o->val) < 0) {
            vars[--used] = NULL;
            ok = false;
        }
    }
    PQconninfoFree(opts);
    if (!ok) {
        for (size_t i = 0; vars != NULL && i < used; i++)
            free(vars[i]);
        free(vars);
        return NULL;
    }
    return vars;
}

static void free_env(char **vars)
{
    for (size_t i = 0; vars != NULL && vars[i] != NULL; i++) {
        memset(vars[i], 0, strlen(vars[i]));
        free(vars[i]);
    }
    free(vars);
}

/* Runs a Postgres client tool with argv (argv[0] = tool name) and the connection in vars; returns
 * its exit status (127 when it could not be started, -1 on a signal). */
static int run_tool(char *const argv[], char **vars)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        cli_error("cannot start %s: %s", argv[0], strerror(errno));
        return 127;
    }
    if (pid == 0) {
        for (size_t i = 0; i < sizeof(ENV_MAP) / sizeof(ENV_MAP[0]); i++)
            unsetenv(ENV_MAP[i].var);
        for (size_t i = 0; vars[i] != NULL; i++)
            putenv(vars[i]);
        char path[4096];
        const char *pgbin = getenv("PGBIN");
        if (pgbin != NULL && *pgbin != '\0') {
            snprintf(path, sizeof(path), "%s/%s", pgbin, argv[0]);
            execv(path, argv);
        }
        snprintf(path, sizeof(path), "/usr/lib/postgresql/15/bin/%s", argv[0]);
        execv(path, argv);
        execvp(argv[0], argv);
        fprintf(stderr, "tenantctl: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char BACKUP_USAGE[] =
    "usage: tenantctl backup [--out FILE]\n"
    "\n"
    "Writes the whole database of DATABASE_OWNER_URL (control plane and every tenant schema) as a\n"
    "pg_dump custom-format archive to FILE (default: tenantd-<UTC time>.dump), atomically.\n"
    "`tenantctl restore FILE` restores it into an empty database.\n";

int backup_cmd(cli_env_t *env, int argc, char **argv)
{
    const char *pos[1], *out = NULL;
    int npos;
    cli_opt_t opts[] = {{"out", &out, NULL}, {NULL, NULL, NULL}};
    int rc = cli_parse(argc, argv, opts, pos, 0, 0, &npos, BACKUP_USAGE);
    if (rc != 0)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    char def[64];
    if (out == NULL) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(def, sizeof(def), "tenantd-%Y%m%dT%H%M%SZ.dump", &tm);
        out = def;
    }
    char dbname[256], tmp[4096], fileopt[4200];
    char **vars = conn_env(env->cfg.database_owner_url, dbname, sizeof(dbname));
    if (vars == NULL)
        return CLI_FAIL;
    snprintf(tmp, sizeof(tmp), "%s.tmp", out);
    snprintf(fileopt, sizeof(fileopt), "--file=%s", tmp);
    char *args[] = {"pg_dump", "--format=custom", "--no-password", fileopt, NULL};
    int st = run_tool(args, vars);
    free_env(vars);
    if (st != 0) {
        unlink(tmp);
        cli_error("backup: pg_dump failed (exit %d); nothing written", st);
        return CLI_FAIL;
    }
    if (rename(tmp, out) != 0) {
        cli_error("backup: cannot rename %s to %s: %s", tmp, out, strerror(errno));
        unlink(tmp);
        return CLI_FAIL;
    }
    struct stat sb;
    printf("wrote %s (%lld bytes)\n", out, stat(out, &sb) == 0 ? (long long)sb.st_size : 0LL);
    return CLI_OK;
}

static const char RESTORE_USAGE[] =
    "usage: tenantctl restore FILE\n"
    "\n"
    "Restores an archive written by `tenantctl backup` into the database of DATABASE_OWNER_URL,\n"
    "which must not have a `tenantd` schema yet: objects and data in one transaction (owned by\n"
    "the restoring role), then every tenant's role and the grants for the server's role\n"
    "(DATABASE_URL's user) are created again. Roles of the archive's cluster are not needed.\n";

/* Re-creates tenant roles and their grants after a restore. */
static const char REGRANT_SQL[] =
    "DO $restore$ DECLARE r record; BEGIN"
    " FOR r IN SELECT schema_name FROM tenantd.tenants ORDER BY 1 LOOP"
    "  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.schema_name) THEN"
    "   EXECUTE format('CREATE ROLE %I NOLOGIN', r.schema_name);"
    "  END IF;"
    "  EXECUTE format('GRANT USAGE ON SCHEMA %1$I TO %1$I', r.schema_name);"
    "  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %1$I TO %1$I', r.schema_name);"
    "  EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %1$I TO %1$I', r.schema_name);"
    "  EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %1$I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %1$I',"
    "   r.schema_name);"
    "  EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %1$I GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %1$I',"
    "   r.schema_name);"
    " END LOOP; END $restore$";

int backup_restore_cmd(cli_env_t *env, int argc, char **argv)
{
    const char *pos[1];
    int npos;
    cli_opt_t opts[] = {{NULL, NULL, NULL}};
    int rc = cli_parse(argc, argv, opts, pos, 1, 1, &npos, RESTORE_USAGE);
    if (rc != 0)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if (access(pos[0], R_OK) != 0) {
        cli_error("restore: cannot read %s: %s", pos[0], strerror(errno));
        return CLI_FAIL;
    }
    PGconn *c = cli_connect_owner(env);
    if (c == NULL)
        return CLI_FAIL;
    char err[1024];
    PGresult *r = cli_exec(c, "SELECT count(*) FROM pg_namespace WHERE nspname = 'tenantd'", 0, NULL, err, sizeof(err));
    bool empty = r != NULL && strcmp(PQgetvalue(r, 0, 0), "0") == 0;
    PQclear(r);
    if (!empty) {
        cli_error("restore: %s", r == NULL ? err : "the database already has a tenantd schema; restore into an empty database");
        PQfinish(c);
        return CLI_FAIL;
    }
    char dbname[256], dbopt[300], fileopt[4200];
    char **vars = conn_env(env->cfg.database_owner_url, dbname, sizeof(dbname));
    if (vars == NULL || dbname[0] == '\0') {
        if (vars != NULL)
            cli_error("DATABASE_OWNER_URL: names no database");
        free_env(vars);
        PQfinish(c);
        return CLI_FAIL;
    }
    snprintf(dbopt, sizeof(dbopt), "--dbname=%s", dbname);
    snprintf(fileopt, sizeof(fileopt), "%s", pos[0]);
    char *args[] = {"pg_restore", "--no-owner", "--no-acl", "--single-transaction", "--exit-on-error",
                    "--no-password", dbopt, fileopt, NULL};
    int st = run_tool(args, vars);
    free_env(vars);
    if (st != 0) {
        cli_error("restore: pg_restore failed (exit %d); nothing was restored", st);
        PQfinish(c);
        return CLI_FAIL;
    }
    rc = CLI_FAIL;
    if (cli_run(c, "BEGIN", 0, NULL, err, sizeof(err)) != 0 || cli_run_script(c, REGRANT_SQL, err, sizeof(err)) != 0) {
        cli_error("restore: re-creating tenant roles: %s", err);
    } else if (cli_grant_app(c, env) == 0 && cli_run(c, "COMMIT", 0, NULL, err, sizeof(err)) == 0) {
        r = cli_exec(c, "SELECT count(*) FROM tenantd.tenants", 0, NULL, err, sizeof(err));
        printf("restored %s: %s tenants\n", pos[0], r != NULL ? PQgetvalue(r, 0, 0) : "?");
        PQclear(r);
        rc = CLI_OK;
    }
    if (rc != CLI_OK) {
        PGresult *rb = PQexec(c, "ROLLBACK");
        PQclear(rb);
        cli_error("restore: the data is restored but the roles and grants are not; drop and recreate the "
                  "database, then restore again");
    }
    PQfinish(c);
    return rc;
}
