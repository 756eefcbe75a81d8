/*
 * seed: loads fixtures/tenants.json (see seed.h and fixtures/README.md).
 *
 * The whole file is validated before connecting, so a malformed fixture changes nothing. Every
 * write is an upsert keyed by something stable in the fixture (e-mail, slug, tenant + order
 * title), and a password is re-hashed only when the stored hash does not verify it, so running
 * seed again converges to the same state.
 */
#include "cli/seed.h"

#include <ctype.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/tenants.h"
#include "core/slug.h"

static const char SEED_USAGE[] =
    "usage: tenantctl seed [DIR]\n"
    "\n"
    "Loads DIR/tenants.json (default DIR: fixtures) into the database: users (argon2id password\n"
    "hashes), tenants (created when missing), memberships and sample orders. Idempotent.\n";

static bool role_valid(const char *r)
{
    if (r == NULL || !(r[0] >= 'a' && r[0] <= 'z') || strlen(r) > 63)
        return false;
    for (const char *p = r; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return false;
    return true;
}

/* Checks the fixture's shape; prints the first problem and returns -1. */
static int validate(json_t *root, const char *path)
{
    char err[512];
    json_t *users = json_object_get(root, "users"), *tenants = json_object_get(root, "tenants");
    if (!json_is_array(tenants) || (users != NULL && !json_is_array(users))) {
        cli_error("%s: expected {\"users\": [...], \"tenants\": [...]}", path);
        return -1;
    }
    size_t i, j;
    json_t *u, *t, *m, *o;
    json_array_foreach(users, i, u) {
        const char *email = json_string_value(json_object_get(u, "email"));
        if (email == NULL || !tenants_email_valid(email, err, sizeof(err))) {
            cli_error("%s: users[%zu]: %s", path, i, email == NULL ? "email missing" : err);
            return -1;
        }
        json_t *pw = json_object_get(u, "password");
        if (pw != NULL && (!json_is_string(pw) || json_string_length(pw) == 0 || json_string_length(pw) > 4096)) {
            cli_error("%s: users[%zu]: password must be a string of 1 to 4096 bytes", path, i);
            return -1;
        }
    }
    json_array_foreach(tenants, i, t) {
        const char *slug = json_string_value(json_object_get(t, "slug"));
        const char *name = json_string_value(json_object_get(t, "name"));
        if (slug == NULL || !slug_valid(slug, err, sizeof(err))) {
            cli_error("%s: tenants[%zu]: %s", path, i, slug == NULL ? "slug missing" : err);
            return -1;
        }
        if (name == NULL || strlen(name) == 0 || strlen(name) > 200) {
            cli_error("%s: tenant %s: name must be 1 to 200 characters", path, slug);
            return -1;
        }
        json_t *members = json_object_get(t, "members"), *orders = json_object_get(t, "orders");
        if ((members != NULL && !json_is_array(members)) || (orders != NULL && !json_is_array(orders))) {
            cli_error("%s: tenant %s: members and orders must be arrays", path, slug);
            return -1;
        }
        json_array_foreach(members, j, m) {
            const char *email = json_string_value(json_object_get(m, "email"));
            json_t *roles = json_object_get(m, "roles"), *r;
            size_t k;
            if (email == NULL || !tenants_email_valid(email, err, sizeof(err))) {
                cli_error("%s: tenant %s: members[%zu]: %s", path, slug, j, email == NULL ? "email missing" : err);
                return -1;
            }
            if (!json_is_array(roles)) {
                cli_error("%s: tenant %s: member %s: roles must be an array", path, slug, email);
                return -1;
            }
            json_array_foreach(roles, k, r) {
                if (!role_valid(json_string_value(r))) {
                    cli_error("%s: tenant %s: member %s: invalid role name", path, slug, email);
                    return -1;
                }
            }
        }
        json_array_foreach(orders, j, o) {
            const char *title = json_string_value(json_object_get(o, "title"));
            if (title == NULL || strlen(title) == 0) {
                cli_error("%s: tenant %s: orders[%zu]: title missing", path, slug, j);
                return -1;
            }
        }
    }
    return 0;
}

/* Upserts a user; when password is given, makes sure the stored hash verifies it. platform_admin:
 * -1 leave as is, 0/1 set. Writes the id (37 bytes). 0 or -1 (printed). */
static int upsert_user(PGconn *c, const char *email_in, const char *password, int platform_admin, char id[37])
{
    char email[256], err[1024];
    snprintf(email, sizeof(email), "%s", email_in);
    for (char *p = email; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    const char *admin = platform_admin < 0 ? NULL : platform_admin ? "true" : "false";
    const char *params[] = {email, admin};
    PGresult *r = cli_exec(c,
                           "INSERT INTO tenantd.users (email, is_platform_admin) VALUES ($1, coalesce($2::boolean, false))"
                           " ON CONFLICT (email) DO UPDATE SET is_platform_admin ="
                           " coalesce($2::boolean, users.is_platform_admin)"
                           " RETURNING id, coalesce(password_hash, '')",
                           2, params, err, sizeof(err));
    if (r == NULL) {
        cli_error("seed: user %s: %s", email, err);
        return -1;
    }
    snprintf(id, 37, "%s", PQgetvalue(r, 0, 0));
    bool ok = password == NULL ||
              (PQgetvalue(r, 0, 1)[0] != '\0' &&
               crypto_pwhash_str_verify(PQgetvalue(r, 0, 1), password, strlen(password)) == 0);
    PQclear(r);
    if (ok)
        return 0;
    char hash[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str(hash, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
        cli_error("seed: hashing the password of %s: out of memory", email);
        return -1;
    }
    const char *up[] = {id, hash};
    if (cli_run(c, "UPDATE tenantd.users SET password_hash = $2, updated_at = now() WHERE id = $1", 2, up, err,
                sizeof(err)) != 0) {
        cli_error("seed: user %s: %s", email, err);
        return -1;
    }
    return 0;
}

/* Seeds one tenant entry; 0 or -1 (printed). */
static int seed_tenant(PGconn *c, const cli_env_t *env, json_t *t)
{
    const char *slug = json_string_value(json_object_get(t, "slug"));
    const char *name = json_string_value(json_object_get(t, "name"));
    char err[1024], tid[37], schema[64];
    const char *sp[] = {slug, name};
    PGresult *r = cli_exec(c, "UPDATE tenantd.tenants SET name = $2 WHERE slug = $1 RETURNING id, schema_name", 2, sp,
                           err, sizeof(err));
    if (r == NULL) {
        cli_error("seed: tenant %s: %s", slug, err);
        return -1;
    }
    if (PQntuples(r) == 1) {
        snprintf(tid, sizeof(tid), "%s", PQgetvalue(r, 0, 0));
        snprintf(schema, sizeof(schema), "%s", PQgetvalue(r, 0, 1));
        PQclear(r);
    } else {
        PQclear(r);
        tenants_created_t created;
        if (tenants_create_in_tx(c, env, slug, name, &created) != 0)
            return -1;
        snprintf(tid, sizeof(tid), "%s", created.id);
        snprintf(schema, sizeof(schema), "%s", created.schema);
        printf("seed: created tenant %s\n", slug);
    }
    size_t i, k;
    json_t *m, *role, *o;
    json_array_foreach(json_object_get(t, "members"), i, m) {
        const char *email = json_string_value(json_object_get(m, "email"));
        char uid[37], roles[1024] = "{";
        if (upsert_user(c, email, json_string_value(json_object_get(m, "password")), -1, uid) != 0)
            return -1;
        json_array_foreach(json_object_get(m, "roles"), k, role) {
            size_t len = strlen(roles);
            snprintf(roles + len, sizeof(roles) - len, "%s%s", k > 0 ? "," : "", json_string_value(role));
        }
        strncat(roles, "}", sizeof(roles) - strlen(roles) - 1);
        if (tenants_add_member(c, tid, email, roles, uid) != 0)
            return -1;
    }
    char *qs = cli_ident(c, schema);
    if (qs == NULL)
        return -1;
    char *sql = NULL;
    if (asprintf(&sql,
                 "INSERT INTO %1$s.orders AS o (id, title, status, position, owner_id, assignee_id)"
                 " VALUES (md5($1 || ':' || $2)::uuid, $2, coalesce($3, 'open'), coalesce($4::integer, 0),"
                 " (SELECT id FROM tenantd.users WHERE email = lower($5)),"
                 " (SELECT id FROM tenantd.users WHERE email = lower($6)))"
                 " ON CONFLICT (id) DO UPDATE SET status = excluded.status, position = excluded.position,"
                 " owner_id = excluded.owner_id, assignee_id = excluded.assignee_id, updated_at = now()"
                 " WHERE (o.status, o.position, o.owner_id, o.assignee_id) IS DISTINCT FROM"
                 " (excluded.status, excluded.position, excluded.owner_id, excluded.assignee_id)",
                 qs) < 0) {
        free(qs);
        cli_error("out of memory");
        return -1;
    }
    free(qs);
    int rc = 0;
    json_array_foreach(json_object_get(t, "orders"), i, o) {
        char pos[32];
        json_t *p = json_object_get(o, "position");
        snprintf(pos, sizeof(pos), "%lld", (long long)json_integer_value(p));
        const char *params[] = {slug,
                                json_string_value(json_object_get(o, "title")),
                                json_string_value(json_object_get(o, "status")),
                                json_is_integer(p) ? pos : NULL,
                                json_string_value(json_object_get(o, "owner")),
                                json_string_value(json_object_get(o, "assignee"))};
        if (cli_run(c, sql, 6, params, err, sizeof(err)) != 0) {
            cli_error("seed: tenant %s: order '%s': %s", slug, params[1], err);
            rc = -1;
            break;
        }
    }
    free(sql);
    return rc;
}

int seed_cmd(cli_env_t *env, int argc, char **argv)
{
    const char *pos[1];
    int npos;
    cli_opt_t opts[] = {{NULL, NULL, NULL}};
    int rc = cli_parse(argc, argv, opts, pos, 0, 1, &npos, SEED_USAGE);
    if (rc != 0)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    const char *dir = npos > 0 ? pos[0] : "fixtures";
    char path[4096];
    snprintf(path, sizeof(path), "%s/tenants.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (root == NULL) {
        cli_error("%s:%d: %s", path, jerr.line, jerr.text);
        return CLI_FAIL;
    }
    if (validate(root, path) != 0) {
        json_decref(root);
        return CLI_FAIL;
    }
    if (sodium_init() < 0) {
        cli_error("libsodium failed to initialise");
        json_decref(root);
        return CLI_FAIL;
    }
    PGconn *c = cli_connect_owner(env);
    if (c == NULL) {
        json_decref(root);
        return CLI_FAIL;
    }
    char err[1024] = "";
    rc = CLI_FAIL;
    bool ok = cli_run(c, "BEGIN", 0, NULL, err, sizeof(err)) == 0;
    if (!ok)
        cli_error("seed: %s", err);
    size_t i;
    json_t *u, *t;
    json_array_foreach(json_object_get(root, "users"), i, u) {
        char id[37];
        json_t *pa = json_object_get(u, "platform_admin");
        if (ok && upsert_user(c, json_string_value(json_object_get(u, "email")),
                              json_string_value(json_object_get(u, "password")), json_is_true(pa) ? 1 : 0, id) != 0)
            ok = false;
    }
    json_array_foreach(json_object_get(root, "tenants"), i, t) {
        if (ok && seed_tenant(c, env, t) != 0)
            ok = false;
    }
    if (ok && cli_run(c, "COMMIT", 0, NULL, err, sizeof(err)) == 0) {
        printf("seeded %zu tenants from %s\n", json_array_size(json_object_get(root, "tenants")), path);
        rc = CLI_OK;
    } else {
        if (ok)
            cli_error("seed: %s", err);
        PGresult *r = PQexec(c, "ROLLBACK");
        PQclear(r);
        cli_error("seed failed; nothing changed");
    }
    PQfinish(c);
    json_decref(root);
    return rc;
}
