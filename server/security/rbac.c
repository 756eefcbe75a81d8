/*
 * rbac: loading the JSON policies, resolving roles into grants and checking permissions (see
 * rbac.h for the rules).
 *
 * A policy is a sorted array of roles (name, platform flag, parsed permissions, inherited roles as
 * indices) plus the sorted admin-resource names. rbac_resolve walks the inheritance graph of the
 * built-in and the caller's custom roles without recursion, drops every grant another grant already
 * covers, sorts the rest and packs them with a copy of the admin-resource names into one allocation,
 * so rbac_check is a short scan with no allocation and grants outlive a policy reload. Cycle
 * detection (policy files, custom-role sets) is an iterative depth-first search whose stack is the
 * path printed in the error.
 */
#include "security/rbac.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

/* ---------------------------------------------------------------------------------------------- */
/* Permission syntax                                                                              */

/* A borrowed piece of a string. */
typedef struct {
    const char *s;
    size_t n;
} span_t;

/* A parsed permission whose parts point into some string. */
typedef struct {
    span_t res;
    span_t act;
    bool own;
} pspan_t;

static bool name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

/* True when s[0..n) is a part name `[a-z0-9_.-]{1,RBAC_PART_MAX}` (no wildcard). */
static bool part_is_name(const char *s, size_t n)
{
    if (n == 0 || n > RBAC_PART_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char((unsigned char)s[i]))
            return false;
    return true;
}

static bool span_is_star(span_t a)
{
    return a.n == 1 && a.s[0] == '*';
}

static bool span_eq(span_t a, span_t b)
{
    return a.n == b.n && memcmp(a.s, b.s, a.n) == 0;
}

/* Parses s[0..len) as a permission; false when it is not one. */
static bool parse_permission(const char *s, size_t len, pspan_t *out)
{
    if (s == NULL || len > RBAC_PERMISSION_MAX)
        return false;
    span_t parts[3];
    size_t np = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == ':') {
            if (np == 3)
                return false;
            parts[np].s = s + start;
            parts[np].n = i - start;
            np++;
            start = i + 1;
        }
    }
    if (np < 2)
        return false;
    for (size_t i = 0; i < 2; i++)
        if (!span_is_star(parts[i]) && !part_is_name(parts[i].s, parts[i].n))
            return false;
    if (np == 3 && !(parts[2].n == 3 && memcmp(parts[2].s, "own", 3) == 0))
        return false;
    out->res = parts[0];
    out->act = parts[1];
    out->own = np == 3;
    return true;
}

bool rbac_permission_is_valid(const char *permission)
{
    pspan_t p;
    return permission != NULL && parse_permission(permission, strnlen(permission, RBAC_PERMISSION_MAX + 1), &p);
}

bool rbac_role_name_is_valid(const char *name)
{
    if (name == NULL || !(name[0] >= 'a' && name[0] <= 'z'))
        return false;
    size_t n = strnlen(name, RBAC_PART_MAX + 1);
    if (n > RBAC_PART_MAX)
        return false;
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Writes at most 64 bytes of s into buf for an error message, non-printable bytes as '?'. */
static const char *shown(const char *s, char *buf, size_t size)
{
    if (s == NULL)
        return "(null)";
    size_t i = 0;
    for (; s[i] != '\0' && i + 4 < size && i < 64; i++)
        buf[i] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') ? s[i] : '?';
    if (s[i] != '\0' && i + 4 <= size) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

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

/* ---------------------------------------------------------------------------------------------- */
/* Policy                                                                                         */

typedef struct {
    char *res;
    char *act;
    bool own;
} perm_t;

typedef struct {
    char *name;
    char *file; /* the file that defined it, for messages */
    bool platform;
    perm_t *perms;
    size_t nperms;
    char **inherits;
    size_t ninherits;
    size_t *inh; /* inherits as indices into the policy's roles */
} role_t;

struct rbac_policy {
    role_t *roles; /* sorted by name */
    size_t nroles;
    char **admin; /* sorted, unique */
    size_t nadmin;
};

static void role_clear(role_t *r)
{
    free(r->name);
    free(r->file);
    for (size_t i = 0; i < r->nperms; i++) {
        free(r->perms[i].res);
        free(r->perms[i].act);
    }
    free(r->perms);
    for (size_t i = 0; i < r->ninherits; i++)
        free(r->inherits[i]);
    free(r->inherits);
    free(r->inh);
}

void rbac_policy_free(rbac_policy_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nroles; i++)
        role_clear(&p->roles[i]);
    free(p->roles);
    for (size_t i = 0; i < p->nadmin; i++)
        free(p->admin[i]);
    free(p->admin);
    free(p);
}

size_t rbac_policy_role_count(const rbac_policy_t *p)
{
    return p == NULL ? 0 : p->nroles;
}

static int cmp_role(const void *a, const void *b)
{
    return strcmp(((const role_t *)a)->name, ((const role_t *)b)->name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Index of built-in role name, or SIZE_MAX. */
static size_t find_builtin(const rbac_policy_t *p, const char *name)
{
    if (p == NULL || name == NULL)
        return SIZE_MAX;
    size_t lo = 0, hi = p->nroles;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, p->roles[mid].name);
        if (c == 0)
            return mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return SIZE_MAX;
}

bool rbac_is_builtin_role(const rbac_policy_t *p, const char *name)
{
    return find_builtin(p, name) != SIZE_MAX;
}

bool rbac_is_platform_role(const rbac_policy_t *p, const char *name)
{
    size_t i = find_builtin(p, name);
    return i != SIZE_MAX && p->roles[i].platform;
}

/* Index of the first custom role called name (that is not shadowed by a built-in), or SIZE_MAX. */
static size_t find_custom(const rbac_custom_role_t *custom, size_t ncustom, const char *name)
{
    if (name == NULL)
        return SIZE_MAX;
    for (size_t i = 0; i < ncustom; i++)
        if (custom[i].name != NULL && strcmp(custom[i].name, name) == 0)
            return i;
    return SIZE_MAX;
}

bool rbac_role_exists(const rbac_policy_t *p, const char *name, const rbac_custom_role_t *custom, size_t ncustom)
{
    size_t b = find_builtin(p, name);
    if (b != SIZE_MAX)
        return !p->roles[b].platform;
    return find_custom(custom, ncustom, name) != SIZE_MAX;
}

/* ---------------------------------------------------------------------------------------------- */
/* Cycle detection                                                                                */

/* A directed graph in compressed form: the successors of node u are adj[off[u]..off[u+1]). */
typedef struct {
    size_t n;
    const size_t *off;
    const size_t *adj;
} graph_t;

/* Finds a cycle with an iterative depth-first search. Returns 0 (no cycle), 1 (a cycle: path[0..*len)
 * are its nodes in order, path[0] repeated at the end is implied) or -1 (out of memory). path must
 * hold g->n entries. */
static int find_cycle(const graph_t *g, size_t *path, size_t *len)
{
    if (g->n == 0)
        return 0;
    unsigned char *color = calloc(g->n, 1);
    size_t *next = malloc(g->n * sizeof(size_t));
    if (color == NULL || next == NULL) {
        free(color);
        free(next);
        return -1;
    }
    int found = 0;
    for (size_t s = 0; s < g->n && !found; s++) {
        if (color[s] != 0)
            continue;
        size_t depth = 0;
        path[depth] = s;
        next[depth] = g->off[s];
        depth++;
        color[s] = 1;
        while (depth > 0 && !found) {
            size_t u = path[depth - 1];
            if (next[depth - 1] < g->off[u + 1]) {
                size_t v = g->adj[next[depth - 1]++];
                if (color[v] == 1) {
                    size_t at = 0;
                    while (path[at] != v)
                        at++;
                    memmove(path, path + at, (depth - at) * sizeof(size_t));
                    *len = depth - at;
                    found = 1;
                } else if (color[v] == 0) {
                    color[v] = 1;
                    path[depth] = v;
                    next[depth] = g->off[v];
                    depth++;
                }
            } else {
                color[u] = 2;
                depth--;
            }
        }
    }
    free(color);
    free(next);
    return found;
}

/* Writes "a -> b -> a" for a cycle of named nodes into buf. */
static void format_cycle(char *buf, size_t size, const size_t *path, size_t len, const char *(*name)(const void *, size_t),
                         const void *ctx)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i <= len && used < size; i++) {
        char tmp[80];
        int w = snprintf(buf + used, size - used, "%s%s", i == 0 ? "" : " -> ", shown(name(ctx, path[i % len]), tmp, sizeof(tmp)));
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Loading                                                                                        */

/* A policy under construction. */
typedef struct {
    rbac_policy_t *p;
    size_t cap_roles;
    size_t cap_admin;
} builder_t;

static bool is_annotation(const char *key)
{
    return key[0] == '$';
}

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

#define OOM(err, errlen) fail(err, errlen, "out of memory")

/* Adds the admin_resources array of one file. */
static int parse_admin_resources(builder_t *b, const char *file, json_t *arr, char *err, size_t errlen)
{
    char tmp[80];
    if (!json_is_array(arr))
        return fail(err, errlen, "%s: \"admin_resources\" must be an array of resource names", file);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        if (s == NULL)
            return fail(err, errlen, "%s: admin_resources[%zu] is not a string", file, i);
        size_t n = json_string_length(v);
        if (strlen(s) != n || !part_is_name(s, n))
            return fail(err, errlen, "%s: admin_resources[%zu] \"%s\" is not a resource name ([a-z0-9_.-], 1 to %d characters)",
                        file, i, shown(s, tmp, sizeof(tmp)), RBAC_PART_MAX);
        if (b->p->nadmin == b->cap_admin) {
            size_t cap = b->cap_admin ? 2 * b->cap_admin : 16;
            char **a = realloc(b->p->admin, cap * sizeof(char *));
            if (a == NULL)
                return OOM(err, errlen);
            b->p->admin = a;
            b->cap_admin = cap;
        }
        if ((b->p->admin[b->p->nadmin] = dupn(s, n)) == NULL)
            return OOM(err, errlen);
        b->p->nadmin++;
    }
    return 0;
}

/* Fills role r (name already set) from its JSON object. */
static int parse_role(role_t *r, const char *file, json_t *obj, char *err, size_t errlen)
{
    char tmp[80], tmp2[80];
    const char *rn = shown(r->name, tmp2, sizeof(tmp2));
    if (!json_is_object(obj))
        return fail(err, errlen, "%s: role \"%s\": must be an object {permissions, inherits, platform}", file, rn);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (is_annotation(key) || strcmp(key, "description") == 0)
            continue;
        if (strcmp(key, "platform") == 0) {
            if (!json_is_boolean(v))
                return fail(err, errlen, "%s: role \"%s\": \"platform\" must be true or false", file, rn);
            r->platform = json_is_true(v);
        } else if (strcmp(key, "permissions") == 0) {
            if (!json_is_array(v))
                return fail(err, errlen, "%s: role \"%s\": \"permissions\" must be an array of strings", file, rn);
            size_t n = json_array_size(v);
            r->perms = calloc(n ? n : 1, sizeof(perm_t));
            if (r->perms == NULL)
                return OOM(err, errlen);
            for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(v, i);
                const char *s = json_string_value(e);
                if (s == NULL)
                    return fail(err, errlen, "%s: role \"%s\": permissions[%zu] is not a string", file, rn, i);
                pspan_t ps;
                if (strlen(s) != json_string_length(e) || !parse_permission(s, strlen(s), &ps))
                    return fail(err, errlen,
                                "%s: role \"%s\": invalid permission \"%s\" (expected resource:action or "
                                "resource:action:own, each part [a-z0-9_.-]+ or *)",
                                file, rn, shown(s, tmp, sizeof(tmp)));
                perm_t *pm = &r->perms[r->nperms++];
                pm->res = dupn(ps.res.s, ps.res.n);
                pm->act = dupn(ps.act.s, ps.act.n);
                pm->own = ps.own;
                if (pm->res == NULL || pm->act == NULL)
                    return OOM(err, errlen);
            }
        } else if (strcmp(key, "inherits") == 0) {
            if (!json_is_array(v))
                return fail(err, errlen, "%s: role \"%s\": \"inherits\" must be an array of role names", file, rn);
            size_t n = json_array_size(v);
            r->inherits = calloc(n ? n : 1, sizeof(char *));
            r->inh = calloc(n ? n : 1, sizeof(size_t));
            if (r->inherits == NULL || r->inh == NULL)
                return OOM(err, errlen);
            for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(v, i);
                const char *s = json_string_value(e);
                if (s == NULL || strlen(s) != json_string_length(e))
                    return fail(err, errlen, "%s: role \"%s\": inherits[%zu] is not a role name", file, rn, i);
                if ((r->inherits[r->ninherits] = dupn(s, strlen(s))) == NULL)
                    return OOM(err, errlen);
                r->ninherits++;
            }
        } else {
            return fail(err, errlen, "%s: role \"%s\": unknown key \"%s\" (expected permissions, inherits, platform, description)",
                        file, rn, shown(key, tmp, sizeof(tmp)));
        }
    }
    return 0;
}

/* Adds the roles and admin resources of one parsed file. */
static int parse_document(builder_t *b, const char *file, json_t *root, char *err, size_t errlen)
{
    char tmp[80];
    if (!json_is_object(root))
        return fail(err, errlen, "%s: must be an object {\"admin_resources\": [...], \"roles\": {...}}", file);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (is_annotation(key))
            continue;
        if (strcmp(key, "admin_resources") == 0) {
            if (parse_admin_resources(b, file, v, err, errlen) != 0)
                return -1;
        } else if (strcmp(key, "roles") == 0) {
            if (!json_is_object(v))
                return fail(err, errlen, "%s: \"roles\" must be an object {\"name\": {permissions, inherits}}", file);
            const char *rname;
            json_t *robj;
            json_object_foreach(v, rname, robj) {
                if (!rbac_role_name_is_valid(rname))
                    return fail(err, errlen, "%s: role \"%s\": invalid role name (expected [a-z][a-z0-9_-]{0,62})", file,
                                shown(rname, tmp, sizeof(tmp)));
                for (size_t i = 0; i < b->p->nroles; i++)
                    if (strcmp(b->p->roles[i].name, rname) == 0)
                        return fail(err, errlen, "%s: role \"%s\": already defined in %s", file, rname, b->p->roles[i].file);
                if (b->p->nroles == b->cap_roles) {
                    size_t cap = b->cap_roles ? 2 * b->cap_roles : 8;
                    role_t *a = realloc(b->p->roles, cap * sizeof(role_t));
                    if (a == NULL)
                        return OOM(err, errlen);
                    b->p->roles = a;
                    b->cap_roles = cap;
                }
                role_t *r = &b->p->roles[b->p->nroles++];
                memset(r, 0, sizeof(*r));
                r->name = strdup(rname);
                r->file = strdup(file);
                if (r->name == NULL || r->file == NULL)
                    return OOM(err, errlen);
                if (parse_role(r, file, robj, err, errlen) != 0)
                    return -1;
            }
        } else {
            return fail(err, errlen, "%s: unknown top-level key \"%s\" (expected admin_resources, roles, or $comment)", file,
                        shown(key, tmp, sizeof(tmp)));
        }
    }
    return 0;
}

static const char *role_name_at(const void *ctx, size_t i)
{
    return ((const rbac_policy_t *)ctx)->roles[i].name;
}

/* Sorts, links and checks the inheritance of a fully parsed policy. */
static int finalize(builder_t *b, const char *what, char *err, size_t errlen)
{
    rbac_policy_t *p = b->p;
    if (p->nroles == 0)
        return fail(err, errlen, "%s: no roles defined", what);
    qsort(p->roles, p->nroles, sizeof(role_t), cmp_role);
    if (p->nadmin > 0) {
        qsort(p->admin, p->nadmin, sizeof(char *), cmp_str);
        size_t w = 1;
        for (size_t i = 1; i < p->nadmin; i++) {
            if (strcmp(p->admin[i], p->admin[w - 1]) == 0)
                free(p->admin[i]);
            else
                p->admin[w++] = p->admin[i];
        }
        p->nadmin = w;
    }
    size_t nedges = 0;
    for (size_t i = 0; i < p->nroles; i++) {
        role_t *r = &p->roles[i];
        for (size_t k = 0; k < r->ninherits; k++) {
            char tmp[80];
            size_t j = find_builtin(p, r->inherits[k]);
            if (j == SIZE_MAX)
                return fail(err, errlen, "%s: role \"%s\": inherits unknown role \"%s\"", r->file, r->name,
                            shown(r->inherits[k], tmp, sizeof(tmp)));
            if (p->roles[j].platform && !r->platform)
                return fail(err, errlen, "%s: role \"%s\": a tenant role may not inherit platform role \"%s\"", r->file,
                            r->name, p->roles[j].name);
            r->inh[k] = j;
        }
        nedges += r->ninherits;
    }
    size_t *off = malloc((p->nroles + 1) * sizeof(size_t));
    size_t *adj = malloc((nedges ? nedges : 1) * sizeof(size_t));
    size_t *path = malloc(p->nroles * sizeof(size_t));
    if (off == NULL || adj == NULL || path == NULL) {
        free(off);
        free(adj);
        free(path);
        return OOM(err, errlen);
    }
    size_t e = 0;
    for (size_t i = 0; i < p->nroles; i++) {
        off[i] = e;
        for (size_t k = 0; k < p->roles[i].ninherits; k++)
            adj[e++] = p->roles[i].inh[k];
    }
    off[p->nroles] = e;
    graph_t g = {p->nroles, off, adj};
    size_t len = 0;
    int rc = find_cycle(&g, path, &len);
    int ret = 0;
    if (rc < 0) {
        ret = OOM(err, errlen);
    } else if (rc == 1) {
        char cyc[512];
        format_cycle(cyc, sizeof(cyc), path, len, role_name_at, p);
        ret = fail(err, errlen, "%s: role \"%s\": inheritance cycle %s", p->roles[path[0]].file, p->roles[path[0]].name, cyc);
    }
    free(off);
    free(adj);
    free(path);
    return ret;
}

static builder_t builder_new(void)
{
    builder_t b = {calloc(1, sizeof(rbac_policy_t)), 0, 0};
    return b;
}

/* Finishes a load: on success hands the policy to *out, otherwise frees it. */
static int builder_done(builder_t *b, int rc, const char *what, rbac_policy_t **out, char *err, size_t errlen)
{
    if (rc == 0)
        rc = finalize(b, what, err, errlen);
    if (rc != 0) {
        rbac_policy_free(b->p);
        return -1;
    }
    *out = b->p;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    return 0;
}

static int syntax_error(const char *file, const json_error_t *je, char *err, size_t errlen)
{
    if (je->line > 0)
        return fail(err, errlen, "%s:%d:%d: syntax error: %s", file, je->line, je->column, je->text);
    return fail(err, errlen, "%s: %s", file, je->text);
}

int rbac_load_buffer(const char *name, const char *json, size_t len, rbac_policy_t **out, char *err, size_t errlen)
{
    if (out == NULL)
        return fail(err, errlen, "no output");
    *out = NULL;
    if (name == NULL)
        name = "(buffer)";
    if (json == NULL)
        return fail(err, errlen, "%s: no data", name);
    builder_t b = builder_new();
    if (b.p == NULL)
        return OOM(err, errlen);
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    int rc = root == NULL ? syntax_error(name, &je, err, errlen) : parse_document(&b, name, root, err, errlen);
    json_decref(root);
    return builder_done(&b, rc, name, out, err, errlen);
}

static bool ends_with_json(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".json") == 0;
}

int rbac_load_dir(const char *dir, rbac_policy_t **out, char *err, size_t errlen)
{
    if (out == NULL)
        return fail(err, errlen, "no output");
    *out = NULL;
    if (dir == NULL || *dir == '\0')
        return fail(err, errlen, "no policy directory given");
    DIR *d = opendir(dir);
    if (d == NULL)
        return fail(err, errlen, "%s: cannot open policy directory: %s", dir, strerror(errno));
    char **files = NULL;
    size_t nfiles = 0, cap = 0;
    int rc = 0;
    size_t dlen = strlen(dir);
    const char *sep = dir[dlen - 1] == '/' ? "" : "/";
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !ends_with_json(de->d_name))
            continue;
        size_t plen = dlen + strlen(sep) + strlen(de->d_name) + 1;
        char *path = malloc(plen);
        if (path == NULL) {
            rc = OOM(err, errlen);
            break;
        }
        snprintf(path, plen, "%s%s%s", dir, sep, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (nfiles == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            char **a = realloc(files, ncap * sizeof(char *));
            if (a == NULL) {
                free(path);
                rc = OOM(err, errlen);
                break;
            }
            files = a;
            cap = ncap;
        }
        files[nfiles++] = path;
    }
    closedir(d);
    if (rc == 0 && nfiles == 0)
        rc = fail(err, errlen, "%s: no *.json policy files", dir);
    builder_t b = {NULL, 0, 0};
    if (rc == 0) {
        b = builder_new();
        if (b.p == NULL)
            rc = OOM(err, errlen);
    }
    if (rc == 0) {
        qsort(files, nfiles, sizeof(char *), cmp_str);
        for (size_t i = 0; i < nfiles && rc == 0; i++) {
            json_error_t je;
            json_t *root = json_load_file(files[i], JSON_REJECT_DUPLICATES, &je);
            rc = root == NULL ? syntax_error(files[i], &je, err, errlen) : parse_document(&b, files[i], root, err, errlen);
            json_decref(root);
        }
    }
    for (size_t i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    if (b.p == NULL)
        return -1;
    return builder_done(&b, rc, dir, out, err, errlen);
}

/* ---------------------------------------------------------------------------------------------- */
/* Grants                                                                                         */

/* One grant: parts are NUL-terminated; text is the canonical "res:act[:own]". */
typedef struct {
    const char *text;
    const char *res;
    const char *act;
    bool res_wild;
    bool act_wild;
    bool own;
} grant_t;

struct rbac_grants {
    size_t n;
    const grant_t *g; /* sorted by text */
    size_t nadmin;
    const char *const *admin; /* sorted */
    /* grant_t[n], const char *[nadmin] and the strings follow in the same allocation */
};

static bool admin_span(const char *const *admin, size_t nadmin, span_t r)
{
    for (size_t i = 0; i < nadmin; i++)
        if (strlen(admin[i]) == r.n && memcmp(admin[i], r.s, r.n) == 0)
            return true;
    return false;
}

/* True when grant a holds every right grant b gives. */
static bool span_covers(const pspan_t *a, const pspan_t *b, const char *const *admin, size_t nadmin)
{
    if (a->own && !b->own)
        return false;
    if (!span_is_star(a->act) && !span_eq(a->act, b->act))
        return false;
    if (span_is_star(a->res))
        return span_is_star(b->res) || !admin_span(admin, nadmin, b->res);
    return span_eq(a->res, b->res);
}

/* A growing list of candidate grants borrowed from the policy and the custom roles. */
typedef struct {
    pspan_t *v;
    size_t n, cap;
} cands_t;

static bool cands_add(cands_t *c, pspan_t ps)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 32;
        pspan_t *a = realloc(c->v, cap * sizeof(pspan_t));
        if (a == NULL)
            return false;
        c->v = a;
        c->cap = cap;
    }
    c->v[c->n++] = ps;
    return true;
}

static int cmp_grant(const void *a, const void *b)
{
    return strcmp(((const grant_t *)a)->text, ((const grant_t *)b)->text);
}

/* Packs the candidates that no other candidate covers into one rbac_grants_t. */
static rbac_grants_t *pack(const cands_t *c, const char *const *admin, size_t nadmin)
{
    bool *keep = malloc(c->n ? c->n : 1);
    if (keep == NULL)
        return NULL;
    size_t nkeep = 0, strbytes = 0;
    for (size_t i = 0; i < c->n; i++) {
        keep[i] = true;
        for (size_t j = 0; j < c->n && keep[i]; j++) {
            if (j == i || !span_covers(&c->v[j], &c->v[i], admin, nadmin))
                continue;
            /* j covers i: drop i unless they are identical and i comes first */
            if (!span_covers(&c->v[i], &c->v[j], admin, nadmin) || j < i)
                keep[i] = false;
        }
        if (keep[i]) {
            nkeep++;
            const pspan_t *s = &c->v[i];
            strbytes += (s->res.n + 1 + s->act.n + (s->own ? 4 : 0) + 1) + (s->res.n + 1) + (s->act.n + 1);
        }
    }
    for (size_t i = 0; i < nadmin; i++)
        strbytes += strlen(admin[i]) + 1;
    size_t head = sizeof(rbac_grants_t) + nkeep * sizeof(grant_t) + nadmin * sizeof(char *);
    rbac_grants_t *g = malloc(head + strbytes);
    if (g == NULL) {
        free(keep);
        return NULL;
    }
    grant_t *gs = (grant_t *)(g + 1);
    const char **as = (const char **)(gs + nkeep);
    char *w = (char *)(as + nadmin);
    g->n = nkeep;
    g->g = gs;
    g->nadmin = nadmin;
    g->admin = as;
    for (size_t i = 0; i < nadmin; i++) {
        size_t n = strlen(admin[i]) + 1;
        memcpy(w, admin[i], n);
        as[i] = w;
        w += n;
    }
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (!keep[i])
            continue;
        const pspan_t *s = &c->v[i];
        grant_t *e = &gs[k++];
        e->text = w;
        memcpy(w, s->res.s, s->res.n);
        w += s->res.n;
        *w++ = ':';
        memcpy(w, s->act.s, s->act.n);
        w += s->act.n;
        if (s->own) {
            memcpy(w, ":own", 4);
            w += 4;
        }
        *w++ = '\0';
        e->res = w;
        memcpy(w, s->res.s, s->res.n);
        w += s->res.n;
        *w++ = '\0';
        e->act = w;
        memcpy(w, s->act.s, s->act.n);
        w += s->act.n;
        *w++ = '\0';
        e->res_wild = span_is_star(s->res);
        e->act_wild = span_is_star(s->act);
        e->own = s->own;
    }
    free(keep);
    qsort(gs, nkeep, sizeof(grant_t), cmp_grant);
    return g;
}

rbac_grants_t *rbac_resolve(const rbac_policy_t *p, const char *const *roles, size_t nroles,
                            const rbac_custom_role_t *custom, size_t ncustom)
{
    size_t nb = p == NULL ? 0 : p->nroles;
    if (custom == NULL)
        ncustom = 0;
    if (roles == NULL)
        nroles = 0;
    size_t total = nb + ncustom;
    unsigned char *seen = calloc(total ? total : 1, 1);
    size_t *stack = malloc((total ? total : 1) * sizeof(size_t));
    cands_t c = {NULL, 0, 0};
    rbac_grants_t *g = NULL;
    size_t depth = 0;
    if (seen == NULL || stack == NULL)
        goto out;
    /* node u < nb is built-in role u; u >= nb is custom role u - nb */
    for (size_t i = 0; i < nroles; i++) {
        size_t u = find_builtin(p, roles[i]);
        if (u == SIZE_MAX) {
            size_t ci = find_custom(custom, ncustom, roles[i]);
            if (ci == SIZE_MAX)
                continue;
            u = nb + ci;
        }
        if (!seen[u]) {
            seen[u] = 1;
            stack[depth++] = u;
        }
    }
    while (depth > 0) {
        size_t u = stack[--depth];
        if (u < nb) {
            const role_t *r = &p->roles[u];
            for (size_t k = 0; k < r->nperms; k++) {
                pspan_t ps = {{r->perms[k].res, strlen(r->perms[k].res)}, {r->perms[k].act, strlen(r->perms[k].act)},
                              r->perms[k].own};
                if (!cands_add(&c, ps))
                    goto out;
            }
            for (size_t k = 0; k < r->ninherits; k++) {
                size_t v = r->inh[k];
                if (!seen[v]) {
                    seen[v] = 1;
                    stack[depth++] = v;
                }
            }
            continue;
        }
        const rbac_custom_role_t *cr = &custom[u - nb];
        for (size_t k = 0; k < cr->npermissions && cr->permissions != NULL; k++) {
            const char *s = cr->permissions[k];
            pspan_t ps;
            if (s != NULL && parse_permission(s, strnlen(s, RBAC_PERMISSION_MAX + 1), &ps) && !cands_add(&c, ps))
                goto out;
        }
        for (size_t k = 0; k < cr->ninherits && cr->inherits != NULL; k++) {
            size_t v = find_builtin(p, cr->inherits[k]);
            if (v != SIZE_MAX) {
                if (p->roles[v].platform)
                    continue;
            } else {
                size_t ci = find_custom(custom, ncustom, cr->inherits[k]);
                if (ci == SIZE_MAX)
                    continue;
                v = nb + ci;
            }
            if (!seen[v]) {
                seen[v] = 1;
                stack[depth++] = v;
            }
        }
    }
    g = pack(&c, p == NULL ? NULL : (const char *const *)p->admin, p == NULL ? 0 : p->nadmin);
out:
    free(seen);
    free(stack);
    free(c.v);
    return g;
}

void rbac_grants_free(rbac_grants_t *g)
{
    free(g);
}

size_t rbac_grants_count(const rbac_grants_t *g)
{
    return g == NULL ? 0 : g->n;
}

static bool is_admin_resource(const rbac_grants_t *g, const char *resource)
{
    for (size_t i = 0; i < g->nadmin; i++)
        if (strcmp(g->admin[i], resource) == 0)
            return true;
    return false;
}

/* True when s is a whole part name `[a-z0-9_.-]{1,RBAC_PART_MAX}`. */
static bool cstr_is_name(const char *s)
{
    return s != NULL && part_is_name(s, strnlen(s, RBAC_PART_MAX + 1));
}

rbac_decision_t rbac_check(const rbac_grants_t *g, const char *resource, const char *action)
{
    if (g == NULL || !cstr_is_name(resource) || !cstr_is_name(action))
        return RBAC_DENY;
    int admin = -1; /* computed on first wildcard grant */
    rbac_decision_t best = RBAC_DENY;
    for (size_t i = 0; i < g->n; i++) {
        const grant_t *e = &g->g[i];
        if (e->res_wild) {
            if (admin < 0)
                admin = is_admin_resource(g, resource);
            if (admin)
                continue;
        } else if (strcmp(e->res, resource) != 0) {
            continue;
        }
        if (!e->act_wild && strcmp(e->act, action) != 0)
            continue;
        if (!e->own)
            return RBAC_ALLOW;
        best = RBAC_ALLOW_OWN;
    }
    return best;
}

char *rbac_grants_to_json(const rbac_grants_t *g)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    for (size_t i = 0; g != NULL && i < g->n; i++) {
        if (json_array_append_new(arr, json_string(g->g[i].text)) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return s;
}

static pspan_t grant_span(const grant_t *e)
{
    pspan_t ps = {{e->res, strlen(e->res)}, {e->act, strlen(e->act)}, e->own};
    return ps;
}

/* True when one grant of holder covers ps (one suffices: see the note in rbac_grants_cover). */
static bool holder_covers(const rbac_grants_t *holder, const pspan_t *ps)
{
    for (size_t i = 0; i < holder->n; i++) {
        pspan_t h = grant_span(&holder->g[i]);
        if (span_covers(&h, ps, holder->admin, holder->nadmin))
            return true;
    }
    return false;
}

/* A permission with a `*` part grants infinitely many rights, which only a grant with `*` in that
 * part can hold; a concrete permission is held by one matching grant. So the union of the holder's
 * grants covers a permission exactly when a single grant does. */
bool rbac_grants_cover(const rbac_grants_t *holder, const char *permission)
{
    pspan_t ps;
    if (holder == NULL || permission == NULL ||
        !parse_permission(permission, strnlen(permission, RBAC_PERMISSION_MAX + 1), &ps))
        return false;
    return holder_covers(holder, &ps);
}

bool rbac_grants_cover_grants(const rbac_grants_t *holder, const rbac_grants_t *g)
{
    if (holder == NULL || g == NULL)
        return g == NULL || g->n == 0;
    for (size_t i = 0; i < g->n; i++) {
        pspan_t ps = grant_span(&g->g[i]);
        if (!holder_covers(holder, &ps))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------- */
/* Custom roles                                                                                   */

/* Checks everything about one custom role except its inherits. */
static int check_custom_base(const rbac_policy_t *p, const rbac_custom_role_t *role, char *err, size_t errlen)
{
    char tmp[80], tmp2[80];
    if (role == NULL || role->name == NULL)
        return fail(err, errlen, "a custom role needs a name");
    const char *rn = shown(role->name, tmp2, sizeof(tmp2));
    if (!rbac_role_name_is_valid(role->name))
        return fail(err, errlen, "role \"%s\": invalid name (expected [a-z][a-z0-9_-]{0,62})", rn);
    if (rbac_is_builtin_role(p, role->name))
        return fail(err, errlen, "role \"%s\": the name of a built-in role cannot be taken", rn);
    if (role->npermissions > RBAC_CUSTOM_MAX_PERMISSIONS)
        return fail(err, errlen, "role \"%s\": too many permissions (at most %d)", rn, RBAC_CUSTOM_MAX_PERMISSIONS);
    if (role->ninherits > RBAC_CUSTOM_MAX_INHERITS)
        return fail(err, errlen, "role \"%s\": too many inherited roles (at most %d)", rn, RBAC_CUSTOM_MAX_INHERITS);
    if ((role->npermissions > 0 && role->permissions == NULL) || (role->ninherits > 0 && role->inherits == NULL))
        return fail(err, errlen, "role \"%s\": missing permission or inherit list", rn);
    for (size_t i = 0; i < role->npermissions; i++)
        if (!rbac_permission_is_valid(role->permissions[i]))
            return fail(err, errlen,
                        "role \"%s\": invalid permission \"%s\" (expected resource:action or resource:action:own, "
                        "each part [a-z0-9_.-]+ or *)",
                        rn, shown(role->permissions[i], tmp, sizeof(tmp)));
    for (size_t i = 0; i < role->ninherits; i++) {
        if (role->inherits[i] == NULL)
            return fail(err, errlen, "role \"%s\": inherits[%zu] is missing", rn, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(role->inherits[i], role->inherits[j]) == 0)
                return fail(err, errlen, "role \"%s\": inherits \"%s\" twice", rn, shown(role->inherits[i], tmp, sizeof(tmp)));
        if (rbac_is_platform_role(p, role->inherits[i]))
            return fail(err, errlen, "role \"%s\": may not inherit platform role \"%s\"", rn,
                        shown(role->inherits[i], tmp, sizeof(tmp)));
    }
    return 0;
}

int rbac_validate_custom_role(const rbac_policy_t *p, const rbac_custom_role_t *role, char *err, size_t errlen)
{
    if (check_custom_base(p, role, err, errlen) != 0)
        return -1;
    char tmp[80], tmp2[80];
    for (size_t i = 0; i < role->ninherits; i++)
        if (!rbac_is_builtin_role(p, role->inherits[i]))
            return fail(err, errlen, "role \"%s\": inherits unknown role \"%s\"", shown(role->name, tmp2, sizeof(tmp2)),
                        shown(role->inherits[i], tmp, sizeof(tmp)));
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    return 0;
}

static const char *custom_name_at(const void *ctx, size_t i)
{
    return ((const rbac_custom_role_t *)ctx)[i].name;
}

int rbac_validate_custom_roles(const rbac_policy_t *p, const rbac_custom_role_t *roles, size_t nroles, char *err,
                               size_t errlen)
{
    char tmp[80], tmp2[80];
    if (nroles > 0 && roles == NULL)
        return fail(err, errlen, "no custom roles given");
    size_t nedges = 0;
    for (size_t i = 0; i < nroles; i++) {
        if (check_custom_base(p, &roles[i], err, errlen) != 0)
            return -1;
        if (find_custom(roles, nroles, roles[i].name) != i)
            return fail(err, errlen, "role \"%s\": defined twice", shown(roles[i].name, tmp, sizeof(tmp)));
        for (size_t k = 0; k < roles[i].ninherits; k++) {
            const char *in = roles[i].inherits[k];
            if (rbac_is_builtin_role(p, in))
                continue;
            if (find_custom(roles, nroles, in) == SIZE_MAX)
                return fail(err, errlen, "role \"%s\": inherits unknown role \"%s\"", shown(roles[i].name, tmp2, sizeof(tmp2)),
                            shown(in, tmp, sizeof(tmp)));
            nedges++;
        }
    }
    if (nroles == 0) {
        if (err != NULL && errlen > 0)
            err[0] = '\0';
        return 0;
    }
    size_t *off = malloc((nroles + 1) * sizeof(size_t));
    size_t *adj = malloc((nedges ? nedges : 1) * sizeof(size_t));
    size_t *path = malloc(nroles * sizeof(size_t));
    int ret = 0;
    if (off == NULL || adj == NULL || path == NULL) {
        ret = OOM(err, errlen);
    } else {
        size_t e = 0;
        for (size_t i = 0; i < nroles; i++) {
            off[i] = e;
            for (size_t k = 0; k < roles[i].ninherits; k++)
                if (!rbac_is_builtin_role(p, roles[i].inherits[k]))
                    adj[e++] = find_custom(roles, nroles, roles[i].inherits[k]);
        }
        off[nroles] = e;
        graph_t g = {nroles, off, adj};
        size_t len = 0;
        int rc = find_cycle(&g, path, &len);
        if (rc < 0) {
            ret = OOM(err, errlen);
        } else if (rc == 1) {
            char cyc[512];
            format_cycle(cyc, sizeof(cyc), path, len, custom_name_at, roles);
            ret = fail(err, errlen, "role \"%s\": inheritance cycle %s", shown(roles[path[0]].name, tmp, sizeof(tmp)), cyc);
        }
    }
    free(off);
    free(adj);
    free(path);
    if (ret == 0 && err != NULL && errlen > 0)
        err[0] = '\0';
    return ret;
}
