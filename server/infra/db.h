/*
 * db: asynchronous PostgreSQL on an h2o event loop — one pool per worker thread.
 *
 * A pool owns a few libpq connections in non-blocking pipeline mode. A caller submits a job: one
 * or more steps (a prepared statement and its text parameters) that are sent back to back and
 * closed by one pipeline sync (one implicit transaction), so set_config + query cost one round
 * trip. Jobs submitted in one loop turn are dispatched together at the end of the turn; libpq 15
 * flushes at every PQpipelineSync, so each job is one write — except read jobs (db_submit_read),
 * which share one sync, and so one transaction and one write, per connection and pass.
 * Statements are registered once (db_stmt_t, static storage) and prepared lazily on each
 * connection at first use.
 *
 * Guarantees: the callback of an accepted job is called exactly once (ok, SQL error, timeout or
 * unavailable) unless the caller cancels it first; if db_submit fails, the callback is never
 * called. Nothing here blocks: connecting uses PQconnectStart/PQconnectPoll, a query past its
 * deadline drops its connection (PQcancel would block) and the pool reconnects with backoff.
 * When no connection is up, jobs fail at once with DB_UNAVAILABLE instead of piling up.
 */
#ifndef TENANTD_INFRA_DB_H
#define TENANTD_INFRA_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>
#include <libpq-fe.h>

#define DB_MAX_STEPS 8
#define DB_MAX_PARAMS 32

/* A statement known to the pool: prepared under `name` on every connection that runs it. */
typedef struct {
    const char *name; /* unique, e.g. "ops_ping" */
    const char *sql;  /* $1.. placeholders; all parameters are sent as text */
    int nparams;
    int _id; /* assigned by db_stmt_register; 0 = not yet registered */
} db_stmt_t;

typedef enum {
    DB_OK = 0,          /* every step ran; results available */
    DB_SQL_ERROR,       /* Postgres refused a step (error in results[i] / message) */
    DB_TIMEOUT,         /* the job passed its deadline */
    DB_UNAVAILABLE,     /* no connection, or the connection broke */
    DB_REJECTED,        /* the wait queue was full */
} db_status_t;

/* What a job's callback receives; valid only during the callback (results are cleared after). */
typedef struct {
    db_status_t status;
    int nresults;                  /* number of steps */
    PGresult *results[DB_MAX_STEPS]; /* per step; NULL when the step did not run */
    const char *message;           /* human text for logs (never for clients) */
    const char *sqlstate;          /* SQLSTATE of the failing step, or NULL */
} db_result_t;

typedef void (*db_callback_t)(void *data, const db_result_t *result);

typedef struct db_pool db_pool_t;
typedef struct db_job db_job_t;

typedef struct {
    int connections;     /* connections in the pool */
    int queue_max;       /* jobs that may wait for a connection before DB_REJECTED */
    int query_timeout_ms; /* deadline of a job from submission */
} db_pool_options_t;

/* Registers a statement for use by every pool; call from one thread before pools are created. */
void db_stmt_register(db_stmt_t *stmt);

/* Creates a pool on loop connecting to conninfo; connections start at once in the background. */
db_pool_t *db_pool_create(h2o_loop_t *loop, const char *conninfo, const db_pool_options_t *opts);

/* Fails every pending job with DB_UNAVAILABLE, closes the connections and frees the pool. */
void db_pool_destroy(db_pool_t *pool);

/* True when at least one connection is ready. */
bool db_pool_is_up(const db_pool_t *pool);

/* Jobs submitted and not yet finished (queued or in flight). */
size_t db_pool_pending(const db_pool_t *pool);

/*
 * One step of a job: a registered stmt, or (stmt NULL) ad-hoc sql with nparams parameters. Ad-hoc
 * SQL is prepared on each connection the first time its text is seen there (up to 256 texts per
 * connection; others go unnamed), so repeated shapes skip parse and plan. Parameters are text
 * (NULL = SQL NULL); sql and values are copied.
 */
typedef struct {
    const db_stmt_t *stmt;
    const char *const *params;
    const char *sql;
    int nparams;
} db_step_t;

/*
 * Submits a job of nsteps steps. Returns the job (usable with db_cancel until the callback runs),
 * or NULL with the reason in *status (DB_REJECTED, DB_UNAVAILABLE); then cb is never called.
 */
db_job_t *db_submit(db_pool_t *pool, const db_step_t *steps, int nsteps, db_callback_t cb, void *data, db_status_t *status);

/*
 * Submits a read-only job whose first step sets every session setting its other steps depend on
 * (e.g. set_config of role and search_path, local to the transaction). It may share one sync —
 * one implicit transaction, one write — with other such jobs sent in the same dispatch pass; if
 * another job of that batch fails first, it is sent again alone (same callback, same deadline).
 * When the batch's previous read ran the identical first step (same statement and parameters),
 * that step is not sent again and its result is NULL: read only the results of the later steps.
 * A connection has one read batch out at a time: under load a read waits in the queue for the
 * next batch (bounded by the same deadline) rather than joining a pipeline. Never for writes, nor for steps that rely on defaults a batch neighbour may have changed.
 */
db_job_t *db_submit_read(db_pool_t *pool, const db_step_t *steps, int nsteps, db_callback_t cb, void *data, db_status_t *status);

/* Shorthand for a one-step job. */
db_job_t *db_query(db_pool_t *pool, const db_stmt_t *stmt, const char *const *params, db_callback_t cb, void *data,
                   db_status_t *status);

/* Detaches the callback of a job that has not completed; the job finishes silently. */
void db_cancel(db_job_t *job);

/* Quotes name as an SQL identifier with libpq's PQescapeIdentifier on a ready connection; malloc'd, NULL when none is ready. */
char *db_escape_identifier(db_pool_t *pool, const char *name);

/* Human name of a status. */
const char *db_status_name(db_status_t status);

#endif
