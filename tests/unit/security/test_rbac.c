/*
 * Unit tests of security/rbac: loading policy directories and buffers (the shipped policies/, and
 * every kind of error with the file, line, role and entry it must name), the permission syntax, the
 * wildcard matching table, own vs unconditional precedence, the admin-resource rule, the default
 * roles, custom roles (resolution, validation, escalation through rbac_grants_cover) and the sorted
 * JSON of GET /v1/auth/me.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "security/rbac.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------------------------------------- */
/* Helpers                                                                                        */

/* The repository's policies/ folder, derived from this file's path. */
static const char *shipped_dir(void)
{
    static char buf[4096];
    const char *me = __FILE__;
    const char *cut = strstr(me, "tests/unit/security/test_rbac.c");
    assert_non_null(cut);
    snprintf(buf, sizeof(buf), "%.*spolicies", (int)(cut - me), me);
    return buf;
}

static char *make_dir(void)
{
    char tmpl[] = "/tmp/test_rbac.XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Removes dir, its files and its direct subfolders' files. */
static void remove_dir(char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            struct stat st;
            if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
                remove_dir(path);
            else
                unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Loads a one-file policy directory; returns the rc, err filled. */
static int load_one(const char *name, const char *text, rbac_policy_t **p, char *err, size_t errlen)
{
    char *dir = make_dir();
    write_file(dir, name, text);
    int rc = rbac_load_dir(dir, p, err, errlen);
    remove_dir(dir);
    free(dir);
    return rc;
}

static rbac_policy_t *load_buf(const char *json)
{
    char err[512];
    rbac_policy_t *p = NULL;
    if (rbac_load_buffer("test.json", json, strlen(json), &p, err, sizeof(err)) != 0)
        fail_msg("load failed: %s", err);
    return p;
}

static rbac_policy_t *load_shipped(void)
{
    char err[512];
    rbac_policy_t *p = NULL;
    if (rbac_load_dir(shipped_dir(), &p, err, sizeof(err)) != 0)
        fail_msg("shipped policies do not load: %s", err);
    return p;
}

static rbac_grants_t *grants_of(const rbac_policy_t *p, const char *role)
{
    const char *roles[] = {role};
    rbac_grants_t *g = rbac_resolve(p, roles, 1, NULL, 0);
    assert_non_null(g);
    return g;
}

static void assert_err_has(const char *err, const char *part)
{
    if (strstr(err, part) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", err, part);
}

static const char *dname(rbac_decision_t d)
{
    return d == RBAC_ALLOW ? "allow" : d == RBAC_ALLOW_OWN ? "allow_own" : "deny";
}

#define ADMIN_RES "\"admin_resources\": [\"members\", \"tenant\", \"audit\", \"platform\"]"

/* ---------------------------------------------------------------------------------------------- */
/* Loading                                                                                        */

static void test_load_shipped_policies(void **state)
{
    (void)state;
    rbac_policy_t *p = load_shipped();
    assert_int_equal(rbac_policy_role_count(p), 5);
    const char *builtin[] = {"owner", "admin", "member", "viewer", "platform_admin"};
    for (size_t i = 0; i < N(builtin); i++)
        assert_true(rbac_is_builtin_role(p, builtin[i]));
    assert_false(rbac_is_builtin_role(p, "Owner"));
    assert_false(rbac_is_builtin_role(p, "auditor"));
    assert_false(rbac_is_builtin_role(p, NULL));
    assert_true(rbac_is_platform_role(p, "platform_admin"));
    assert_false(rbac_is_platform_role(p, "owner"));
    rbac_policy_free(p);
}

static void test_load_only_json_directly_in_dir(void **state)
{
    (void)state;
    char *dir = make_dir();
    char sub[4096];
    snprintf(sub, sizeof(sub), "%s/tests", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    write_file(dir, "a.json", "{" ADMIN_RES ", \"roles\": {\"viewer\": {\"permissions\": [\"*:read\"]}}}");
    write_file(dir, "b.json", "{\"roles\": {\"member\": {\"inherits\": [\"viewer\"], \"permissions\": [\"*:create\"]}}}");
    write_file(dir, "README.md", "not json {");
    write_file(dir, ".hidden.json", "not json {");
    write_file(sub, "cases.json", "[1, 2, 3]");
    char err[512];
    rbac_policy_t *p = NULL;
    assert_int_equal(rbac_load_dir(dir, &p, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(rbac_policy_role_count(p), 2);
    /* inheritance across files, admin resources from another file */
    rbac_grants_t *g = grants_of(p, "member");
    assert_int_equal(rbac_check(g, "orders", "read"), RBAC_ALLOW);
    assert_int_equal(rbac_check(g, "members", "read"), RBAC_DENY);
    rbac_grants_free(g);
    rbac_policy_free(p);
    remove_dir(dir);
    free(dir);
}

static void test_load_syntax_error_names_file_and_line(void **state)
{
    (void)state;
    char err[512];
    rbac_policy_t *p = (rbac_policy_t *)&p;
    assert_int_equal(load_one("broken.json", "{\n  \"roles\": {\n    \"viewer\": {\"permissions\": [\"*:read\",]}\n  }\n}\n", &p, err,
                              sizeof(err)),
                     -1);
    assert_null(p);
    assert_err_has(err, "broken.json:3:");
    assert_err_has(err, "syntax error");

    /* duplicate keys are a syntax error with a line, too */
    assert_int_equal(load_one("dup.json", "{\"roles\": {\n\"a\": {},\n\"a\": {}}}", &p, err, sizeof(err)), -1);
    assert_err_has(err, "dup.json:3:");
    assert_err_has(err, "duplicate");

    /* and through the buffer loader */
    assert_int_equal(rbac_load_buffer("buf.json", "{\n\n  nope", 9, &p, err, sizeof(err)), -1);
    assert_err_has(err, "buf.json:3:");
}

static void test_load_unknown_inherit(void **state)
{
    (void)state;
    char err[512];
    rbac_policy_t *p = NULL;
    assert_int_equal(load_one("roles.json",
                              "{\"roles\": {\"viewer\": {\"permissions\": [\"*:read\"]},"
                              " \"member\": {\"inherits\": [\"viewr\"]}}}",
                              &p, err, sizeof(err)),
                     -1);
    assert_null(p);
    assert_err_has(err, "roles.json");
    assert_err_has(err, "role \"member\"");
    assert_err_has(err, "unknown role \"viewr\"");
}

static void test_load_cycle(void **state)
{
    (void)state;
    char err[512];
    rbac_policy_t *p = NULL;
    assert_int_equal(load_one("roles.json",
                              "{\"roles\": {\"a\": {\"inherits\": [\"b\"]}, \"b\": {\"inherits\": [\"c\"]},"
                              " \"c\": {\"inherits\": [\"a\"]}, \"d\": {\"inherits\": [\"a\"]}}}",
                              &p, err, sizeof(err)),
                     -1);
    assert_null(p);
    assert_err_has(err, "roles.json");
    assert_err_has(err, "cycle a -> b -> c -> a");

    const char *self = "{\"roles\": {\"a\": {\"inherits\": [\"a\"]}}}";
    assert_int_equal(rbac_load_buffer("self.json", self, strlen(self), &p, err, sizeof(err)), -1);
    assert_err_has(err, "cycle a -> a");

    /* a diamond is not a cycle */
    p = load_buf("{\"roles\": {\"top\": {\"inherits\": [\"l\", \"r\"]}, \"l\": {\"inherits\": [\"base\"]},"
                 " \"r\": {\"inherits\": [\"base\"]}, \"base\": {\"permissions\": [\"t:read\"]}}}");
    rbac_grants_t *g = grants_of(p, "top");
    assert_int_equal(rbac_check(g, "t", "read"), RBAC_ALLOW);
    assert_int_equal(rbac_grants_count(g), 1);
    rbac_grants_free(g);
    rbac_policy_free(p);
}

static void test_load_bad_permission(void **state)
{
    (void)state;
    const char *bad[] = {"orders", "orders:", ":read", "Orders:read", "orders:read:mine", "orders:read:own:x",
                         "or*ders:read", "orders:re ad", "**:read", "orders:read:", "a:b:OWN", ""};
    for (size_t i = 0; i < N(bad); i++) {
        char json[256], err[512];
        snprintf(json, sizeof(json), "{\"roles\": {\"member\": {\"permissions\": [\"t:read\", \"%s\"]}}}", bad[i]);
        rbac_policy_t *p = NULL;
        if (rbac_load_buffer("perm.json", json, strlen(json), &p, err, sizeof(err)) == 0)
            fail_msg("permission \"%s\" was accepted", bad[i]);
        assert_null(p);
        assert_err_has(err, "perm.json");
        assert_err_has(err, "role \"member\"");
        assert_err_has(err, "invalid permission");
    }
    char err[512];
    rbac_policy_t *p = NULL;
    assert_int_equal(load_one("x.json", "{\"roles\": {\"member\": {\"permissions\": [\"t:read\", 7]}}}", &p, err, sizeof(err)), -1);
    assert_err_has(err, "permissions[1] is not a string");
    /* an embedded NUL never truncates a permission into a valid one (jansson refuses it) */
    const char nul[] = "{\"roles\": {\"m\": {\"permissions\": [\"t:read\\u0000junk\"]}}}";
    assert_int_equal(rbac_load_buffer("nul.json", nul, strlen(nul), &p, err, sizeof(err)), -1);
    assert_null(p);
    assert_err_has(err, "nul.json:1:");
}

static void test_load_duplicate_role(void **state)
{
    (void)state;
    char *dir = make_dir();
    write_file(dir, "a.json", "{\"roles\": {\"viewer\": {\"permissions\": [\"*:read\"]}}}");
    write_file(dir, "b.json", "{\"roles\": {\"viewer\": {\"permissions\": [\"*:*\"]}}}");
    char err[512];
    rbac_policy_t *p = NULL;
    assert_int_equal(rbac_load_dir(dir, &p, err, sizeof(err)), -1);
    assert_null(p);
    assert_err_has(err, "b.json");
    assert_err_has(err, "role \"viewer\"");
    assert_err_has(err, "already defined in");
    assert_err_has(err, "a.json");
    remove_dir(dir);
    free(dir);
}

static void test_load_other_errors(void **state)
{
    (void)state;
    struct {
        const char *json;
        const char *msg;
    } cases[] = {
        {"[]", "must be an object"},
        {"{}", "no roles defined"},
        {"{\"roles\": {}}", "no roles defined"},
        {"{\"rolez\": {}}", "unknown top-level key \"rolez\""},
        {"{\"roles\": []}", "\"roles\" must be an object"},
        {"{\"roles\": {\"a\": {\"permision\": []}}}", "unknown key \"permision\""},
        {"{\"roles\": {\"a\": []}}", "role \"a\": must be an object"},
        {"{\"roles\": {\"Admin\": {}}}", "invalid role name"},
        {"{\"roles\": {\"a\": {\"platform\": 1}}}", "\"platform\" must be true or false"},
        {"{\"roles\": {\"a\": {\"inherits\": \"b\"}}}", "\"inherits\" must be an array"},
        {"{\"admin_resources\": [\"*\"], \"roles\": {\"a\": {}}}", "admin_resources[0]"},
        {"{\"admin_resources\": \"members\", \"roles\": {\"a\": {}}}", "must be an array"},
        {"{\"roles\": {\"p\": {\"platform\": true}, \"t\": {\"inherits\": [\"p\"]}}}",
         "a tenant role may not inherit platform role \"p\""},
    };
    for (size_t i = 0; i < N(cases); i++) {
        char err[512];
        rbac_policy_t *p = NULL;
        if (rbac_load_buffer("e.json", cases[i].json, strlen(cases[i].json), &p, err, sizeof(err)) == 0)
            fail_msg("accepted: %s", cases[i].json);
        assert_null(p);
        assert_err_has(err, "e.json");
        assert_err_has(err, cases[i].msg);
    }
    char err[512];
    rbac_policy_t *p = NULL;
    char *dir = make_dir();
    assert_int_equal(rbac_load_dir(dir, &p, err, sizeof(err)), -1);
    assert_err_has(err, "no *.json policy files");
    remove_dir(dir);
    free(dir);
    assert_int_equal(rbac_load_dir("/nonexistent/policies", &p, err, sizeof(err)), -1);
    assert_err_has(err, "/nonexistent/policies");
    /* comments and descriptions are allowed; a platform role may inherit a tenant role */
    p = load_buf("{\"$comment\": [\"x\"], \"roles\": {\"t\": {\"description\": \"d\", \"$comment\": 1},"
                 " \"p\": {\"platform\": true, \"inherits\": [\"t\"]}}}");
    rbac_policy_free(p);
}

/* ---------------------------------------------------------------------------------------------- */
/* Syntax and matching                                                                            */

static void test_permission_syntax(void **state)
{
    (void)state;
    const char *good[] = {"orders:read", "orders:*", "*:read", "*:*", "members:manage", "orders:update:own",
                          "*:*:own", "reports.daily:read", "api_keys:manage", "a-b:c_d", "0:9"};
    for (size_t i = 0; i < N(good); i++)
        if (!rbac_permission_is_valid(good[i]))
            fail_msg("valid permission refused: %s", good[i]);
    char longpart[RBAC_PART_MAX + 10];
    memset(longpart, 'a', RBAC_PART_MAX);
    strcpy(longpart + RBAC_PART_MAX, ":read");
    assert_true(rbac_permission_is_valid(longpart));
    memset(longpart, 'a', RBAC_PART_MAX + 1);
    strcpy(longpart + RBAC_PART_MAX + 1, ":read");
    assert_false(rbac_permission_is_valid(longpart));

    const char *bad[] = {NULL, "", "orders", "orders:", ":read", ":", "::", "Orders:read", "orders:Read",
                         "orders:read:mine", "orders:read:own:own", "or*:read", "*a:read", "orders:re ad",
                         "orders:read ", " orders:read", "orders:read\n", "orders/x:read", "ordérs:read",
                         "orders:*:", "orders::own"};
    for (size_t i = 0; i < N(bad); i++)
        if (rbac_permission_is_valid(bad[i]))
            fail_msg("invalid permission accepted: %s", bad[i] ? bad[i] : "(null)");

    assert_true(rbac_role_name_is_valid("a"));
    assert_true(rbac_role_name_is_valid("sales-lead_2"));
    assert_false(rbac_role_name_is_valid(""));
    assert_false(rbac_role_name_is_valid("2x"));
    assert_false(rbac_role_name_is_valid("_x"));
    assert_false(rbac_role_name_is_valid("a.b"));
    assert_false(rbac_role_name_is_valid("Ab"));
    char name[RBAC_PART_MAX + 2];
    memset(name, 'r', sizeof(name));
    name[RBAC_PART_MAX] = '\0';
    assert_true(rbac_role_name_is_valid(name));
    name[RBAC_PART_MAX] = 'r';
    name[RBAC_PART_MAX + 1] = '\0';
    assert_false(rbac_role_name_is_valid(name));
}

static void test_wildcard_matching_table(void **state)
{
    (void)state;
    rbac_policy_t *p = load_buf("{" ADMIN_RES ", \"roles\": {"
                                "\"exact\": {\"permissions\": [\"orders:read\"]},"
                                "\"anyaction\": {\"permissions\": [\"orders:*\"]},"
                                "\"anytable\": {\"permissions\": [\"*:read\"]},"
                                "\"all\": {\"permissions\": [\"*:*\"]},"
                                "\"adminall\": {\"permissions\": [\"members:*\"]},"
                                "\"ownall\": {\"permissions\": [\"*:*:own\"]}}}");
    struct {
        const char *role, *res, *act;
        rbac_decision_t want;
    } t[] = {
        {"exact", "orders", "read", RBAC_ALLOW},
        {"exact", "orders", "update", RBAC_DENY},
        {"exact", "order", "read", RBAC_DENY},
        {"exact", "orders2", "read", RBAC_DENY},
        {"exact", "invoices", "read", RBAC_DENY},
        {"anyaction", "orders", "read", RBAC_ALLOW},
        {"anyaction", "orders", "archive", RBAC_ALLOW},
        {"anyaction", "invoices", "read", RBAC_DENY},
        {"anytable", "orders", "read", RBAC_ALLOW},
        {"anytable", "x.y-z_1", "read", RBAC_ALLOW},
        {"anytable", "orders", "delete", RBAC_DENY},
        {"anytable", "members", "read", RBAC_DENY},
        {"anytable", "tenant", "read", RBAC_DENY},
        {"all", "orders", "drop", RBAC_ALLOW},
        {"all", "members", "manage", RBAC_DENY},
        {"all", "platform", "manage", RBAC_DENY},
        {"all", "audit", "read", RBAC_DENY},
        {"adminall", "members", "manage", RBAC_ALLOW},
        {"adminall", "members", "read", RBAC_ALLOW},
        {"adminall", "tenant", "read", RBAC_DENY},
        {"adminall", "orders", "read", RBAC_DENY},
        {"ownall", "orders", "update", RBAC_ALLOW_OWN},
        {"ownall", "members", "update", RBAC_DENY},
        /* a request for "*" is not a wildcard: it names nothing and is denied */
        {"all", "*", "read", RBAC_DENY},
        {"all", "orders", "*", RBAC_DENY},
        {"all", "", "read", RBAC_DENY},
        {"all", "orders", "", RBAC_DENY},
        {"all", "orders:read", "read", RBAC_DENY},
        {"all", "Orders", "read", RBAC_DENY},
        {"nobody", "orders", "read", RBAC_DENY},
    };
    for (size_t i = 0; i < N(t); i++) {
        rbac_grants_t *g = grants_of(p, t[i].role);
        rbac_decision_t d = rbac_check(g, t[i].res, t[i].act);
        if (d != t[i].want)
            fail_msg("%s on %s:%s: got %s, want %s", t[i].role, t[i].res, t[i].act, dname(d), dname(t[i].want));
        rbac_grants_free(g);
    }
    rbac_grants_t *g = grants_of(p, "all");
    assert_int_equal(rbac_check(g, NULL, "read"), RBAC_DENY);
    assert_int_equal(rbac_check(g, "orders", NULL), RBAC_DENY);
    assert_int_equal(rbac_check(NULL, "orders", "read"), RBAC_DENY);
    rbac_grants_free(g);
    rbac_policy_free(p);
}

static void test_own_vs_unconditional(void **state)
{
    (void)state;
    rbac_policy_t *p = load_buf("{\"roles\": {"
                                "\"own\": {\"permissions\": [\"orders:update:own\"]},"
                                "\"full\": {\"permissions\": [\"orders:update\"]},"
                                "\"both\": {\"permissions\": [\"orders:update:own\", \"orders:update\"]},"
                                "\"wildown\": {\"permissions\": [\"*:update:own\", \"orders:*\"]}}}");
    const char *own[] = {"own"}, *full[] = {"full"}, *both[] = {"both"}, *mix[] = {"own", "full"}, *mix2[] = {"full", "own"};
    rbac_grants_t *g;
    g = rbac_resolve(p, own, 1, NULL, 0);
    assert_int_equal(rbac_check(g, "orders", "update"), RBAC_ALLOW_OWN);
    rbac_grants_free(g);
    g = rbac_resolve(p, full, 1, NULL, 0);
    assert_int_equal(rbac_check(g, "orders", "update"), RBAC_ALLOW);
    rbac_grants_free(g);
    g = rbac_resolve(p, both, 1, NULL, 0);
    assert_int_equal(rbac_check(g, "orders", "update"), RBAC_ALLOW);
    assert_int_equal(rbac_grants_count(g), 1); /* the own grant is redundant */
    rbac_grants_free(g);
    g = rbac_resolve(p, mix, 2, NULL, 0);
    assert_int_equal(rbac_check(g, "orders", "update"), RBAC_ALLOW);
    rbac_grants_free(g);
    g = rbac_resolve(p, mix2, 2, NULL, 0);
    assert_int_equal(rbac_check(g, "orders", "update"), RBAC_ALLOW);
    rbac_grants_free(g);
    g = grants_of(p, "wildown");
    assert_int_equal(rbac_check(g, "orders", "update"), RBAC_ALLOW);
    assert_int_equal(rbac_check(g, "invoices", "update"), RBAC_ALLOW_OWN);
    assert_int_equal(rbac_check(g, "invoices", "delete"), RBAC_DENY);
    rbac_grants_free(g);
    rbac_policy_free(p);
}

static void test_admin_resource_rule(void **state)
{
    (void)state;
    rbac_policy_t *p = load_shipped();
    const char *admin_res[] = {"members", "invitations", "roles", "api_keys", "audit", "tenant", "sessions", "realtime", "platform"};
    const char *actions[] = {"read", "create", "update", "delete", "manage", "join"};
    const char *roles[] = {"viewer", "member"};
    for (size_t r = 0; r < N(roles); r++) {
        rbac_grants_t *g = grants_of(p, roles[r]);
        for (size_t i = 0; i < N(admin_res); i++)
            for (size_t a = 0; a < N(actions); a++) {
                rbac_decision_t d = rbac_check(g, admin_res[i], actions[a]);
                bool realtime_ok = strcmp(roles[r], "member") == 0 && strcmp(admin_res[i], "realtime") == 0 &&
                                   strcmp(actions[a], "join") == 0;
                if (d != (realtime_ok ? RBAC_ALLOW : RBAC_DENY))
                    fail_msg("%s got %s on admin resource %s:%s", roles[r], dname(d), admin_res[i], actions[a]);
            }
        rbac_grants_free(g);
    }
    /* the admin's *:update and *:delete stop at admin resources too */
    rbac_grants_t *g = grants_of(p, "admin");
    assert_int_equal(rbac_check(g, "audit", "delete"), RBAC_DENY);
    assert_int_equal(rbac_check(g, "tenant", "update"), RBAC_DENY);
    assert_int_equal(rbac_check(g, "members", "manage"), RBAC_ALLOW);
    rbac_grants_free(g);
    rbac_policy_free(p);
}

static void test_default_roles(void **state)
{
    (void)state;
    rbac_policy_t *p = load_shipped();
    struct {
        const char *perm;
        rbac_decision_t viewer, member, admin, owner, platform;
    } t[] = {
        {"orders:read", RBAC_ALLOW, RBAC_ALLOW, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"orders:create", RBAC_DENY, RBAC_ALLOW, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"orders:update", RBAC_DENY, RBAC_ALLOW_OWN, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"orders:delete", RBAC_DENY, RBAC_ALLOW_OWN, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"realtime:join", RBAC_DENY, RBAC_ALLOW, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"realtime:publish", RBAC_DENY, RBAC_ALLOW, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"realtime:emit", RBAC_DENY, RBAC_DENY, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"members:read", RBAC_DENY, RBAC_DENY, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"members:manage", RBAC_DENY, RBAC_DENY, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"invitations:manage", RBAC_DENY, RBAC_DENY, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"roles:read", RBAC_DENY, RBAC_DENY, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"roles:manage", RBAC_DENY, RBAC_DENY, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"api_keys:manage", RBAC_DENY, RBAC_DENY, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"audit:read", RBAC_DENY, RBAC_DENY, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"tenant:read", RBAC_DENY, RBAC_DENY, RBAC_ALLOW, RBAC_ALLOW, RBAC_DENY},
        {"tenant:manage", RBAC_DENY, RBAC_DENY, RBAC_DENY, RBAC_ALLOW, RBAC_DENY},
        {"tenant:delete", RBAC_DENY, RBAC_DENY, RBAC_DENY, RBAC_ALLOW, RBAC_DENY},
        {"platform:manage", RBAC_DENY, RBAC_DENY, RBAC_DENY, RBAC_DENY, RBAC_ALLOW},
        {"sessions:read", RBAC_DENY, RBAC_DENY, RBAC_DENY, RBAC_DENY, RBAC_DENY},
    };
    const char *names[] = {"viewer", "member", "admin", "owner", "platform_admin"};
    rbac_grants_t *g[5];
    for (size_t r = 0; r < 5; r++)
        g[r] = grants_of(p, names[r]);
    for (size_t i = 0; i < N(t); i++) {
        char res[64];
        const char *colon = strchr(t[i].perm, ':');
        snprintf(res, sizeof(res), "%.*s", (int)(colon - t[i].perm), t[i].perm);
        rbac_decision_t want[5] = {t[i].viewer, t[i].member, t[i].admin, t[i].owner, t[i].platform};
        for (size_t r = 0; r < 5; r++) {
            rbac_decision_t d = rbac_check(g[r], res, colon + 1);
            if (d != want[r])
                fail_msg("%s on %s: got %s, want %s", names[r], t[i].perm, dname(d), dname(want[r]));
        }
    }
    /* the hierarchy: every role covers the one it inherits */
    assert_true(rbac_grants_cover_grants(g[3], g[2]));
    assert_true(rbac_grants_cover_grants(g[2], g[1]));
    assert_true(rbac_grants_cover_grants(g[1], g[0]));
    assert_false(rbac_grants_cover_grants(g[2], g[3]));
    assert_false(rbac_grants_cover_grants(g[1], g[2]));
    assert_false(rbac_grants_cover_grants(g[3], g[4]));
    for (size_t r = 0; r < 5; r++)
        rbac_grants_free(g[r]);
    rbac_policy_free(p);
}

/* ---------------------------------------------------------------------------------------------- */
/* Custom roles                                                                                   */

static void test_role_exists(void **state)
{
    (void)state;
    rbac_policy_t *p = load_shipped();
    const char *perms[] = {"audit:read"};
    rbac_custom_role_t custom[] = {{"auditor", perms, 1, NULL, 0}};
    assert_true(rbac_role_exists(p, "owner", custom, 1));
    assert_true(rbac_role_exists(p, "viewer", NULL, 0));
    assert_true(rbac_role_exists(p, "auditor", custom, 1));
    assert_false(rbac_role_exists(p, "auditor", NULL, 0));
    assert_false(rbac_role_exists(p, "platform_admin", custom, 1)); /* not assignable in a tenant */
    assert_false(rbac_role_exists(p, "ghost", custom, 1));
    assert_false(rbac_role_exists(p, NULL, custom, 1));
    rbac_policy_free(p);
}

static void test_custom_roles_resolve(void **state)
{
    (void)state;
    rbac_policy_t *p = load_shipped();
    const char *aud_p[] = {"audit:read"}, *aud_i[] = {"viewer"};
    const char *sup_p[] = {"members:read"}, *sup_i[] = {"auditor"};
    const char *ra_p[] = {"x:read"}, *ra_i[] = {"ring-b"};
    const char *rb_p[] = {"y:read"}, *rb_i[] = {"ring-a"};
    const char *sh_p[] = {"members:manage"};
    const char *sn_i[] = {"platform_admin", "owner"};
    const char *bad_p[] = {"Orders:read", "orders:read", "nope"};
    rbac_custom_role_t custom[] = {
        {"auditor", aud_p, 1, aud_i, 1}, {"support", sup_p, 1, sup_i, 1}, {"ring-a", ra_p, 1, ra_i, 1},
        {"ring-b", rb_p, 1, rb_i, 1},    {"viewer", sh_p, 1, NULL, 0},    {"sneaky", NULL, 0, sn_i, 2},
        {"sloppy", bad_p, 3, NULL, 0},
    };
    size_t nc = N(custom);
    const char *r1[] = {"support"};
    rbac_grants_t *g = rbac_resolve(p, r1, 1, custom, nc);
    assert_int_equal(rbac_check(g, "members", "read"), RBAC_ALLOW);
    assert_int_equal(rbac_check(g, "audit", "read"), RBAC_ALLOW);
    assert_int_equal(rbac_check(g, "orders", "read"), RBAC_ALLOW);
    assert_int_equal(rbac_check(g, "orders", "create"), RBAC_DENY);
    rbac_grants_free(g);

    const char *r2[] = {"ring-a"};
    g = rbac_resolve(p, r2, 1, custom, nc);
    assert_int_equal(rbac_check(g, "x", "read"), RBAC_ALLOW);
    assert_int_equal(rbac_check(g, "y", "read"), RBAC_ALLOW);
    assert_int_equal(rbac_grants_count(g), 2);
    rbac_grants_free(g);

    const char *r3[] = {"viewer"}; /* the built-in wins over the shadowing custom role */
    g = rbac_resolve(p, r3, 1, custom, nc);
    assert_int_equal(rbac_check(g, "members", "manage"), RBAC_DENY);
    assert_int_equal(rbac_check(g, "orders", "read"), RBAC_ALLOW);
    rbac_grants_free(g);

    const char *r4[] = {"sneaky"}; /* platform inherit ignored, owner inherit kept */
    g = rbac_resolve(p, r4, 1, custom, nc);
    assert_int_equal(rbac_check(g, "platform", "manage"), RBAC_DENY);
    assert_int_equal(rbac_check(g, "tenant", "delete"), RBAC_ALLOW);
    rbac_grants_free(g);

    const char *r5[] = {"sloppy", "ghost", "sloppy"};
    g = rbac_resolve(p, r5, 3, custom, nc);
    assert_int_equal(rbac_check(g, "orders", "read"), RBAC_ALLOW);
    assert_int_equal(rbac_grants_count(g), 1);
    rbac_grants_free(g);

    /* the platform role itself resolves when named directly (platform principals) */
    const char *r6[] = {"platform_admin"};
    g = rbac_resolve(p, r6, 1, custom, nc);
    assert_int_equal(rbac_check(g, "platform", "manage"), RBAC_ALLOW);
    rbac_grants_free(g);

    /* no roles at all, and a NULL policy: empty grants, never NULL */
    g = rbac_resolve(p, NULL, 0, NULL, 0);
    assert_non_null(g);
    assert_int_equal(rbac_grants_count(g), 0);
    char *js = rbac_grants_to_json(g);
    assert_string_equal(js, "[]");
    free(js);
    rbac_grants_free(g);
    g = rbac_resolve(NULL, r1, 1, custom, nc);
    assert_non_null(g);
    assert_int_equal(rbac_check(g, "members", "read"), RBAC_ALLOW);
    rbac_grants_free(g);
    rbac_policy_free(p);
}

static void test_validate_custom_role(void **state)
{
    (void)state;
    rbac_policy_t *p = load_shipped();
    char err[512];
    const char *perms[] = {"orders:read", "orders:update:own"};
    const char *inh_ok[] = {"viewer"};
    rbac_custom_role_t ok = {"sales-lead", perms, 2, inh_ok, 1};
    assert_int_equal(rbac_validate_custom_role(p, &ok, err, sizeof(err)), 0);
    assert_string_equal(err, "");

    struct {
        rbac_custom_role_t role;
        const char *msg;
    } bad[] = {
        {{"owner", perms, 2, NULL, 0}, "built-in"},
        {{"platform_admin", perms, 2, NULL, 0}, "built-in"},
        {{"Sales", perms, 2, NULL, 0}, "invalid name"},
        {{"", perms, 2, NULL, 0}, "invalid name"},
        {{NULL, perms, 2, NULL, 0}, "needs a name"},
        {{"x", (const char *const[]){"orders:read", "orders"}, 2, NULL, 0}, "invalid permission \"orders\""},
        {{"x", (const char *const[]){NULL}, 1, NULL, 0}, "invalid permission"},
        {{"x", perms, 2, (const char *const[]){"ghost"}, 1}, "inherits unknown role \"ghost\""},
        {{"x", perms, 2, (const char *const[]){"platform_admin"}, 1}, "platform role"},
        {{"x", perms, 2, (const char *const[]){"viewer", "viewer"}, 2}, "twice"},
        {{"x", NULL, 3, NULL, 0}, "missing"},
        {{"x", perms, RBAC_CUSTOM_MAX_PERMISSIONS + 1, NULL, 0}, "too many permissions"},
        {{"x", NULL, 0, inh_ok, RBAC_CUSTOM_MAX_INHERITS + 1}, "too many inherited"},
    };
    for (size_t i = 0; i < N(bad); i++) {
        err[0] = '\0';
        if (rbac_validate_custom_role(p, &bad[i].role, err, sizeof(err)) == 0)
            fail_msg("custom role %zu accepted", i);
        assert_err_has(err, bad[i].msg);
    }
    assert_int_equal(rbac_validate_custom_role(p, NULL, err, sizeof(err)), -1);

    /* a whole set: custom inherits allowed, cycles and duplicates refused */
    const char *inh_a[] = {"b"}, *inh_b[] = {"c"}, *inh_c[] = {"a"}, *inh_view[] = {"viewer"};
    rbac_custom_role_t set_ok[] = {{"a", perms, 1, (const char *const[]){"b", "member"}, 2},
                                   {"b", perms, 1, (const char *const[]){"c"}, 1},
                                   {"c", perms, 1, inh_view, 1}};
    assert_int_equal(rbac_validate_custom_roles(p, set_ok, 3, err, sizeof(err)), 0);
    assert_int_equal(rbac_validate_custom_roles(p, NULL, 0, err, sizeof(err)), 0);
    /* a custom role inheriting another custom role is refused when validated alone */
    assert_int_equal(rbac_validate_custom_role(p, &set_ok[1], err, sizeof(err)), -1);

    rbac_custom_role_t cyc[] = {{"a", perms, 1, inh_a, 1}, {"b", perms, 1, inh_b, 1}, {"c", perms, 1, inh_c, 1}};
    assert_int_equal(rbac_validate_custom_roles(p, cyc, 3, err, sizeof(err)), -1);
    assert_err_has(err, "cycle a -> b -> c -> a");

    rbac_custom_role_t dup[] = {{"a", perms, 1, NULL, 0}, {"a", perms, 2, NULL, 0}};
    assert_int_equal(rbac_validate_custom_roles(p, dup, 2, err, sizeof(err)), -1);
    assert_err_has(err, "defined twice");

    rbac_custom_role_t unk[] = {{"a", perms, 1, (const char *const[]){"zz"}, 1}};
    assert_int_equal(rbac_validate_custom_roles(p, unk, 1, err, sizeof(err)), -1);
    assert_err_has(err, "unknown role \"zz\"");

    rbac_custom_role_t self[] = {{"a", perms, 1, inh_c, 1}};
    assert_int_equal(rbac_validate_custom_roles(p, self, 1, err, sizeof(err)), -1);
    assert_err_has(err, "cycle a -> a");
    rbac_policy_free(p);
}

static void test_cover_prevents_escalation(void **state)
{
    (void)state;
    rbac_policy_t *p = load_shipped();
    rbac_grants_t *viewer = grants_of(p, "viewer"), *member = grants_of(p, "member"), *admin = grants_of(p, "admin"),
                  *owner = grants_of(p, "owner");

    /* a member cannot create a role holding members:manage */
    assert_false(rbac_grants_cover(member, "members:manage"));
    assert_true(rbac_grants_cover(admin, "members:manage"));
    assert_true(rbac_grants_cover(member, "orders:update:own"));
    assert_true(rbac_grants_cover(member, "*:update:own"));
    assert_false(rbac_grants_cover(member, "orders:update"));
    assert_false(rbac_grants_cover(member, "*:*"));
    assert_false(rbac_grants_cover(member, "*:*:own"));
    assert_true(rbac_grants_cover(member, "orders:create"));
    assert_true(rbac_grants_cover(viewer, "*:read"));
    assert_true(rbac_grants_cover(viewer, "orders:read"));
    assert_false(rbac_grants_cover(viewer, "audit:read"));
    assert_false(rbac_grants_cover(viewer, "orders:read:"));
    assert_true(rbac_grants_cover(admin, "*:update"));
    assert_true(rbac_grants_cover(admin, "orders:delete:own"));
    assert_false(rbac_grants_cover(admin, "tenant:delete"));
    assert_false(rbac_grants_cover(admin, "members:*"));
    assert_false(rbac_grants_cover(admin, "*:*"));
    assert_false(rbac_grants_cover(admin, "platform:*"));
    assert_true(rbac_grants_cover(owner, "tenant:delete"));
    assert_false(rbac_grants_cover(owner, "not a permission"));
    assert_false(rbac_grants_cover(owner, NULL));
    assert_false(rbac_grants_cover(NULL, "orders:read"));

    /* a custom role built by a member holding members:manage: every permission must be covered */
    const char *wanted[] = {"orders:read", "members:manage"};
    bool all = true;
    for (size_t i = 0; i < N(wanted); i++)
        all = all && rbac_grants_cover(member, wanted[i]);
    assert_false(all);

    /* inheriting or assigning a role: the holder must cover that role's grants */
    const char *inh[] = {"admin"};
    rbac_custom_role_t sneaky = {"helper", NULL, 0, inh, 1};
    const char *helper[] = {"helper"};
    rbac_grants_t *hg = rbac_resolve(p, helper, 1, &sneaky, 1);
    assert_false(rbac_grants_cover_grants(member, hg));
    assert_true(rbac_grants_cover_grants(admin, hg));
    assert_true(rbac_grants_cover_grants(owner, hg));
    assert_false(rbac_grants_cover_grants(admin, owner)); /* an admin cannot make someone owner */
    rbac_grants_free(hg);

    /* custom wildcard on an admin resource */
    const char *hr_p[] = {"members:*"};
    rbac_custom_role_t hr = {"hr", hr_p, 1, NULL, 0};
    const char *hr_r[] = {"hr"};
    hg = rbac_resolve(p, hr_r, 1, &hr, 1);
    assert_true(rbac_grants_cover(hg, "members:manage"));
    assert_true(rbac_grants_cover(hg, "members:*:own"));
    assert_false(rbac_grants_cover(hg, "*:*"));
    assert_false(rbac_grants_cover(hg, "invitations:manage"));
    rbac_grants_free(hg);

    rbac_grants_free(viewer);
    rbac_grants_free(member);
    rbac_grants_free(admin);
    rbac_grants_free(owner);
    rbac_policy_free(p);
}

/* ---------------------------------------------------------------------------------------------- */
/* Output and lifetime                                                                            */

static void test_json_sorted(void **state)
{
    (void)state;
    rbac_policy_t *p = load_shipped();
    rbac_grants_t *g = grants_of(p, "member");
    char *js = rbac_grants_to_json(g);
    assert_string_equal(js, "[\"*:create\",\"*:delete:own\",\"*:read\",\"*:update:own\",\"realtime:join\",\"realtime:publish\"]");
    free(js);
    rbac_grants_free(g);

    /* redundant grants are dropped: the admin's *:update makes the member's *:update:own redundant */
    g = grants_of(p, "owner");
    js = rbac_grants_to_json(g);
    assert_string_equal(js, "[\"*:create\",\"*:delete\",\"*:read\",\"*:update\",\"api_keys:manage\",\"audit:read\","
                            "\"invitations:manage\",\"members:manage\",\"members:read\",\"realtime:emit\",\"realtime:join\","
                            "\"realtime:publish\",\"roles:manage\",\"roles:read\",\"tenant:delete\",\"tenant:manage\","
                            "\"tenant:read\"]");
    free(js);
    rbac_grants_free(g);

    /* sorting is bytewise on the whole string, with custom roles mixed in */
    const char *perms[] = {"zeta:read", "a.b:read", "a:write", "a:read:own", "a:read", "a-b:read", "members:read"};
    rbac_custom_role_t c = {"mix", perms, N(perms), NULL, 0};
    const char *roles[] = {"mix"};
    g = rbac_resolve(p, roles, 1, &c, 1);
    js = rbac_grants_to_json(g);
    assert_string_equal(js, "[\"a-b:read\",\"a.b:read\",\"a:read\",\"a:write\",\"members:read\",\"zeta:read\"]");
    free(js);
    rbac_grants_free(g);
    js = rbac_grants_to_json(NULL);
    assert_string_equal(js, "[]");
    free(js);
    rbac_policy_free(p);
}

static void test_grants_outlive_policy(void **state)
{
    (void)state;
    rbac_policy_t *p = load_shipped();
    rbac_grants_t *g = grants_of(p, "member");
    rbac_policy_free(p); /* a SIGHUP reload frees the old policy while requests still hold grants */
    assert_int_equal(rbac_check(g, "orders", "update"), RBAC_ALLOW_OWN);
    assert_int_equal(rbac_check(g, "members", "read"), RBAC_DENY);
    assert_true(rbac_grants_cover(g, "*:create"));
    rbac_grants_free(g);
    rbac_policy_free(NULL);
    rbac_grants_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_shipped_policies),
        cmocka_unit_test(test_load_only_json_directly_in_dir),
        cmocka_unit_test(test_load_syntax_error_names_file_and_line),
        cmocka_unit_test(test_load_unknown_inherit),
        cmocka_unit_test(test_load_cycle),
        cmocka_unit_test(test_load_bad_permission),
        cmocka_unit_test(test_load_duplicate_role),
        cmocka_unit_test(test_load_other_errors),
        cmocka_unit_test(test_permission_syntax),
        cmocka_unit_test(test_wildcard_matching_table),
        cmocka_unit_test(test_own_vs_unconditional),
        cmocka_unit_test(test_admin_resource_rule),
        cmocka_unit_test(test_default_roles),
        cmocka_unit_test(test_role_exists),
        cmocka_unit_test(test_custom_roles_resolve),
        cmocka_unit_test(test_validate_custom_role),
        cmocka_unit_test(test_cover_prevents_escalation),
        cmocka_unit_test(test_json_sorted),
        cmocka_unit_test(test_grants_outlive_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
