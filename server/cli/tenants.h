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

/* Within the caller's transaction: releases the tenant migration set of env (see
 * migrate_release_tenant_set) and creates tenant slug/name; 0, or -1 after printing the error
 * (a taken slug says so). The caller commits or rolls back. */
int tenants_create_in_tx(PGconn *c, const cli_env_t *env, const char *slug, const char *name,
                         tenants_created_t *out);

/* Within the caller's transaction: finds or creates the user with email (lowercased) and makes it
 * a member of tenant_id with roles (a Postgres array literal such as "{owner}"); the membership's
 * roles are replaced. Writes the user id (37 bytes) into user_id; 0 or -1 after printing. */
int tenants_add_member(PGconn *c, const char *tenant_id, const char *email, const char *roles_array,
                       char user_id[37]);

/* True when email is a plausible lowercase address (1 '@', 3..254 bytes, no spaces/controls);
 * otherwise false with the reason in err. */
bool tenants_email_valid(const char *email, char *err, size_t errlen);

/* `tenantctl tenant SUBCOMMAND ...` (argv starts after "tenant"); returns an exit code. */
int tenants_cmd(cli_env_t *env, int argc, char **argv);

#endif
