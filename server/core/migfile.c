/*
 * migfile: parsing of migration file names and sorted folder listings (see migfile.h).
 *
 * Strictness is deliberate: a `.sql` file whose name does not parse is reported instead of being
 * skipped, because a silently ignored migration is worse than a refused run.
 */
#include "core/migfile.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

bool migfile_valid_name(const char *name)
{
    if (name == NULL)
        return false;
    size_t len = strlen(name);
    if (len == 0 || len >= MIGFILE_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

int migfile_parse(const char *filename, int *version, char *name, size_t namelen)
{
    if (filename == NULL || namelen < MIGFILE_NAME_MAX)
        return -1;
    size_t len = strlen(filename);
    if (len < 4 + 1 + 1 + 4 || filename[4] != '_' || strcmp(filename + len - 4, ".sql") != 0)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        if (filename[i] < '0' || filename[i] > '9')
            return -1;
        v = v * 10 + (filename[i] - '0');
    }
    if (v < 1)
        return -1;
    size_t nlen = len - 5 - 4;
    if (nlen >= MIGFILE_NAME_MAX)
        return -1;
    char tmp[MIGFILE_NAME_MAX];
    memcpy(tmp, filename + 5, nlen);
    tmp[nlen] = '\0';
    if (!migfile_valid_name(tmp))
        return -1;
    *version = v;
    memcpy(name, tmp, nlen + 1);
    return 0;
}

static int cmp_version(const void *a, const void *b)
{
    const migfile_t *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

int migfile_list(const char *dir, migfile_t **out, size_t *count, char *err, size_t errlen)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return fail(err, errlen, "cannot open migrations folder %s: %s", dir, strerror(errno));
    size_t n = 0, cap = 16;
    migfile_t *files = malloc(cap * sizeof(*files));
    if (files == NULL) {
        closedir(d);
        return fail(err, errlen, "out of memory");
    }
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        const char *fn = e->d_name;
        size_t len = strlen(fn);
        if (fn[0] == '.' || len < 4 || strcmp(fn + len - 4, ".sql") != 0)
            continue;
        if (n == cap) {
            migfile_t *bigger = realloc(files, cap * 2 * sizeof(*files));
            if (bigger == NULL) {
                rc = fail(err, errlen, "out of memory");
                break;
            }
            files = bigger;
            cap *= 2;
        }
        migfile_t *m = &files[n];
        if (migfile_parse(fn, &m->version, m->name, sizeof(m->name)) != 0) {
            rc = fail(err, errlen, "%s/%s: not a migration file name (expected NNNN_name.sql, name of a-z 0-9 _)",
                      dir, fn);
            break;
        }
        memcpy(m->file, fn, len + 1); /* a parsed name is at most 109 bytes */
        n++;
    }
    closedir(d);
    if (rc == 0) {
        qsort(files, n, sizeof(*files), cmp_version);
        for (size_t i = 1; i < n; i++) {
            if (files[i].version == files[i - 1].version) {
                rc = fail(err, errlen, "%s: %s and %s have the same version", dir, files[i - 1].file,
                          files[i].file);
                break;
            }
        }
    }
    if (rc != 0) {
        free(files);
        return -1;
    }
    *out = files;
    *count = n;
    return 0;
}

int migfile_next(const migfile_t *files, size_t count, const char *name, char *out, size_t outlen, char *err,
                 size_t errlen)
{
    if (!migfile_valid_name(name))
        return fail(err, errlen, "migration name must be 1 to 100 characters a-z, 0-9 and '_'");
    int next = count > 0 ? files[count - 1].version + 1 : 1;
    if (next > 9999)
        return fail(err, errlen, "no version left after 9999");
    int w = snprintf(out, outlen, "%04d_%s.sql", next, name);
    if (w < 0 || (size_t)w >= outlen)
        return fail(err, errlen, "file name too long");
    return 0;
}
