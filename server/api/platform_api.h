/*
 * platform_api: /v1/platform/tenants — the platform admin's view of every tenant (CONTRACT.md §6).
 * Callers hold a platform token (log in as a user with is_platform_admin; the pseudo-tenant
 * "platform"), so tenant users never reach these routes.
 */
#ifndef TENANTD_API_PLATFORM_API_H
#define TENANTD_API_PLATFORM_API_H

#include "http/request.h"

/* Registers the statements the handlers use. */
void platform_init(void);
/* GET /v1/platform/tenants?limit&offset -> [{id, slug, name, status, created_at, members}]. */
void platform_tenants_list(http_request_t *hr);
/* POST /v1/platform/tenants {slug, name} -> 201 tenant (schema, role and migrations created in one transaction). */
void platform_tenant_create(http_request_t *hr);
/* PATCH /v1/platform/tenants/{slug} {name?, status?} -> 200 tenant; a suspension reaches every instance at once. */
void platform_tenant_update(http_request_t *hr);
/* DELETE /v1/platform/tenants/{slug} -> 204; the schema and its data are dropped. */
void platform_tenant_delete(http_request_t *hr);

#endif
