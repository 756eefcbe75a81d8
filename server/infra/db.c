/*
 * db: the asynchronous PostgreSQL pool (see db.h for the contract).
 *
 * How it works. Each connection is a small state machine:
 *   DOWN --(backoff tick)--> CONNECTING --(PQconnectPoll ok, pipeline on)--> READY --(error)--> DOWN
 * Its socket is watched through an h2o socket made from dup(PQsocket) with DONT_READ, so h2o only
 * reports readiness and libpq does all the I/O. Submitted jobs wait in the pool queue; a
 * zero-delay timer dispatches them at the end of the loop turn to the READY connection with the
 * fewest jobs in flight (at most DB_PIPELINE_DEPTH each): every step becomes PQsendPrepare (first
 * use on that connection) + PQsendQueryPrepared, and the job ends with one PQpipelineSync. Results
 * are read back in order: a command's results end with a NULL from PQgetResult, a job with
 * PGRES_PIPELINE_SYNC. An error aborts only the rest of its own job (its own sync).
 * Read batches: jobs submitted with db_submit_read (read-only, their first step sets every
 * session setting they depend on) that go to one connection in one dispatch pass share a single
 * sync — one write and one implicit transaction for up to DB_READ_BATCH_MAX of them, since libpq
 * 15 flushes at every PQpipelineSync; a member whose first step is the one the batch last ran (the
 * same tenant's settings) skips it. A member ends at its last command's results; a member whose
 * commands were only PGRES_PIPELINE_ABORTED (an earlier member failed) never ran and is sent
 * again, alone. Other jobs always get their own sync: they never run in a batch's transaction.
 * A connection has at most one read batch out at a time: while every connection has one, reads
 * wait in the queue and leave together when a batch comes back (pool_pick_conn).
 * A job has one deadline from submission; past it the job fails with DB_TIMEOUT and, if it was
 * already sent, its connection is dropped (the server-side statement_timeout usually fires first).
 */
#include "infra/db.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"

#define DB_MAX_STMTS 256
#define DB_PLAN_SLOTS 256 /* ad-hoc statements kept prepared per connection */
#define DB_PIPELINE_DEPTH 64
#define DB_READ_BATCH_MAX 16 /* read jobs sharing one sync */
#define DB_BACKOFF_TICK_MS 250
#define DB_BACKOFF_MAX_TICKS 16 /* 4 s */
#define DB_CONNECT_TIMEOUT_TICKS 20 /* 5 s */

/* ---------------------------------------------------------------- statement registry */

static db_stmt_t *stmt_registry[DB_MAX_STMTS];
static atomic_int stmt_count;

void db_stmt_register(db_stmt_t *stmt)
{
    if (stmt->_id != 0)
        return;
    int id = atomic_fetch_add(&stmt_count, 1) + 1;
    if (id >= DB_MAX_STMTS) {
        log_error(NULL, "db: more than %d statements registered", DB_MAX_STMTS - 1);
        abort();
    }
    stmt_registry[id] = stmt;
    stmt->_id = id;
}

/* ---------------------------------------------------------------- types */

typedef enum { CONN_DOWN, CONN_CONNECTING, CONN_READY } conn_state_t;

typedef struct db_conn db_conn_t;

/* One command sent on a connection whose results we still expect. */
typedef enum { CMD_PREPARE, CMD_EXECUTE, CMD_SYNC } cmd_kind_t;

struct db_job {
    h2o_linklist_t link; /* in pool->queue or conn->inflight */
    db_pool_t *pool;
    db_conn_t *conn; /* set once sent */
    db_callback_t cb;
    void *data;
    h2o_timeout_entry_t deadline;
    int nsteps;
    const db_stmt_t *stmts[DB_MAX_STEPS]; /* NULL for an ad-hoc step */
    char *sql[DB_MAX_STEPS];               /* ad-hoc SQL (copies) */
    uint64_t plan_hash[DB_MAX_STEPS];      /* of each ad-hoc text */
    int nparams[DB_MAX_STEPS];
    char **params[DB_MAX_STEPS]; /* copies */
    /* result collection */
    int cmd_index;     /* which expected command we are reading (0-based over cmds) */
    int ncmds;
    cmd_kind_t cmds[DB_MAX_STEPS * 2 + 1];
    int cmd_step[DB_MAX_STEPS * 2 + 1];
    int cmd_got_result;
    bool shareable;  /* a read job that may share a sync (db_submit_read) */
    bool batch_sync; /* the last job of a read batch: the batch's sync is its last command */
    bool saw_abort;  /* a command came back PGRES_PIPELINE_ABORTED */
    bool saw_error;  /* a command of this job failed by itself */
    db_result_t result;
    char message[256];
    char sqlstate[6];
};

struct db_conn {
    db_pool_t *pool;
    PGconn *pg;
    h2o_socket_t *sock;
    int sock_fd; /* the PQsocket value sock was made for */
    conn_state_t state;
    PostgresPollingStatusType poll;
    h2o_linklist_t inflight; /* jobs sent, in order */
    size_t ninflight;
    unsigned char prepared[DB_MAX_STMTS];
    /* ad-hoc SQL prepared on this connection as "p<slot>", by hash of its text; a slot taken by
     * another text is not replaced: that statement just goes unnamed */
    struct {
        uint64_t hash;
        char *sql;
    } plans[DB_PLAN_SLOTS];
    h2o_timeout_entry_t backoff;
    int backoff_ticks_left, backoff_exp;
    int index;
    db_job_t *batch_tail; /* the last read job sent in this pass whose sync is not sent yet */
    int batch_len;
    db_job_t *batch_ctx;  /* the open batch's last read job that sent its first (settings) step */
    int read_batches;     /* read batches sent whose sync has not come back */
};

struct db_pool {
    h2o_loop_t *loop;
    char *conninfo;
    db_pool_options_t opts;
    db_conn_t *conns;
    h2o_linklist_t queue;
    size_t nqueued, npending;
    h2o_timeout_t job_timeout, zero_timeout, backoff_timeout;
    h2o_timeout_entry_t dispatch_entry;
    int nready;
    int nconnecting;
    bool ever_ready; /* a connection has been up since the pool was made */
    bool destroying;
};

/* ---------------------------------------------------------------- helpers */

const char *db_status_name(db_status_t status)
{
    switch (status) {
    case DB_OK:
        return "ok";
    case DB_SQL_ERROR:
        return "sql error";
    case DB_TIMEOUT:
        return "timeout";
    case DB_UNAVAILABLE:
        return "unavailable";
    case DB_REJECTED:
        return "rejected";
    }
    return "?";
}

static void job_free(db_job_t *job)
{
    for (int i = 0; i < job->nsteps; i++) {
        if (job->params[i] != NULL) {
            for (int p = 0; p < job->nparams[i]; p++)
                free(job->params[i][p]);
            free(job->params[i]);
        }
        free(job->sql[i]);
        if (job->result.results[i] != NULL)
            PQclear(job->result.results[i]);
    }
    free(job);
}

/* Completes a job: unlinks it everywhere, calls its callback (unless cancelled) and frees it. */
static void job_finish(db_job_t *job, db_status_t status, const char *message)
{
    db_pool_t *pool = job->pool;
    if (h2o_linklist_is_linked(&job->link)) {
        h2o_linklist_unlink(&job->link);
        if (job->conn != NULL) {
            job->conn->ninflight--;
            if (job->batch_sync)
                job->conn->read_batches--;
            metrics_gauge_add(METRICS_GAUGE_DB_INFLIGHT, -1);
        } else {
            pool->nqueued--;
            metrics_gauge_add(METRICS_GAUGE_DB_QUEUE, -1);
        }
    }
    if (h2o_timeout_is_linked(&job->deadline))
        h2o_timeout_unlink(&job->deadline);
    pool->npending--;
    job->result.status = status;
    job->result.nresults = job->nsteps;
    if (message != NULL && job->message[0] == '\0')
        snprintf(job->message, sizeof(job->message), "%s", message);
    job->result.message = job->message[0] != '\0' ? job->message : db_status_name(status);
    job->result.sqlstate = job->sqlstate[0] != '\0' ? job->sqlstate : NULL;
    metrics_count(status == DB_OK ? METRICS_COUNTER_DB_OK : status == DB_TIMEOUT ? METRICS_COUNTER_DB_TIMEOUT : METRICS_COUNTER_DB_ERROR);
    if (job->cb != NULL)
        job->cb(job->data, &job->result);
    job_free(job);
}

static void conn_set_state(db_conn_t *conn, conn_state_t state)
{
    if (conn->state == state)
        return;
    if (conn->state == CONN_CONNECTING)
        conn->pool->nconnecting--;
    if (state == CONN_CONNECTING)
        conn->pool->nconnecting++;
    if (conn->state == CONN_READY) {
        conn->pool->nready--;
        metrics_gauge_add(METRICS_GAUGE_DB_UP, -1);
        metrics_gauge_add(METRICS_GAUGE_DB_DOWN, 1);
    } else if (state == CONN_READY) {
        conn->pool->nready++;
        conn->pool->ever_ready = true;
        metrics_gauge_add(METRICS_GAUGE_DB_UP, 1);
        metrics_gauge_add(METRICS_GAUGE_DB_DOWN, -1);
    }
    conn->state = state;
}

static void fail_queue(db_pool_t *pool, db_status_t status, const char *why)
{
    while (!h2o_linklist_is_empty(&pool->queue)) {
        db_job_t *job = H2O_STRUCT_FROM_MEMBER(db_job_t, link, pool->queue.next);
        job_finish(job, status, why);
    }
}

static void conn_schedule_connect(db_conn_t *conn);
static void conn_start_connect(db_conn_t *conn);
static void on_conn_io(h2o_socket_t *sock, const char *err);
static void on_conn_writable(h2o_socket_t *sock, const char *err);
static void pool_schedule_dispatch(db_pool_t *pool);
static int conn_close_batch(db_conn_t *conn);

static void conn_close_socket(db_conn_t *conn)
{
    if (conn->sock != NULL) {
        h2o_socket_read_stop(conn->sock);
        h2o_socket_close(conn->sock);
        conn->sock = NULL;
        conn->sock_fd = -1;
    }
}

/* Drops a connection: fails its in-flight jobs, closes it and schedules a reconnect. */
static void conn_drop(db_conn_t *conn, const char *why)
{
    db_pool_t *pool = conn->pool;
    bool was_ready = conn->state == CONN_READY;
    if (was_ready && !pool->destroying)
        log_warn(NULL, "db: connection %d lost: %s", conn->index, why);
    else
        log_debug(NULL, "db: connection %d attempt failed: %s", conn->index, why);
    conn_set_state(conn, CONN_DOWN);
    conn_close_socket(conn);
    conn->batch_tail = NULL;
    conn->batch_len = 0;
    conn->batch_ctx = NULL;
    if (conn->pg != NULL) {
        PQfinish(conn->pg);
        conn->pg = NULL;
    }
    memset(conn->prepared, 0, sizeof(conn->prepared));
    for (int i = 0; i < DB_PLAN_SLOTS; i++) {
        free(conn->plans[i].sql);
        conn->plans[i].sql = NULL;
    }
    while (!h2o_linklist_is_empty(&conn->inflight)) {
        db_job_t *job = H2O_STRUCT_FROM_MEMBER(db_job_t, link, conn->inflight.next);
        job_finish(job, DB_UNAVAILABLE, "connection lost");
    }
    conn->read_batches = 0;
    if (pool->nready == 0 && (pool->ever_ready || pool->nconnecting == 0))
        fail_queue(pool, DB_UNAVAILABLE, "database unavailable");
    if (!pool->destroying)
        conn_schedule_connect(conn);
}

/* ---------------------------------------------------------------- connecting */

static void on_backoff(h2o_timeout_entry_t *entry)
{
    db_conn_t *conn = H2O_STRUCT_FROM_MEMBER(db_conn_t, backoff, entry);
    if (--conn->backoff_ticks_left > 0) {
        h2o_timeout_link(conn->pool->loop, &conn->pool->backoff_timeout, &conn->backoff);
        return;
    }
    if (conn->state == CONN_CONNECTING) /* the same timer bounds a connection attempt */
        conn_drop(conn, "connect timed out");
    else
        conn_start_connect(conn);
}

static void conn_schedule_connect(db_conn_t *conn)
{
    int ticks = 1 << conn->backoff_exp;
    if (ticks < DB_BACKOFF_MAX_TICKS)
        conn->backoff_exp++;
    else
        ticks = DB_BACKOFF_MAX_TICKS;
    conn->backoff_ticks_left = ticks;
    if (!h2o_timeout_is_linked(&conn->backoff))
        h2o_timeout_link(conn->pool->loop, &conn->pool->backoff_timeout, &conn->backoff);
}

/* Makes sure conn->sock watches the current PQsocket (libpq may change it while connecting). */
static int conn_watch_socket(db_conn_t *conn)
{
    int fd = PQsocket(conn->pg);
    if (fd < 0)
        return -1;
    if (conn->sock != NULL && conn->sock_fd == fd)
        return 0;
    conn_close_socket(conn);
    int dupfd = dup(fd);
    if (dupfd < 0)
        return -1;
    conn->sock = h2o_evloop_socket_create(conn->pool->loop, dupfd, H2O_SOCKET_FLAG_DONT_READ);
    conn->sock->data = conn;
    conn->sock_fd = fd;
    return 0;
}

static void conn_continue_connect(db_conn_t *conn)
{
    for (;;) {
        if (conn_watch_socket(conn) != 0) {
            conn_drop(conn, "no socket");
            return;
        }
        switch (conn->poll) {
        case PGRES_POLLING_READING:
            h2o_socket_read_start(conn->sock, on_conn_io);
            return;
        case PGRES_POLLING_WRITING:
            h2o_socket_read_stop(conn->sock);
            if (!h2o_socket_is_writing(conn->sock))
                h2o_socket_notify_write(conn->sock, on_conn_writable);
            return;
        case PGRES_POLLING_FAILED:
            conn_drop(conn, PQerrorMessage(conn->pg));
            return;
        case PGRES_POLLING_OK:
            if (PQenterPipelineMode(conn->pg) != 1 || PQsetnonblocking(conn->pg, 1) != 0) {
                conn_drop(conn, "cannot enter pipeline mode");
                return;
            }
            conn->backoff_exp = 0;
            if (h2o_timeout_is_linked(&conn->backoff))
                h2o_timeout_unlink(&conn->backoff);
            conn_set_state(conn, CONN_READY);
            log_info(NULL, "db: connection %d ready", conn->index);
            h2o_socket_read_start(conn->sock, on_conn_io);
            pool_schedule_dispatch(conn->pool);
            return;
        default:
            conn->poll = PQconnectPoll(conn->pg);
            break;
        }
    }
}

static void conn_start_connect(db_conn_t *conn)
{
    db_pool_t *pool = conn->pool;
    char timeout_opt[64];
    snprintf(timeout_opt, sizeof(timeout_opt), "-c statement_timeout=%d", pool->opts.query_timeout_ms);
    const char *keys[] = {"dbname", "options", "application_name", NULL};
    const char *vals[] = {pool->conninfo, timeout_opt, "tenantd", NULL};
    conn->pg = PQconnectStartParams(keys, vals, 1);
    if (conn->pg == NULL || PQstatus(conn->pg) == CONNECTION_BAD) {
        conn_set_state(conn, CONN_CONNECTING);
        conn_drop(conn, conn->pg != NULL ? PQerrorMessage(conn->pg) : "out of memory");
        return;
    }
    PQsetnonblocking(conn->pg, 1);
    conn_set_state(conn, CONN_CONNECTING);
    conn->backoff_ticks_left = DB_CONNECT_TIMEOUT_TICKS;
    if (!h2o_timeout_is_linked(&conn->backoff))
        h2o_timeout_link(pool->loop, &pool->backoff_timeout, &conn->backoff);
    conn->poll = PGRES_POLLING_WRITING;
    conn_continue_connect(conn);
}

/* ---------------------------------------------------------------- results */

static void job_record_error(db_job_t *job, const PGresult *res, const char *fallback)
{
    if (job->message[0] != '\0')
        return;
    const char *msg = res != NULL ? PQresultErrorMessage(res) : NULL;
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(job->message, sizeof(job->message), "%s", msg != NULL && *msg ? msg : fallback);
    size_t n = strlen(job->message);
    while (n > 0 && (job->message[n - 1] == '\n' || job->message[n - 1] == ' '))
        job->message[--n] = '\0';
    if (state != NULL)
        snprintf(job->sqlstate, sizeof(job->sqlstate), "%s", state);
}

/* Puts a read job that never ran (another member of its batch failed first) back at the head of
 * the queue, to be sent alone. Its deadline runs on. */
static void job_requeue(db_job_t *job)
{
    db_pool_t *pool = job->pool;
    h2o_linklist_unlink(&job->link);
    job->conn->ninflight--;
    if (job->batch_sync)
        job->conn->read_batches--;
    job->batch_sync = false;
    metrics_gauge_add(METRICS_GAUGE_DB_INFLIGHT, -1);
    for (int i = 0; i < job->nsteps; i++) {
        if (job->result.results[i] != NULL)
            PQclear(job->result.results[i]);
        job->result.results[i] = NULL;
    }
    job->message[0] = '\0';
    job->sqlstate[0] = '\0';
    job->cmd_index = job->ncmds = job->cmd_got_result = 0;
    job->saw_abort = job->saw_error = false;
    job->shareable = false; /* alone this time: it cannot be aborted by another job again */
    metrics_count(METRICS_COUNTER_DB_READ_RESENT);
    job->conn = NULL;
    h2o_linklist_insert(pool->queue.next, &job->link);
    pool->nqueued++;
    metrics_gauge_add(METRICS_GAUGE_DB_QUEUE, 1);
    pool_schedule_dispatch(pool);
}

/* A job's last expected result is in: finish it, or send again a batch member that never ran. */
static void job_done(db_job_t *job)
{
    if (job->shareable && job->saw_abort && !job->saw_error && job->cb != NULL) { /* a cancelled one just ends */
        job_requeue(job);
        return;
    }
    job_finish(job, job->message[0] != '\0' ? DB_SQL_ERROR : DB_OK, NULL);
}

/* Reads every complete result available; returns -1 when the connection broke. */
static int conn_read_results(db_conn_t *conn)
{
    while (!PQisBusy(conn->pg)) {
        if (h2o_linklist_is_empty(&conn->inflight)) {
            /* nothing expected: swallow stray NULLs */
            PGresult *stray = PQgetResult(conn->pg);
            if (stray == NULL)
                return 0;
            PQclear(stray);
            continue;
        }
        db_job_t *job = H2O_STRUCT_FROM_MEMBER(db_job_t, link, conn->inflight.next);
        PGresult *res = PQgetResult(conn->pg);
        cmd_kind_t kind = job->cmds[job->cmd_index];
        if (res == NULL) {
            if (kind == CMD_SYNC || !job->cmd_got_result)
                return 0; /* nothing more available yet */
            job->cmd_index++;
            job->cmd_got_result = 0;
            if (job->cmd_index == job->ncmds) /* a read batch member before the one holding the sync */
                job_done(job);
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            if (kind != CMD_SYNC)
                return -1; /* protocol confusion: drop the connection */
            job_done(job);
            /* A job must never leave a transaction open on a pooled connection (e.g. a BEGIN without
             * COMMIT): that would carry one tenant's role into the next job. Drop the connection. */
            PGTransactionStatusType ts = PQtransactionStatus(conn->pg);
            if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
                return -1;
            continue;
        }
        job->cmd_got_result = 1;
        int step = job->cmd_step[job->cmd_index];
        if (st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
            if (st == PGRES_PIPELINE_ABORTED)
                job->saw_abort = true;
            else if (st != PGRES_NONFATAL_ERROR)
                job->saw_error = true;
            if (st != PGRES_NONFATAL_ERROR)
                job_record_error(job, res, "statement failed");
            if (kind == CMD_PREPARE && job->stmts[step] != NULL) /* failed or skipped after an earlier error: not prepared */
                conn->prepared[job->stmts[step]->_id] = 0;
            if (kind == CMD_PREPARE && job->stmts[step] == NULL) {
                int slot = (int)(job->plan_hash[step] % DB_PLAN_SLOTS);
                free(conn->plans[slot].sql);
                conn->plans[slot].sql = NULL;
            }
        }
        if (kind == CMD_EXECUTE) {
            if (job->result.results[step] != NULL)
                PQclear(job->result.results[step]);
            job->result.results[step] = res;
        } else {
            PQclear(res);
        }
    }
    return 0;
}

static void conn_flush(db_conn_t *conn)
{
    int r = PQflush(conn->pg);
    if (r < 0) {
        conn_drop(conn, PQerrorMessage(conn->pg));
    } else if (r > 0 && !h2o_socket_is_writing(conn->sock)) {
        h2o_socket_notify_write(conn->sock, on_conn_writable);
    }
}

static void on_conn_writable(h2o_socket_t *sock, const char *err)
{
    db_conn_t *conn = sock->data;
    if (conn->state == CONN_CONNECTING) {
        conn->poll = PQconnectPoll(conn->pg);
        conn_continue_connect(conn);
        return;
    }
    if (conn->state == CONN_READY)
        conn_flush(conn);
}

static void on_conn_io(h2o_socket_t *sock, const char *err)
{
    db_conn_t *conn = sock->data;
    if (conn->state == CONN_CONNECTING) {
        conn->poll = PQconnectPoll(conn->pg);
        conn_continue_connect(conn);
        return;
    }
    if (conn->state != CONN_READY)
        return;
    if (PQconsumeInput(conn->pg) != 1) {
        conn_drop(conn, PQerrorMessage(conn->pg));
        return;
    }
    if (conn_read_results(conn) != 0 || PQstatus(conn->pg) == CONNECTION_BAD) {
        conn_drop(conn, "protocol error or connection closed");
        return;
    }
    /* libpq may still hold unsent data (it writes while reading) */
    conn_flush(conn);
    if (conn->state == CONN_READY && conn->pool->nqueued > 0)
        pool_schedule_dispatch(conn->pool);
}

/* ---------------------------------------------------------------- dispatch */

/* Ends the connection's open read batch with one sync, expected by its last job; -1 when libpq refused. */
static int conn_close_batch(db_conn_t *conn)
{
    db_job_t *tail = conn->batch_tail;
    for (int i = 0; conn->batch_len > 1 && i < conn->batch_len; i++)
        metrics_count(METRICS_COUNTER_DB_READ_SHARED);
    conn->batch_tail = NULL;
    conn->batch_len = 0;
    conn->batch_ctx = NULL;
    if (tail == NULL)
        return 0;
    if (PQpipelineSync(conn->pg) != 1)
        return -1;
    tail->cmd_step[tail->ncmds] = 0;
    tail->cmds[tail->ncmds++] = CMD_SYNC;
    tail->batch_sync = true;
    conn->read_batches++;
    return 0;
}

/* True when a's first step is the same registered statement with the same parameters as b's. */
static bool same_first_step(const db_job_t *a, const db_job_t *b)
{
    if (a->stmts[0] == NULL || a->stmts[0] != b->stmts[0] || a->nparams[0] != b->nparams[0])
        return false;
    for (int p = 0; p < a->nparams[0]; p++) {
        const char *x = a->params[0][p], *y = b->params[0][p];
        if ((x == NULL) != (y == NULL) || (x != NULL && strcmp(x, y) != 0))
            return false;
    }
    return true;
}

/* Sends one job's commands on conn, closed by its own sync unless it is a read job joining the
 * connection's open batch; returns -1 when libpq refused (the connection is then dropped). */
static int conn_send_job(db_conn_t *conn, db_job_t *job)
{
    job->ncmds = 0;
    /* a read whose settings step is the one the open batch last ran (same tenant) skips it: the
     * settings are in effect in this transaction already */
    int first = job->shareable && job->nsteps > 1 && conn->batch_ctx != NULL && same_first_step(job, conn->batch_ctx) ? 1 : 0;
    if (job->shareable && first == 0)
        conn->batch_ctx = job;
    for (int i = first; i < job->nsteps; i++) {
        const db_stmt_t *stmt = job->stmts[i];
        if (stmt == NULL) {
            /* ad-hoc SQL: prepared once per connection when its slot is free or already holds it */
            int slot = (int)(job->plan_hash[i] % DB_PLAN_SLOTS);
            char name[16];
            snprintf(name, sizeof(name), "p%d", slot);
            bool cached = conn->plans[slot].sql != NULL && conn->plans[slot].hash == job->plan_hash[i] &&
                          strcmp(conn->plans[slot].sql, job->sql[i]) == 0;
            if (!cached && conn->plans[slot].sql == NULL) {
                if (PQsendPrepare(conn->pg, name, job->sql[i], job->nparams[i], NULL) != 1)
                    return -1;
                conn->plans[slot].hash = job->plan_hash[i];
                conn->plans[slot].sql = strdup(job->sql[i]);
                cached = true;
                job->cmd_step[job->ncmds] = i;
                job->cmds[job->ncmds++] = CMD_PREPARE;
            }
            int ok = cached ? PQsendQueryPrepared(conn->pg, name, job->nparams[i], (const char *const *)job->params[i], NULL, NULL, 0)
                            : PQsendQueryParams(conn->pg, job->sql[i], job->nparams[i], NULL, (const char *const *)job->params[i], NULL,
                                                NULL, 0);
            if (ok != 1)
                return -1;
            job->cmd_step[job->ncmds] = i;
            job->cmds[job->ncmds++] = CMD_EXECUTE;
            continue;
        }
        if (!conn->prepared[stmt->_id]) {
            if (PQsendPrepare(conn->pg, stmt->name, stmt->sql, stmt->nparams, NULL) != 1)
                return -1;
            conn->prepared[stmt->_id] = 1;
            job->cmd_step[job->ncmds] = i;
            job->cmds[job->ncmds++] = CMD_PREPARE;
        }
        if (PQsendQueryPrepared(conn->pg, stmt->name, stmt->nparams, (const char *const *)job->params[i], NULL, NULL, 0) != 1)
            return -1;
        job->cmd_step[job->ncmds] = i;
        job->cmds[job->ncmds++] = CMD_EXECUTE;
    }
    if (job->shareable) {
        conn->batch_tail = job;
        return ++conn->batch_len >= DB_READ_BATCH_MAX ? conn_close_batch(conn) : 0;
    }
    if (PQpipelineSync(conn->pg) != 1)
        return -1;
    job->cmd_step[job->ncmds] = 0;
    job->cmds[job->ncmds++] = CMD_SYNC;
    return 0;
}

/* The connection for job, or NULL when it must wait. A read joins a batch already open in this
 * pass (one write instead of two), else goes to a connection with no read batch in flight (the
 * one with the fewest jobs), else waits: while every connection has a batch out, reads gather in
 * the queue and leave together, as one batch, when one comes back — under load batches grow
 * instead of the pipelines filling with small ones (each batch costs Postgres a transaction and
 * both sides a write and a wake-up). Writes and other jobs never hold reads back this way (a
 * connection busy with them only still takes one batch); they take the connection with the
 * fewest jobs in flight. */
static db_conn_t *pool_pick_conn(db_pool_t *pool, const db_job_t *job)
{
    db_conn_t *best = NULL;
    if (job->shareable) {
        for (int i = 0; i < pool->opts.connections; i++) {
            db_conn_t *c = &pool->conns[i];
            if (c->state == CONN_READY && c->batch_tail != NULL && c->ninflight < DB_PIPELINE_DEPTH)
                return c;
        }
        for (int i = 0; i < pool->opts.connections; i++) {
            db_conn_t *c = &pool->conns[i];
            if (c->state == CONN_READY && c->read_batches == 0 && c->ninflight < DB_PIPELINE_DEPTH &&
                (best == NULL || c->ninflight < best->ninflight))
                best = c;
        }
        return best;
    }
    for (int i = 0; i < pool->opts.connections; i++) {
        db_conn_t *c = &pool->conns[i];
        if (c->state == CONN_READY && c->ninflight < DB_PIPELINE_DEPTH && (best == NULL || c->ninflight < best->ninflight))
            best = c;
    }
    return best;
}

static void on_dispatch(h2o_timeout_entry_t *entry)
{
    db_pool_t *pool = H2O_STRUCT_FROM_MEMBER(db_pool_t, dispatch_entry, entry);
    bool touched[64] = {false};
    h2o_linklist_t *next = pool->queue.next;
    while (next != &pool->queue) {
        db_job_t *job = H2O_STRUCT_FROM_MEMBER(db_job_t, link, next);
        db_conn_t *conn = pool_pick_conn(pool, job);
        if (conn == NULL) {
            if (!job->shareable)
                break; /* no connection at all: nothing behind it can go either */
            next = next->next; /* a read waits for a connection without a batch out; others may still go */
            continue;
        }
        next = next->next;
        if (!job->shareable && conn_close_batch(conn) != 0) { /* never inside a read batch's transaction */
            conn_drop(conn, PQerrorMessage(conn->pg));
            next = pool->queue.next; /* dropping may requeue or end jobs: start over */
            continue;
        }
        h2o_linklist_unlink(&job->link);
        pool->nqueued--;
        metrics_gauge_add(METRICS_GAUGE_DB_QUEUE, -1);
        job->conn = conn;
        h2o_linklist_insert(&conn->inflight, &job->link);
        conn->ninflight++;
        metrics_gauge_add(METRICS_GAUGE_DB_INFLIGHT, 1);
        if (conn_send_job(conn, job) != 0) {
            conn_drop(conn, PQerrorMessage(conn->pg));
            next = pool->queue.next;
            continue;
        }
        if (conn->index < 64)
            touched[conn->index] = true;
    }
    for (int i = 0; i < pool->opts.connections; i++) {
        db_conn_t *c = &pool->conns[i];
        if (c->state == CONN_READY && c->batch_tail != NULL && conn_close_batch(c) != 0)
            conn_drop(c, PQerrorMessage(c->pg));
    }
    for (int i = 0; i < pool->opts.connections && i < 64; i++)
        if (touched[i] && pool->conns[i].state == CONN_READY)
            conn_flush(&pool->conns[i]);
}

static void pool_schedule_dispatch(db_pool_t *pool)
{
    if (!h2o_timeout_is_linked(&pool->dispatch_entry))
        h2o_timeout_link(pool->loop, &pool->zero_timeout, &pool->dispatch_entry);
}

static void on_job_deadline(h2o_timeout_entry_t *entry)
{
    db_job_t *job = H2O_STRUCT_FROM_MEMBER(db_job_t, deadline, entry);
    db_conn_t *conn = job->conn;
    if (conn == NULL) {
        job_finish(job, DB_TIMEOUT, "timed out waiting for a connection");
        return;
    }
    /* Sent and unanswered: the connection is stuck or gone; PQcancel would block, so drop it. */
    job_finish(job, DB_TIMEOUT, "query timed out");
    conn_drop(conn, "query timed out");
}

/* ---------------------------------------------------------------- public API */

db_pool_t *db_pool_create(h2o_loop_t *loop, const char *conninfo, const db_pool_options_t *opts)
{
    db_pool_t *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return NULL;
    pool->loop = loop;
    pool->conninfo = strdup(conninfo);
    pool->opts = *opts;
    if (pool->opts.connections > 64)
        pool->opts.connections = 64;
    h2o_linklist_init_anchor(&pool->queue);
    h2o_timeout_init(loop, &pool->job_timeout, (uint64_t)opts->query_timeout_ms);
    h2o_timeout_init(loop, &pool->zero_timeout, 0);
    h2o_timeout_init(loop, &pool->backoff_timeout, DB_BACKOFF_TICK_MS);
    pool->dispatch_entry.cb = on_dispatch;
    pool->conns = calloc((size_t)pool->opts.connections, sizeof(db_conn_t));
    for (int i = 0; i < pool->opts.connections; i++) {
        db_conn_t *c = &pool->conns[i];
        c->pool = pool;
        c->index = i;
        c->sock_fd = -1;
        c->state = CONN_DOWN;
        c->backoff.cb = on_backoff;
        h2o_linklist_init_anchor(&c->inflight);
        metrics_gauge_add(METRICS_GAUGE_DB_DOWN, 1);
        conn_start_connect(c);
    }
    return pool;
}

void db_pool_destroy(db_pool_t *pool)
{
    if (pool == NULL)
        return;
    pool->destroying = true;
    fail_queue(pool, DB_UNAVAILABLE, "shutting down");
    for (int i = 0; i < pool->opts.connections; i++) {
        db_conn_t *c = &pool->conns[i];
        if (h2o_timeout_is_linked(&c->backoff))
            h2o_timeout_unlink(&c->backoff);
        conn_drop(c, "shutting down");
        metrics_gauge_add(METRICS_GAUGE_DB_DOWN, -1);
    }
    if (h2o_timeout_is_linked(&pool->dispatch_entry))
        h2o_timeout_unlink(&pool->dispatch_entry);
    h2o_timeout_dispose(pool->loop, &pool->job_timeout);
    h2o_timeout_dispose(pool->loop, &pool->zero_timeout);
    h2o_timeout_dispose(pool->loop, &pool->backoff_timeout);
    free(pool->conns);
    free(pool->conninfo);
    free(pool);
}

bool db_pool_is_up(const db_pool_t *pool)
{
    return pool->nready > 0;
}

size_t db_pool_pending(const db_pool_t *pool)
{
    return pool->npending;
}

static db_job_t *pool_submit(db_pool_t *pool, const db_step_t *steps, int nsteps, bool shareable, db_callback_t cb, void *data,
                             db_status_t *status)
{
    if (nsteps < 1 || nsteps > DB_MAX_STEPS) {
        *status = DB_REJECTED;
        return NULL;
    }
    /* No connection up: fail at once rather than wait for a dead server — except at start-up,
     * while the very first connections are being made: then queue (bounded by the deadline). */
    bool starting = !pool->ever_ready && pool->nconnecting > 0;
    if ((pool->nready == 0 && !starting) || pool->destroying) {
        metrics_count(METRICS_COUNTER_DB_REJECTED);
        *status = DB_UNAVAILABLE;
        return NULL;
    }
    if (pool->nqueued >= (size_t)pool->opts.queue_max) {
        metrics_count(METRICS_COUNTER_DB_REJECTED);
        *status = DB_REJECTED;
        return NULL;
    }
    db_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL) {
        *status = DB_REJECTED;
        return NULL;
    }
    job->pool = pool;
    job->shareable = shareable;
    job->cb = cb;
    job->data = data;
    job->nsteps = nsteps;
    for (int i = 0; i < nsteps; i++) {
        const db_stmt_t *stmt = steps[i].stmt;
        if (stmt != NULL && (stmt->_id == 0 || stmt->nparams > DB_MAX_PARAMS)) {
            log_error(NULL, "db: statement %s used without registration", stmt->name);
            abort();
        }
        job->stmts[i] = stmt;
        job->nparams[i] = stmt != NULL ? stmt->nparams : steps[i].nparams;
        if (stmt == NULL) {
            job->sql[i] = strdup(steps[i].sql);
            uint64_t h = 1469598103934665603ull;
            for (const char *c = job->sql[i]; *c; c++)
                h = (h ^ (unsigned char)*c) * 1099511628211ull;
            job->plan_hash[i] = h;
        }
        if (job->nparams[i] > 0) {
            job->params[i] = calloc((size_t)job->nparams[i], sizeof(char *));
            for (int p = 0; p < job->nparams[i]; p++)
                if (steps[i].params[p] != NULL)
                    job->params[i][p] = strdup(steps[i].params[p]);
        }
    }
    job->deadline.cb = on_job_deadline;
    h2o_timeout_link(pool->loop, &pool->job_timeout, &job->deadline);
    h2o_linklist_insert(&pool->queue, &job->link);
    pool->nqueued++;
    pool->npending++;
    metrics_gauge_add(METRICS_GAUGE_DB_QUEUE, 1);
    pool_schedule_dispatch(pool);
    return job;
}

db_job_t *db_submit(db_pool_t *pool, const db_step_t *steps, int nsteps, db_callback_t cb, void *data, db_status_t *status)
{
    return pool_submit(pool, steps, nsteps, false, cb, data, status);
}

db_job_t *db_submit_read(db_pool_t *pool, const db_step_t *steps, int nsteps, db_callback_t cb, void *data, db_status_t *status)
{
    return pool_submit(pool, steps, nsteps, true, cb, data, status);
}

char *db_escape_identifier(db_pool_t *pool, const char *name)
{
    for (int i = 0; i < pool->opts.connections; i++) {
        db_conn_t *c = &pool->conns[i];
        if (c->state == CONN_READY) {
            char *q = PQescapeIdentifier(c->pg, name, strlen(name));
            if (q == NULL)
                return NULL;
            char *copy = strdup(q);
            PQfreemem(q);
            return copy;
        }
    }
    return NULL;
}

db_job_t *db_query(db_pool_t *pool, const db_stmt_t *stmt, const char *const *params, db_callback_t cb, void *data,
                   db_status_t *status)
{
    db_step_t step = {stmt, params, NULL, 0};
    return db_submit(pool, &step, 1, cb, data, status);
}

void db_cancel(db_job_t *job)
{
    job->cb = NULL;
    job->data = NULL;
}
