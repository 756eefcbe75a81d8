/*
 * tenants: the tenant lifecycle commands of tenantctl — `tenant create|list|suspend|resume|drop`.
 *
 * Creation and deletion go through the control schema's SECURITY DEFINER functions
 * tenantd.create_tenant / tenantd.drop_tenant (migrations/control/0001_control.sql), the same
 * path the server's signup and platform API use, so there is one implementation of "a tenant":
 * row + NOLOGIN role t_<uuid hex> + schema t_<uuid hex> + every released tenant migration +
 * grants, in the caller's transaction (a failure leaves nothing behind).
 */
#ifndef TENANTD_CLI_TENANTS_H
#define TENANTD_CLI_TENANTS_H

#include <libpq-fe.h>

#include "cli/cli.h"

/* Created tenant's identity. */
typedef struct {
    char id[37];
    char schema[64];
} tenants_created_t;

/* Bytes of a normalized e-mail buffer (254 characters and the NUL, rounded up). */
#define TENANTS_EMAIL_SIZE 256

/* Within the caller's transaction: waits for a running migrate (transaction-level advisory lock)
 * and releases the tenant migration set of env (see migrate_release_tenant_set); 0, or -1 with
 * the reason in err. */
int tenants_release(PGconn *c, const cli_env_t *env, char *err, size_t errlen);

/* Within the caller's transaction: creates tenant slug/name with tenantd.create_tenant (which
 * applies the released set); 0, or -1 with the reason in err (a taken slug says so). */
int tenants_create(PGconn *c, const char *slug, const char *name, tenants_created_t *out, char *err, size_t errlen);

/* Within the caller's transaction: tenants_release, then tenants_create; 0, or -1 after printing
 * the error. The caller commits or rolls back. */
int tenants_create_in_tx(PGconn *c, const cli_env_t *env, const char *slug, const char *name,
                         tenants_created_t *out);

/* Within the caller's transaction: finds or creates the user with email (lowercased) and makes it
 * a member of tenant_id with roles (a Postgres array literal such as "{owner}"); the membership's
 * roles are replaced. Writes the user id (37 bytes) into user_id; 0, or -1 with the reason in err. */
int tenants_member(PGconn *c, const char *tenant_id, const char *email, const char *roles_array, char user_id[37],
                   char *err, size_t errlen);

/* tenants_member, printing the error; 0 or -1. */
int tenants_add_member(PGconn *c, const char *tenant_id, const char *email, const char *roles_array,
                       char user_id[37]);

/* True when email is a plausible lowercase address (1 '@', 3..254 bytes, no spaces/controls);
 * otherwise false with the reason in err. */
bool tenants_email_valid(const char *email, char *err, size_t errlen);

/* Checks in (length, tenants_email_valid) and writes it lowercased into out; false with the
 * reason in err. */
bool tenants_email_normalize(const char *in, char out[TENANTS_EMAIL_SIZE], char *err, size_t errlen);

/* Writes the error err of the last failed statement about tenant slug (cli_last_sqlstate), in the
 * operator's terms, into out: a taken slug and a missing control schema say so. */
void tenants_describe_error(const char *slug, const char *err, char *out, size_t outlen);

/* Prints the "created tenant SLUG (id …, schema …)[, owner E]" line of a new tenant on stdout. */
void tenants_print_created(const char *slug, const tenants_created_t *t, const char *owner);

/* `tenantctl tenant SUBCOMMAND ...` (argv starts after "tenant"); returns an exit code. */
int tenants_cmd(cli_env_t *env, int argc, char **argv);

#endif
