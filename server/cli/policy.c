/*
 * policy: the `tenantctl policy` commands (see policy.h) — validation of the policy directory with
 * rbac_load_dir, and the policy test runner over the *.json files in DIR/tests.
 *
 * Each test case resolves its principal's roles (built-in plus the case's custom roles) with
 * rbac_resolve and compares rbac_check (or rbac_grants_cover for "grant" cases) with "expect".
 * A malformed case counts as a failure with a message saying what is wrong, so a typo in a test
 * file can never make CI pass by testing nothing.
 */
#include "cli/policy.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "security/rbac.h"

enum { POLICY_OK = 0, POLICY_FAIL = 1, POLICY_USAGE = 2 };

static const char USAGE[] =
    "usage: tenantctl policy check [DIR]\n"
    "       tenantctl policy test [DIR] [--verbose]\n"
    "\n"
    "check  load every *.json policy file of DIR as the server does; report the first error\n"
    "test   check, then run every case of DIR/tests/*.json and print \"N passed, M failed\"\n"
    "\n"
    "DIR defaults to $TENANTD_POLICIES, else policies. Exit codes: 0 ok, 1 failure, 2 usage error.\n";

static int usage_error(const char *what)
{
    fprintf(stderr, "tenantctl: policy: %s\n", what);
    fputs(USAGE, stderr);
    return POLICY_USAGE;
}

static const char *default_dir(void)
{
    const char *d = getenv("TENANTD_POLICIES");
    return d != NULL && *d != '\0' ? d : "policies";
}

static const char *decision_name(rbac_decision_t d)
{
    switch (d) {
    case RBAC_ALLOW:
        return "allow";
    case RBAC_ALLOW_OWN:
        return "allow_own";
    default:
        return "deny";
    }
}

static int cmd_check(const char *dir)
{
    char err[1024];
    rbac_policy_t *p = NULL;
    if (rbac_load_dir(dir, &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "tenantctl: policy check: %s\n", err);
        return POLICY_FAIL;
    }
    printf("policy ok: %zu roles in %s\n", rbac_policy_role_count(p), dir);
    rbac_policy_free(p);
    return POLICY_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* Test cases                                                                                     */

/* The custom roles of one case, borrowing the strings of its JSON. */
typedef struct {
    rbac_custom_role_t *roles;
    size_t n;
    const char ***lists; /* 2 per role: permissions, inherits */
} customs_t;

static void customs_free(customs_t *c)
{
    for (size_t i = 0; i < 2 * c->n; i++)
        free(c->lists[i]);
    free(c->lists);
    free(c->roles);
}

/* Borrows the strings of a JSON array into a malloc'd list; -1 when arr is not an array of strings. */
static int string_list(json_t *arr, const char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return -1;
    size_t len = json_array_size(arr);
    const char **l = calloc(len ? len : 1, sizeof(char *));
    if (l == NULL)
        return -1;
    for (size_t i = 0; i < len; i++) {
        l[i] = json_string_value(json_array_get(arr, i));
        if (l[i] == NULL) {
            free(l);
            return -1;
        }
    }
    *out = l;
    *n = len;
    return 0;
}

static int parse_customs(json_t *arr, customs_t *c, const char **why)
{
    memset(c, 0, sizeof(*c));
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr)) {
        *why = "principal.custom_roles must be an array";
        return -1;
    }
    size_t n = json_array_size(arr);
    c->roles = calloc(n ? n : 1, sizeof(rbac_custom_role_t));
    c->lists = calloc(n ? 2 * n : 1, sizeof(char **));
    if (c->roles == NULL || c->lists == NULL) {
        *why = "out of memory";
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        rbac_custom_role_t *r = &c->roles[i];
        c->n = i + 1;
        r->name = json_string_value(json_object_get(o, "name"));
        if (!json_is_object(o) || r->name == NULL) {
            *why = "a custom role must be an object with a string \"name\"";
            return -1;
        }
        if (string_list(json_object_get(o, "permissions"), &c->lists[2 * i], &r->npermissions) != 0 ||
            string_list(json_object_get(o, "inherits"), &c->lists[2 * i + 1], &r->ninherits) != 0) {
            *why = "custom role permissions and inherits must be arrays of strings";
            return -1;
        }
        r->permissions = c->lists[2 * i];
        r->inherits = c->lists[2 * i + 1];
    }
    return 0;
}

/* Keys a case object may have ($-prefixed annotations aside). */
static bool known_case_key(const char *k)
{
    static const char *const keys[] = {"name", "principal", "action", "resource", "grant", "expect"};
    if (k[0] == '$')
        return true;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(k, keys[i]) == 0)
            return true;
    return false;
}

/* Runs one case; true when it passed. Prints a FAIL line (or an ok line when verbose). */
static bool run_case(const rbac_policy_t *p, const char *file, size_t idx, json_t *c, bool verbose)
{
    const char *why = NULL;
    const char *name = json_string_value(json_object_get(c, "name"));
    char label[512], subject[300] = "";
    snprintf(label, sizeof(label), "%s case %zu%s%s%s", file, idx + 1, name ? " (" : "", name ? name : "", name ? ")" : "");
    customs_t cu = {0};
    const char **roles = NULL;
    size_t nroles = 0;
    rbac_grants_t *g = NULL;
    const char *got = NULL;
    bool pass = false;

    json_t *principal = json_object_get(c, "principal");
    json_t *expect_j = json_object_get(c, "expect");
    const char *expect = json_string_value(expect_j);
    const char *grant = json_string_value(json_object_get(c, "grant"));
    const char *action = json_string_value(json_object_get(c, "action"));
    const char *resource = json_string_value(json_object_get(c, "resource"));
    const char *key;
    json_t *v;
    if (!json_is_object(c)) {
        why = "a case must be an object";
        goto done;
    }
    json_object_foreach(c, key, v) {
        if (!known_case_key(key)) {
            why = "unknown key (expected name, principal, action, resource, grant, expect)";
            goto done;
        }
    }
    if (!json_is_object(principal)) {
        why = "\"principal\" must be an object {roles, custom_roles?}";
        goto done;
    }
    json_object_foreach(principal, key, v) {
        if (key[0] != '$' && strcmp(key, "roles") != 0 && strcmp(key, "custom_roles") != 0) {
            why = "unknown principal key (expected roles, custom_roles)";
            goto done;
        }
    }
    json_t *roles_j = json_object_get(principal, "roles");
    if (roles_j == NULL || string_list(roles_j, &roles, &nroles) != 0) {
        why = "principal.roles must be an array of strings";
        goto done;
    }
    if (parse_customs(json_object_get(principal, "custom_roles"), &cu, &why) != 0)
        goto done;
    if (expect == NULL ||
        (strcmp(expect, "allow") != 0 && strcmp(expect, "deny") != 0 && strcmp(expect, "allow_own") != 0)) {
        why = "\"expect\" must be \"allow\", \"deny\" or \"allow_own\"";
        goto done;
    }
    if ((grant != NULL) == (action != NULL)) {
        why = "a case needs exactly one of \"action\" and \"grant\"";
        goto done;
    }
    if (grant != NULL && (resource != NULL || strcmp(expect, "allow_own") == 0)) {
        why = "a \"grant\" case has no \"resource\" and expects \"allow\" or \"deny\"";
        goto done;
    }
    g = rbac_resolve(p, roles, nroles, cu.roles, cu.n);
    if (g == NULL) {
        why = "out of memory";
        goto done;
    }
    size_t used = (size_t)snprintf(subject, sizeof(subject), "roles [");
    for (size_t i = 0; i < nroles && used < sizeof(subject); i++)
        used += (size_t)snprintf(subject + used, sizeof(subject) - used, "%s%s", i ? "," : "", roles[i]);
    if (grant != NULL) {
        if (used < sizeof(subject))
            snprintf(subject + used, sizeof(subject) - used, "] grant %s", grant);
        got = rbac_grants_cover(g, grant) ? "allow" : "deny";
    } else {
        char res[RBAC_PART_MAX + 1];
        const char *act = action;
        if (resource == NULL) {
            const char *colon = strchr(action, ':');
            if (colon == NULL || strchr(colon + 1, ':') != NULL || (size_t)(colon - action) > RBAC_PART_MAX) {
                why = "\"action\" must be resource:action (or give \"resource\" separately)";
                goto done;
            }
            memcpy(res, action, (size_t)(colon - action));
            res[colon - action] = '\0';
            resource = res;
            act = colon + 1;
        }
        if (used < sizeof(subject))
            snprintf(subject + used, sizeof(subject) - used, "] %s:%s", resource, act);
        got = decision_name(rbac_check(g, resource, act));
    }
    pass = strcmp(got, expect) == 0;
done:
    if (why != NULL)
        printf("FAIL %s: malformed: %s\n", label, why);
    else if (!pass)
        printf("FAIL %s: %s: expected %s, got %s\n", label, subject, expect, got);
    else if (verbose)
        printf("ok   %s: %s: %s\n", label, subject, got);
    rbac_grants_free(g);
    free(roles);
    customs_free(&cu);
    return why == NULL && pass;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the *.json files in DIR/tests, sorted; -1 after printing when the folder cannot be read. */
static int list_tests(const char *dir, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t tlen = strlen(dir) + sizeof("/tests");
    char *tdir = malloc(tlen);
    if (tdir == NULL)
        return -1;
    snprintf(tdir, tlen, "%s/tests", dir);
    DIR *d = opendir(tdir);
    if (d == NULL) {
        fprintf(stderr, "tenantctl: policy test: %s: %s\n", tdir, strerror(errno));
        free(tdir);
        return -1;
    }
    size_t cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (de->d_name[0] == '.' || nl <= 5 || strcmp(de->d_name + nl - 5, ".json") != 0)
            continue;
        size_t plen = tlen + nl + 1;
        char *path = malloc(plen);
        if (path == NULL) {
            rc = -1;
            break;
        }
        snprintf(path, plen, "%s/%s", tdir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            char **a = realloc(*out, cap * sizeof(char *));
            if (a == NULL) {
                free(path);
                rc = -1;
                break;
            }
            *out = a;
        }
        (*out)[(*n)++] = path;
    }
    closedir(d);
    free(tdir);
    if (rc != 0)
        fprintf(stderr, "tenantctl: policy test: out of memory\n");
    else if (*n > 0)
        qsort(*out, *n, sizeof(char *), cmp_str);
    return rc;
}

static int cmd_test(const char *dir, bool verbose)
{
    char err[1024];
    rbac_policy_t *p = NULL;
    if (rbac_load_dir(dir, &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "tenantctl: policy test: %s\n", err);
        return POLICY_FAIL;
    }
    char **files;
    size_t nfiles;
    if (list_tests(dir, &files, &nfiles) != 0) {
        rbac_policy_free(p);
        for (size_t i = 0; i < nfiles; i++)
            free(files[i]);
        free(files);
        return POLICY_FAIL;
    }
    size_t passed = 0, failed = 0;
    for (size_t f = 0; f < nfiles; f++) {
        json_error_t je;
        json_t *root = json_load_file(files[f], JSON_REJECT_DUPLICATES, &je);
        json_t *cases = json_is_object(root) ? json_object_get(root, "cases") : root;
        if (root == NULL) {
            printf("FAIL %s:%d:%d: syntax error: %s\n", files[f], je.line, je.column, je.text);
            failed++;
        } else if (!json_is_array(cases)) {
            printf("FAIL %s: expected an array of cases or {\"cases\": [...]}\n", files[f]);
            failed++;
        } else {
            size_t i;
            json_t *c;
            json_array_foreach(cases, i, c) {
                if (run_case(p, files[f], i, c, verbose))
                    passed++;
                else
                    failed++;
            }
        }
        json_decref(root);
        free(files[f]);
    }
    free(files);
    rbac_policy_free(p);
    printf("%zu passed, %zu failed\n", passed, failed);
    if (passed + failed == 0) {
        fprintf(stderr, "tenantctl: policy test: no test cases in %s/tests\n", dir);
        return POLICY_FAIL;
    }
    return failed == 0 ? POLICY_OK : POLICY_FAIL;
}

int policy_command(int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "policy") == 0) {
        argc--;
        argv++;
    }
    const char *sub = NULL, *dir = NULL;
    bool verbose = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(USAGE, stdout);
            return POLICY_OK;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0)
            verbose = true;
        else if (a[0] == '-' && a[1] != '\0')
            return usage_error("unknown option");
        else if (sub == NULL)
            sub = a;
        else if (dir == NULL)
            dir = a;
        else
            return usage_error("too many arguments");
    }
    if (sub == NULL)
        return usage_error("missing subcommand (check or test)");
    if (dir == NULL)
        dir = default_dir();
    if (strcmp(sub, "check") == 0) {
        if (verbose)
            return usage_error("--verbose applies to test only");
        return cmd_check(dir);
    }
    if (strcmp(sub, "test") == 0)
        return cmd_test(dir, verbose);
    return usage_error("unknown subcommand (expected check or test)");
}
