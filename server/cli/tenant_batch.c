/*
 * tenant_batch: `tenant create --from-file` (see tenant_batch.h).
 *
 * Order of work:
 *   1. read and check every line (core/tenantline, the e-mail rule), then refuse repeated slugs
 *      (the first line with a slug keeps it) and, in one query, slugs that already exist;
 *   2. compare the released tenant migration set with migrations/tenant. When they differ, the
 *      tenants are created one by one on the main connection exactly like `tenant create SLUG`
 *      (release + create in one transaction, under the exclusive migrate lock) until one commits:
 *      so a broken new migration is never released by itself;
 *   3. the rest over --jobs connections (cli/pool), each tenant in its own transaction:
 *      BEGIN; the migrate lock *shared* (creators do not wait for each other, a running migrate
 *      is still waited for); tenants_create; tenants_member for the owner; COMMIT.
 * A migrate that releases new versions while the batch runs holds the lock exclusively until it
 * is done; the tenants created after it get its versions from the released set, like every
 * other new tenant.
 */
#include "cli/tenant_batch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/migrate.h"
#include "cli/pool.h"
#include "cli/tenants.h"
#include "core/tenantline.h"

/* One tenant line of the file. */
typedef struct {
    long line;
    char *buf;         /* the line, parsed in place: slug and name point into it */
    const char *slug;
    const char *name;
    char *email;       /* lowercased copy, or NULL */
    int state;         /* 0 to do, 1 created, 2 failed or refused */
    double ms;         /* creation time (transaction start to commit), when attempted */
    char *err;         /* why it failed or was refused */
    tenants_created_t t;
} item_t;

/* The whole run. */
typedef struct {
    const char *file;  /* as named on the command line ("-" is stdin) */
    item_t *items;
    size_t n, cap;
    size_t refused;    /* lines that failed before any connection: format, e-mail, repeats */
    item_t **todo;     /* what the pool works on */
} batch_t;

static const char BATCH_USAGE[] =
    "usage: tenantctl tenant create --from-file FILE [--jobs N] [--timings FILE] [--dry-run]\n"
    "\n"
    "Creates every tenant listed in FILE ('-' reads stdin), one a line, tab-separated:\n"
    "    slug<TAB>name[<TAB>owner-email]\n"
    "Blank lines and lines starting with '#' are skipped; a trailing CR is ignored.\n"
    "Every line is checked first: a malformed line, an invalid slug, name or e-mail, a slug\n"
    "repeated in the file (the first line keeps it) or one that already exists is reported with\n"
    "its line number and skipped. Each tenant is then created like `tenant create SLUG` in its own\n"
    "transaction (a failure leaves nothing of it behind; the others go on). The summary gives the\n"
    "per-tenant creation time (p50, p99); the exit code is 1 when any line was refused or failed.\n"
    "\n"
    "  --jobs N         N parallel connections (1-64, default 4)\n"
    "  --timings FILE   write line, slug, milliseconds and ok|failed for each attempted tenant\n"
    "  --dry-run        check the file against the database; create nothing\n";

bool tenant_batch_requested(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "--from-file") == 0 || strncmp(argv[i], "--from-file=", 12) == 0)
            return true;
    }
    return false;
}

/* Marks it failed (or refused) with a formatted reason. */
static void item_fail(item_t *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void item_fail(item_t *it, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    free(it->err);
    it->err = msg;
    it->state = 2;
}

static void batch_free(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->items[i].buf);
        free(b->items[i].email);
        free(b->items[i].err);
    }
    free(b->items);
    free(b->todo);
}

/* Prints a refused line's reason. */
static void report_line(const batch_t *b, long line, const char *msg)
{
    cli_error("%s:%ld: %s", strcmp(b->file, "-") == 0 ? "stdin" : b->file, line, msg);
}

/* Step 1a: reads and checks every line; 0, or -1 after printing (unreadable file, no memory). */
static int read_file(batch_t *b)
{
    FILE *f = strcmp(b->file, "-") == 0 ? stdin : fopen(b->file, "r");
    if (f == NULL) {
        cli_error("cannot open %s: %s", b->file, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t linecap = 0;
    ssize_t got;
    long lineno = 0;
    int rc = 0;
    while (rc == 0 && (got = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        tenantline_t tl;
        char err[300];
        int kind = tenantline_parse(line, len, &tl, err, sizeof(err));
        if (kind == 0)
            continue;
        if (b->n == b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 64;
            item_t *items = realloc(b->items, cap * sizeof(*items));
            if (items == NULL) {
                rc = -1;
                break;
            }
            b->items = items;
            b->cap = cap;
        }
        item_t *it = &b->items[b->n++];
        memset(it, 0, sizeof(*it));
        it->line = lineno;
        if (kind < 0) {
            item_fail(it, "%s", err);
            continue;
        }
        /* Keep the parsed fields: copy the line (NULs included) and re-point into the copy. */
        it->buf = malloc(len + 1);
        if (it->buf == NULL) {
            rc = -1;
            break;
        }
        memcpy(it->buf, line, len + 1);
        it->slug = it->buf + (tl.slug - line);
        it->name = it->buf + (tl.name - line);
        if (tl.email != NULL) {
            char email[TENANTS_EMAIL_SIZE];
            if (!tenants_email_normalize(tl.email, email, err, sizeof(err)))
                item_fail(it, "owner e-mail: %s", err);
            else if ((it->email = strdup(email)) == NULL)
                rc = -1;
        }
    }
    bool bad = ferror(f);
    free(line);
    if (f != stdin)
        fclose(f);
    if (rc != 0)
        cli_error("out of memory");
    else if (bad) {
        cli_error("cannot read %s", b->file);
        rc = -1;
    }
    return rc;
}

static int by_slug_then_line(const void *a, const void *b)
{
    const item_t *x = *(item_t *const *)a, *y = *(item_t *const *)b;
    int c = strcmp(x->slug, y->slug);
    return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

/* Step 1b: refuses every later line of a slug repeated in the file. Leaves b->todo holding the
 * items still to do, sorted by slug; returns their number, or (size_t)-1 without memory. */
static size_t refuse_repeats(batch_t *b)
{
    b->todo = calloc(b->n > 0 ? b->n : 1, sizeof(item_t *));
    if (b->todo == NULL)
        return (size_t)-1;
    size_t m = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].state == 0)
            b->todo[m++] = &b->items[i];
    qsort(b->todo, m, sizeof(item_t *), by_slug_then_line);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        if (k > 0 && strcmp(b->todo[k - 1]->slug, b->todo[i]->slug) == 0)
            item_fail(b->todo[i], "slug '%s' is repeated (first on line %ld)", b->todo[i]->slug, b->todo[k - 1]->line);
        else
            b->todo[k++] = b->todo[i];
    }
    return k;
}

static int find_slug(const void *key, const void *elem)
{
    return strcmp(key, (*(item_t *const *)elem)->slug);
}

/* Step 1c: refuses the slugs that exist already (one query); compacts b->todo. Returns the new
 * count, or (size_t)-1 after printing. */
static size_t refuse_existing(PGconn *c, batch_t *b, size_t m)
{
    size_t len = 3;
    for (size_t i = 0; i < m; i++)
        len += strlen(b->todo[i]->slug) + 1;
    char *arr = malloc(len);
    if (arr == NULL) {
        cli_error("out of memory");
        return (size_t)-1;
    }
    /* Slugs are [a-z0-9-]: an array literal needs no quoting. */
    size_t used = 0;
    arr[used++] = '{';
    for (size_t i = 0; i < m; i++)
        used += (size_t)sprintf(arr + used, "%s%s", i > 0 ? "," : "", b->todo[i]->slug);
    arr[used++] = '}';
    arr[used] = '\0';
    char err[1024], msg[1400];
    const char *params[] = {arr};
    PGresult *r = cli_exec(c, "SELECT slug FROM tenantd.tenants WHERE slug = ANY($1::text[])", 1, params, err,
                           sizeof(err));
    free(arr);
    if (r == NULL) {
        tenants_describe_error("", err, msg, sizeof(msg));
        cli_error("tenant create: %s", msg);
        return (size_t)-1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        item_t **hit = bsearch(PQgetvalue(r, i, 0), b->todo, m, sizeof(item_t *), find_slug);
        if (hit != NULL)
            item_fail(*hit, "a tenant with slug '%s' already exists", (*hit)->slug);
    }
    PQclear(r);
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        if (b->todo[i]->state == 0)
            b->todo[k++] = b->todo[i];
    return k;
}

static int by_line(const void *a, const void *b)
{
    const item_t *x = *(item_t *const *)a, *y = *(item_t *const *)b;
    return (x->line > y->line) - (x->line < y->line);
}

/* Step 2: true when the released tenant set equals migrations/tenant; -1 after printing. */
static int released_is_current(PGconn *c, const cli_env_t *env)
{
    migrate_set_t ten;
    if (migrate_load_set(env->tenant_dir, &ten) != 0)
        return -1;
    char err[1024];
    PGresult *r = cli_exec(c,
                           "SELECT coalesce(string_agg(version::text || ':' || checksum, ',' ORDER BY version), '')"
                           " FROM tenantd.tenant_migrations",
                           0, NULL, err, sizeof(err));
    int rc = -1;
    if (r == NULL) {
        char msg[1400];
        tenants_describe_error("", err, msg, sizeof(msg));
        cli_error("tenant create: %s", msg);
    } else {
        rc = strcmp(PQgetvalue(r, 0, 0), ten.want) == 0;
    }
    PQclear(r);
    migrate_free_set(&ten);
    return rc;
}

/* Creates one tenant in its own transaction: with release, exactly `tenant create SLUG`
 * (tenants_release under the exclusive lock); otherwise under the shared lock with the released
 * set as it is. Times it into it->ms; fills it->t, or fails it. 0, or -1 when the release itself
 * failed (relerr then holds the reason, and it is left to the caller). */
static int create_one(PGconn *c, const cli_env_t *env, item_t *it, bool release, char *relerr, size_t relerrlen)
{
    char err[1400], key[32];
    snprintf(key, sizeof(key), "%ld", CLI_MIGRATE_LOCK_KEY);
    const char *lock_params[] = {key};
    double t0 = cli_now();
    int rc = 0;
    char user_id[37];
    if (cli_run(c, "BEGIN", 0, NULL, err, sizeof(err)) != 0) {
        item_fail(it, "%s", err);
    } else if (release ? tenants_release(c, env, relerr, relerrlen) != 0
                       : cli_run(c, "SELECT pg_advisory_xact_lock_shared($1::bigint)", 1, lock_params, err,
                                 sizeof(err)) != 0) {
        if (release)
            rc = -1;
        else
            item_fail(it, "%s", err);
    } else if (tenants_create(c, it->slug, it->name, &it->t, err, sizeof(err)) != 0 ||
               (it->email != NULL && tenants_member(c, it->t.id, it->email, "{owner}", user_id, err, sizeof(err)) != 0) ||
               cli_run(c, "COMMIT", 0, NULL, err, sizeof(err)) != 0) {
        item_fail(it, "%s", err);
    } else {
        it->state = 1;
    }
    it->ms = (cli_now() - t0) * 1e3;
    if (it->state != 1 && PQtransactionStatus(c) != PQTRANS_IDLE) {
        PGresult *r = PQexec(c, "ROLLBACK");
        PQclear(r);
    }
    return rc;
}

/* What the pool's workers share. */
typedef struct {
    const cli_env_t *env;
    item_t **todo;
} work_ctx_t;

static bool work_one(cli_pool_t *pool, PGconn *c, size_t i, void *arg)
{
    work_ctx_t *w = arg;
    item_t *it = w->todo[i];
    if (c == NULL) {
        item_fail(it, "not attempted: no database connection or thread");
        return true;
    }
    create_one(c, w->env, it, false, NULL, 0);
    if (it->state == 1 && !pool->progress.tty) {
        pthread_mutex_lock(&pool->out_lock);
        tenants_print_created(it->slug, &it->t, it->email);
        fflush(stdout);
        pthread_mutex_unlock(&pool->out_lock);
    }
    return it->state != 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile p of sorted v[0..n). */
static double percentile(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    return v[(rank < 1 ? 1 : rank) - 1];
}

/* Writes --timings; 0 or -1 after printing. */
static int write_timings(const batch_t *b, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        cli_error("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < b->n; i++) {
        const item_t *it = &b->items[i];
        if (it->ms > 0)
            fprintf(f, "%ld\t%s\t%.3f\t%s\n", it->line, it->slug, it->ms, it->state == 1 ? "ok" : "failed");
    }
    if (fclose(f) != 0) {
        cli_error("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Prints every failed or refused line in file order, then the summary; returns the exit code. */
static int finish(const batch_t *b, const char *timings, int jobs, double t0)
{
    double *ms = calloc(b->n > 0 ? b->n : 1, sizeof(double));
    size_t ok = 0, failed = 0;
    for (size_t i = 0; i < b->n; i++) {
        const item_t *it = &b->items[i];
        if (it->state == 1) {
            if (ms != NULL)
                ms[ok] = it->ms;
            ok++;
        } else {
            failed++;
            report_line(b, it->line, it->err != NULL ? it->err : (it->state == 0 ? "not attempted" : "out of memory"));
        }
    }
    double secs = cli_now() - t0;
    if (ms != NULL)
        qsort(ms, ok, sizeof(double), cmp_double);
    printf("created %zu tenants in %.2f s (%.1f/s, %d jobs); %zu failed", ok, secs, secs > 0 ? (double)ok / secs : 0,
           jobs, failed);
    if (ok > 0 && ms != NULL)
        printf("; per tenant p50 %.1f ms, p99 %.1f ms", percentile(ms, ok, 50), percentile(ms, ok, 99));
    printf("\n");
    fflush(stdout);
    free(ms);
    int rc = failed > 0 ? CLI_FAIL : CLI_OK;
    if (timings != NULL && write_timings(b, timings) != 0)
        rc = CLI_FAIL;
    return rc;
}

int tenant_batch_cmd(cli_env_t *env, int argc, char **argv)
{
    const char *file = NULL, *jobs_s = NULL, *timings = NULL, *pos[1];
    bool dry = false;
    int npos;
    cli_opt_t opts[] = {{"from-file", &file, NULL},
                        {"jobs", &jobs_s, NULL},
                        {"timings", &timings, NULL},
                        {"dry-run", NULL, &dry},
                        {NULL, NULL, NULL}};
    int rc = cli_parse(argc, argv, opts, pos, 0, 0, &npos, BATCH_USAGE);
    if (rc != 0)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    int jobs = 4;
    if (cli_pool_parse_jobs(jobs_s, &jobs) != 0)
        return CLI_USAGE;
    if (file[0] == '\0') {
        cli_error("--from-file: name a file, or '-' for stdin");
        return CLI_USAGE;
    }
    double t0 = cli_now();
    batch_t b = {.file = file};
    if (read_file(&b) != 0) {
        batch_free(&b);
        return CLI_FAIL;
    }
    if (b.n == 0) {
        cli_error("%s: no tenants (expected slug<TAB>name[<TAB>owner-email] lines)", file);
        batch_free(&b);
        return CLI_USAGE;
    }
    size_t m = refuse_repeats(&b);
    PGconn *c = NULL;
    int exit_code = CLI_FAIL;
    if (m == (size_t)-1) {
        cli_error("out of memory");
        goto out;
    }
    if (m > 0) {
        if ((c = cli_connect_owner(env)) == NULL || (m = refuse_existing(c, &b, m)) == (size_t)-1)
            goto out;
    }
    qsort(b.todo, m, sizeof(item_t *), by_line);
    int current = m > 0 ? released_is_current(c, env) : 1;
    if (current < 0)
        goto out;
    if (dry) {
        for (size_t i = 0; i < b.n; i++)
            if (b.items[i].state == 2)
                report_line(&b, b.items[i].line, b.items[i].err);
        printf("would create %zu tenants; %zu lines refused%s\n", m, b.n - m,
               current ? "" : "; the first would also release migrations/tenant");
        exit_code = m == b.n ? CLI_OK : CLI_FAIL;
        goto out;
    }
    /* Step 2: release together with the first tenant that can be created. */
    size_t first = 0;
    while (!current && first < m) {
        item_t *it = b.todo[first++];
        char err[1400];
        if (create_one(c, env, it, true, err, sizeof(err)) != 0) {
            cli_error("tenant create: %s", err);
            for (size_t i = first - 1; i < m; i++)
                item_fail(b.todo[i], "not attempted: the tenant migration set could not be released");
            first = m;
            break;
        }
        if (it->state == 1) {
            current = 1;
            if (!env->tty)
                tenants_print_created(it->slug, &it->t, it->email);
        }
    }
    PQfinish(c);
    c = NULL;
    /* Step 3. */
    if (first < m) {
        work_ctx_t w = {.env = env, .todo = b.todo + first};
        cli_pool_run(env, "tenants", m - first, jobs, NULL, work_one, &w);
    }
    exit_code = finish(&b, timings, jobs, t0);
out:
    PQfinish(c);
    batch_free(&b);
    return exit_code;
}
