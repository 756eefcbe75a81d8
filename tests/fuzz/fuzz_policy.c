/*
 * libFuzzer target for security/rbac: the policy loader (rbac_load_buffer) on arbitrary bytes, and
 * the permission parser, resolution, custom-role validation and cover check on the input's lines.
 *
 * Besides crashes and sanitizer reports it checks invariants and aborts when one breaks: a string
 * rbac_permission_is_valid accepts loads as a role's permission and is covered by that role's
 * grants; a string it refuses never loads; rbac_grants_to_json is always a JSON array of strings;
 * nothing is allowed without a grant; platform rights never arrive through inheritance or `*`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "security/rbac.h"

#define MAX_LINES 64

/* A fixed policy shaped like policies/roles.json, for resolving custom roles made from the input. */
static const char BASE[] =
    "{\"admin_resources\": [\"members\", \"roles\", \"tenant\", \"platform\"],"
    " \"roles\": {\"viewer\": {\"permissions\": [\"*:read\"]},"
    " \"member\": {\"inherits\": [\"viewer\"], \"permissions\": [\"*:create\", \"*:update:own\"]},"
    " \"admin\": {\"inherits\": [\"member\"], \"permissions\": [\"*:update\", \"members:manage\", \"roles:*\"]},"
    " \"platform_admin\": {\"platform\": true, \"permissions\": [\"platform:*\"]}}}";

static rbac_policy_t *base_policy(void)
{
    static rbac_policy_t *p;
    if (p == NULL) {
        char err[256];
        if (rbac_load_buffer("base.json", BASE, strlen(BASE), &p, err, sizeof(err)) != 0) {
            fprintf(stderr, "base policy: %s\n", err);
            abort();
        }
    }
    return p;
}

static void check_json(const rbac_grants_t *g)
{
    char *s = rbac_grants_to_json(g);
    if (s == NULL)
        abort();
    json_error_t je;
    json_t *a = json_loads(s, 0, &je);
    if (!json_is_array(a) || json_array_size(a) != rbac_grants_count(g))
        abort();
    json_decref(a);
    free(s);
}

/* Loads the whole input as a policy and exercises what was loaded. */
static void fuzz_load(const uint8_t *data, size_t size)
{
    char err[512];
    rbac_policy_t *p = NULL;
    if (rbac_load_buffer("fuzz.json", (const char *)data, size, &p, err, sizeof(err)) != 0) {
        if (p != NULL || strlen(err) == 0)
            abort();
        return;
    }
    const char *roles[] = {"a", "b", "owner", "viewer", "platform_admin"};
    rbac_grants_t *g = rbac_resolve(p, roles, sizeof(roles) / sizeof(roles[0]), NULL, 0);
    if (g == NULL)
        abort();
    rbac_check(g, "orders", "read");
    rbac_check(g, "members", "manage");
    rbac_grants_cover(g, "*:*");
    check_json(g);
    rbac_grants_free(g);
    rbac_policy_free(p);
}

/* Treats each input line as a permission and as a role name. */
static void fuzz_lines(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return;
    memcpy(text, data, size);
    text[size] = '\0';
    const char *lines[MAX_LINES];
    size_t n = 0;
    for (char *s = text; n < MAX_LINES;) {
        char *nl = strchr(s, '\n');
        lines[n++] = s;
        if (nl == NULL)
            break;
        *nl = '\0';
        s = nl + 1;
    }
    rbac_policy_t *base = base_policy();
    for (size_t i = 0; i < n; i++) {
        bool valid = rbac_permission_is_valid(lines[i]);
        /* the oracle: a valid permission loads and is covered by the role holding it */
        bool plain = strpbrk(lines[i], "\"\\") == NULL && strlen(lines[i]) < 200;
        for (const char *c = lines[i]; plain && *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
                plain = false;
        if (plain) {
            char json[512], err[256];
            snprintf(json, sizeof(json), "{\"roles\": {\"r\": {\"permissions\": [\"%s\"]}}}", lines[i]);
            rbac_policy_t *p = NULL;
            int rc = rbac_load_buffer("line.json", json, strlen(json), &p, err, sizeof(err));
            if ((rc == 0) != valid)
                abort();
            if (p != NULL) {
                const char *r[] = {"r"};
                rbac_grants_t *g = rbac_resolve(p, r, 1, NULL, 0);
                if (g == NULL || !rbac_grants_cover(g, lines[i]) || rbac_grants_count(g) != 1)
                    abort();
                rbac_grants_free(g);
                rbac_policy_free(p);
            }
        }
    }
    /* one custom role per line, each holding every line as a permission and inheriting the next */
    rbac_custom_role_t custom[MAX_LINES];
    const char *inh[MAX_LINES][2];
    for (size_t i = 0; i < n; i++) {
        inh[i][0] = lines[(i + 1) % n];
        inh[i][1] = "member";
        custom[i] = (rbac_custom_role_t){lines[i], lines, n, inh[i], 2};
    }
    char err[256];
    rbac_validate_custom_role(base, &custom[0], err, sizeof(err));
    rbac_validate_custom_roles(base, custom, n, err, sizeof(err));
    rbac_role_exists(base, lines[0], custom, n);
    rbac_grants_t *g = rbac_resolve(base, lines, n, custom, n);
    if (g == NULL)
        abort();
    rbac_grants_t *admin = rbac_resolve(base, (const char *const[]){"admin"}, 1, NULL, 0);
    if (admin == NULL)
        abort();
    rbac_grants_cover_grants(admin, g);
    for (size_t i = 0; i < n; i++) {
        rbac_grants_cover(g, lines[i]);
        const char *colon = strchr(lines[i], ':');
        if (colon != NULL && colon - lines[i] < 64) {
            char res[64];
            memcpy(res, lines[i], (size_t)(colon - lines[i]));
            res[colon - lines[i]] = '\0';
            rbac_decision_t d = rbac_check(g, res, colon + 1);
            /* nothing is allowed without a grant */
            if (d != RBAC_DENY && rbac_grants_count(g) == 0)
                abort();
        }
    }
    /* platform rights come only from the platform role named directly or a permission naming
     * the platform resource, never through inheritance or a * resource */
    if (rbac_check(g, "platform", "manage") != RBAC_DENY) {
        bool named = false;
        for (size_t i = 0; i < n; i++)
            named = named || strcmp(lines[i], "platform_admin") == 0 || strncmp(lines[i], "platform:", 9) == 0;
        if (!named)
            abort();
    }
    check_json(g);
    rbac_grants_free(admin);
    rbac_grants_free(g);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_load(data, size);
    fuzz_lines(data, size);
    return 0;
}
