/*
 * sse: the realtime stream as Server-Sent Events — GET /v1/events?rooms=a,b (CONTRACT.md §8).
 *
 * One stream is one hub client living as long as its request (HTTP/1.1 chunked or an HTTP/2
 * stream). Events are formatted as `id: <seq>\nevent: <name>\ndata: <json>\n\n` and queued;
 * h2o allows one send in flight per request, so the queue goes out whenever the previous send
 * completed (the generator's proceed). The queue is bounded (SSE_QUEUE_MAX bytes): a client that
 * does not read is cut off instead of growing memory. A comment line every 10 s keeps proxies
 * from timing out and finds dead peers. With Last-Event-ID (header, or ?last_event_id=), missed
 * events are replayed from the tenant's stream first; live events arriving meanwhile are held
 * and released after the replay, without duplicates (by seq).
 */
#include "realtime/sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "http/body.h"
#include "http/guard.h"
#include "realtime/hub.h"

#define SSE_QUEUE_MAX (1 << 20)
#define SSE_MAX_ROOMS 32

typedef struct {
    hub_client_t hub; /* first */
    http_request_t *hr;
    http_worker_t *worker;
    h2o_generator_t gen;
    h2o_iovec_t *queue; /* formatted chunks waiting */
    size_t nqueue, capqueue, queued_bytes;
    h2o_iovec_t *inflight;
    size_t ninflight;
    bool sending, finished, replaying;
    uint64_t last_seq;
    h2o_iovec_t *held; /* live events held during replay (already formatted) */
    uint64_t *held_seq;
    size_t nheld;
    h2o_timeout_entry_t ping;
    redis_cmd_t *cmd;
} sse_client_t;

static h2o_timeout_t *ping_timeout(http_worker_t *w);

static void free_chunks(h2o_iovec_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].base);
}

static void flush(sse_client_t *s)
{
    if (s->sending || s->nqueue == 0 || s->finished)
        return;
    free_chunks(s->inflight, s->ninflight);
    free(s->inflight);
    s->inflight = s->queue;
    s->ninflight = s->nqueue;
    s->queue = NULL;
    s->nqueue = s->capqueue = 0;
    s->queued_bytes = 0;
    s->sending = true;
    h2o_send(s->hr->req, s->inflight, s->ninflight, H2O_SEND_STATE_IN_PROGRESS);
}

static int push(sse_client_t *s, char *chunk, size_t len)
{
    if (s->queued_bytes + len > SSE_QUEUE_MAX) {
        free(chunk);
        return -1;
    }
    if (s->nqueue == s->capqueue) {
        s->capqueue = s->capqueue ? s->capqueue * 2 : 8;
        s->queue = realloc(s->queue, s->capqueue * sizeof(*s->queue));
    }
    s->queue[s->nqueue++] = h2o_iovec_init(chunk, len);
    s->queued_bytes += len;
    flush(s);
    return 0;
}

static char *format_event(const char *event, size_t elen, const char *data, size_t dlen, uint64_t seq, size_t *len)
{
    size_t cap = elen + dlen + 64;
    char *out = malloc(cap);
    int n = snprintf(out, cap, "id: %llu\nevent: %.*s\ndata: %.*s\n\n", (unsigned long long)seq, (int)elen, event, (int)dlen, data);
    *len = (size_t)n;
    return out;
}

static int sse_send(hub_client_t *c, hub_event_t *ev)
{
    sse_client_t *s = (sse_client_t *)c;
    const char *event = ev->event, *data = ev->data;
    size_t elen = ev->event_len, dlen = ev->data_len;
    uint64_t seq = ev->seq;
    if (s->finished)
        return 0;
    if (seq != 0 && seq <= s->last_seq && !s->replaying)
        return 0; /* already delivered by the replay */
    size_t len;
    char *chunk = format_event(event, elen, data, dlen, seq, &len);
    if (s->replaying && seq != 0) {
        s->held = realloc(s->held, (s->nheld + 1) * sizeof(*s->held));
        s->held_seq = realloc(s->held_seq, (s->nheld + 1) * sizeof(*s->held_seq));
        s->held[s->nheld] = h2o_iovec_init(chunk, len);
        s->held_seq[s->nheld++] = seq;
        return s->nheld > 10000 ? -1 : 0;
    }
    if (seq > s->last_seq)
        s->last_seq = seq;
    return push(s, chunk, len);
}

/* Ends the stream from our side (slow reader, revoked session, shutdown). */
static void sse_finish(sse_client_t *s)
{
    if (s->finished)
        return;
    s->finished = true;
    if (h2o_timeout_is_linked(&s->ping))
        h2o_timeout_unlink(&s->ping);
    hub_leave_all(s->worker, &s->hub);
    if (!s->sending) {
        h2o_send(s->hr->req, NULL, 0, H2O_SEND_STATE_FINAL);
    }
}

static void sse_kill(hub_client_t *c, const char *why)
{
    sse_client_t *s = (sse_client_t *)c;
    log_info(s->hr->request_id, "closing event stream: %s", why);
    sse_finish(s);
}

static const hub_client_ops_t sse_ops = {sse_send, sse_kill};

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    sse_client_t *s = H2O_STRUCT_FROM_MEMBER(sse_client_t, gen, gen);
    s->sending = false;
    free_chunks(s->inflight, s->ninflight);
    free(s->inflight);
    s->inflight = NULL;
    s->ninflight = 0;
    if (s->finished) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    flush(s);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    sse_client_t *s = H2O_STRUCT_FROM_MEMBER(sse_client_t, gen, gen);
    s->finished = true;
}

static void on_ping(h2o_timeout_entry_t *entry)
{
    sse_client_t *s = H2O_STRUCT_FROM_MEMBER(sse_client_t, ping, entry);
    if (s->finished)
        return;
    if (s->hub.claims.exp != 0 && s->hub.claims.exp <= (int64_t)time(NULL)) {
        sse_kill(&s->hub, "the access token expired");
        return;
    }
    char *chunk = strdup(": ping\n\n");
    if (push(s, chunk, 8) != 0) {
        sse_kill(&s->hub, "slow reader: send queue full");
        return;
    }
    h2o_timeout_link(s->worker->ctx.loop, ping_timeout(s->worker), &s->ping);
}

/* The request is gone (always called, after on_stop or after our FINAL): release everything. */
static void sse_dispose(http_request_t *hr)
{
    sse_client_t *s = hr->handler_data;
    if (s->cmd != NULL)
        redis_cancel(s->cmd);
    if (h2o_timeout_is_linked(&s->ping))
        h2o_timeout_unlink(&s->ping);
    hub_leave_all(s->worker, &s->hub);
    free_chunks(s->queue, s->nqueue);
    free(s->queue);
    free_chunks(s->inflight, s->ninflight);
    free(s->inflight);
    free_chunks(s->held, s->nheld);
    free(s->held);
    free(s->held_seq);
    rbac_grants_free(s->hub.grants);
    hub_claims_free(&s->hub.claims);
    free(s);
}

static void release_held(sse_client_t *s)
{
    s->replaying = false;
    for (size_t i = 0; i < s->nheld; i++) {
        if (s->held_seq[i] > s->last_seq && !s->finished) {
            s->last_seq = s->held_seq[i];
            if (push(s, s->held[i].base, s->held[i].len) != 0) {
                s->held[i].base = NULL;
                sse_kill(&s->hub, "slow reader: send queue full");
                continue;
            }
        } else {
            free(s->held[i].base);
        }
        s->held[i].base = NULL;
    }
    free(s->held);
    free(s->held_seq);
    s->held = NULL;
    s->held_seq = NULL;
    s->nheld = 0;
}

static void on_replay(void *data, redisReply *reply, const char *err)
{
    sse_client_t *s = data;
    s->cmd = NULL;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY) {
        s->replaying = false; /* replayed events go straight to the queue */
        for (size_t i = 0; i < reply->elements && !s->finished; i++) {
            redisReply *entry = reply->element[i];
            if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 || entry->element[1]->type != REDIS_REPLY_ARRAY ||
                entry->element[1]->elements != 2)
                continue;
            redisReply *msg = entry->element[1]->element[1];
            hub_deliver_replayed(&s->hub, msg->str, msg->len);
        }
    }
    release_held(s);
}

/* Splits rooms=a,b and checks each; answers and returns -1 on a bad or forbidden room. */
static int parse_rooms(http_request_t *hr, sse_client_t *s, char rooms[][HUB_ROOM_MAX + 1], size_t *n, uint64_t *last_id)
{
    h2o_req_t *req = hr->req;
    *n = 0;
    *last_id = 0;
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *q = req->path.base + req->query_at + 1;
    size_t qlen = req->path.len - req->query_at - 1;
    char *buf = malloc(qlen + 1);
    memcpy(buf, q, qlen);
    buf[qlen] = '\0';
    int rc = 0;
    for (char *save = NULL, *kv = strtok_r(buf, "&", &save); kv != NULL && rc == 0; kv = strtok_r(NULL, "&", &save)) {
        if (strncmp(kv, "last_event_id=", 14) == 0) {
            *last_id = strtoull(kv + 14, NULL, 10);
            continue;
        }
        if (strncmp(kv, "rooms=", 6) != 0)
            continue;
        /* %3A is ':' — the only escape room names need */
        char decoded[2048];
        size_t d = 0;
        for (const char *p = kv + 6; *p && d < sizeof(decoded) - 1; p++) {
            if (p[0] == '%' && (p[1] == '3') && (p[2] == 'A' || p[2] == 'a')) {
                decoded[d++] = ':';
                p += 2;
            } else if (p[0] == '%' && p[1] == '2' && (p[2] == 'C' || p[2] == 'c')) {
                decoded[d++] = ',';
                p += 2;
            } else {
                decoded[d++] = *p;
            }
        }
        decoded[d] = '\0';
        for (char *save2 = NULL, *room = strtok_r(decoded, ",", &save2); room != NULL; room = strtok_r(NULL, ",", &save2)) {
            int status;
            const char *reason;
            if (*n >= SSE_MAX_ROOMS) {
                http_send_problem(hr, PROBLEM_BAD_REQUEST, "at most 32 rooms per stream");
                rc = -1;
                break;
            }
            if (hub_may_join(&s->hub, room, &status, &reason) != 0) {
                http_send_problem(hr, status == 400 ? PROBLEM_BAD_REQUEST : PROBLEM_FORBIDDEN, reason);
                rc = -1;
                break;
            }
            snprintf(rooms[(*n)++], HUB_ROOM_MAX + 1, "%s", room);
        }
    }
    free(buf);
    return rc;
}

void sse_events(http_request_t *hr)
{
    http_worker_t *w = hr->worker;
    const guard_principal_t *p = hr->principal;
    sse_client_t *s = calloc(1, sizeof(*s));
    s->hub.ops = &sse_ops;
    hub_claims_set(&s->hub.claims, &p->claims);
    char id[33];
    reqid_generate(id);
    snprintf(s->hub.conn_id, sizeof(s->hub.conn_id), "sse-%s", id);
    const char *roles[TOKEN_MAX_ROLES];
    for (int i = 0; i < p->claims.nroles; i++)
        roles[i] = p->claims.roles[i];
    const rbac_custom_role_t *custom;
    size_t ncustom;
    guard_custom_roles(hr, &custom, &ncustom);
    s->hub.grants = rbac_resolve(guard_policy(), roles, (size_t)p->claims.nroles, custom, ncustom);
    s->hr = hr;
    s->worker = w;

    char rooms[SSE_MAX_ROOMS][HUB_ROOM_MAX + 1];
    size_t nrooms;
    uint64_t last_id;
    if (s->hub.grants == NULL || parse_rooms(hr, s, rooms, &nrooms, &last_id) != 0) {
        if (!hr->answered)
            http_send_problem(hr, PROBLEM_INTERNAL, NULL);
        rbac_grants_free(s->hub.grants);
        hub_claims_free(&s->hub.claims);
        free(s);
        return;
    }
    if (nrooms == 0) {
        rbac_grants_free(s->hub.grants);
        hub_claims_free(&s->hub.claims);
        free(s);
        http_send_problem(hr, PROBLEM_BAD_REQUEST, "name the rooms to follow: ?rooms=a,b");
        return;
    }
    h2o_iovec_t lei = body_header(hr, "last-event-id");
    if (lei.len > 0 && lei.len < 21) {
        char b[24];
        memcpy(b, lei.base, lei.len);
        b[lei.len] = '\0';
        last_id = strtoull(b, NULL, 10);
    }
    hr->handler_data = s;
    hr->cancel = sse_dispose;
    hr->answered = true;
    h2o_req_t *req = hr->req;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    s->gen.proceed = on_proceed;
    s->gen.stop = on_stop;
    h2o_start_response(req, &s->gen);

    s->replaying = last_id > 0;
    s->last_seq = last_id;
    for (size_t i = 0; i < nrooms; i++)
        hub_join(w, &s->hub, rooms[i]);
    hub_register_client(w, &s->hub);
    push(s, strdup(": connected\n\n"), 13);
    s->ping.cb = on_ping;
    h2o_timeout_link(w->ctx.loop, ping_timeout(w), &s->ping);
    if (s->replaying) {
        s->cmd = hub_replay(w, p->claims.tid, last_id, on_replay, s);
        if (s->cmd == NULL)
            release_held(s);
    }
}

static h2o_timeout_t *ping_timeout(http_worker_t *w)
{
    return hub_ping_timeout(w);
}
