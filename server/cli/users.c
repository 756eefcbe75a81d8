/*
 * users: `tenantctl user create` (see users.h).
 *
 * The password comes from stdin (one line; the trailing newline is not part of it), never from
 * the command line, where other users could read it in the process list. Hashing (argon2id,
 * libsodium INTERACTIVE limits, ~70 ms) happens before the transaction opens. All input is
 * checked before connecting; a bad value exits 2 and changes nothing.
 */
#include "cli/users.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/tenants.h"
#include "core/slug.h"

/* Longest accepted password in bytes (CONTRACT.md §2: over 4 KiB is refused). */
#define USERS_PASSWORD_MAX 4096

static const char USER_USAGE[] =
    "usage: tenantctl user create --email EMAIL --tenant SLUG --role ROLE[,ROLE...] < password\n"
    "\n"
    "Creates the user EMAIL (or, if it exists, sets its password) with the password read from\n"
    "stdin (first line, 1 to 4096 bytes), and makes it a member of tenant SLUG with exactly the\n"
    "given roles (default roles: owner, admin, member, viewer; or a custom role's name).\n";

/* Validates a comma-separated role list and turns it into a Postgres array literal. */
static bool roles_to_array(const char *list, char *out, size_t outlen)
{
    size_t n = 0;
    out[n++] = '{';
    const char *p = list;
    bool expect_start = true;
    for (; *p; p++) {
        char c = *p;
        if (c == ',') {
            if (expect_start)
                return false;
            expect_start = true;
        } else if (expect_start) {
            if (!(c >= 'a' && c <= 'z'))
                return false;
            expect_start = false;
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return false;
        }
        if (n + 2 >= outlen)
            return false;
        out[n++] = c;
    }
    if (expect_start)
        return false;
    out[n++] = '}';
    out[n] = '\0';
    return true;
}

static int cmd_create(cli_env_t *env, int argc, char **argv)
{
    const char *pos[1], *email_in = NULL, *slug = NULL, *roles = NULL;
    int npos;
    cli_opt_t opts[] = {{"email", &email_in, NULL}, {"tenant", &slug, NULL}, {"role", &roles, NULL}, {NULL, NULL, NULL}};
    int rc = cli_parse(argc, argv, opts, pos, 0, 0, &npos, USER_USAGE);
    if (rc != 0)
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if (email_in == NULL || slug == NULL || roles == NULL) {
        cli_error("user create: --email, --tenant and --role are required");
        return CLI_USAGE;
    }
    char err[1024], email[256], roles_array[1024];
    if (strlen(email_in) >= sizeof(email) || !tenants_email_valid(email_in, err, sizeof(err))) {
        cli_error("--email: %s", strlen(email_in) >= sizeof(email) ? "too long" : err);
        return CLI_USAGE;
    }
    for (size_t i = 0; i <= strlen(email_in); i++)
        email[i] = (char)tolower((unsigned char)email_in[i]);
    if (!slug_valid(slug, err, sizeof(err))) {
        cli_error("invalid slug '%.80s': %s", slug, err);
        return CLI_USAGE;
    }
    if (!roles_to_array(roles, roles_array, sizeof(roles_array))) {
        cli_error("--role: expected role names (a-z, 0-9, '_', '-', starting with a letter) separated by commas");
        return CLI_USAGE;
    }
    char *password = malloc(USERS_PASSWORD_MAX + 3);
    if (password == NULL) {
        cli_error("out of memory");
        return CLI_FAIL;
    }
    if (fgets(password, USERS_PASSWORD_MAX + 3, stdin) == NULL)
        password[0] = '\0';
    size_t len = strlen(password);
    if (len > 0 && password[len - 1] == '\n')
        password[--len] = '\0';
    if (len > 0 && password[len - 1] == '\r')
        password[--len] = '\0';
    if (len == 0 || len > USERS_PASSWORD_MAX) {
        sodium_memzero(password, USERS_PASSWORD_MAX + 3);
        free(password);
        cli_error("password (stdin): expected one line of 1 to %d bytes", USERS_PASSWORD_MAX);
        return CLI_USAGE;
    }
    char hash[crypto_pwhash_STRBYTES];
    int hrc = sodium_init() < 0 ? -1
                                : crypto_pwhash_str(hash, password, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                                    crypto_pwhash_MEMLIMIT_INTERACTIVE);
    sodium_memzero(password, USERS_PASSWORD_MAX + 3);
    free(password);
    if (hrc != 0) {
        cli_error("hashing the password failed (out of memory?)");
        return CLI_FAIL;
    }
    PGconn *c = cli_connect_owner(env);
    if (c == NULL)
        return CLI_FAIL;
    rc = CLI_FAIL;
    const char *tparams[] = {slug};
    PGresult *r = NULL;
    char user_id[37];
    if (cli_run(c, "BEGIN", 0, NULL, err, sizeof(err)) != 0 ||
        (r = cli_exec(c, "SELECT id FROM tenantd.tenants WHERE slug = $1", 1, tparams, err, sizeof(err))) == NULL) {
        cli_error("user create: %s", err);
    } else if (PQntuples(r) == 0) {
        cli_error("no tenant with slug '%s'", slug);
    } else if (tenants_add_member(c, PQgetvalue(r, 0, 0), email, roles_array, user_id) == 0) {
        const char *uparams[] = {user_id, hash};
        if (cli_run(c, "UPDATE tenantd.users SET password_hash = $2, updated_at = now() WHERE id = $1", 2, uparams, err,
                    sizeof(err)) != 0 ||
            cli_run(c, "COMMIT", 0, NULL, err, sizeof(err)) != 0) {
            cli_error("user create: %s", err);
        } else {
            printf("user %s (id %s) is a member of %s with roles %s\n", email, user_id, slug, roles_array);
            rc = CLI_OK;
        }
    }
    PQclear(r);
    if (rc != CLI_OK) {
        PGresult *rb = PQexec(c, "ROLLBACK");
        PQclear(rb);
    }
    PQfinish(c);
    return rc;
}

int users_cmd(cli_env_t *env, int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "create") == 0)
        return cmd_create(env, argc - 1, argv + 1);
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        fputs(USER_USAGE, stdout);
        return CLI_OK;
    }
    if (argc >= 1)
        cli_error("unknown user command '%s'", argv[0]);
    fputs(USER_USAGE, stderr);
    return CLI_USAGE;
}
