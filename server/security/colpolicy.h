/*
 * colpolicy: column-level rules of the data API, from the JSON files in policies/columns/.
 *
 *   {"tables": {"orders": {"hidden":   {"viewer": ["assignee_id"]},
 *                          "readonly": {"member": ["position"]}}}}
 *
 * A hidden column is neither readable nor writable, a read-only one is readable but not writable.
 * A rule names a role exactly (no inheritance): a column is hidden (read-only) for a caller when
 * every role the caller holds hides it (makes it read-only) — roles add rights, so any role
 * without the restriction lifts it. Callers without roles are restricted by nothing here (they
 * reach no table anyway). The set is immutable once loaded and shared by all threads.
 */
#ifndef TENANTD_SECURITY_COLPOLICY_H
#define TENANTD_SECURITY_COLPOLICY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct colpol colpol_t;

/* Loads every .json file in dir; a missing dir is an empty set. 0, or -1 with the file and the problem in err. */
int colpol_load_dir(const char *dir, colpol_t **out, char *err, size_t errlen);

/* Loads one document (name is used in errors); 0 or -1. */
int colpol_load_buffer(const char *name, const char *json, size_t len, colpol_t **out, char *err, size_t errlen);

/* Frees a set (NULL is fine). */
void colpol_free(colpol_t *p);

/* True when the set has any rule for table (the fast path skips everything else). */
bool colpol_has_table(const colpol_t *p, const char *table);

/* True when column of table is hidden from a caller holding roles. */
bool colpol_hidden(const colpol_t *p, const char *table, const char *column, const char *const *roles, size_t nroles);

/* True when column of table may not be written by a caller holding roles (hidden columns included). */
bool colpol_readonly(const colpol_t *p, const char *table, const char *column, const char *const *roles, size_t nroles);

#endif
