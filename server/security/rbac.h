/*
 * rbac: role-based access control from the JSON policies in policies/ (CONTRACT.md §5) plus the
 * custom roles a tenant admin defines. Pure logic: no I/O except reading the policy directory.
 *
 * A permission is `resource:action` or `resource:action:own`; each part is `[a-z0-9_.-]{1,63}` or
 * `*` (any one part). A grant without `:own` is unconditional; `:own` limits it to rows whose
 * owner_id is the caller. Resources listed in a policy's "admin_resources" (members, roles, tenant,
 * platform, ...) are never matched by a `*` resource: `*:read` reads every data table and nothing
 * else; an admin resource is reached only by a grant that names it (`members:*`, `tenant:read`).
 * Deny by default; an unconditional grant beats an `own` one.
 *
 * Roles have permissions and inherit other roles. Built-in roles come from the policy files; a role
 * with "platform": true (platform_admin) is never held inside a tenant and no tenant role, built-in
 * or custom, may inherit it. Custom roles (per tenant) are passed in by the caller at resolve time.
 *
 * Threads: a loaded rbac_policy_t is immutable and may be read by any number of threads; an
 * rbac_grants_t is immutable after rbac_resolve and self-contained (it stays valid after its policy
 * is freed, e.g. across a SIGHUP reload). rbac_check allocates nothing.
 */
#ifndef TENANTD_SECURITY_RBAC_H
#define TENANTD_SECURITY_RBAC_H

#include <stdbool.h>
#include <stddef.h>

/* Longest resource or action part of a permission, and longest role name, in bytes. */
#define RBAC_PART_MAX 63
/* Longest permission string (`part:part:own`) in bytes. */
#define RBAC_PERMISSION_MAX (2 * RBAC_PART_MAX + 5)
/* Most permissions and most inherited roles one custom role may list. */
#define RBAC_CUSTOM_MAX_PERMISSIONS 256
#define RBAC_CUSTOM_MAX_INHERITS 32

typedef struct rbac_policy rbac_policy_t; /* immutable once loaded; shared read-only by all threads */
typedef struct rbac_grants rbac_grants_t; /* a principal's effective permissions */

/* ALLOW_OWN: only rows whose owner_id is the caller. */
typedef enum { RBAC_DENY = 0, RBAC_ALLOW, RBAC_ALLOW_OWN } rbac_decision_t;

/* A tenant's custom role as stored (CONTRACT.md §6 `{name, permissions, inherits}`); the strings
 * are borrowed for the duration of each call. */
typedef struct {
    const char *name;
    const char *const *permissions;
    size_t npermissions;
    const char *const *inherits;
    size_t ninherits;
} rbac_custom_role_t;

/* Loads every *.json file directly in dir (not subdirectories such as tests/) as one policy; 0 and
 * *out set, or -1 with err naming the file and line (syntax: "dir/f.json:12:5: ...") or the file,
 * role and bad entry (semantic errors: unknown inherit, cycle, bad permission, duplicate role). */
int rbac_load_dir(const char *dir, rbac_policy_t **out, char *err, size_t errlen);

/* Like rbac_load_dir for one policy document json[0..len) named `name` in messages. */
int rbac_load_buffer(const char *name, const char *json, size_t len, rbac_policy_t **out, char *err, size_t errlen);

/* Frees a policy (NULL is a no-op); grants resolved from it stay valid. */
void rbac_policy_free(rbac_policy_t *p);

/* Number of roles the policy defines (platform roles included). */
size_t rbac_policy_role_count(const rbac_policy_t *p);

/* True when name is a role defined by the policy files, platform roles included (such a name can
 * never be taken by a custom role). */
bool rbac_is_builtin_role(const rbac_policy_t *p, const char *name);

/* True when name is a built-in role marked "platform": true. */
bool rbac_is_platform_role(const rbac_policy_t *p, const char *name);

/* True when name is a role a tenant member, invitation or API key can hold: a non-platform built-in
 * role or one of custom[0..ncustom). Platform roles are answered by rbac_is_platform_role. */
bool rbac_role_exists(const rbac_policy_t *p, const char *name, const rbac_custom_role_t *custom, size_t ncustom);

/* Resolves role names (built-in + the tenant's custom roles, with inheritance; cycles, unknown names,
 * invalid permissions of custom roles, a custom role shadowing a built-in name and custom roles
 * inheriting a platform role are all ignored safely: they grant nothing) into grants. A built-in
 * name wins over a custom one. Platform roles grant only when named directly in roles. NULL only
 * on out-of-memory. */
rbac_grants_t *rbac_resolve(const rbac_policy_t *p, const char *const *roles, size_t nroles,
                            const rbac_custom_role_t *custom, size_t ncustom);

/* Frees grants (NULL is a no-op). */
void rbac_grants_free(rbac_grants_t *g);

/* The decision for action on resource (both `[a-z0-9_.-]+`, anything else is denied): deny by
 * default, ALLOW beats ALLOW_OWN. No allocation; safe from any thread. */
rbac_decision_t rbac_check(const rbac_grants_t *g, const char *resource, const char *action);

/* Number of distinct grants in g after redundant ones were dropped. */
size_t rbac_grants_count(const rbac_grants_t *g);

/* malloc'd JSON array of the grants as strings, sorted bytewise, redundant grants dropped (e.g.
 * ["*:read","orders:update:own"]) — for GET /v1/auth/me; NULL on out-of-memory. */
char *rbac_grants_to_json(const rbac_grants_t *g);

/* True when holder holds every right `permission` would grant (wildcards and the admin-resource
 * rule considered; an invalid permission is never covered): nobody grants what they do not hold. */
bool rbac_grants_cover(const rbac_grants_t *holder, const char *permission);

/* True when holder covers every grant of g (e.g. of a role about to be assigned or inherited). */
bool rbac_grants_cover_grants(const rbac_grants_t *holder, const rbac_grants_t *g);

/* 0 when role is acceptable as a new custom role on its own: name ^[a-z][a-z0-9_-]{0,62}$ and not a
 * built-in name, at most RBAC_CUSTOM_MAX_* entries, permissions valid, inherits known non-platform
 * built-in roles (not repeated); else -1 with one sentence in err. */
int rbac_validate_custom_role(const rbac_policy_t *p, const rbac_custom_role_t *role, char *err, size_t errlen);

/* 0 when a tenant's whole custom-role set is acceptable: each role as rbac_validate_custom_role but
 * inherits may also name other roles of the set, names are unique and inheritance has no cycle;
 * else -1 with err naming the role and the problem. */
int rbac_validate_custom_roles(const rbac_policy_t *p, const rbac_custom_role_t *roles, size_t nroles, char *err,
                               size_t errlen);

/* True when permission is `part:part` or `part:part:own` with parts `[a-z0-9_.-]{1,63}` or `*`. */
bool rbac_permission_is_valid(const char *permission);

/* True when name matches the role-name rule ^[a-z][a-z0-9_-]{0,62}$. */
bool rbac_role_name_is_valid(const char *name);

#endif
