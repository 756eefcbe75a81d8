/*
 * admin_api: handlers of the tenant admin API (CONTRACT.md §6), each inside the caller's tenant.
 */
#ifndef TENANTD_API_ADMIN_API_H
#define TENANTD_API_ADMIN_API_H

#include "http/request.h"

/* Registers the statements the handlers use. */
void admin_init(void);

/* GET /v1/admin/members?limit&offset -> [{user_id, email, roles, joined_at}]. */
void admin_members_list(http_request_t *hr);
/* PATCH /v1/admin/members/{user_id} {roles} -> 200 member; the member's sessions here are revoked. */
void admin_member_update(http_request_t *hr);
/* DELETE /v1/admin/members/{user_id} -> 204; the member's sessions here are revoked. */
void admin_member_delete(http_request_t *hr);
/* POST /v1/admin/invitations {email, roles} -> 201 {id, token, email, roles, expires_at}; the token is shown once. */
void admin_invitation_create(http_request_t *hr);
/* GET /v1/admin/invitations -> pending invitations. */
void admin_invitations_list(http_request_t *hr);
/* DELETE /v1/admin/invitations/{id} -> 204. */
void admin_invitation_delete(http_request_t *hr);
/* POST /v1/invitations/{token}/accept {password} -> 200 token response for the inviting tenant. */
void invitation_accept(http_request_t *hr);
/* GET /v1/admin/roles -> the tenant's custom roles. */
void admin_roles_list(http_request_t *hr);
/* POST /v1/admin/roles {name, permissions, inherits} -> 201 role. */
void admin_role_create(http_request_t *hr);
/* PATCH /v1/admin/roles/{name} {permissions, inherits} -> 200 role. */
void admin_role_update(http_request_t *hr);
/* DELETE /v1/admin/roles/{name} -> 204. */
void admin_role_delete(http_request_t *hr);
/* GET /v1/admin/api-keys -> the tenant's live keys (never the secrets). */
void admin_keys_list(http_request_t *hr);
/* POST /v1/admin/api-keys {name, roles, expires_at?} -> 201 {id, name, prefix, key}; the key is shown once. */
void admin_key_create(http_request_t *hr);
/* DELETE /v1/admin/api-keys/{id} -> 204; the key stops working on every instance. */
void admin_key_delete(http_request_t *hr);
/* GET /v1/admin/audit?limit&cursor -> {items, next_cursor}. */
void admin_audit_list(http_request_t *hr);
/* GET /v1/admin/tenant -> the tenant. */
void admin_tenant_get(http_request_t *hr);
/* PATCH /v1/admin/tenant {name} -> the tenant. */
void admin_tenant_update(http_request_t *hr);

#endif
