/*
 * rest_api: handlers of the data API (CONTRACT.md §7), /rest/v1/{table}.
 */
#ifndef TENANTD_API_REST_API_H
#define TENANTD_API_REST_API_H

#include "api/rest_query.h"
#include "http/server.h"

/* Registers the statements the handlers use. */
void rest_init(void);
/* GET: rows of the caller's table, filtered, ordered, paginated (Range, Prefer: count=exact, ETag). */
void rest_select(http_request_t *hr);
/* POST: insert one object or an array in one transaction (Prefer: return=representation). */
void rest_insert(http_request_t *hr);
/* PATCH with a filter: update the matching rows. */
void rest_update(http_request_t *hr);
/* DELETE with a filter: delete the matching rows. */
void rest_delete(http_request_t *hr);
/* SIGHUP: re-read the table metadata at the next request of this worker. */
void rest_reload(http_worker_t *w);
/* Tables known to this worker's metadata (0 until loaded). */
size_t rest_table_count(http_worker_t *w);
/* Table i of this worker's metadata (i < rest_table_count). */
const restq_table_t *rest_table_at(http_worker_t *w, size_t i);
/* Loads the metadata (from the oldest tenant's schema) if needed, then calls then(hr); then runs even when loading failed. */
void rest_meta_ensure(http_request_t *hr, void (*then)(http_request_t *hr));
/* Frees this worker's metadata. */
void rest_worker_stop(http_worker_t *w);

#endif
