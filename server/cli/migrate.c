/*
 * migrate: tenantctl's migration engine and the `migrate`, `status` and `migration new` commands
 * (see migrate.h for the model).
 *
 * A run of `migrate`:
 *   1. takes the session advisory lock CLI_MIGRATE_LOCK_KEY (a second run waits, then finds the
 *      work done); the lock dies with the connection, so kill -9 never leaves it behind;
 *   2. bootstraps the ledger if the database is empty;
 *   3. plans with ONE query: every schema whose ledger string differs from the folder's, plus the
 *      released tenant set when it differs (nothing returned = nothing to do, exit 0);
 *   4. refuses the whole run, applying nothing, when an applied migration was edited or deleted;
 *   5. applies control migrations, then (re)grants the server's role, releases the tenant set,
 *      and applies tenant migrations with --jobs worker threads, each on its own connection;
 *      a failing tenant is reported and the others go on; exit 1 with a summary at the end.
 */
#include "cli/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/notify.h"
#include "cli/pool.h"

#define MIGRATE_STR2(x) #x
#define MIGRATE_STR(x) MIGRATE_STR2(x)

/* ------------------------------------------------------------------------------------------ */
/* Migration sets                                                                               */

int migrate_load_set(const char *dir, migrate_set_t *set)
{
    memset(set, 0, sizeof(*set));
    set->dir = dir;
    migfile_t *files;
    size_t n;
    char err[1024];
    if (migfile_list(dir, &files, &n, err, sizeof(err)) != 0) {
        cli_error("%s", err);
        return -1;
    }
    set->items = calloc(n > 0 ? n : 1, sizeof(*set->items));
    size_t cap = n * 72 + 1, used = 0;
    set->want = malloc(cap);
    if (set->items == NULL || set->want == NULL) {
        free(files);
        migrate_free_set(set);
        cli_error("out of memory");
        return -1;
    }
    set->want[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        migrate_file_t *m = &set->items[i];
        m->meta = files[i];
        char path[8192];
        snprintf(path, sizeof(path), "%s/%s", dir, m->meta.file);
        m->sql = cli_read_file(path, &m->len, err, sizeof(err));
        if (m->sql == NULL) {
            free(files);
            migrate_free_set(set);
            cli_error("%s", err);
            return -1;
        }
        set->n = i + 1;
        cli_sha256_hex(m->sql, m->len, m->checksum);
        used += (size_t)snprintf(set->want + used, cap - used, "%s%d:%s", i > 0 ? "," : "", m->meta.version,
                                 m->checksum);
    }
    set->n = n;
    free(files);
    return 0;
}

void migrate_free_set(migrate_set_t *set)
{
    for (size_t i = 0; i < set->n; i++)
        free(set->items[i].sql);
    free(set->items);
    free(set->want);
    memset(set, 0, sizeof(*set));
}

static const migrate_file_t *find_version(const migrate_set_t *set, int version)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->items[i].meta.version == version)
            return &set->items[i];
    return NULL;
}

/* One entry of a ledger string. */
typedef struct {
    int version;
    char checksum[65];
} applied_t;

/* Parses "1:<sha>,2:<sha>" into a malloc'ed array; returns the count, or (size_t)-1 on garbage. */
static size_t parse_applied(const char *s, applied_t **out)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    applied_t *a = calloc(cap, sizeof(*a));
    *out = a;
    if (a == NULL)
        return (size_t)-1;
    size_t n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || *end != ':' || strspn(end + 1, "0123456789abcdef") != 64)
            return (size_t)-1;
        a[n].version = (int)v;
        memcpy(a[n].checksum, end + 1, 64);
        a[n].checksum[64] = '\0';
        n++;
        p = end + 1 + 64;
        if (*p == ',')
            p++;
        else if (*p != '\0')
            return (size_t)-1;
    }
    return n;
}

/* Compares a schema's ledger with the set: fills pending (indexes into set->items, malloc'ed)
 * or returns -1 with the reason (an edited or vanished applied migration) in err. */
static int check_schema(const migrate_set_t *set, const char *who, const char *applied, size_t **pending,
                        size_t *npending, char *err, size_t errlen)
{
    applied_t *a;
    size_t na = parse_applied(applied, &a);
    *pending = NULL;
    *npending = 0;
    if (na == (size_t)-1) {
        free(a);
        snprintf(err, errlen, "%s: unreadable migration ledger", who);
        return -1;
    }
    for (size_t i = 0; i < na; i++) {
        const migrate_file_t *m = find_version(set, a[i].version);
        if (m == NULL) {
            snprintf(err, errlen, "%s: applied migration version %04d has no file in %s", who, a[i].version, set->dir);
            free(a);
            return -1;
        }
        if (strcmp(m->checksum, a[i].checksum) != 0) {
            snprintf(err, errlen, "%s/%s was edited after it was applied to %s (checksum differs)", set->dir,
                     m->meta.file, who);
            free(a);
            return -1;
        }
    }
    size_t *p = calloc(set->n > 0 ? set->n : 1, sizeof(*p));
    if (p == NULL) {
        free(a);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t np = 0;
    for (size_t i = 0; i < set->n; i++) {
        bool done = false;
        for (size_t j = 0; j < na && !done; j++)
            done = a[j].version == set->items[i].meta.version;
        if (!done)
            p[np++] = i;
    }
    free(a);
    *pending = p;
    *npending = np;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Applying one migration                                                                       */

/* Applies m to schema in one transaction sent as one script: search_path, the file, its ledger
 * row and, when `tenant` (grant the tenant role explicitly), the tenant role's grants. Without it
 * the schema's default privileges (set by create_tenant for the role that creates its objects)
 * cover new tables and sequences. 0, or -1 with "<file>: <error>" in err. */
static int apply_one(PGconn *c, const migrate_file_t *m, const char *schema, bool tenant, char *err, size_t errlen)
{
    char *ident = cli_ident(c, schema);
    if (ident == NULL) {
        snprintf(err, errlen, "cannot quote schema name");
        return -1;
    }
    char *path_lit = PQescapeLiteral(c, ident, strlen(ident));
    char *schema_lit = PQescapeLiteral(c, schema, strlen(schema));
    char *name_lit = PQescapeLiteral(c, m->meta.name, strlen(m->meta.name));
    char *grants = tenant ? cli_tenant_grants_sql(c, schema) : NULL;
    free(ident);
    char *script = NULL;
    int rc = -1;
    if (path_lit != NULL && schema_lit != NULL && name_lit != NULL && (!tenant || grants != NULL) &&
        asprintf(&script,
                 "BEGIN;\n"
                 "SELECT set_config('search_path', %s, true);\n"
                 "%s\n;\n"
                 "INSERT INTO tenantd.schema_migrations (schema_name, version, name, checksum, duration_ms)"
                 " VALUES (%s, %d, %s, '%s', (extract(epoch FROM clock_timestamp() - now()) * 1000)::integer);\n"
                 "%s;\n"
                 "COMMIT",
                 path_lit, m->sql, schema_lit, m->meta.version, name_lit, m->checksum, tenant ? grants : "") >= 0) {
        char msg[1024];
        rc = cli_run_script(c, script, msg, sizeof(msg));
        if (rc != 0) {
            /* Messages are cut at the buffer size; the file name always comes first. */
            size_t used = (size_t)snprintf(err, errlen, "%s: ", m->meta.file);
            if (used < errlen)
                memccpy(err + used, msg, '\0', errlen - used);
            err[errlen - 1] = '\0';
            if (PQtransactionStatus(c) != PQTRANS_IDLE) {
                PGresult *r = PQexec(c, "ROLLBACK");
                PQclear(r);
            }
        }
    } else {
        snprintf(err, errlen, "out of memory");
    }
    free(script);
    free(grants);
    PQfreemem(path_lit);
    PQfreemem(schema_lit);
    PQfreemem(name_lit);
    return rc;
}

int migrate_release_tenant_set(PGconn *c, const migrate_set_t *set, char *err, size_t errlen)
{
    PGresult *r = cli_exec(c, "SELECT version, checksum, name FROM tenantd.tenant_migrations ORDER BY version", 0,
                           NULL, err, errlen);
    if (r == NULL)
        return -1;
    bool *stored = calloc(set->n > 0 ? set->n : 1, sizeof(bool));
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        int v = atoi(PQgetvalue(r, i, 0));
        const migrate_file_t *m = find_version(set, v);
        if (m == NULL) {
            snprintf(err, errlen, "released tenant migration %04d_%s has no file in %s", v, PQgetvalue(r, i, 2),
                     set->dir);
            rc = -1;
        } else if (strcmp(m->checksum, PQgetvalue(r, i, 1)) != 0) {
            snprintf(err, errlen, "%s/%s was edited after it was released to tenants (checksum differs)", set->dir,
                     m->meta.file);
            rc = -1;
        } else {
            stored[m - set->items] = true;
        }
    }
    PQclear(r);
    for (size_t i = 0; i < set->n && rc == 0; i++) {
        if (stored[i])
            continue;
        const migrate_file_t *m = &set->items[i];
        char version[16];
        snprintf(version, sizeof(version), "%d", m->meta.version);
        const char *params[] = {version, m->meta.name, m->checksum, m->sql};
        rc = cli_run(c, "INSERT INTO tenantd.tenant_migrations (version, name, checksum, sql) VALUES ($1, $2, $3, $4)",
                     4, params, err, errlen);
    }
    free(stored);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Planning                                                                                     */

/* The one planning query: schemas whose ledger differs from the folder (control first), a row
 * (ord 2) when the released tenant set differs and one (ord 3) when the server's role recorded in
 * settings is not the user of DATABASE_URL. $1 control want, $2 tenant want, $3 only this slug
 * (NULL: all), $4 the server's role. */
static const char PLAN_SQL[] =
    "WITH a AS (SELECT schema_name, string_agg(version::text || ':' || checksum, ',' ORDER BY version) AS applied"
    "           FROM tenantd.schema_migrations GROUP BY schema_name),"
    " s AS (SELECT 0 AS ord, ''::text AS slug, 'tenantd'::text AS schema_name, $1::text AS want"
    "       UNION ALL"
    "       SELECT 1, slug, schema_name, $2::text FROM tenantd.tenants WHERE $3::text IS NULL OR slug = $3)"
    " SELECT * FROM ("
    "  SELECT s.ord, s.slug, s.schema_name, coalesce(a.applied, '') AS applied"
    "  FROM s LEFT JOIN a USING (schema_name) WHERE coalesce(a.applied, '') <> s.want"
    "  UNION ALL"
    "  SELECT 2, '', '', x.released FROM (SELECT coalesce(string_agg(version::text || ':' || checksum, ','"
    "   ORDER BY version), '') AS released FROM tenantd.tenant_migrations) x WHERE x.released <> $2"
    "  UNION ALL"
    "  SELECT 3, '', '', '' WHERE (SELECT value FROM tenantd.settings WHERE key = 'app_role') IS DISTINCT FROM $4) p"
    " ORDER BY ord, slug";

/* The same before control migration 0001 created the tenants table. */
static const char PLAN_CONTROL_SQL[] =
    "SELECT 0 AS ord, ''::text AS slug, 'tenantd'::text AS schema_name,"
    " coalesce(string_agg(version::text || ':' || checksum, ',' ORDER BY version), '') AS applied"
    " FROM tenantd.schema_migrations WHERE schema_name = 'tenantd'"
    " HAVING coalesce(string_agg(version::text || ':' || checksum, ',' ORDER BY version), '') <> $1";

/* Work on one schema. */
typedef struct {
    const char *slug;   /* "" for the control schema */
    const char *schema;
    size_t *pending;    /* indexes into the set */
    size_t npending;
    int state;          /* 0 not done, 1 ok, 2 failed */
    size_t applied;     /* migrations applied */
    char err[1024];
} work_t;

/* The plan of one run. */
typedef struct {
    PGresult *res;
    work_t control;     /* control schema work (npending 0 when up to date) */
    bool has_control;
    bool release_differs;
    bool grants_differ; /* settings.app_role is not the user of DATABASE_URL */
    work_t *tenants;
    size_t ntenants;
    char **errors;      /* edited/missing applied migrations */
    size_t nerrors;
} plan_t;

static void plan_free(plan_t *p)
{
    free(p->control.pending);
    for (size_t i = 0; i < p->ntenants; i++)
        free(p->tenants[i].pending);
    free(p->tenants);
    for (size_t i = 0; i < p->nerrors; i++)
        free(p->errors[i]);
    free(p->errors);
    PQclear(p->res);
    memset(p, 0, sizeof(*p));
}

/* ledger: the schema_migrations table exists; tenants: the tenants table exists. */
typedef struct {
    bool ledger;
    bool tenants;
} dbstate_t;

static int db_state(PGconn *c, dbstate_t *st)
{
    char err[1024];
    PGresult *r = cli_exec(c,
                           "SELECT to_regclass('tenantd.schema_migrations') IS NOT NULL,"
                           " to_regclass('tenantd.tenants') IS NOT NULL"
                           " AND to_regclass('tenantd.tenant_migrations') IS NOT NULL",
                           0, NULL, err, sizeof(err));
    if (r == NULL) {
        cli_error("%s", err);
        return -1;
    }
    st->ledger = PQgetvalue(r, 0, 0)[0] == 't';
    st->tenants = PQgetvalue(r, 0, 1)[0] == 't';
    PQclear(r);
    return 0;
}

/* Runs the planning query and checks every returned schema against the sets. */
static int plan_build(PGconn *c, const dbstate_t *st, const migrate_set_t *ctl, const migrate_set_t *ten,
                      const char *only_slug, const char *app_role, plan_t *p)
{
    memset(p, 0, sizeof(*p));
    char err[1024];
    if (!st->ledger) {
        /* Empty database: every control migration is pending, no tenant exists yet. */
        p->has_control = true;
        p->control.slug = "";
        p->control.schema = CLI_CONTROL_SCHEMA;
        p->control.pending = calloc(ctl->n > 0 ? ctl->n : 1, sizeof(size_t));
        for (size_t i = 0; i < ctl->n; i++)
            p->control.pending[i] = i;
        p->control.npending = ctl->n;
        p->release_differs = true;
        return 0;
    }
    if (st->tenants) {
        const char *params[] = {ctl->want, ten->want, only_slug, app_role};
        p->res = cli_exec(c, PLAN_SQL, 4, params, err, sizeof(err));
    } else {
        const char *params[] = {ctl->want};
        p->res = cli_exec(c, PLAN_CONTROL_SQL, 1, params, err, sizeof(err));
        p->release_differs = true;
    }
    if (p->res == NULL) {
        cli_error("planning: %s", err);
        return -1;
    }
    int rows = PQntuples(p->res);
    p->tenants = calloc((size_t)rows + 1, sizeof(work_t));
    p->errors = calloc((size_t)rows + 1, sizeof(char *));
    for (int i = 0; i < rows; i++) {
        int ord = atoi(PQgetvalue(p->res, i, 0));
        const char *slug = PQgetvalue(p->res, i, 1), *schema = PQgetvalue(p->res, i, 2);
        const char *applied = PQgetvalue(p->res, i, 3);
        if (ord == 2) {
            p->release_differs = true;
            continue;
        }
        if (ord == 3) {
            p->grants_differ = true;
            continue;
        }
        work_t *w = ord == 0 ? &p->control : &p->tenants[p->ntenants];
        char who[256];
        if (ord == 0)
            snprintf(who, sizeof(who), "control schema %s", schema);
        else
            snprintf(who, sizeof(who), "schema %s (tenant %s)", schema, slug);
        w->slug = slug;
        w->schema = schema;
        if (check_schema(ord == 0 ? ctl : ten, who, applied, &w->pending, &w->npending, err, sizeof(err)) != 0) {
            p->errors[p->nerrors++] = strdup(err);
            continue;
        }
        if (ord == 0)
            p->has_control = true;
        else if (w->npending > 0)
            p->ntenants++;
        else {
            free(w->pending);
            memset(w, 0, sizeof(*w));
        }
    }
    return 0;
}

static bool plan_noop(const plan_t *p)
{
    return p->control.npending == 0 && p->ntenants == 0 && !p->release_differs && !p->grants_differ &&
           p->nerrors == 0;
}

/* Prints a refused plan's errors (the first 20); returns CLI_FAIL. */
static int plan_report_errors(const plan_t *p)
{
    for (size_t i = 0; i < p->nerrors && i < 20; i++)
        cli_error("%s", p->errors[i]);
    if (p->nerrors > 20)
        cli_error("... and %zu more schemas with the same kind of problem", p->nerrors - 20);
    cli_error("refusing to migrate: restore the applied migration file(s) and add a new migration instead");
    return CLI_FAIL;
}

static void print_pending(FILE *out, const char *prefix, const work_t *w, const migrate_set_t *set)
{
    fprintf(out, "%s", prefix);
    for (size_t i = 0; i < w->npending; i++)
        fprintf(out, "%s%s", i > 0 ? ", " : " ", set->items[w->pending[i]].meta.file);
    fputc('\n', out);
}

/* Prints the plan (status and --dry-run). */
static void plan_print(PGconn *c, const dbstate_t *st, const plan_t *p, const migrate_set_t *ctl,
                       const migrate_set_t *ten, bool dry)
{
    const char *verb = dry ? "would apply" : "pending";
    if (p->control.npending > 0) {
        char prefix[128];
        snprintf(prefix, sizeof(prefix), "control (tenantd): %s", verb);
        print_pending(stdout, prefix, &p->control, ctl);
    } else {
        printf("control (tenantd): up to date (%zu migrations)\n", ctl->n);
    }
    long total = 0;
    if (st->tenants) {
        PGresult *r = cli_exec(c, "SELECT count(*) FROM tenantd.tenants", 0, NULL, NULL, 0);
        if (r != NULL) {
            total = atol(PQgetvalue(r, 0, 0));
            PQclear(r);
        }
    }
    for (size_t i = 0; i < p->ntenants; i++) {
        char prefix[256];
        snprintf(prefix, sizeof(prefix), "tenant %s (%s): %s", p->tenants[i].slug, p->tenants[i].schema, verb);
        print_pending(stdout, prefix, &p->tenants[i], ten);
    }
    printf("tenants: %ld total, %zu with pending migrations, %zu refused\n", total, p->ntenants, p->nerrors);
    if (p->release_differs)
        printf("released tenant set (used by tenant create): %s\n",
               dry ? "would be updated" : "behind migrations/tenant");
    if (p->grants_differ)
        printf("grants: the server's role (user of DATABASE_URL) %s\n", dry ? "would be granted its rights" : "has not been granted its rights yet");
    for (size_t i = 0; i < p->nerrors; i++)
        printf("error: %s\n", p->errors[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* Tenant workers                                                                               */

/* What the workers of one run share. */
typedef struct {
    const migrate_set_t *set;
    work_t *items;
    bool grants; /* grant each tenant role explicitly after each migration */
} tenant_run_t;

/* Worker connections hold the worker lock shared for their lifetime (see wait_for_old_workers). */
static int worker_setup(PGconn *c, void *ctx)
{
    (void)ctx;
    return cli_run_script(c, "SELECT pg_advisory_lock_shared(" MIGRATE_STR(CLI_WORKER_LOCK_KEY) ")", NULL, 0);
}

static bool work_on(cli_pool_t *pool, PGconn *c, size_t idx, void *ctx)
{
    tenant_run_t *run = ctx;
    work_t *w = &run->items[idx];
    if (c == NULL) {
        w->state = 2;
        snprintf(w->err, sizeof(w->err), "not attempted: no database connection or thread");
        return true;
    }
    for (size_t i = 0; i < w->npending; i++) {
        const migrate_file_t *m = &run->set->items[w->pending[i]];
        double t0 = cli_now();
        if (apply_one(c, m, w->schema, run->grants, w->err, sizeof(w->err)) != 0) {
            w->state = 2;
            break;
        }
        w->applied++;
        if (!pool->progress.tty) {
            pthread_mutex_lock(&pool->out_lock);
            printf("tenant %s (%s): applied %s (%.0f ms)\n", w->slug, w->schema, m->meta.file, (cli_now() - t0) * 1e3);
            fflush(stdout);
            pthread_mutex_unlock(&pool->out_lock);
        }
    }
    if (w->state == 0)
        w->state = 1;
    else if (!pool->progress.tty) {
        pthread_mutex_lock(&pool->out_lock);
        printf("tenant %s (%s): FAILED %s\n", w->slug, w->schema, w->err);
        fflush(stdout);
        pthread_mutex_unlock(&pool->out_lock);
    }
    return w->state == 2;
}

/* Applies every tenant's pending migrations with jobs threads (grants: see tenant_run_t); returns
 * the number failed. */
static size_t run_tenants(const cli_env_t *env, const migrate_set_t *set, work_t *items, size_t n, int jobs,
                          bool grants)
{
    tenant_run_t run = {.set = set, .items = items, .grants = grants};
    return cli_pool_run(env, "tenants", n, jobs, worker_setup, work_on, &run);
}

/* ------------------------------------------------------------------------------------------ */
/* Commands                                                                                     */

static const char MIGRATE_USAGE[] =
    "usage: tenantctl migrate [--tenant SLUG] [--jobs N] [--dry-run]\n"
    "\n"
    "Applies pending migrations: migrations/control to schema tenantd first, then\n"
    "migrations/tenant to every tenant schema (or only SLUG's). Each migration of each schema\n"
    "runs in its own transaction and is recorded with its sha256 in tenantd.schema_migrations.\n"
    "An edited or deleted applied migration stops the run before anything is applied. A failing\n"
    "tenant is reported and the others go on; the exit code is then 1.\n"
    "\n"
    "  --tenant SLUG  migrate the control schema and this tenant only\n"
    "  --jobs N       N parallel connections for tenant schemas (1-64, default 1)\n"
    "  --dry-run      print what would be applied; change nothing\n";

static int lock_migrations(PGconn *c)
{
    char key[32], err[1024];
    snprintf(key, sizeof(key), "%ld", CLI_MIGRATE_LOCK_KEY);
    const char *params[] = {key};
    PGresult *r = cli_exec(c, "SELECT pg_try_advisory_lock($1::bigint)", 1, params, err, sizeof(err));
    if (r == NULL) {
        cli_error("taking the migration lock: %s", err);
        return -1;
    }
    bool got = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (got)
        return 0;
    fprintf(stderr, "tenantctl: another migration is running; waiting for it to finish\n");
    if (cli_run(c, "SELECT pg_advisory_lock($1::bigint)", 1, params, err, sizeof(err)) != 0) {
        cli_error("taking the migration lock: %s", err);
        return -1;
    }
    return 0;
}

/* Waits until no worker connection of an earlier run is alive: after a kill -9 its backends may
 * still be finishing a migration they had received. 0 or -1 (printed). */
static int wait_for_old_workers(PGconn *c)
{
    char err[1024];
    if (cli_run_script(c,
                       "SELECT pg_advisory_lock(" MIGRATE_STR(CLI_WORKER_LOCK_KEY) ");"
                       "SELECT pg_advisory_unlock(" MIGRATE_STR(CLI_WORKER_LOCK_KEY) ")",
                       err, sizeof(err)) != 0) {
        cli_error("waiting for earlier migration workers: %s", err);
        return -1;
    }
    return 0;
}

/* Applies the control schema's pending migrations; 0 or -1 (printed). */
static int run_control(PGconn *c, const migrate_set_t *ctl, work_t *w)
{
    for (size_t i = 0; i < w->npending; i++) {
        const migrate_file_t *m = &ctl->items[w->pending[i]];
        double t0 = cli_now();
        char err[1024];
        if (apply_one(c, m, CLI_CONTROL_SCHEMA, false, err, sizeof(err)) != 0) {
            cli_error("control schema tenantd: %s/%s", ctl->dir, err);
            return -1;
        }
        printf("control (tenantd): applied %s (%.0f ms)\n", m->meta.file, (cli_now() - t0) * 1e3);
    }
    fflush(stdout);
    return 0;
}

/* Sets *grants to false when this connection's role is the one that runs create_tenant (the
 * owner of the provisioning function): each tenant schema's default privileges then already give
 * the tenant role what that role creates, and the explicit grants after each migration (about a
 * third of the cost of a small migration) are skipped. 0 or -1 (printed). */
static int default_privileges_cover(PGconn *c, bool *grants)
{
    char err[1024];
    PGresult *r = cli_exec(c,
                           "SELECT current_user = (SELECT pg_get_userbyid(proowner) FROM pg_proc"
                           " WHERE oid = 'tenantd.create_tenant(text, text)'::regprocedure)",
                           0, NULL, err, sizeof(err));
    if (r == NULL) {
        cli_error("checking default privileges: %s", err);
        return -1;
    }
    *grants = PQgetvalue(r, 0, 0)[0] != 't';
    PQclear(r);
    return 0;
}

static int release_set(PGconn *c, const migrate_set_t *ten)
{
    char err[1024];
    if (cli_run(c, "BEGIN", 0, NULL, err, sizeof(err)) != 0 ||
        migrate_release_tenant_set(c, ten, err, sizeof(err)) != 0 || cli_run(c, "COMMIT", 0, NULL, err, sizeof(err)) != 0) {
        cli_error("%s", err);
        PGresult *r = PQexec(c, "ROLLBACK");
        PQclear(r);
        return -1;
    }
    return 0;
}

int migrate_cmd(cli_env_t *env, int argc, char **argv)
{
    const char *only = NULL, *jobs_s = NULL, *pos[1];
    bool dry = false;
    int npos;
    cli_opt_t opts[] = {{"tenant", &only, NULL}, {"jobs", &jobs_s, NULL}, {"dry-run", NULL, &dry}, {NULL, NULL, NULL}};
    int rc = cli_parse(argc, argv, opts, pos, 0, 0, &npos, MIGRATE_USAGE);
    if (rc != 0)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    int jobs = 1;
    if (cli_pool_parse_jobs(jobs_s, &jobs) != 0)
        return CLI_USAGE;
    migrate_set_t ctl, ten;
    if (migrate_load_set(env->control_dir, &ctl) != 0)
        return CLI_FAIL;
    if (migrate_load_set(env->tenant_dir, &ten) != 0) {
        migrate_free_set(&ctl);
        return CLI_FAIL;
    }
    double t0 = cli_now();
    PGconn *c = cli_connect_owner(env);
    plan_t plan = {0};
    int exit_code = CLI_FAIL;
    dbstate_t st;
    if (c == NULL)
        goto out;
    if (!dry && (lock_migrations(c) != 0 || wait_for_old_workers(c) != 0))
        goto out;
    if (db_state(c, &st) != 0)
        goto out;
    if (only != NULL && st.tenants) {
        const char *params[] = {only};
        char err[1024];
        PGresult *r = cli_exec(c, "SELECT 1 FROM tenantd.tenants WHERE slug = $1", 1, params, err, sizeof(err));
        if (r == NULL) {
            cli_error("%s", err);
            goto out;
        }
        bool found = PQntuples(r) == 1;
        PQclear(r);
        if (!found) {
            cli_error("no tenant with slug '%s'", only);
            goto out;
        }
    } else if (only != NULL) {
        cli_error("no tenant with slug '%s' (no tenants table yet)", only);
        goto out;
    }
    if (plan_build(c, &st, &ctl, &ten, only, env->app_role, &plan) != 0)
        goto out;
    if (dry) {
        plan_print(c, &st, &plan, &ctl, &ten, true);
        exit_code = plan.nerrors > 0 ? CLI_FAIL : CLI_OK;
        goto out;
    }
    if (plan.nerrors > 0) {
        exit_code = plan_report_errors(&plan);
        goto out;
    }
    if (plan_noop(&plan)) {
        printf("nothing to migrate: every schema is up to date (%.0f ms)\n", (cli_now() - t0) * 1e3);
        exit_code = CLI_OK;
        goto out;
    }
    char err[1024];
    if (!st.ledger && cli_bootstrap(c, CLI_CONTROL_SCHEMA, err, sizeof(err)) != 0) {
        cli_error("creating the migration ledger: %s", err);
        goto out;
    }
    bool control_changed = plan.control.npending > 0;
    if (run_control(c, &ctl, &plan.control) != 0)
        goto out;
    if (control_changed || !st.tenants || plan.grants_differ) {
        if (cli_grant_app(c, env) != 0)
            goto out;
    }
    if (!st.tenants) {
        /* The tenants table did not exist when planning: plan the tenant part now. */
        plan_free(&plan);
        if (db_state(c, &st) != 0 || plan_build(c, &st, &ctl, &ten, only, env->app_role, &plan) != 0)
            goto out;
        if (plan.nerrors > 0) {
            exit_code = plan_report_errors(&plan);
            goto out;
        }
    }
    if (release_set(c, &ten) != 0)
        goto out;
    size_t failed = 0;
    bool grants = true;
    if (plan.ntenants > 0 && default_privileges_cover(c, &grants) != 0)
        goto out;
    if (plan.ntenants > 0)
        failed = run_tenants(env, &ten, plan.tenants, plan.ntenants, jobs, grants);
    size_t migrations = 0;
    for (size_t i = 0; i < plan.ntenants; i++)
        migrations += plan.tenants[i].applied;
    printf("migrated %zu tenant schemas (%zu migrations) in %.2f s; %zu failed\n", plan.ntenants - failed, migrations,
           cli_now() - t0, failed);
    if (migrations > 0) { /* running servers re-read the tables the data API serves */
        char what[64];
        snprintf(what, sizeof(what), "%zu migrations", migrations);
        long heard = cli_notify_schema_change(env, what);
        if (heard >= 0)
            printf("told running servers to reload (%ld workers listening)\n", heard);
    }
    if (failed > 0) {
        size_t shown = 0;
        for (size_t i = 0; i < plan.ntenants; i++) {
            if (plan.tenants[i].state != 2)
                continue;
            if (shown++ < 20)
                cli_error("tenant %s (%s) failed: %s", plan.tenants[i].slug, plan.tenants[i].schema, plan.tenants[i].err);
        }
        if (shown > 20)
            cli_error("... and %zu more failed tenants", shown - 20);
        exit_code = CLI_FAIL;
    } else {
        exit_code = CLI_OK;
    }
out:
    plan_free(&plan);
    PQfinish(c);
    migrate_free_set(&ctl);
    migrate_free_set(&ten);
    return exit_code;
}

static const char STATUS_USAGE[] =
    "usage: tenantctl status\n"
    "\n"
    "Shows the migrations pending in the control schema and in each tenant schema, and any applied\n"
    "migration whose file was edited or deleted. Changes nothing.\n";

int migrate_status_cmd(cli_env_t *env, int argc, char **argv)
{
    const char *pos[1];
    int npos;
    cli_opt_t opts[] = {{NULL, NULL, NULL}};
    int rc = cli_parse(argc, argv, opts, pos, 0, 0, &npos, STATUS_USAGE);
    if (rc != 0)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    migrate_set_t ctl, ten;
    if (migrate_load_set(env->control_dir, &ctl) != 0)
        return CLI_FAIL;
    if (migrate_load_set(env->tenant_dir, &ten) != 0) {
        migrate_free_set(&ctl);
        return CLI_FAIL;
    }
    int exit_code = CLI_FAIL;
    plan_t plan = {0};
    dbstate_t st;
    PGconn *c = cli_connect_owner(env);
    if (c != NULL && db_state(c, &st) == 0 && plan_build(c, &st, &ctl, &ten, NULL, env->app_role, &plan) == 0) {
        plan_print(c, &st, &plan, &ctl, &ten, false);
        exit_code = CLI_OK;
    }
    plan_free(&plan);
    PQfinish(c);
    migrate_free_set(&ctl);
    migrate_free_set(&ten);
    return exit_code;
}

static const char NEW_USAGE[] =
    "usage: tenantctl migration new NAME [--control]\n"
    "\n"
    "Creates the next migration file NNNN_NAME.sql in migrations/tenant (or migrations/control\n"
    "with --control) and prints its path. NAME: 1 to 100 characters a-z, 0-9 and '_'.\n";

int migrate_new_cmd(cli_env_t *env, int argc, char **argv)
{
    const char *pos[1];
    int npos;
    bool control = false;
    cli_opt_t opts[] = {{"control", NULL, &control}, {NULL, NULL, NULL}};
    int rc = cli_parse(argc, argv, opts, pos, 1, 1, &npos, NEW_USAGE);
    if (rc != 0)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    const char *dir = control ? env->control_dir : env->tenant_dir;
    if (!migfile_valid_name(pos[0])) {
        cli_error("invalid migration name '%s': use 1 to 100 characters a-z, 0-9 and '_'", pos[0]);
        return CLI_USAGE;
    }
    migfile_t *files;
    size_t n;
    char err[1024], fname[256], path[8192];
    if (migfile_list(dir, &files, &n, err, sizeof(err)) != 0) {
        cli_error("%s", err);
        return CLI_FAIL;
    }
    rc = migfile_next(files, n, pos[0], fname, sizeof(fname), err, sizeof(err));
    free(files);
    if (rc != 0) {
        cli_error("%s", err);
        return CLI_FAIL;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, fname);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
        cli_error("cannot create %s: %s", path, strerror(errno));
        return CLI_FAIL;
    }
    FILE *f = fdopen(fd, "w");
    fprintf(f,
            "-- %s: describe what this migration changes and why.\n"
            "-- %s\n",
            fname,
            control ? "Runs with search_path = tenantd, in its own transaction; no BEGIN/COMMIT here."
                    : "Runs in every tenant schema (search_path = that schema), in its own transaction; no "
                      "BEGIN/COMMIT here.");
    if (fclose(f) != 0) {
        cli_error("cannot write %s: %s", path, strerror(errno));
        return CLI_FAIL;
    }
    printf("%s\n", path);
    return CLI_OK;
}
