/*
 * guard: authentication, tenant resolution and authorization in front of every non-public route.
 *
 * For each request it: takes the bearer credential (Authorization header, or the __Host-access
 * cookie with a CSRF check on state-changing methods), verifies the JWT through a per-thread
 * cache (a cache hit costs no network round trip and no signature check), checks on a cache miss
 * that the token's session still exists in Redis, resolves the tenant from the `tid` claim (a
 * per-thread cache, filled from Postgres), refuses suspended or deleted tenants and a mismatching
 * `x-tenant` header, and finally checks the route's permission against the caller's effective
 * grants (policies + the tenant's custom roles). Revocations and tenant changes arrive over Redis
 * pub/sub and evict cache entries at once; while this thread's subscription is down, it cannot
 * learn of revocations, so authenticated requests get 503 (fail closed).
 */
#ifndef TENANTD_HTTP_GUARD_H
#define TENANTD_HTTP_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "core/channels.h"
#include "http/server.h"
#include "security/colpolicy.h"
#include "security/rbac.h"
#include "security/token.h"

#define GUARD_AUTHENTICATED "authenticated" /* route permission: any authenticated caller */
#define GUARD_TENANT_CHANNEL CHANNEL_TENANTS   /* pub/sub: a tenant id whose status or roles changed */
#define GUARD_SCHEMA_CHANNEL CHANNEL_SCHEMA    /* pub/sub: tenantctl migrate changed the schemas: reload as on SIGHUP */
#define GUARD_PLATFORM_TID "00000000-0000-0000-0000-000000000000" /* the `tid` of platform-admin tokens */

/* The caller of a request, valid for the request's lifetime. */
typedef struct guard_principal {
    token_claims_t claims;
    char tenant_slug[64];
    char tenant_name[256];
    char tenant_schema[40];
    rbac_grants_t *grants;       /* effective permissions (shared, reference-counted by the guard) */
    rbac_decision_t decision;    /* of the route's permission: RBAC_ALLOW or RBAC_ALLOW_OWN */
    bool via_cookie;
} guard_principal_t;

/* Loads the key set and the policies named by cfg; 0, or -1 after printing one line naming the variable. */
int guard_init(const config_t *cfg);

/* The loaded key set (immutable). */
const token_keyset_t *guard_keys(void);

/* The current policy set (swapped on reload; valid until the next reload of this thread's caches). */
const rbac_policy_t *guard_policy(void);

/* The current column rules (policies/columns/), swapped with the policies on reload. */
const colpol_t *guard_columns(void);

/* Reloads policies from disk (SIGHUP); a bad set keeps the old one and logs why. Main thread or any worker. */
void guard_reload_policies(void);

/* Per-worker set-up: caches and the pub/sub subscriptions. */
void guard_worker_start(http_worker_t *w);

/* Passes every pub/sub message of this worker (after the guard's own handling) to cb (the realtime hub). */
void guard_on_other_messages(http_worker_t *w, redis_message_cb cb, void *data);

/* Per-worker tear-down. */
void guard_worker_stop(http_worker_t *w);

/* Drops this worker's caches (after a policy reload). */
void guard_worker_flush(http_worker_t *w);

/* Makes every worker of this process drop session sid from its token cache before its next check
 * (call once the revocation is stored, before answering): "at once" on this instance. */
void guard_revoke_session_local(const char *sid);

/* The server's guard hook (see server_app_t.guard). */
void guard_check(http_request_t *hr, const router_route_t *route, router_handler_t next);

/* The server's dispose hook: releases the principal's references. */
void guard_request_dispose(http_request_t *hr);

/* Signs an access token for claims (iat/exp filled here); returns its length or -1. */
int guard_issue_access_token(token_claims_t *claims, char *out, size_t cap);

/* Access-token lifetime in seconds. */
int guard_access_ttl(void);

/* The caller's tenant's custom roles as cached by this worker; valid until the handler returns to the loop. */
void guard_custom_roles(http_request_t *hr, const rbac_custom_role_t **roles, size_t *n);

/* Forgets a tenant in this worker's cache and tells every instance to do the same. */
void guard_publish_tenant_change(http_worker_t *w, const char *tenant_id);

#endif
