/*
 * migfile: names and listing of migration files (`migrations/{control,tenant}/NNNN_name.sql`).
 *
 * A migration file name is four decimal digits (the version, 0001-9999), an underscore, a name of
 * lowercase letters, digits and underscores (at most MIGFILE_NAME_MAX - 1 bytes), and `.sql`.
 * Versions within one folder are unique and applied in increasing order. This module only deals
 * with names and folders; reading, checksumming and applying files is tenantctl's job.
 */
#ifndef TENANTD_CORE_MIGFILE_H
#define TENANTD_CORE_MIGFILE_H

#include <stdbool.h>
#include <stddef.h>

/* Size of the name buffer (the part between "NNNN_" and ".sql", plus NUL). */
#define MIGFILE_NAME_MAX 101

/* One migration file of a folder. */
typedef struct {
    int version;                 /* 1..9999 */
    char name[MIGFILE_NAME_MAX]; /* e.g. "orders_board" */
    char file[MIGFILE_NAME_MAX + 10]; /* e.g. "0001_orders_board.sql" */
} migfile_t;

/* True when name (the descriptive part) is 1..100 characters of [a-z0-9_]. */
bool migfile_valid_name(const char *name);

/* Parses a file name (no directory) such as "0003_add_index.sql": returns 0 and fills *version and
 * name (namelen bytes, >= MIGFILE_NAME_MAX), or -1 when it is not a migration file name. */
int migfile_parse(const char *filename, int *version, char *name, size_t namelen);

/* Lists dir's migration files sorted by version into a malloc'ed array (*out, *count; free() it).
 * Files not ending in ".sql" and hidden files are ignored; a ".sql" file with a malformed name or
 * a repeated version is an error. Returns 0, or -1 with one line in err. A missing folder is an
 * error; an empty one gives count 0. */
int migfile_list(const char *dir, migfile_t **out, size_t *count, char *err, size_t errlen);

/* Writes the file name the next migration called name would get after files[0..count) (sorted)
 * into out; returns 0, or -1 with a reason in err (bad name, version 9999 reached). */
int migfile_next(const migfile_t *files, size_t count, const char *name, char *out, size_t outlen, char *err,
                 size_t errlen);

#endif
