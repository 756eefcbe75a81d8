/*
 * tenants: `tenantctl tenant create|list|suspend|resume|drop` (see tenants.h); `export` and
 * `import` are dispatched to dataio.
 *
 * Bad input (an invalid slug, a missing --name) is refused before connecting, with exit code 2
 * and a sentence saying what is wrong; nothing is changed.
 */
#include "cli/tenants.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/dataio.h"
#include "cli/migrate.h"
#include "cli/notify.h"
#include "cli/tenant_batch.h"
#include "core/slug.h"
#include "core/tenantline.h"

static const char TENANT_USAGE[] =
    "usage: tenantctl tenant COMMAND ...\n"
    "\n"
    "  create SLUG --name NAME [--owner-email EMAIL]  create a tenant (schema, role, migrations)\n"
    "  create --from-file FILE [--jobs N]             create many tenants, one a line\n"
    "  list                                           slug, status, schema version of every tenant\n"
    "  suspend SLUG | resume SLUG                     change a tenant's status\n"
    "  drop SLUG [--yes]                              delete a tenant and all its data\n"
    "  export SLUG [--out FILE]                       write a tenant's data as JSON lines\n"
    "  import FILE [--slug SLUG]                      recreate a tenant from an export\n"
    "\n"
    "Run `tenantctl tenant COMMAND --help` for details.\n";

bool tenants_email_valid(const char *email, char *err, size_t errlen)
{
    size_t len = strlen(email);
    const char *at = strchr(email, '@');
    if (len < 3 || len > 254 || at == NULL || at == email || at[1] == '\0' || strchr(at + 1, '@') != NULL) {
        snprintf(err, errlen, "invalid e-mail address '%.80s'", email);
        return false;
    }
    for (const char *p = email; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            snprintf(err, errlen, "e-mail address contains a space or control character");
            return false;
        }
    }
    return true;
}

bool tenants_email_normalize(const char *in, char out[TENANTS_EMAIL_SIZE], char *err, size_t errlen)
{
    size_t len = strlen(in);
    if (len >= TENANTS_EMAIL_SIZE) {
        snprintf(err, errlen, "too long");
        return false;
    }
    if (!tenants_email_valid(in, err, errlen))
        return false;
    for (size_t i = 0; i <= len; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    return true;
}

void tenants_describe_error(const char *slug, const char *err, char *out, size_t outlen)
{
    const char *state = cli_last_sqlstate();
    if (strcmp(state, "23505") == 0)
        snprintf(out, outlen, "a tenant with slug '%s' already exists", slug);
    else if (strcmp(state, "3F000") == 0 || strcmp(state, "42883") == 0 || strcmp(state, "42P01") == 0)
        snprintf(out, outlen, "the control schema is missing or old; run `tenantctl migrate` first (%s)", err);
    else
        snprintf(out, outlen, "%s", err);
}

/* Prints the error of a failed tenant statement in the operator's terms. */
static void report_sql_error(const char *what, const char *slug, const char *err)
{
    char msg[1400];
    tenants_describe_error(slug, err, msg, sizeof(msg));
    cli_error("%s: %s", what, msg);
}

int tenants_release(PGconn *c, const cli_env_t *env, char *err, size_t errlen)
{
    migrate_set_t ten;
    if (migrate_load_set(env->tenant_dir, &ten) != 0) {
        snprintf(err, errlen, "cannot read %s", env->tenant_dir);
        return -1;
    }
    char key[32], msg[1024];
    snprintf(key, sizeof(key), "%ld", CLI_MIGRATE_LOCK_KEY);
    const char *lock_params[] = {key};
    /* Wait for a running migrate: the released set and the ledger must not move meanwhile. */
    int rc = cli_run(c, "SELECT pg_advisory_xact_lock($1::bigint)", 1, lock_params, msg, sizeof(msg)) != 0 ||
                     migrate_release_tenant_set(c, &ten, msg, sizeof(msg)) != 0
                 ? -1
                 : 0;
    migrate_free_set(&ten);
    if (rc != 0)
        tenants_describe_error("", msg, err, errlen);
    return rc;
}

int tenants_create(PGconn *c, const char *slug, const char *name, tenants_created_t *out, char *err, size_t errlen)
{
    char msg[1024];
    const char *params[] = {slug, name};
    PGresult *r = cli_exec(c, "SELECT tenant_id, schema_name FROM tenantd.create_tenant($1, $2)", 2, params, msg,
                           sizeof(msg));
    if (r == NULL) {
        tenants_describe_error(slug, msg, err, errlen);
        return -1;
    }
    snprintf(out->id, sizeof(out->id), "%s", PQgetvalue(r, 0, 0));
    snprintf(out->schema, sizeof(out->schema), "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    return 0;
}

int tenants_create_in_tx(PGconn *c, const cli_env_t *env, const char *slug, const char *name,
                         tenants_created_t *out)
{
    char err[1400];
    if (tenants_release(c, env, err, sizeof(err)) != 0 || tenants_create(c, slug, name, out, err, sizeof(err)) != 0) {
        cli_error("tenant create: %s", err);
        return -1;
    }
    return 0;
}

int tenants_member(PGconn *c, const char *tenant_id, const char *email, const char *roles_array, char user_id[37],
                   char *err, size_t errlen)
{
    char msg[1024];
    const char *uparams[] = {email};
    PGresult *r = cli_exec(c,
                           "INSERT INTO tenantd.users (email) VALUES (lower($1)) "
                           "ON CONFLICT (email) DO UPDATE SET email = excluded.email RETURNING id",
                           1, uparams, msg, sizeof(msg));
    if (r == NULL) {
        snprintf(err, errlen, "user %s: %s", email, msg);
        return -1;
    }
    snprintf(user_id, 37, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    const char *mparams[] = {tenant_id, user_id, roles_array};
    if (cli_run(c,
                "INSERT INTO tenantd.memberships (tenant_id, user_id, roles) VALUES ($1, $2, $3::text[]) "
                "ON CONFLICT (tenant_id, user_id) DO UPDATE SET roles = excluded.roles",
                3, mparams, msg, sizeof(msg)) != 0) {
        snprintf(err, errlen, "membership of %s: %s", email, msg);
        return -1;
    }
    return 0;
}

int tenants_add_member(PGconn *c, const char *tenant_id, const char *email, const char *roles_array,
                       char user_id[37])
{
    char err[1400];
    if (tenants_member(c, tenant_id, email, roles_array, user_id, err, sizeof(err)) != 0) {
        cli_error("%s", err);
        return -1;
    }
    return 0;
}

void tenants_print_created(const char *slug, const tenants_created_t *t, const char *owner)
{
    printf("created tenant %s (id %s, schema %s)%s%s\n", slug, t->id, t->schema, owner != NULL ? ", owner " : "",
           owner != NULL ? owner : "");
}

static void rollback(PGconn *c)
{
    PGresult *r = PQexec(c, "ROLLBACK");
    PQclear(r);
}

static const char CREATE_USAGE[] =
    "usage: tenantctl tenant create SLUG --name NAME [--owner-email EMAIL]\n"
    "       tenantctl tenant create --from-file FILE [--jobs N] [--timings FILE] [--dry-run]\n"
    "\n"
    "Creates a tenant in one transaction: its row in tenantd.tenants, its NOLOGIN role and schema\n"
    "(both t_<uuid hex>), every tenant migration, the grants, and with --owner-email a user (created\n"
    "without a password if new) holding the owner role. A failure leaves nothing behind.\n"
    "SLUG: 2 to 63 characters a-z, 0-9 and '-', starting with a letter. NAME: 1 to 200 characters.\n"
    "With --from-file, creates many tenants (see `tenantctl tenant create --from-file - --help`).\n";

static int cmd_create(cli_env_t *env, int argc, char **argv)
{
    if (tenant_batch_requested(argc, argv))
        return tenant_batch_cmd(env, argc, argv);
    const char *pos[1], *name = NULL, *owner = NULL;
    int npos;
    cli_opt_t opts[] = {{"name", &name, NULL}, {"owner-email", &owner, NULL}, {NULL, NULL, NULL}};
    int rc = cli_parse(argc, argv, opts, pos, 1, 1, &npos, CREATE_USAGE);
    if (rc != 0)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    char err[512];
    if (!slug_valid(pos[0], err, sizeof(err))) {
        cli_error("invalid slug '%.80s': %s", pos[0], err);
        return CLI_USAGE;
    }
    if (name == NULL) {
        cli_error("tenant create: --name is required");
        return CLI_USAGE;
    }
    if (!tenantline_name_valid(name, strlen(name), err, sizeof(err))) {
        cli_error("invalid name: %s", err);
        return CLI_USAGE;
    }
    char email[TENANTS_EMAIL_SIZE] = "";
    if (owner != NULL && !tenants_email_normalize(owner, email, err, sizeof(err))) {
        cli_error("--owner-email: %s", err);
        return CLI_USAGE;
    }
    PGconn *c = cli_connect_owner(env);
    if (c == NULL)
        return CLI_FAIL;
    tenants_created_t t;
    char user_id[37];
    rc = CLI_FAIL;
    if (cli_run(c, "BEGIN", 0, NULL, err, sizeof(err)) != 0)
        cli_error("%s", err);
    else if (tenants_create_in_tx(c, env, pos[0], name, &t) == 0 &&
             (email[0] == '\0' || tenants_add_member(c, t.id, email, "{owner}", user_id) == 0)) {
        if (cli_run(c, "COMMIT", 0, NULL, err, sizeof(err)) != 0)
            cli_error("tenant create: %s", err);
        else {
            tenants_print_created(pos[0], &t, email[0] != '\0' ? email : NULL);
            rc = CLI_OK;
        }
    }
    if (rc != CLI_OK)
        rollback(c);
    PQfinish(c);
    return rc;
}

static const char LIST_USAGE[] =
    "usage: tenantctl tenant list\n"
    "\n"
    "Prints every tenant: slug, status, schema version (highest applied tenant migration), schema\n"
    "and name, ordered by slug, tab-separated after a header line.\n";

static int cmd_list(cli_env_t *env, int argc, char **argv)
{
    const char *pos[1];
    int npos;
    cli_opt_t opts[] = {{NULL, NULL, NULL}};
    int rc = cli_parse(argc, argv, opts, pos, 0, 0, &npos, LIST_USAGE);
    if (rc != 0)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    PGconn *c = cli_connect_owner(env);
    if (c == NULL)
        return CLI_FAIL;
    char err[1024];
    PGresult *r = cli_exec(c,
                           "SELECT t.slug, t.status, coalesce(max(m.version), 0), t.schema_name, t.name"
                           " FROM tenantd.tenants t LEFT JOIN tenantd.schema_migrations m"
                           " ON m.schema_name = t.schema_name GROUP BY t.id ORDER BY t.slug",
                           0, NULL, err, sizeof(err));
    if (r == NULL) {
        report_sql_error("tenant list", "", err);
        PQfinish(c);
        return CLI_FAIL;
    }
    printf("slug\tstatus\tversion\tschema\tname\n");
    for (int i = 0; i < PQntuples(r); i++)
        printf("%s\t%s\t%s\t%s\t%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
               PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
    PQclear(r);
    PQfinish(c);
    return CLI_OK;
}

static const char STATUS_USAGE[] =
    "usage: tenantctl tenant suspend SLUG | tenantctl tenant resume SLUG\n"
    "\n"
    "Sets the tenant's status to suspended (its requests get 403) or back to active.\n";

static int cmd_set_status(cli_env_t *env, int argc, char **argv, const char *status)
{
    const char *pos[1];
    int npos;
    cli_opt_t opts[] = {{NULL, NULL, NULL}};
    int rc = cli_parse(argc, argv, opts, pos, 1, 1, &npos, STATUS_USAGE);
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
    const char *params[] = {pos[0], status};
    PGresult *r = cli_exec(c,
                           "UPDATE tenantd.tenants SET status = $2,"
                           " updated_at = CASE WHEN status = $2 THEN updated_at ELSE now() END"
                           " WHERE slug = $1 RETURNING id",
                           2, params, err, sizeof(err));
    rc = CLI_FAIL;
    if (r == NULL)
        report_sql_error("tenant status", pos[0], err);
    else if (PQntuples(r) == 0)
        cli_error("no tenant with slug '%s'", pos[0]);
    else {
        printf("tenant %s is %s\n", pos[0], status);
        cli_notify_tenant_change(env, PQgetvalue(r, 0, 0));
        rc = CLI_OK;
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

static const char DROP_USAGE[] =
    "usage: tenantctl tenant drop SLUG [--yes]\n"
    "\n"
    "Deletes the tenant: its row (memberships, roles, invitations, API keys cascade), its schema\n"
    "with all data, its role and its migration records. The audit log is kept. Asks for\n"
    "confirmation on a terminal; otherwise --yes is required.\n";

static int cmd_drop(cli_env_t *env, int argc, char **argv)
{
    const char *pos[1];
    int npos;
    bool yes = false;
    cli_opt_t opts[] = {{"yes", NULL, &yes}, {NULL, NULL, NULL}};
    int rc = cli_parse(argc, argv, opts, pos, 1, 1, &npos, DROP_USAGE);
    if (rc != 0)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    char err[1024];
    if (!slug_valid(pos[0], err, sizeof(err))) {
        cli_error("invalid slug '%.80s': %s", pos[0], err);
        return CLI_USAGE;
    }
    if (!yes) {
        if (!env->tty) {
            cli_error("tenant drop: not a terminal; pass --yes to confirm dropping '%s' and all its data", pos[0]);
            return CLI_USAGE;
        }
        char q[200];
        snprintf(q, sizeof(q), "Drop tenant '%s' and ALL its data?", pos[0]);
        if (!cli_confirm(q)) {
            cli_error("tenant drop: not confirmed; nothing changed");
            return CLI_FAIL;
        }
    }
    PGconn *c = cli_connect_owner(env);
    if (c == NULL)
        return CLI_FAIL;
    const char *params[] = {pos[0]};
    PGresult *id = cli_exec(c, "SELECT id FROM tenantd.tenants WHERE slug = $1", 1, params, err, sizeof(err));
    PGresult *r = id != NULL ? cli_exec(c, "SELECT tenantd.drop_tenant($1)", 1, params, err, sizeof(err)) : NULL;
    rc = CLI_FAIL;
    if (r == NULL)
        report_sql_error("tenant drop", pos[0], err);
    else if (PQgetvalue(r, 0, 0)[0] != 't')
        cli_error("no tenant with slug '%s'", pos[0]);
    else {
        printf("dropped tenant %s\n", pos[0]);
        if (PQntuples(id) == 1)
            cli_notify_tenant_change(env, PQgetvalue(id, 0, 0));
        rc = CLI_OK;
    }
    PQclear(id);
    PQclear(r);
    PQfinish(c);
    return rc;
}

int tenants_cmd(cli_env_t *env, int argc, char **argv)
{
    if (argc < 1) {
        fputs(TENANT_USAGE, stderr);
        return CLI_USAGE;
    }
    const char *sub = argv[0];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        fputs(TENANT_USAGE, stdout);
        return CLI_OK;
    }
    if (strcmp(sub, "create") == 0)
        return cmd_create(env, argc - 1, argv + 1);
    if (strcmp(sub, "list") == 0)
        return cmd_list(env, argc - 1, argv + 1);
    if (strcmp(sub, "suspend") == 0)
        return cmd_set_status(env, argc - 1, argv + 1, "suspended");
    if (strcmp(sub, "resume") == 0)
        return cmd_set_status(env, argc - 1, argv + 1, "active");
    if (strcmp(sub, "drop") == 0)
        return cmd_drop(env, argc - 1, argv + 1);
    if (strcmp(sub, "export") == 0)
        return dataio_export_cmd(env, argc - 1, argv + 1);
    if (strcmp(sub, "import") == 0)
        return dataio_import_cmd(env, argc - 1, argv + 1);
    cli_error("unknown tenant command '%s'", sub);
    fputs(TENANT_USAGE, stderr);
    return CLI_USAGE;
}
