/*
 * cli: shared plumbing of tenantctl (see cli.h) — configuration, connections, SQL helpers that
 * turn failures into one error line, option parsing, checksums and the grant scheme.
 *
 * The grant scheme lives here because migrate, tenant create and the tests all rely on it:
 * the server's login role (the user of DATABASE_URL) gets USAGE on schema tenantd, DML on its
 * tables except append-only audit_log (SELECT, INSERT) and the read-only ledgers
 * (schema_migrations, tenant_migrations, settings: SELECT), USAGE on its sequences, EXECUTE on
 * the provisioning functions, membership in every tenant role (new ones get it from
 * tenantd.create_tenant, which reads the role name from tenantd.settings), and is made NOINHERIT
 * so that those memberships give it nothing until it does SET ROLE. The role's name is only ever
 * passed as a parameter or through PQescapeIdentifier / format('%I').
 */
#include "cli/cli.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char last_sqlstate[6];

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tenantctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_env_init(cli_env_t *env)
{
    memset(env, 0, sizeof(*env));
    /* tenantctl has no listener: the TLS files the server needs must not be required here. */
    setenv("TENANTD_TLS_LISTEN", "", 1);
    char err[512];
    if (config_load(&env->cfg, err, sizeof(err)) != 0) {
        cli_error("%s", err);
        return -1;
    }
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(env->cfg.database_url, &perr);
    if (opts == NULL) {
        cli_error("DATABASE_URL: cannot parse: %s", perr != NULL ? perr : "out of memory");
        PQfreemem(perr);
        config_free(&env->cfg);
        return -1;
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (strcmp(o->keyword, "user") == 0 && o->val != NULL)
            snprintf(env->app_role, sizeof(env->app_role), "%s", o->val);
    PQconninfoFree(opts);
    if (env->app_role[0] == '\0') {
        cli_error("DATABASE_URL: names no user; tenantctl grants rights to that user (the server's role)");
        config_free(&env->cfg);
        return -1;
    }
    const char *m = env->cfg.migrations_dir;
    snprintf(env->control_dir, sizeof(env->control_dir), "%s/control", m);
    snprintf(env->tenant_dir, sizeof(env->tenant_dir), "%s/tenant", m);
    env->tty = isatty(STDERR_FILENO) && isatty(STDIN_FILENO);
    return 0;
}

void cli_env_free(cli_env_t *env)
{
    config_free(&env->cfg);
}

static const cli_opt_t *find_opt(const cli_opt_t *opts, const char *name, size_t len)
{
    for (const cli_opt_t *o = opts; o != NULL && o->name != NULL; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

int cli_parse(int argc, char **argv, const cli_opt_t *opts, const char **pos, int minpos, int maxpos, int *npos,
              const char *usage)
{
    *npos = 0;
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            fputs(usage, stdout);
            return CLI_HELP_SHOWN;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] != '\0') {
            if (a[1] != '-') {
                cli_error("unknown option %s", a);
                fputs(usage, stderr);
                return CLI_USAGE;
            }
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
            const cli_opt_t *o = find_opt(opts, name, len);
            if (o == NULL) {
                cli_error("unknown option --%.*s", (int)len, name);
                fputs(usage, stderr);
                return CLI_USAGE;
            }
            if (o->value != NULL) {
                if (eq != NULL)
                    *o->value = eq + 1;
                else if (i + 1 < argc)
                    *o->value = argv[++i];
                else {
                    cli_error("option --%s needs a value", o->name);
                    fputs(usage, stderr);
                    return CLI_USAGE;
                }
            } else {
                if (eq != NULL) {
                    cli_error("option --%s takes no value", o->name);
                    fputs(usage, stderr);
                    return CLI_USAGE;
                }
                *o->flag = true;
            }
            continue;
        }
        if (*npos >= maxpos) {
            cli_error("unexpected argument '%s'", a);
            fputs(usage, stderr);
            return CLI_USAGE;
        }
        pos[(*npos)++] = a;
    }
    if (*npos < minpos) {
        cli_error("missing argument");
        fputs(usage, stderr);
        return CLI_USAGE;
    }
    return 0;
}

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *cli_connect(const char *conninfo)
{
    const char *keys[] = {"dbname", "application_name", NULL};
    const char *vals[] = {conninfo, "tenantctl", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        const char *msg = c != NULL ? PQerrorMessage(c) : "out of memory";
        size_t len = strlen(msg);
        while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
            len--;
        cli_error("cannot connect to Postgres (DATABASE_OWNER_URL): %.*s", (int)len, msg);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, quiet_notices, NULL);
    return c;
}

PGconn *cli_connect_owner(const cli_env_t *env)
{
    return cli_connect(env->cfg.database_owner_url);
}

static void set_err(PGconn *c, PGresult *r, char *err, size_t errlen)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(last_sqlstate, sizeof(last_sqlstate), "%s", state != NULL ? state : "");
    if (err == NULL || errlen == 0)
        return;
    const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg == NULL)
        msg = PQerrorMessage(c);
    snprintf(err, errlen, "%s", msg);
    size_t len = strlen(err);
    while (len > 0 && err[len - 1] == '\n')
        err[--len] = '\0';
}

PGresult *cli_exec(PGconn *c, const char *sql, int nparams, const char *const *params, char *err, size_t errlen)
{
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        last_sqlstate[0] = '\0';
        return r;
    }
    set_err(c, r, err, errlen);
    PQclear(r);
    return NULL;
}

int cli_run(PGconn *c, const char *sql, int nparams, const char *const *params, char *err, size_t errlen)
{
    PGresult *r = cli_exec(c, sql, nparams, params, err, errlen);
    if (r == NULL)
        return -1;
    PQclear(r);
    return 0;
}

int cli_run_script(PGconn *c, const char *sql, char *err, size_t errlen)
{
    /* PQexec returns the last statement's result; on an error, that is the failing one. */
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
        last_sqlstate[0] = '\0';
        PQclear(r);
        return 0;
    }
    set_err(c, r, err, errlen);
    PQclear(r);
    return -1;
}

const char *cli_last_sqlstate(void)
{
    return last_sqlstate;
}

char *cli_ident(PGconn *c, const char *name)
{
    char *q = PQescapeIdentifier(c, name, strlen(name));
    if (q == NULL) {
        cli_error("cannot quote identifier: %s", PQerrorMessage(c));
        return NULL;
    }
    char *dup = strdup(q);
    PQfreemem(q);
    if (dup == NULL)
        cli_error("out of memory");
    return dup;
}

char *cli_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (n + 1 >= cap) {
            char *b = realloc(buf, cap * 2);
            if (b == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    bool bad = buf == NULL || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, errlen, "cannot read %s", path);
        return NULL;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        free(buf);
        snprintf(err, errlen, "%s contains a NUL byte", path);
        return NULL;
    }
    *len = n;
    return buf;
}

void cli_sha256_hex(const void *data, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cli_bootstrap(PGconn *c, const char *schema, char *err, size_t errlen)
{
    char *s = cli_ident(c, schema);
    if (s == NULL) {
        snprintf(err, errlen, "cannot quote schema name");
        return -1;
    }
    char *sql = NULL;
    int n = asprintf(&sql,
                     "CREATE SCHEMA IF NOT EXISTS %1$s;"
                     "CREATE TABLE IF NOT EXISTS %1$s.schema_migrations ("
                     " schema_name text NOT NULL,"
                     " version integer NOT NULL CHECK (version BETWEEN 1 AND 9999),"
                     " name text NOT NULL,"
                     " checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),"
                     " applied_at timestamptz NOT NULL DEFAULT now(),"
                     " duration_ms integer NOT NULL DEFAULT 0,"
                     " PRIMARY KEY (schema_name, version))",
                     s);
    free(s);
    if (n < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = cli_run_script(c, sql, err, errlen);
    free(sql);
    return rc;
}

int cli_grant_app(PGconn *c, const cli_env_t *env)
{
    char err[1024];
    PGresult *r = cli_exec(c, "SELECT current_user", 0, NULL, err, sizeof(err));
    if (r == NULL) {
        cli_error("grants: %s", err);
        return -1;
    }
    bool same = strcmp(PQgetvalue(r, 0, 0), env->app_role) == 0;
    PQclear(r);
    /* Functions are executable by PUBLIC by default (and after a restore without ACLs). */
    if (cli_run_script(c, "REVOKE ALL ON FUNCTION tenantd.create_tenant(text, text), tenantd.drop_tenant(text) FROM PUBLIC",
                       err, sizeof(err)) != 0) {
        cli_error("grants: %s", err);
        return -1;
    }
    const char *params[] = {env->app_role};
    if (cli_run(c,
                "INSERT INTO tenantd.settings (key, value) VALUES ('app_role', $1) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                1, params, err, sizeof(err)) != 0) {
        cli_error("grants: %s", err);
        return -1;
    }
    if (same) {
        cli_error("warning: DATABASE_URL and DATABASE_OWNER_URL use the same role %s; the server would own "
                  "its schemas (no grants applied)",
                  env->app_role);
        return 0;
    }
    char *app = cli_ident(c, env->app_role);
    if (app == NULL)
        return -1;
    char sql[4096];
    snprintf(sql, sizeof(sql),
             "ALTER ROLE %1$s NOINHERIT;"
             "GRANT USAGE ON SCHEMA tenantd TO %1$s;"
             "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA tenantd TO %1$s;"
             "REVOKE UPDATE, DELETE, TRUNCATE ON tenantd.audit_log FROM %1$s;"
             "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON tenantd.schema_migrations, tenantd.tenant_migrations,"
             " tenantd.settings FROM %1$s;"
             "GRANT USAGE ON ALL SEQUENCES IN SCHEMA tenantd TO %1$s;"
             "GRANT EXECUTE ON FUNCTION tenantd.create_tenant(text, text), tenantd.drop_tenant(text) TO %1$s;"
             /* Existing tenant roles too, for a server role that changed (name read from settings). */
             "DO $grant$ DECLARE app text := (SELECT value FROM tenantd.settings WHERE key = 'app_role'); r record;"
             " BEGIN FOR r IN SELECT t.schema_name FROM tenantd.tenants t"
             "  JOIN pg_roles pr ON pr.rolname = t.schema_name ORDER BY 1 LOOP"
             "  EXECUTE format('GRANT %%I TO %%I', r.schema_name, app); END LOOP; END $grant$",
             app);
    free(app);
    if (cli_run_script(c, sql, err, sizeof(err)) != 0) {
        cli_error("granting the server's role %s its rights: %s", env->app_role, err);
        return -1;
    }
    return 0;
}

char *cli_tenant_grants_sql(PGconn *c, const char *schema)
{
    char *s = cli_ident(c, schema);
    if (s == NULL)
        return NULL;
    char *sql = NULL;
    if (asprintf(&sql,
                 "GRANT USAGE ON SCHEMA %1$s TO %1$s;"
                 "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %1$s TO %1$s;"
                 "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %1$s TO %1$s",
                 s) < 0)
        sql = NULL;
    free(s);
    if (sql == NULL)
        cli_error("out of memory");
    return sql;
}

bool cli_confirm(const char *question)
{
    fprintf(stderr, "%s [y/N] ", question);
    fflush(stderr);
    char line[64];
    if (fgets(line, sizeof(line), stdin) == NULL)
        return false;
    return line[0] == 'y' || line[0] == 'Y';
}
