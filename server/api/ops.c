/*
 * ops: liveness, readiness and metrics (see ops.h). Readiness runs its two probes at once — a
 * SELECT 1 through the worker's Postgres pool and a PING on its Redis command connection — and
 * answers when both have reported; a dependency that is known to be down answers at once
 * (db_query/redis_command refuse immediately), so /readyz never waits on a dead server longer
 * than one query timeout.
 */
#include "api/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "http/server.h"

static db_stmt_t ops_ping_stmt = {"ops_ping", "SELECT 1", 0, 0};

void ops_init(void)
{
    db_stmt_register(&ops_ping_stmt);
}

void ops_healthz(http_request_t *hr)
{
    static const char body[] = "{\"status\":\"ok\"}";
    http_send_json(hr, 200, body, sizeof(body) - 1);
}

typedef struct {
    http_request_t *hr;
    db_job_t *job;
    redis_cmd_t *cmd;
    int waiting;
    bool pg_up, redis_up;
} readyz_t;

static void readyz_answer(readyz_t *r)
{
    http_request_t *hr = r->hr;
    hr->cancel = NULL;
    const char *pg = r->pg_up ? "up" : "down", *rd = r->redis_up ? "up" : "down";
    char body[512];
    if (r->pg_up && r->redis_up) {
        int n = snprintf(body, sizeof(body), "{\"status\":\"ready\",\"postgres\":\"%s\",\"redis\":\"%s\"}", pg, rd);
        http_send_json(hr, 200, body, (size_t)n);
        return;
    }
    char detail[96];
    snprintf(detail, sizeof(detail), "dependencies down:%s%s", r->pg_up ? "" : " postgres", r->redis_up ? "" : " redis");
    size_t len = http_render_problem(body, sizeof(body) - 64, PROBLEM_UNAVAILABLE, 503, detail, hr->request_id);
    /* extension members of the problem document: replace the closing brace */
    len += (size_t)snprintf(body + len - 1, sizeof(body) - len + 1, ",\"postgres\":\"%s\",\"redis\":\"%s\"}", pg, rd) - 1;
    http_add_header(hr, "retry-after", "1", 1);
    http_send_body(hr, 503, "application/problem+json", body, len);
}

static void readyz_done_one(readyz_t *r)
{
    if (--r->waiting == 0)
        readyz_answer(r);
}

static void on_readyz_db(void *data, const db_result_t *res)
{
    readyz_t *r = data;
    r->job = NULL;
    r->pg_up = res->status == DB_OK;
    readyz_done_one(r);
}

static void on_readyz_redis(void *data, redisReply *reply, const char *err)
{
    readyz_t *r = data;
    r->cmd = NULL;
    r->redis_up = reply != NULL && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0;
    readyz_done_one(r);
}

/* The client left before both probes answered: detach the callbacks. */
static void readyz_cancel(http_request_t *hr)
{
    readyz_t *r = hr->handler_data;
    if (r->job != NULL)
        db_cancel(r->job);
    if (r->cmd != NULL)
        redis_cancel(r->cmd);
}

void ops_readyz(http_request_t *hr)
{
    http_worker_t *w = hr->worker;
    readyz_t *r = h2o_mem_alloc_pool(&hr->req->pool, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->hr = hr;
    r->waiting = 1; /* held until both probes are issued */
    hr->handler_data = r;
    hr->cancel = readyz_cancel;

    db_status_t st;
    r->job = db_query(w->db, &ops_ping_stmt, NULL, on_readyz_db, r, &st);
    if (r->job != NULL)
        r->waiting++;
    const char *ping[1] = {"PING"};
    size_t plen[1] = {4};
    r->cmd = redis_command_argv(w->redis, on_readyz_redis, r, 1, ping, plen);
    if (r->cmd != NULL)
        r->waiting++;
    readyz_done_one(r);
}

void ops_metrics(http_request_t *hr)
{
    size_t len;
    char *text = metrics_render(&len);
    http_send_body(hr, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}
