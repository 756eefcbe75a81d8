/*
 * realtime_api: the emit endpoint (see realtime_api.h). The target is a room name of the caller's
 * tenant ("tenant", "user:{id}", "role:{name}", "table:{name}" or a custom room); the event goes
 * through the hub's publish path (Redis), so it reaches every instance with a member there and
 * lands in the tenant's replay stream.
 */
#include "api/realtime_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http/body.h"
#include "http/guard.h"
#include "realtime/hub.h"

typedef struct {
    http_request_t *hr;
    redis_cmd_t *cmd;
} emit_call_t;

static void emit_cancel(http_request_t *hr)
{
    emit_call_t *e = hr->handler_data;
    if (e->cmd != NULL)
        redis_cancel(e->cmd);
}

static void on_published(void *data, redisReply *reply, const char *err)
{
    emit_call_t *e = data;
    e->cmd = NULL;
    e->hr->cancel = NULL;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        http_send_problem_retry(e->hr, PROBLEM_UNAVAILABLE, "the event bus is unavailable", 1);
        return;
    }
    char body[64];
    int n = snprintf(body, sizeof(body), "{\"seq\":%lld}", reply->integer);
    http_send_json(e->hr, 202, body, (size_t)n);
}

void realtime_emit(http_request_t *hr)
{
    json_t *body = body_json_object(hr, false);
    if (body == NULL)
        return;
    const char *to = body_string(body, "to");
    const char *event = body_string(body, "event");
    json_t *data = json_object_get(body, "data");
    if (to == NULL || !hub_room_name_valid(to, strlen(to))) {
        json_decref(body);
        http_send_problem(hr, PROBLEM_UNPROCESSABLE, "to must be a room name: tenant, user:{id}, role:{name} or a room");
        return;
    }
    if (!hub_event_name_valid(event)) {
        json_decref(body);
        http_send_problem(hr, PROBLEM_UNPROCESSABLE, "event must be 1-64 of [A-Za-z0-9_.:-] and not a reserved name");
        return;
    }
    char *data_text = json_dumps(data != NULL ? data : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    emit_call_t *e = h2o_mem_alloc_pool(&hr->req->pool, sizeof(*e));
    e->hr = hr;
    hr->handler_data = e;
    hr->cancel = emit_cancel;
    e->cmd = hub_publish(hr->worker, hr->principal->claims.tid, to, event, data_text, hr->principal->claims.sub, on_published, e);
    free(data_text);
    json_decref(body);
    if (e->cmd == NULL) {
        hr->cancel = NULL;
        http_send_problem_retry(hr, PROBLEM_UNAVAILABLE, "the event bus is unavailable", 1);
    }
}
