/*
 * colpolicy: loading and querying column rules (see colpolicy.h). Rules are kept as a flat list
 * of (table, column, role, kind) entries; queries walk it, which is fine for the tens of rules a
 * policy set has, and callers skip tables without rules through colpol_has_table.
 */
#include "security/colpolicy.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

typedef enum { RULE_HIDDEN, RULE_READONLY } rule_kind_t;

typedef struct {
    char *table, *column, *role;
    rule_kind_t kind;
} rule_t;

struct colpol {
    rule_t *rules;
    size_t n, cap;
};

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

static int add_rule(colpol_t *p, const char *table, const char *column, const char *role, rule_kind_t kind)
{
    if (p->n == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 16;
        rule_t *r = realloc(p->rules, ncap * sizeof(*r));
        if (r == NULL)
            return -1;
        p->rules = r;
        p->cap = ncap;
    }
    rule_t *r = &p->rules[p->n++];
    r->table = strdup(table);
    r->column = strdup(column);
    r->role = strdup(role);
    r->kind = kind;
    return 0;
}

static int parse_document(colpol_t *p, const char *name, json_t *root, char *err, size_t errlen)
{
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: the document must be an object {\"tables\": {...}}", name);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (key[0] == '$')
            continue;
        if (strcmp(key, "tables") != 0 || !json_is_object(v)) {
            snprintf(err, errlen, "%s: unknown member \"%s\" (expected \"tables\": {...})", name, key);
            return -1;
        }
        const char *table;
        json_t *t;
        json_object_foreach(v, table, t)
        {
            if (!name_ok(table) || !json_is_object(t)) {
                snprintf(err, errlen, "%s: table \"%s\": expected a valid table name with {\"hidden\"|\"readonly\": {role: [columns]}}", name, table);
                return -1;
            }
            const char *kind;
            json_t *byrole;
            json_object_foreach(t, kind, byrole)
            {
                rule_kind_t k;
                if (strcmp(kind, "hidden") == 0)
                    k = RULE_HIDDEN;
                else if (strcmp(kind, "readonly") == 0)
                    k = RULE_READONLY;
                else {
                    snprintf(err, errlen, "%s: table \"%s\": unknown rule \"%s\" (hidden, readonly)", name, table, kind);
                    return -1;
                }
                if (!json_is_object(byrole)) {
                    snprintf(err, errlen, "%s: table \"%s\": \"%s\" must map roles to column lists", name, table, kind);
                    return -1;
                }
                const char *role;
                json_t *cols;
                json_object_foreach(byrole, role, cols)
                {
                    if (!name_ok(role) || !json_is_array(cols)) {
                        snprintf(err, errlen, "%s: table \"%s\": %s: role \"%s\" must map to an array of columns", name, table, kind, role);
                        return -1;
                    }
                    size_t i;
                    json_t *c;
                    json_array_foreach(cols, i, c)
                    {
                        const char *col = json_string_value(c);
                        if (col == NULL || !name_ok(col)) {
                            snprintf(err, errlen, "%s: table \"%s\": %s: role \"%s\": entry %zu is not a column name", name, table, kind, role, i);
                            return -1;
                        }
                        if (add_rule(p, table, col, role, k) != 0) {
                            snprintf(err, errlen, "out of memory");
                            return -1;
                        }
                    }
                }
            }
        }
    }
    return 0;
}

static int load_into(colpol_t *p, const char *name, const char *json, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        snprintf(err, errlen, "%s:%d:%d: syntax error: %s", name, je.line, je.column, je.text);
        return -1;
    }
    int rc = parse_document(p, name, root, err, errlen);
    json_decref(root);
    return rc;
}

int colpol_load_buffer(const char *name, const char *json, size_t len, colpol_t **out, char *err, size_t errlen)
{
    colpol_t *p = calloc(1, sizeof(*p));
    if (p == NULL || load_into(p, name, json, len, err, errlen) != 0) {
        colpol_free(p);
        *out = NULL;
        return -1;
    }
    *out = p;
    return 0;
}

int colpol_load_dir(const char *dir, colpol_t **out, char *err, size_t errlen)
{
    colpol_t *p = calloc(1, sizeof(*p));
    *out = NULL;
    if (p == NULL)
        return -1;
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT) {
            *out = p; /* no column rules */
            return 0;
        }
        snprintf(err, errlen, "%s: cannot open: %s", dir, strerror(errno));
        colpol_free(p);
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.' || n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL) {
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            rc = -1;
            break;
        }
        char *buf = NULL;
        size_t len = 0, cap = 0, got;
        char chunk[4096];
        while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
            if (len + got > cap) {
                cap = (len + got) * 2;
                buf = realloc(buf, cap);
            }
            memcpy(buf + len, chunk, got);
            len += got;
        }
        fclose(f);
        rc = load_into(p, path, buf != NULL ? buf : "", len, err, errlen);
        free(buf);
    }
    closedir(d);
    if (rc != 0) {
        colpol_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

void colpol_free(colpol_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++) {
        free(p->rules[i].table);
        free(p->rules[i].column);
        free(p->rules[i].role);
    }
    free(p->rules);
    free(p);
}

bool colpol_has_table(const colpol_t *p, const char *table)
{
    for (size_t i = 0; p != NULL && i < p->n; i++)
        if (strcmp(p->rules[i].table, table) == 0)
            return true;
    return false;
}

/* True when role restricts column of table by a rule of kind (hidden also counts for readonly). */
static bool role_restricts(const colpol_t *p, const char *table, const char *column, const char *role, bool for_write)
{
    for (size_t i = 0; i < p->n; i++) {
        const rule_t *r = &p->rules[i];
        if ((r->kind == RULE_HIDDEN || for_write) && strcmp(r->role, role) == 0 && strcmp(r->column, column) == 0 &&
            strcmp(r->table, table) == 0)
            return true;
    }
    return false;
}

static bool all_roles_restrict(const colpol_t *p, const char *table, const char *column, const char *const *roles, size_t nroles,
                               bool for_write)
{
    if (p == NULL || nroles == 0)
        return false;
    for (size_t i = 0; i < nroles; i++)
        if (!role_restricts(p, table, column, roles[i], for_write))
            return false;
    return true;
}

bool colpol_hidden(const colpol_t *p, const char *table, const char *column, const char *const *roles, size_t nroles)
{
    return all_roles_restrict(p, table, column, roles, nroles, false);
}

bool colpol_readonly(const colpol_t *p, const char *table, const char *column, const char *const *roles, size_t nroles)
{
    return all_roles_restrict(p, table, column, roles, nroles, true);
}
