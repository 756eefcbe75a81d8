/*
 * auth_api: handlers of CONTRACT.md §4 (the /v1/auth endpoints and /.well-known/jwks.json).
 */
#ifndef TENANTD_API_AUTH_API_H
#define TENANTD_API_AUTH_API_H

#include "http/request.h"

/* Registers the statements the handlers use. */
void auth_init(void);

/* POST /v1/auth/signup {email, password, tenant:{slug,name}} -> 201 token response. */
void auth_signup(http_request_t *hr);
/* POST /v1/auth/login {email, password, tenant?, cookie?} -> 200 token response (or cookies + csrf_token). */
void auth_login(http_request_t *hr);
/* POST /v1/auth/refresh {refresh_token} (or the refresh cookie) -> 200 new pair; the old one is spent. */
void auth_refresh(http_request_t *hr);
/* POST /v1/auth/logout -> 204; the session is revoked everywhere. */
void auth_logout(http_request_t *hr);
/* POST /v1/auth/switch {tenant} -> 200 tokens for another tenant of the caller. */
void auth_switch(http_request_t *hr);
/* GET /v1/auth/me -> user, tenant, roles, effective permissions. */
void auth_me(http_request_t *hr);
/* GET /v1/auth/sessions -> the caller's live sessions. */
void auth_sessions_list(http_request_t *hr);
/* DELETE /v1/auth/sessions/{id} -> 204, or 404 for a session that is not the caller's. */
void auth_sessions_revoke(http_request_t *hr);
/* Opens a session for user in tenant and answers 200 with the token response (used after accepting an invitation). */
void auth_issue_tokens(http_request_t *hr, const char *user_id, const char *email, const char *tenant_id, const char *tenant_slug,
                       const char *tenant_name, const char *roles_json);
/* GET /.well-known/jwks.json -> the public signing keys. */
void auth_jwks(http_request_t *hr);

#endif
