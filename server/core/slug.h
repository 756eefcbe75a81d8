/*
 * slug: tenant slugs and the Postgres names derived from a tenant (CONTRACT.md §3).
 *
 * A slug is what users type and see (`acme`, `big-co-2`); it never becomes an SQL identifier.
 * The tenant's schema and its NOLOGIN role are both named `t_` + the tenant uuid as 32 lowercase
 * hex digits: always 34 bytes (under Postgres' 63-byte identifier limit, which a 63-character slug
 * plus a prefix would overflow), distinct for every tenant, and unique across the cluster (roles
 * are cluster-global and several databases may share a cluster). Pure functions, no allocation.
 */
#ifndef TENANTD_CORE_SLUG_H
#define TENANTD_CORE_SLUG_H

#include <stdbool.h>
#include <stddef.h>

/* Longest valid slug in bytes (the regex `^[a-z][a-z0-9-]{1,62}$`). */
#define SLUG_MAX_LEN 63

/* Bytes needed for a schema/role name including the terminating NUL ("t_" + 32 hex + NUL). */
#define SLUG_SCHEMA_NAME_SIZE 35

/* True when s matches ^[a-z][a-z0-9-]{1,62}$; otherwise false and, when err is not NULL, one
 * human-readable sentence saying what is wrong (never echoing more than the slug's first bytes). */
bool slug_valid(const char *s, char *err, size_t errlen);

/* Writes the schema (and role) name of the tenant with uuid text `uuid` (canonical 8-4-4-4-12 form
 * or 32 hex digits, any case) into out (SLUG_SCHEMA_NAME_SIZE bytes); returns 0, or -1 when uuid is
 * not a uuid (out is then the empty string). */
int slug_schema_name(const char *uuid, char out[SLUG_SCHEMA_NAME_SIZE]);

/* True when name has the exact shape slug_schema_name produces (`t_` + 32 lowercase hex). */
bool slug_is_schema_name(const char *name);

#endif
