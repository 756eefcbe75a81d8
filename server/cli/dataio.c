/*
 * dataio: export and import of one tenant's schema data as JSON lines (format in dataio.h).
 *
 * Export reads inside one REPEATABLE READ READ ONLY transaction, so the file is a consistent
 * snapshot. Rows are serialized by Postgres (row_to_json) and restored by Postgres
 * (json_populate_recordset), so every type round-trips through its own text form.
 */
#include "cli/dataio.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/tenants.h"
#include "core/slug.h"

/* Rows sent per INSERT on import. */
#define DATAIO_BATCH 500

static const char EXPORT_USAGE[] =
    "usage: tenantctl tenant export SLUG [--out FILE]\n"
    "\n"
    "Writes the tenant's data (every table of its schema) as JSON lines to FILE or stdout,\n"
    "from one consistent snapshot. `tenantctl tenant import` restores it.\n";

static const char IMPORT_USAGE[] =
    "usage: tenantctl tenant import FILE [--slug SLUG]\n"
    "\n"
    "Recreates a tenant from an export: creates it (slug, name and status from the file, or the\n"
    "slug given) and loads every row, in one transaction. The file's migration ledger must equal\n"
    "the current migrations/tenant set. FILE '-' reads stdin.\n";

static void rollback(PGconn *c)
{
    PGresult *r = PQexec(c, "ROLLBACK");
    PQclear(r);
}

/* Lists the tables of schema (by name) into r. */
static PGresult *schema_tables(PGconn *c, const char *schema, char *err, size_t errlen)
{
    const char *params[] = {schema};
    return cli_exec(c,
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY c.relname",
                    1, params, err, errlen);
}

int dataio_export_cmd(cli_env_t *env, int argc, char **argv)
{
    const char *pos[1], *outpath = NULL;
    int npos;
    cli_opt_t opts[] = {{"out", &outpath, NULL}, {NULL, NULL, NULL}};
    int rc = cli_parse(argc, argv, opts, pos, 1, 1, &npos, EXPORT_USAGE);
    if (rc != 0)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    char err[1024];
    if (!slug_valid(pos[0], err, sizeof(err))) {
        cli_error("invalid slug '%.80s': %s", pos[0], err);
        return CLI_USAGE;
    }
    PGconn *c = cli_connect_owner(env);
    if (c == NULL)
        return CLI_FAIL;
    rc = CLI_FAIL;
    FILE *out = NULL;
    PGresult *t = NULL, *tables = NULL;
    if (cli_run(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, err, sizeof(err)) != 0) {
        cli_error("%s", err);
        goto done;
    }
    const char *params[] = {pos[0]};
    t = cli_exec(c,
                 "SELECT t.schema_name, json_build_object('format', 'tenantd-export', 'version', 1,"
                 " 'tenant', json_build_object('slug', t.slug, 'name', t.name, 'status', t.status),"
                 " 'migrations', coalesce((SELECT string_agg(m.version::text || ':' || m.checksum, ','"
                 "   ORDER BY m.version) FROM tenantd.schema_migrations m WHERE m.schema_name = t.schema_name), ''),"
                 " 'tables', coalesce((SELECT json_agg(c.relname ORDER BY c.relname) FROM pg_class c"
                 "   JOIN pg_namespace n ON n.oid = c.relnamespace"
                 "   WHERE n.nspname = t.schema_name AND c.relkind IN ('r', 'p')), '[]'))::text"
                 " FROM tenantd.tenants t WHERE t.slug = $1",
                 1, params, err, sizeof(err));
    if (t == NULL) {
        cli_error("tenant export: %s", err);
        goto done;
    }
    if (PQntuples(t) == 0) {
        cli_error("no tenant with slug '%s'", pos[0]);
        goto done;
    }
    const char *schema = PQgetvalue(t, 0, 0);
    tables = schema_tables(c, schema, err, sizeof(err));
    if (tables == NULL) {
        cli_error("tenant export: %s", err);
        goto done;
    }
    out = outpath != NULL ? fopen(outpath, "w") : stdout;
    if (out == NULL) {
        cli_error("cannot create %s: %s", outpath, strerror(errno));
        goto done;
    }
    fprintf(out, "%s\n", PQgetvalue(t, 0, 1));
    char *qs = cli_ident(c, schema);
    bool ok = qs != NULL;
    size_t rows = 0;
    for (int i = 0; ok && i < PQntuples(tables); i++) {
        const char *table = PQgetvalue(tables, i, 0);
        char *qt = cli_ident(c, table);
        char *sql = NULL;
        json_t *tname = json_string(table);
        char *tjson = tname != NULL ? json_dumps(tname, JSON_ENCODE_ANY) : NULL;
        json_decref(tname);
        if (qt == NULL || tjson == NULL ||
            asprintf(&sql, "SELECT row_to_json(x)::text AS r FROM %s.%s x ORDER BY r", qs, qt) < 0) {
            free(tjson);
            free(qt);
            ok = false;
            break;
        }
        free(qt);
        /* Single-row mode keeps memory flat for big tables. */
        if (!PQsendQueryParams(c, sql, 0, NULL, NULL, NULL, NULL, 0) || !PQsetSingleRowMode(c)) {
            cli_error("tenant export: %s", PQerrorMessage(c));
            free(tjson);
            free(sql);
            ok = false;
            break;
        }
        free(sql);
        PGresult *r;
        while ((r = PQgetResult(c)) != NULL) {
            ExecStatusType st = PQresultStatus(r);
            if (st == PGRES_SINGLE_TUPLE) {
                fprintf(out, "{\"table\":%s,\"row\":%s}\n", tjson, PQgetvalue(r, 0, 0));
                rows++;
            } else if (st != PGRES_TUPLES_OK) {
                cli_error("tenant export of table %s: %s", table, PQresultErrorMessage(r));
                ok = false;
            }
            PQclear(r);
        }
        free(tjson);
    }
    free(qs);
    if (out != stdout) {
        int closed = fclose(out);
        out = NULL;
        if (ok && closed != 0) {
            cli_error("cannot write %s: %s", outpath, strerror(errno));
            ok = false;
        }
    } else if (fflush(stdout) != 0) {
        cli_error("cannot write the export to stdout");
        ok = false;
    }
    if (!ok && outpath != NULL)
        unlink(outpath); /* no half-written export file */
    if (ok) {
        fprintf(stderr, "exported tenant %s: %d tables, %zu rows\n", pos[0], PQntuples(tables), rows);
        rc = CLI_OK;
    }
done:
    if (out != NULL && out != stdout)
        fclose(out);
    PQclear(t);
    PQclear(tables);
    rollback(c);
    PQfinish(c);
    return rc;
}

/* Rows of one table collected for a batch insert. */
typedef struct {
    char *table;
    char *buf; /* "[row,row,...]" being built */
    size_t len, cap, count;
} batch_t;

static int batch_add(batch_t *b, const char *json)
{
    size_t jl = strlen(json);
    if (b->len + jl + 3 > b->cap) {
        size_t cap = (b->cap + jl + 3) * 2;
        char *nb = realloc(b->buf, cap);
        if (nb == NULL)
            return -1;
        b->buf = nb;
        b->cap = cap;
    }
    b->buf[b->len++] = b->count == 0 ? '[' : ',';
    memcpy(b->buf + b->len, json, jl);
    b->len += jl;
    b->buf[b->len] = '\0';
    b->count++;
    return 0;
}

/* Inserts the batch into schema.table; 0 or -1 (printed). */
static int batch_flush(PGconn *c, const char *qschema, batch_t *b)
{
    if (b->count == 0)
        return 0;
    b->buf[b->len] = ']';
    b->buf[b->len + 1] = '\0';
    char *qt = cli_ident(c, b->table);
    char *sql = NULL;
    if (qt == NULL ||
        asprintf(&sql, "INSERT INTO %1$s.%2$s SELECT * FROM json_populate_recordset(NULL::%1$s.%2$s, $1::json)",
                 qschema, qt) < 0) {
        free(qt);
        cli_error("out of memory");
        return -1;
    }
    free(qt);
    char err[1024];
    const char *params[] = {b->buf};
    int rc = cli_run(c, sql, 1, params, err, sizeof(err));
    free(sql);
    if (rc != 0)
        cli_error("tenant import into table %s: %s", b->table, err);
    b->len = 0;
    b->count = 0;
    return rc;
}

/* Sets every sequence owned by a column of schema to the column's maximum; 0 or -1 (printed). */
static int reset_sequences(PGconn *c, const char *schema)
{
    char err[1024];
    const char *params[] = {schema};
    PGresult *r = cli_exec(c,
                           "SELECT format('SELECT setval(%L, max(%I)) FROM %I.%I HAVING max(%I) IS NOT NULL',"
                           " quote_ident(n.nspname) || '.' || quote_ident(s.relname), a.attname, n.nspname,"
                           " t.relname, a.attname)"
                           " FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
                           " JOIN pg_class t ON t.oid = d.refobjid"
                           " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid"
                           " JOIN pg_namespace n ON n.oid = s.relnamespace"
                           " WHERE n.nspname = $1 AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')",
                           1, params, err, sizeof(err));
    if (r == NULL) {
        cli_error("tenant import: sequences: %s", err);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        rc = cli_run(c, PQgetvalue(r, i, 0), 0, NULL, err, sizeof(err));
        if (rc != 0)
            cli_error("tenant import: sequences: %s", err);
    }
    PQclear(r);
    return rc;
}

int dataio_import_cmd(cli_env_t *env, int argc, char **argv)
{
    const char *pos[1], *slug_opt = NULL;
    int npos;
    cli_opt_t opts[] = {{"slug", &slug_opt, NULL}, {NULL, NULL, NULL}};
    int rc = cli_parse(argc, argv, opts, pos, 1, 1, &npos, IMPORT_USAGE);
    if (rc != 0)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    char err[1024];
    if (slug_opt != NULL && !slug_valid(slug_opt, err, sizeof(err))) {
        cli_error("invalid slug '%.80s': %s", slug_opt, err);
        return CLI_USAGE;
    }
    FILE *in = strcmp(pos[0], "-") == 0 ? stdin : fopen(pos[0], "r");
    if (in == NULL) {
        cli_error("cannot open %s: %s", pos[0], strerror(errno));
        return CLI_FAIL;
    }
    char *line = NULL;
    size_t linecap = 0;
    ssize_t got = getline(&line, &linecap, in);
    json_error_t jerr;
    json_t *head = got > 0 ? json_loads(line, 0, &jerr) : NULL;
    const char *format = json_string_value(json_object_get(head, "format"));
    json_t *tenant = json_object_get(head, "tenant");
    const char *slug = slug_opt != NULL ? slug_opt : json_string_value(json_object_get(tenant, "slug"));
    const char *name = json_string_value(json_object_get(tenant, "name"));
    const char *status = json_string_value(json_object_get(tenant, "status"));
    const char *migrations = json_string_value(json_object_get(head, "migrations"));
    PGconn *c = NULL;
    batch_t b = {0};
    char *qschema = NULL;
    size_t total = 0;
    rc = CLI_FAIL;
    if (format == NULL || strcmp(format, "tenantd-export") != 0 ||
        json_integer_value(json_object_get(head, "version")) != 1 || slug == NULL || name == NULL ||
        status == NULL || migrations == NULL) {
        cli_error("%s: not a tenantd export (version 1) file", pos[0]);
        goto done;
    }
    if (!slug_valid(slug, err, sizeof(err))) {
        cli_error("%s: invalid slug '%.80s': %s", pos[0], slug, err);
        goto done;
    }
    if ((c = cli_connect_owner(env)) == NULL)
        goto done;
    tenants_created_t t;
    if (cli_run(c, "BEGIN", 0, NULL, err, sizeof(err)) != 0) {
        cli_error("%s", err);
        goto done;
    }
    if (tenants_create_in_tx(c, env, slug, name, &t) != 0)
        goto done;
    const char *sp[] = {t.schema};
    PGresult *r = cli_exec(c,
                           "SELECT coalesce(string_agg(version::text || ':' || checksum, ',' ORDER BY version), '')"
                           " FROM tenantd.schema_migrations WHERE schema_name = $1",
                           1, sp, err, sizeof(err));
    if (r == NULL) {
        cli_error("tenant import: %s", err);
        goto done;
    }
    bool same = strcmp(PQgetvalue(r, 0, 0), migrations) == 0;
    PQclear(r);
    if (!same) {
        cli_error("%s: exported at another schema version than migrations/tenant has now; import refused", pos[0]);
        goto done;
    }
    const char *up[] = {slug, status};
    if (cli_run(c, "UPDATE tenantd.tenants SET status = $2 WHERE slug = $1", 2, up, err, sizeof(err)) != 0) {
        cli_error("tenant import: status: %s", err);
        goto done;
    }
    if ((qschema = cli_ident(c, t.schema)) == NULL)
        goto done;
    long lineno = 1;
    bool ok = true;
    while (ok && (got = getline(&line, &linecap, in)) > 0) {
        lineno++;
        /* {"table":<JSON string>,"row":<object>}: only the table name is decoded here; the row's
         * own text goes to Postgres untouched (a JSON library would reformat or reject numbers). */
        static const char head_key[] = "{\"table\":";
        const char *raw = strstr(line, ",\"row\":");
        char *end = line + got;
        while (end > line && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
            end--;
        json_t *tname = NULL;
        if (raw != NULL && strncmp(line, head_key, sizeof(head_key) - 1) == 0)
            tname = json_loadb(line + sizeof(head_key) - 1, (size_t)(raw - line) - (sizeof(head_key) - 1),
                               JSON_DECODE_ANY, &jerr);
        const char *table = json_string_value(tname);
        if (table == NULL || end <= raw + 8 || end[-1] != '}' || raw[7] != '{') {
            cli_error("%s:%ld: expected {\"table\":...,\"row\":{...}} as written by tenant export", pos[0], lineno);
            json_decref(tname);
            ok = false;
            break;
        }
        end[-1] = '\0';
        if (b.table == NULL || strcmp(b.table, table) != 0 || b.count >= DATAIO_BATCH) {
            if (batch_flush(c, qschema, &b) != 0) {
                json_decref(tname);
                ok = false;
                break;
            }
            if (b.table == NULL || strcmp(b.table, table) != 0) {
                free(b.table);
                b.table = strdup(table);
            }
        }
        json_decref(tname);
        if (batch_add(&b, raw + 7) != 0) {
            cli_error("out of memory");
            ok = false;
            break;
        }
        total++;
    }
    if (!ok || batch_flush(c, qschema, &b) != 0 || reset_sequences(c, t.schema) != 0)
        goto done;
    if (cli_run(c, "COMMIT", 0, NULL, err, sizeof(err)) != 0) {
        cli_error("tenant import: %s", err);
        goto done;
    }
    printf("imported tenant %s (id %s, schema %s): %zu rows\n", slug, t.id, t.schema, total);
    rc = CLI_OK;
done:
    if (rc != CLI_OK && c != NULL)
        rollback(c);
    free(qschema);
    free(b.table);
    free(b.buf);
    free(line);
    json_decref(head);
    PQfinish(c);
    if (in != stdin)
        fclose(in);
    return rc;
}
