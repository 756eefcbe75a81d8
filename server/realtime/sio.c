/*
 * sio: Engine.IO 4 / Socket.IO 5 sessions over WebSocket and HTTP long-polling (see sio.h).
 *
 * Threads. A session is owned by the worker that created it: its hub membership, ping timer,
 * authentication and every Socket.IO packet are handled on that thread. Its transport may live
 * on another worker, because each HTTP request of a polling client (and its WebSocket upgrade)
 * lands on whichever worker accepted that TCP connection. So the session keeps an outgoing
 * queue under a mutex: anyone enqueues, and the transport's own worker ("io worker") drains it
 * into its WebSocket or into the parked long-poll GET. Workers poke each other through h2o's
 * multithread queues (MSG_WAKE: drain your transport; MSG_INBOUND: process this packet, owner).
 * Pointers to a parked request or a WebSocket are only ever dereferenced on their own worker.
 * Sessions are reference-counted: the registry, each message in flight, a parked GET and a
 * WebSocket each hold one; the last release frees the session on whatever thread it happens.
 *
 * Limits: maxPayload for packets and POST bodies, a bounded outgoing queue (a slow reader is
 * disconnected), a rate limit on client events, at most HUB_ROOMS_PER_CLIENT rooms, a ping
 * pingInterval after the handshake or the last pong with the connection closed when no pong came
 * within pingTimeout, and the access token's expiry.
 *
 * Echo mode (the last section, sio_set_echo_mode) turns the module into the test server of the
 * official conformance suites; only tests/conformance/sio_echo enables it.
 */
#include "realtime/sio.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "core/log.h"
#include "http/body.h"
#include "http/cors.h"
#include "http/guard.h"
#include "realtime/hub.h"
#include "realtime/sio_packet.h"
#include "realtime/ws.h"
#include "security/session.h"

#define SIO_MAX_PAYLOAD 1000000
#define SIO_MAX_ATTACHMENTS 16
#define SIO_QUEUE_MAX_BYTES (1 << 20)
#define SIO_EVENTS_PER_SECOND 100
#define SIO_REGISTRY_BUCKETS 4096

static int sio_ping_interval_ms = 25000, sio_ping_timeout_ms = 20000;

typedef enum { IO_NONE, IO_POLL, IO_WS } io_kind_t;

/* One outgoing Engine.IO packet, reference-counted: a room's event is encoded once and the same
 * packet sits in every member's queue (and then in its WebSocket's write queue). bytes holds
 * WS_HEADER_MAX bytes of room, then the text (NUL-terminated); the WebSocket frame header is
 * written right before the text, so the frame goes out as it is. A text starting with 'b' is an
 * attachment in its polling form (base64), sent over WebSocket as a binary frame. */
typedef struct sio_out {
    atomic_uint refs;
    uint32_t len; /* of the text */
    uint8_t hdr;  /* length of the WebSocket header before the text */
    uint8_t bytes[];
} sio_out_t;

/* A BINARY_EVENT waiting for its attachments (owner thread); allocated only while one is. */
typedef struct {
    json_t *data;
    bool has_ack;
    uint64_t ack;
    int needed, have;
    char *att[SIO_MAX_ATTACHMENTS]; /* base64 */
} sio_binary_t;

typedef struct sio_session {
    hub_client_t hub; /* first: the hub hands this pointer back */
    char sid[24];
    char pid[24]; /* private id for connection state recovery (CONNECT reply) */
    sio_binary_t *bin; /* a BINARY_EVENT waiting for its attachments (owner thread), or NULL */
    int owner;
    atomic_int refs;
    struct sio_session *next_in_bucket; /* registry chain, under registry_mu */
    pthread_mutex_t mu;
    /* --- under mu --- */
    sio_out_t **outq; /* freed whenever drained */
    size_t nout, capout, outbytes;
    io_kind_t io;
    int io_worker;
    http_request_t *parked;    /* dereferenced only on parked_worker */
    int parked_worker;
    ws_conn_t *ws;             /* dereferenced only on io_worker */
    bool closed, going_away;
    bool client_closed;             /* the client sent "1": a parked poll gets a noop */
    bool upgrading;                 /* probe answered: a parked poll is released with a noop */
    ws_conn_t *probe_ws;            /* a WebSocket upgrading this session, before its "5"; only on probe_worker */
    int probe_worker;
    _Atomic uint64_t pong_deadline_ms; /* any thread: while a ping awaits its pong, when the session is dead (mono_ms); else 0 */
    /* --- owner thread only --- */
    bool connected;
    bool awaiting_pong;
    uint64_t ping_base_ms; /* when the pingInterval timer was armed (mono_ms) */
    uint64_t opened_ms;    /* when the session was opened (mono_ms), for the CONNECT deadline */
    h2o_timeout_entry_t ping;
    char *cookie_token;
    redis_cmd_t *cmd;
    db_job_t *job;
    uint64_t rate_window;
    int rate_count;
    json_t *pending_auth; /* CONNECT payload while authenticating */
    struct sio_echo *echo; /* echo mode only (see its section); NULL in tenantd */
} sio_session_t;

typedef struct {
    h2o_multithread_receiver_t rx;
    h2o_timeout_t ping_timeout; /* pingInterval: when the next ping is due */
    h2o_timeout_t pong_timeout; /* pingTimeout: when an unanswered ping closes the session */
    http_worker_t *worker;
} sio_worker_t;

typedef enum { MSG_WAKE, MSG_INBOUND, MSG_CLOSE } msg_kind_t;

typedef struct {
    h2o_multithread_message_t super;
    msg_kind_t kind;
    sio_session_t *s;
    char *text;
    size_t len;
} sio_msg_t;

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static sio_session_t *registry[SIO_REGISTRY_BUCKETS];

static db_stmt_t tenant_stmt = {"sio_tenant",
                                "SELECT t.status, coalesce((SELECT json_agg(json_build_object('name', r.name, 'permissions',"
                                " r.permissions, 'inherits', r.inherits)) FROM tenantd.roles r WHERE r.tenant_id = t.id), '[]')::text"
                                " FROM tenantd.tenants t WHERE t.id = $1::uuid",
                                1, 0};

static void session_close(http_worker_t *w, sio_session_t *s, const char *why, bool going_away);
static void recovery_save(http_worker_t *w, sio_session_t *s);
static void connect_finish(http_worker_t *w, sio_session_t *s, json_t *rooms, const char *pid);
static bool recovery_start(http_worker_t *w, sio_session_t *s, const char *pid);
static void io_drain(http_worker_t *self, sio_session_t *s);
static void process_engine_packet(http_worker_t *w, sio_session_t *s, const char *p, size_t len);
static struct sio_echo *echo_new(http_request_t *hr, sio_session_t *s);
static void echo_free(struct sio_echo *e);
static bool echo_engine_packet(http_worker_t *w, sio_session_t *s, const char *p, size_t len);
static void echo_ws_binary_out(ws_conn_t *ws, const char *b64, size_t len);
static void echo_ws_binary_in(http_worker_t *w, sio_session_t *s, const uint8_t *data, size_t len);

/* ---------------------------------------------------------------- sessions and registry */

/* Milliseconds of CLOCK_MONOTONIC, comparable across workers. */
static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t sid_hash(const char *sid)
{
    uint64_t h = 1469598103934665603ull;
    for (; *sid; sid++)
        h = (h ^ (unsigned char)*sid) * 1099511628211ull;
    return h % SIO_REGISTRY_BUCKETS;
}

static void session_ref(sio_session_t *s)
{
    atomic_fetch_add(&s->refs, 1);
}

static void binary_reset(sio_session_t *s);

/* A packet holding a copy of text. */
static sio_out_t *out_new(const char *text, size_t len)
{
    sio_out_t *o = malloc(sizeof(*o) + WS_HEADER_MAX + len + 1);
    atomic_init(&o->refs, 1);
    o->len = (uint32_t)len;
    memcpy(o->bytes + WS_HEADER_MAX, text, len);
    o->bytes[WS_HEADER_MAX + len] = '\0';
    uint8_t hdr[WS_HEADER_MAX];
    o->hdr = (uint8_t)ws_frame_header(hdr, WS_OP_TEXT, len);
    memcpy(o->bytes + WS_HEADER_MAX - o->hdr, hdr, o->hdr);
    return o;
}

static const char *out_text(const sio_out_t *o)
{
    return (const char *)o->bytes + WS_HEADER_MAX;
}

static sio_out_t *out_ref(sio_out_t *o)
{
    atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
    return o;
}

static void out_unref(sio_out_t *o)
{
    if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1)
        free(o);
}

static void out_release(void *arg)
{
    out_unref(arg);
}

static void session_unref(sio_session_t *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->nout; i++)
        out_unref(s->outq[i]);
    free(s->outq);
    free(s->cookie_token);
    binary_reset(s);
    if (s->pending_auth != NULL)
        json_decref(s->pending_auth);
    rbac_grants_free(s->hub.grants);
    hub_claims_free(&s->hub.claims);
    echo_free(s->echo);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Looks a session up by sid and takes a reference; NULL when unknown or closed. */
static sio_session_t *session_find(const char *sid)
{
    pthread_mutex_lock(&registry_mu);
    sio_session_t *s = registry[sid_hash(sid)];
    while (s != NULL && strcmp(s->sid, sid) != 0)
        s = s->next_in_bucket;
    if (s != NULL)
        session_ref(s);
    pthread_mutex_unlock(&registry_mu);
    return s;
}

static void registry_remove(sio_session_t *s)
{
    pthread_mutex_lock(&registry_mu);
    sio_session_t **pp = &registry[sid_hash(s->sid)];
    while (*pp != NULL && *pp != s)
        pp = &(*pp)->next_in_bucket;
    bool found = *pp == s;
    if (found)
        *pp = s->next_in_bucket;
    pthread_mutex_unlock(&registry_mu);
    if (found)
        session_unref(s);
}

static sio_worker_t *sio_of(http_worker_t *w)
{
    return w->sio;
}

/* ---------------------------------------------------------------- cross-thread messages */

static void post(int worker, msg_kind_t kind, sio_session_t *s, const char *text, size_t len)
{
    http_worker_t *w = server_worker_at(worker);
    if (w == NULL || w->sio == NULL)
        return;
    sio_msg_t *m = calloc(1, sizeof(*m));
    m->kind = kind;
    m->s = s;
    session_ref(s);
    if (text != NULL) {
        m->text = malloc(len + 1);
        memcpy(m->text, text, len);
        m->text[len] = '\0';
        m->len = len;
    }
    h2o_multithread_send_message(&sio_of(w)->rx, &m->super);
}

static void on_messages(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
    sio_worker_t *sw = H2O_STRUCT_FROM_MEMBER(sio_worker_t, rx, rx);
    while (!h2o_linklist_is_empty(messages)) {
        sio_msg_t *m = H2O_STRUCT_FROM_MEMBER(sio_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        switch (m->kind) {
        case MSG_WAKE:
            io_drain(sw->worker, m->s);
            break;
        case MSG_INBOUND:
            process_engine_packet(sw->worker, m->s, m->text, m->len);
            break;
        case MSG_CLOSE:
            session_close(sw->worker, m->s, m->text != NULL ? m->text : "transport closed", false);
            break;
        }
        session_unref(m->s);
        free(m->text);
        free(m);
    }
}

/* Hands an incoming Engine.IO packet to the owner (directly when we are the owner). */
static void inbound(http_worker_t *self, sio_session_t *s, const char *text, size_t len)
{
    if (self->index == s->owner)
        process_engine_packet(self, s, text, len);
    else
        post(s->owner, MSG_INBOUND, s, text, len);
}

/* Closes the session from any worker (the owner does it). */
static void close_from(http_worker_t *self, sio_session_t *s, const char *why)
{
    if (self->index == s->owner)
        session_close(self, s, why, false);
    else
        post(s->owner, MSG_CLOSE, s, why, strlen(why));
}

/* Asks the transport's worker to drain the queue. */
static void wake_io(http_worker_t *self, sio_session_t *s, int io_worker)
{
    if (io_worker < 0)
        return;
    if (io_worker == self->index)
        io_drain(self, s);
    else
        post(io_worker, MSG_WAKE, s, NULL, 0);
}

/* Queues one Engine.IO packet (the queue takes its own reference); -1 when the queue is full, 0 when
 * queued or the session is closed. */
static int session_enqueue_out(http_worker_t *self, sio_session_t *s, sio_out_t *o)
{
    pthread_mutex_lock(&s->mu);
    if (s->closed || s->outbytes + o->len > SIO_QUEUE_MAX_BYTES) {
        bool closed = s->closed;
        pthread_mutex_unlock(&s->mu);
        return closed ? 0 : -1;
    }
    if (s->nout == s->capout) {
        s->capout = s->capout ? s->capout * 2 : 4;
        s->outq = realloc(s->outq, s->capout * sizeof(*s->outq));
    }
    s->outq[s->nout++] = out_ref(o);
    s->outbytes += o->len;
    int io_worker = s->parked != NULL ? s->parked_worker : s->io == IO_WS ? s->io_worker : -1;
    pthread_mutex_unlock(&s->mu);
    wake_io(self, s, io_worker);
    return 0;
}

/* Queues one Engine.IO packet (takes ownership of the malloc'd text); as session_enqueue_out. */
static int session_enqueue(http_worker_t *self, sio_session_t *s, char *text, size_t len)
{
    sio_out_t *o = out_new(text, len);
    free(text);
    int rc = session_enqueue_out(self, s, o);
    out_unref(o);
    return rc;
}

static int enqueue_copy(http_worker_t *self, sio_session_t *s, const char *text)
{
    sio_out_t *o = out_new(text, strlen(text));
    int rc = session_enqueue_out(self, s, o);
    out_unref(o);
    return rc;
}

/* Empties the queue's array after its packets were taken (under mu): an idle session keeps none. */
static void outq_drained(sio_session_t *s)
{
    free(s->outq);
    s->outq = NULL;
    s->nout = s->capout = 0;
    s->outbytes = 0;
}

/* ---------------------------------------------------------------- transports (io worker side) */

static void send_text(http_request_t *hr, int status, const char *body, size_t len)
{
    http_send_body(hr, status, "text/plain; charset=UTF-8", body, len);
}

static void send_eio_error(http_request_t *hr, int code, const char *message)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}", code, message);
    http_send_body(hr, 400, "application/json", body, (size_t)n);
}

/* A WebSocket of this worker that was upgrading a session now closed: close it too. */
static void close_stale_probe(http_worker_t *self, sio_session_t *s)
{
    pthread_mutex_lock(&s->mu);
    ws_conn_t *probe = s->closed && s->probe_worker == self->index ? s->probe_ws : NULL;
    if (probe != NULL)
        s->probe_ws = NULL;
    pthread_mutex_unlock(&s->mu);
    if (probe != NULL)
        ws_close(probe, 1000);
}

/* Drains the queue into the transport living on this worker. */
static void io_drain(http_worker_t *self, sio_session_t *s)
{
    close_stale_probe(self, s);
    pthread_mutex_lock(&s->mu);
    if (s->io == IO_WS && s->io_worker == self->index && s->ws != NULL) {
        ws_conn_t *ws = s->ws;
        for (size_t i = 0; i < s->nout; i++) {
            sio_out_t *o = s->outq[i];
            if (out_text(o)[0] == 'b') { /* an attachment: a binary frame */
                echo_ws_binary_out(ws, out_text(o) + 1, o->len - 1);
                out_unref(o);
            } else { /* the frame as it is, shared with the other sessions that got it; the queue's reference goes with it */
                ws_send_frames(ws, o->bytes + WS_HEADER_MAX - o->hdr, o->hdr + o->len, out_release, o);
            }
        }
        outq_drained(s);
        bool closed = s->closed, going_away = s->going_away;
        pthread_mutex_unlock(&s->mu);
        if (!closed && ws_queued_bytes(ws) > SIO_QUEUE_MAX_BYTES) {
            /* the peer does not read: cut it off instead of growing memory */
            closed = true;
            if (self->index == s->owner)
                session_close(self, s, "slow reader: send queue full", false);
            else
                post(s->owner, MSG_CLOSE, s, "slow reader: send queue full", 28);
        }
        if (closed)
            ws_close(ws, going_away ? 1001 : 1000);
        return;
    }
    /* a parked long-poll of this worker: answer it with the queue, a close, or a noop after upgrade */
    http_request_t *hr = s->parked;
    if (hr == NULL || s->parked_worker != self->index) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (s->io == IO_POLL && s->nout == 0 && !s->closed && !s->upgrading) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    size_t total = 0;
    for (size_t i = 0; i < s->nout; i++)
        total += s->outq[i]->len + 1;
    char *body = malloc(total + 2);
    size_t pos = 0;
    if (s->io == IO_POLL) {
        for (size_t i = 0; i < s->nout; i++) {
            if (i > 0)
                body[pos++] = '\x1e';
            memcpy(body + pos, out_text(s->outq[i]), s->outq[i]->len);
            pos += s->outq[i]->len;
            out_unref(s->outq[i]);
        }
        outq_drained(s);
        if (pos == 0) {
            /* closed by us: "1"; closed by the client, or released for an upgrade: a noop */
            body[pos++] = s->closed && !s->client_closed ? '1' : '6';
        }
    } else {
        body[pos++] = '6'; /* upgraded to WebSocket: release the poll */
    }
    s->parked = NULL;
    pthread_mutex_unlock(&s->mu);
    hr->cancel = NULL;
    send_text(hr, 200, body, pos);
    free(body);
    session_unref(s); /* the parked request's reference */
}

/* The parked GET's client went away before it was answered. */
static void on_parked_gone(http_request_t *hr)
{
    sio_session_t *s = hr->handler_data;
    pthread_mutex_lock(&s->mu);
    bool mine = s->parked == hr;
    if (mine)
        s->parked = NULL;
    pthread_mutex_unlock(&s->mu);
    if (mine)
        session_unref(s);
}

/* What a WebSocket knows: its session and the worker whose loop it runs on. */
typedef struct {
    sio_session_t *s;
    http_worker_t *w;
} ws_ctx_t;

/* A message of a WebSocket of this worker, or its end (opcode 0). */
static void on_ws_message(ws_conn_t *conn, int opcode, const uint8_t *msg, size_t len)
{
    ws_ctx_t *ctx = ws_data(conn);
    sio_session_t *s = ctx->s;
    http_worker_t *w = ctx->w;
    if (opcode == 0) { /* the connection ended; conn is freed when we return */
        pthread_mutex_lock(&s->mu);
        bool was_transport = s->ws == conn;
        if (was_transport) {
            s->ws = NULL;
            s->io = IO_NONE;
        }
        if (s->probe_ws == conn)
            s->probe_ws = NULL;
        pthread_mutex_unlock(&s->mu);
        if (was_transport) {
            if (w->index == s->owner)
                session_close(w, s, "transport closed", false);
            else
                post(s->owner, MSG_CLOSE, s, "transport closed", 16);
        }
        free(ctx);
        session_unref(s); /* the WebSocket's reference */
        return;
    }
    if (opcode == WS_OP_BINARY) {
        /* an attachment: handed on in its polling form, "b" + base64 */
        echo_ws_binary_in(w, s, msg, len);
        return;
    }
    const char *text = (const char *)msg;
    if (len == 6 && memcmp(text, "2probe", 6) == 0) {
        ws_send(conn, WS_OP_TEXT, "3probe", 6);
        /* the client now pauses polling: it waits for its pending GET, which gets a noop */
        pthread_mutex_lock(&s->mu);
        s->upgrading = true;
        int parked_worker = s->parked != NULL ? s->parked_worker : -1;
        pthread_mutex_unlock(&s->mu);
        if (parked_worker >= 0)
            wake_io(w, s, parked_worker);
        return;
    }
    if (len == 1 && text[0] == '5') {
        /* upgrade: this WebSocket becomes the transport; a parked poll gets a noop */
        pthread_mutex_lock(&s->mu);
        int parked_worker = s->parked != NULL ? s->parked_worker : -1;
        s->io = IO_WS;
        s->ws = conn;
        if (s->probe_ws == conn)
            s->probe_ws = NULL;
        s->io_worker = w->index;
        pthread_mutex_unlock(&s->mu);
        if (parked_worker >= 0)
            wake_io(w, s, parked_worker);
        io_drain(w, s);
        return;
    }
    inbound(w, s, text, len);
}

/* Upgrades hr to a WebSocket for s (new session or upgrade of a polling one); NULL when hr was no WebSocket handshake. */
static ws_conn_t *upgrade(http_request_t *hr, sio_session_t *s, bool as_transport)
{
    const char *key;
    if (!ws_is_handshake(hr->req, &key)) {
        send_eio_error(hr, 3, "Bad request");
        return NULL;
    }
    session_ref(s); /* the WebSocket's */
    hr->answered = true;
    ws_ctx_t *ctx = malloc(sizeof(*ctx));
    ctx->s = s;
    ctx->w = hr->worker;
    ws_conn_t *conn = ws_upgrade(hr->req, key, SIO_MAX_PAYLOAD, on_ws_message, ctx);
    if (as_transport) {
        pthread_mutex_lock(&s->mu);
        s->io = IO_WS;
        s->ws = conn;
        s->io_worker = hr->worker->index;
        pthread_mutex_unlock(&s->mu);
        io_drain(hr->worker, s); /* queued now, written once the 101 is out */
    }
    return conn;
}

/* ---------------------------------------------------------------- Socket.IO (owner thread) */

static void send_sio(http_worker_t *w, sio_session_t *s, siop_type_t type, const char *nsp, bool has_ack, uint64_t ack, const char *payload)
{
    size_t len;
    char *text = siop_encode(type, nsp, has_ack, ack, payload, &len);
    session_enqueue(w, s, text, len);
}

static void ack_json(http_worker_t *w, sio_session_t *s, uint64_t ack, json_t *value)
{
    json_t *arr = json_array();
    json_array_append_new(arr, value);
    char *text = json_dumps(arr, JSON_COMPACT);
    send_sio(w, s, SIOP_ACK, "/", true, ack, text);
    free(text);
    json_decref(arr);
}

static void ack_error(http_worker_t *w, sio_session_t *s, bool has_ack, uint64_t ack, int status, const char *title)
{
    if (has_ack)
        ack_json(w, s, ack, json_pack("{s:b, s:{s:i, s:s}}", "ok", 0, "error", "status", status, "title", title));
}

static void connect_error(http_worker_t *w, sio_session_t *s, const char *message)
{
    json_t *o = json_pack("{s:s}", "message", message);
    char *text = json_dumps(o, JSON_COMPACT);
    send_sio(w, s, SIOP_CONNECT_ERROR, "/", false, 0, text);
    free(text);
    json_decref(o);
}

/* Turns {"_tenantd_binary": b64} objects of v back into placeholders, collecting the attachments. */
static void binary_extract(json_t *v, char **att, int *natt)
{
    if (json_is_object(v)) {
        json_t *b = json_object_get(v, "_tenantd_binary");
        if (json_is_string(b) && json_object_size(v) == 1 && *natt < SIO_MAX_ATTACHMENTS) {
            att[*natt] = strdup(json_string_value(b));
            json_object_clear(v);
            json_object_set_new(v, "_placeholder", json_true());
            json_object_set_new(v, "num", json_integer(*natt));
            (*natt)++;
            return;
        }
        const char *key;
        json_t *child;
        json_object_foreach(v, key, child)
            binary_extract(child, att, natt);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
            binary_extract(child, att, natt);
    }
}

static void out_free_enc(void *enc)
{
    out_unref(enc);
}

static int hub_send(hub_client_t *c, hub_event_t *ev)
{
    sio_session_t *s = (sio_session_t *)c;
    http_worker_t *w = server_worker_at(s->owner);
    const char *event = ev->event, *data = ev->data;
    size_t elen = ev->event_len, dlen = ev->data_len, len;
    uint64_t seq = ev->seq;
    if (ev->enc[HUB_ENC_SIO] != NULL) /* encoded for an earlier member */
        return session_enqueue_out(w, s, ev->enc[HUB_ENC_SIO]);
    if (memmem(data, dlen, "\"_tenantd_binary\"", 17) != NULL) {
        /* binary attachments: a BINARY_EVENT with placeholders, then the attachments as "b<base64>" */
        json_error_t jerr;
        json_t *v = json_loadb(data, dlen, 0, &jerr);
        char *att[SIO_MAX_ATTACHMENTS];
        int natt = 0;
        binary_extract(v, att, &natt);
        json_t *args = json_array();
        json_array_append_new(args, json_stringn(event, elen));
        json_array_append_new(args, v != NULL ? v : json_null());
        if (seq > 0) {
            char off[24];
            snprintf(off, sizeof(off), "%llu", (unsigned long long)seq);
            json_array_append_new(args, json_string(off));
        }
        char *payload = json_dumps(args, JSON_COMPACT);
        json_decref(args);
        size_t cap = strlen(payload) + 32;
        char *text = malloc(cap);
        int n = snprintf(text, cap, "45%d-%s", natt, payload);
        free(payload);
        int rc = session_enqueue(w, s, text, (size_t)n);
        for (int i = 0; i < natt; i++) {
            size_t alen = strlen(att[i]);
            char *b = malloc(alen + 2);
            b[0] = 'b';
            memcpy(b + 1, att[i], alen + 1);
            if (rc == 0)
                rc = session_enqueue(w, s, b, alen + 1);
            else
                free(b);
            free(att[i]);
        }
        return rc;
    }
    /* the seq goes last as the recovery offset; socket.io-client keeps it and sends it back. The
     * packet (and its WebSocket frame) is the same for every member: encoded for the first one */
    if (ev->enc[HUB_ENC_SIO] == NULL) {
        char *text = siop_encode_event_offset(event, elen, data, dlen, seq, &len);
        ev->enc[HUB_ENC_SIO] = out_new(text, len);
        ev->enc_free[HUB_ENC_SIO] = out_free_enc;
        free(text);
    }
    return session_enqueue_out(w, s, ev->enc[HUB_ENC_SIO]);
}

static void hub_kill(hub_client_t *c, const char *why)
{
    sio_session_t *s = (sio_session_t *)c;
    session_close(server_worker_at(s->owner), s, why, strcmp(why, "the server is shutting down") == 0);
}

static const hub_client_ops_t sio_hub_ops = {hub_send, hub_kill};

/* -- authentication at CONNECT */

static void auth_fail(http_worker_t *w, sio_session_t *s, const char *message)
{
    if (s->pending_auth != NULL) {
        json_decref(s->pending_auth);
        s->pending_auth = NULL;
    }
    connect_error(w, s, message);
}

static void on_auth_tenant(void *data, const db_result_t *res)
{
    sio_session_t *s = data;
    s->job = NULL;
    http_worker_t *w = server_worker_at(s->owner);
    if (res->status != DB_OK || PQntuples(res->results[0]) != 1) {
        auth_fail(w, s, res->status == DB_OK ? "the token's tenant does not exist" : "the database is unavailable");
        session_unref(s);
        return;
    }
    PGresult *r = res->results[0];
    if (strcmp(PQgetvalue(r, 0, 0), "active") != 0) {
        auth_fail(w, s, "this tenant is suspended");
        session_unref(s);
        return;
    }
    /* custom roles of the tenant, for the grants */
    json_error_t jerr;
    json_t *arr = json_loads(PQgetvalue(r, 0, 1), 0, &jerr);
    size_t n = json_array_size(arr);
    rbac_custom_role_t *custom = calloc(n + 1, sizeof(*custom));
    const char **strs = calloc(n * 96 + 1, sizeof(char *));
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i), *p = json_object_get(o, "permissions"), *h = json_object_get(o, "inherits");
        custom[i].name = json_string_value(json_object_get(o, "name"));
        custom[i].permissions = strs + used;
        for (size_t k = 0; k < json_array_size(p) && k < 64; k++)
            strs[used++] = json_string_value(json_array_get(p, k));
        custom[i].npermissions = (size_t)(strs + used - custom[i].permissions);
        custom[i].inherits = strs + used;
        for (size_t k = 0; k < json_array_size(h) && k < 32; k++)
            strs[used++] = json_string_value(json_array_get(h, k));
        custom[i].ninherits = (size_t)(strs + used - custom[i].inherits);
        if (custom[i].name == NULL)
            custom[i].name = "";
    }
    const char *roles[TOKEN_MAX_ROLES];
    for (int i = 0; i < s->hub.claims.nroles; i++)
        roles[i] = s->hub.claims.roles[i];
    s->hub.grants = rbac_resolve(guard_policy(), roles, (size_t)s->hub.claims.nroles, custom, n);
    free(custom);
    free(strs);
    json_decref(arr);
    if (s->hub.grants == NULL) {
        auth_fail(w, s, "internal error");
        session_unref(s);
        return;
    }
    pthread_mutex_lock(&s->mu);
    bool closed = s->closed;
    pthread_mutex_unlock(&s->mu);
    if (!closed) {
        const char *rpid = json_string_value(json_object_get(s->pending_auth, "pid"));
        if (rpid != NULL && recovery_start(w, s, rpid)) {
            session_unref(s); /* the recovery chain holds its own reference */
            return;
        }
        connect_finish(w, s, NULL, NULL);
    }
    if (s->pending_auth != NULL) {
        json_decref(s->pending_auth);
        s->pending_auth = NULL;
    }
    session_unref(s);
}

static void on_auth_session(void *data, redisReply *reply, const char *err)
{
    sio_session_t *s = data;
    s->cmd = NULL;
    http_worker_t *w = server_worker_at(s->owner);
    bool alive = reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                 reply->element[0]->type == REDIS_REPLY_STRING && reply->element[1]->type == REDIS_REPLY_STRING &&
                 strcmp(reply->element[0]->str, s->hub.claims.sub) == 0 && strcmp(reply->element[1]->str, s->hub.claims.tid) == 0;
    if (!alive) {
        auth_fail(w, s, reply == NULL ? "the session store is unavailable" : "the session has ended");
        session_unref(s);
        return;
    }
    const char *params[1] = {s->hub.claims.tid};
    db_status_t st;
    s->job = db_query(w->db, &tenant_stmt, params, on_auth_tenant, s, &st);
    if (s->job == NULL) {
        auth_fail(w, s, "the database is unavailable");
        session_unref(s);
    }
}

/* ---------------------------------------------------------------- connection state recovery
 *
 * Every event a socket receives carries the tenant's seq as its last argument (the Socket.IO
 * "offset"). When a session ends without the client saying goodbye, its rooms are kept in Redis
 * for SIO_RECOVERY_TTL seconds under its private id (pid, given in the CONNECT reply). A client
 * reconnecting with {pid, offset} — on any instance — gets the same pid back (socket.recovered),
 * its rooms again (each re-checked against its current rights), then every event after offset
 * from the tenant's stream that it may see. */

#define SIO_RECOVERY_TTL "120"

static void recovery_key(char *out, size_t cap, const char *tid, const char *pid)
{
    snprintf(out, cap, "t:%s:sio:%s", tid, pid);
}

static void recovery_save(http_worker_t *w, sio_session_t *s)
{
    if (s->pid[0] == '\0')
        return;
    json_t *rooms = json_array();
    for (size_t i = 0; i < s->hub.nrooms; i++)
        json_array_append_new(rooms, json_string(hub_client_room(&s->hub, i)));
    json_t *o = json_pack("{s:s, s:o}", "sub", s->hub.claims.sub, "rooms", rooms);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    char key[200];
    recovery_key(key, sizeof(key), s->hub.claims.tid, s->pid);
    const char *argv[5] = {"SET", key, text, "EX", SIO_RECOVERY_TTL};
    size_t lens[5] = {3, strlen(key), strlen(text), 2, strlen(SIO_RECOVERY_TTL)};
    redis_command_argv(w->redis, NULL, NULL, 5, argv, lens);
    free(text);
}

static void on_recovery_replay(void *data, redisReply *reply, const char *err)
{
    sio_session_t *s = data;
    pthread_mutex_lock(&s->mu);
    bool closed = s->closed;
    pthread_mutex_unlock(&s->mu);
    if (!closed && reply != NULL && reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            redisReply *e = reply->element[i];
            if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 && e->element[1]->type == REDIS_REPLY_ARRAY &&
                e->element[1]->elements == 2 && e->element[1]->element[1]->type == REDIS_REPLY_STRING)
                hub_deliver_replayed(&s->hub, e->element[1]->element[1]->str, e->element[1]->element[1]->len);
        }
    }
    session_unref(s);
}

/* Joins the default rooms, answers CONNECT (with pid; the same one when recovering), restores rooms and replays. */
static void connect_finish(http_worker_t *w, sio_session_t *s, json_t *rooms, const char *pid)
{
    s->connected = true;
    hub_join_defaults(w, &s->hub);
    if (pid != NULL) {
        snprintf(s->pid, sizeof(s->pid), "%s", pid);
    } else {
        unsigned char raw[12];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2base64(s->pid, sizeof(s->pid), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    }
    char payload[96];
    snprintf(payload, sizeof(payload), "{\"sid\":\"%s\",\"pid\":\"%s\"}", s->sid, s->pid);
    send_sio(w, s, SIOP_CONNECT, "/", false, 0, payload);
    if (rooms == NULL)
        return;
    size_t i;
    json_t *r;
    json_array_foreach(rooms, i, r)
    {
        int status;
        const char *reason;
        const char *room = json_string_value(r);
        if (room != NULL && hub_may_join(&s->hub, room, &status, &reason) == 0)
            hub_join(w, &s->hub, room);
    }
    const char *offset = json_string_value(json_object_get(s->pending_auth, "offset"));
    uint64_t after = offset != NULL ? strtoull(offset, NULL, 10) : 0;
    session_ref(s);
    if (after == 0 || hub_replay(w, s->hub.claims.tid, after, on_recovery_replay, s) == NULL)
        session_unref(s);
}

static void on_recovery_record(void *data, redisReply *reply, const char *err)
{
    sio_session_t *s = data;
    http_worker_t *w = server_worker_at(s->owner);
    pthread_mutex_lock(&s->mu);
    bool closed = s->closed;
    pthread_mutex_unlock(&s->mu);
    if (!closed) {
        json_t *record = NULL;
        if (reply != NULL && reply->type == REDIS_REPLY_STRING) {
            json_error_t jerr;
            record = json_loadb(reply->str, reply->len, 0, &jerr);
        }
        const char *sub = json_string_value(json_object_get(record, "sub"));
        const char *pid = json_string_value(json_object_get(s->pending_auth, "pid"));
        if (record != NULL && sub != NULL && strcmp(sub, s->hub.claims.sub) == 0 && pid != NULL) {
            char key[200];
            recovery_key(key, sizeof(key), s->hub.claims.tid, pid);
            const char *argv[2] = {"DEL", key}; /* single use */
            size_t lens[2] = {3, strlen(key)};
            redis_command_argv(w->redis, NULL, NULL, 2, argv, lens);
            connect_finish(w, s, json_object_get(record, "rooms"), pid);
        } else {
            connect_finish(w, s, NULL, NULL);
        }
        json_decref(record);
    }
    if (s->pending_auth != NULL) {
        json_decref(s->pending_auth);
        s->pending_auth = NULL;
    }
    session_unref(s);
}

/* Looks the previous session up; true when the answer will come through on_recovery_record. */
static bool recovery_start(http_worker_t *w, sio_session_t *s, const char *pid)
{
    char key[200];
    recovery_key(key, sizeof(key), s->hub.claims.tid, pid);
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, strlen(key)};
    session_ref(s);
    if (redis_command_argv(w->redis, on_recovery_record, s, 2, argv, lens) == NULL) {
        session_unref(s);
        return false;
    }
    return true;
}

static void handle_connect(http_worker_t *w, sio_session_t *s, siop_packet_t *p)
{
    if (strcmp(p->nsp, "/") != 0) {
        json_t *o = json_pack("{s:s}", "message", "Invalid namespace");
        char *text = json_dumps(o, JSON_COMPACT);
        send_sio(w, s, SIOP_CONNECT_ERROR, p->nsp, false, 0, text);
        free(text);
        json_decref(o);
        return;
    }
    if (s->connected || s->pending_auth != NULL)
        return;
    const char *token = json_string_value(json_object_get(p->data, "token"));
    if (token == NULL)
        token = s->cookie_token;
    if (token == NULL) {
        connect_error(w, s, "authentication required: io(url, {auth: {token}})");
        return;
    }
    token_claims_t claims; /* the fixed-size form only while verifying; the session keeps a compact copy */
    token_status_t st = token_verify(guard_keys(), token, strlen(token), (int64_t)time(NULL), &claims);
    if (st == TOKEN_OK)
        hub_claims_set(&s->hub.claims, &claims);
    if (st != TOKEN_OK) {
        char msg[96];
        snprintf(msg, sizeof(msg), "invalid token: %s", token_status_name(st));
        connect_error(w, s, msg);
        return;
    }
    if (!redis_client_is_up(w->redis_sub)) {
        connect_error(w, s, "revocations cannot be checked right now; retry");
        return;
    }
    s->pending_auth = json_object();
    /* connection state recovery: the client names its previous session and the last offset it saw */
    const char *rpid = json_string_value(json_object_get(p->data, "pid"));
    const char *roff = json_string_value(json_object_get(p->data, "offset"));
    if (rpid != NULL && strlen(rpid) < sizeof(s->pid) && roff != NULL && strlen(roff) < 24) {
        json_object_set_new(s->pending_auth, "pid", json_string(rpid));
        json_object_set_new(s->pending_auth, "offset", json_string(roff));
    }
    session_ref(s); /* held by the authentication chain */
    s->cmd = session_exists(w->redis, s->hub.claims.sid, on_auth_session, s);
    if (s->cmd == NULL) {
        auth_fail(w, s, "the session store is unavailable");
        session_unref(s);
    }
}

/* -- events */

typedef struct {
    sio_session_t *s;
    uint64_t ack;
    bool has_ack;
    char room[HUB_ROOM_MAX + 1];
} pending_ack_t;

static void on_published(void *data, redisReply *reply, const char *err)
{
    pending_ack_t *pa = data;
    http_worker_t *w = server_worker_at(pa->s->owner);
    if (pa->has_ack) {
        if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
            ack_json(w, pa->s, pa->ack, json_pack("{s:b, s:I}", "ok", 1, "seq", (json_int_t)reply->integer));
        else
            ack_error(w, pa->s, true, pa->ack, 503, "the event bus is unavailable");
    }
    session_unref(pa->s);
    free(pa);
}

static void on_presence(void *data, redisReply *reply, const char *err)
{
    pending_ack_t *pa = data;
    http_worker_t *w = server_worker_at(pa->s->owner);
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        ack_error(w, pa->s, pa->has_ack, pa->ack, 503, "presence is unavailable");
    } else if (pa->has_ack) {
        /* "user|conn" members -> [{user_id, connections}] */
        json_t *users = json_object();
        for (size_t i = 0; i < reply->elements; i++) {
            redisReply *m = reply->element[i];
            if (m->type != REDIS_REPLY_STRING)
                continue;
            const char *bar = memchr(m->str, '|', m->len);
            if (bar == NULL)
                continue;
            char user[80];
            snprintf(user, sizeof(user), "%.*s", (int)(bar - m->str), m->str);
            json_t *count = json_object_get(users, user);
            json_object_set_new(users, user, json_integer(count != NULL ? json_integer_value(count) + 1 : 1));
        }
        json_t *members = json_array();
        const char *user;
        json_t *count;
        json_object_foreach(users, user, count)
        {
            json_array_append_new(members, json_pack("{s:s, s:O}", "user_id", user, "connections", count));
        }
        json_decref(users);
        ack_json(w, pa->s, pa->ack, json_pack("{s:b, s:s, s:o}", "ok", 1, "room", pa->room, "members", members));
    }
    session_unref(pa->s);
    free(pa);
}

static void on_joined(void *data)
{
    pending_ack_t *pa = data;
    if (pa->has_ack)
        ack_json(server_worker_at(pa->s->owner), pa->s, pa->ack, json_pack("{s:b, s:s}", "ok", 1, "room", pa->room));
    session_unref(pa->s);
    free(pa);
}

static bool in_room(const hub_client_t *c, const char *room)
{
    return hub_client_in_room(c, room);
}

static void handle_event(http_worker_t *w, sio_session_t *s, siop_packet_t *p)
{
    if (!s->connected) {
        ack_error(w, s, p->has_ack, p->ack_id, 401, "not connected");
        return;
    }
    uint64_t second = (uint64_t)time(NULL);
    if (second != s->rate_window) {
        s->rate_window = second;
        s->rate_count = 0;
    }
    if (++s->rate_count > SIO_EVENTS_PER_SECOND) {
        session_close(w, s, "too many events", false);
        return;
    }
    const char *name = json_string_value(json_array_get(p->data, 0));
    json_t *arg = json_array_get(p->data, 1);
    int status;
    const char *reason;
    if (strcmp(name, "join") == 0 || strcmp(name, "leave") == 0 || strcmp(name, "presence") == 0) {
        const char *room = json_string_value(arg);
        if (room == NULL) {
            ack_error(w, s, p->has_ack, p->ack_id, 400, "give the room name");
            return;
        }
        if (strlen(room) != json_string_length(arg)) {
            ack_error(w, s, p->has_ack, p->ack_id, 400, "room names match ^[A-Za-z0-9_.:-]{1,64}$");
            return;
        }
        if (strcmp(name, "leave") == 0) {
            if (hub_leave(w, &s->hub, room) != 0)
                ack_error(w, s, p->has_ack, p->ack_id, 404, "not in that room");
            else if (p->has_ack)
                ack_json(w, s, p->ack_id, json_pack("{s:b, s:s}", "ok", 1, "room", room));
            return;
        }
        if (!in_room(&s->hub, room) && hub_may_join(&s->hub, room, &status, &reason) != 0) {
            ack_error(w, s, p->has_ack, p->ack_id, status, reason);
            return;
        }
        if (strcmp(name, "join") == 0) {
            /* the ack waits until this instance hears the room: an event sent after it arrives */
            pending_ack_t *pa = calloc(1, sizeof(*pa));
            pa->s = s;
            pa->ack = p->ack_id;
            pa->has_ack = p->has_ack;
            snprintf(pa->room, sizeof(pa->room), "%s", room);
            session_ref(s);
            if (hub_join_then(w, &s->hub, room, on_joined, pa) != 0) {
                ack_error(w, s, p->has_ack, p->ack_id, 429, "too many rooms");
                session_unref(s);
                free(pa);
            }
            return;
        }
        pending_ack_t *pa = calloc(1, sizeof(*pa));
        pa->s = s;
        pa->ack = p->ack_id;
        pa->has_ack = p->has_ack;
        snprintf(pa->room, sizeof(pa->room), "%s", room);
        session_ref(s);
        if (hub_presence(w, s->hub.claims.tid, room, on_presence, pa) == NULL) {
            ack_error(w, s, p->has_ack, p->ack_id, 503, "presence is unavailable");
            session_unref(s);
            free(pa);
        }
        return;
    }
    if (strcmp(name, "publish") == 0) {
        json_t *room_v = json_object_get(arg, "room"), *event_v = json_object_get(arg, "event");
        const char *room = json_string_value(room_v);
        const char *event = json_string_value(event_v);
        if ((room != NULL && strlen(room) != json_string_length(room_v)) || (event != NULL && strlen(event) != json_string_length(event_v)))
            room = NULL; /* an embedded U+0000: refused below */
        json_t *data = json_object_get(arg, "data");
        if (room == NULL || !hub_event_name_valid(event)) {
            ack_error(w, s, p->has_ack, p->ack_id, 400, "publish takes {room, event, data} with a valid event name");
            return;
        }
        if (rbac_check(s->hub.grants, "realtime", "publish") == RBAC_DENY) {
            ack_error(w, s, p->has_ack, p->ack_id, 403, "publishing needs realtime:publish");
            return;
        }
        if (!in_room(&s->hub, room) && hub_may_join(&s->hub, room, &status, &reason) != 0) {
            ack_error(w, s, p->has_ack, p->ack_id, status, reason);
            return;
        }
        char *text = json_dumps(data != NULL ? data : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
        pending_ack_t *pa = calloc(1, sizeof(*pa));
        pa->s = s;
        pa->ack = p->ack_id;
        pa->has_ack = p->has_ack;
        session_ref(s);
        if (hub_publish(w, s->hub.claims.tid, room, event, text, s->hub.claims.sub, on_published, pa) == NULL) {
            ack_error(w, s, p->has_ack, p->ack_id, 503, "the event bus is unavailable");
            session_unref(s);
            free(pa);
        }
        free(text);
        return;
    }
    ack_error(w, s, p->has_ack, p->ack_id, 404, "unknown event");
}

/* ---------------------------------------------------------------- binary attachments
 *
 * A BINARY_EVENT announces N attachments that follow as separate Engine.IO packets ("b" + base64
 * over polling, binary frames over WebSocket, which arrive here in the polling form). Once all
 * are in, each {"_placeholder":true,"num":k} of the payload becomes {"_tenantd_binary":"<base64>"},
 * so the event travels through Redis (and SSE) as JSON; on the way out to a socket the objects
 * turn back into placeholders and attachments (see hub_send). */

static void binary_reset(sio_session_t *s)
{
    sio_binary_t *b = s->bin;
    if (b == NULL)
        return;
    if (b->data != NULL)
        json_decref(b->data);
    for (int i = 0; i < b->have; i++)
        free(b->att[i]);
    free(b);
    s->bin = NULL;
}

/* Replaces placeholders in v with the attachments; false when one names no attachment. */
static bool binary_fill(json_t *v, char *const *att, int natt)
{
    if (json_is_object(v)) {
        json_t *ph = json_object_get(v, "_placeholder"), *num = json_object_get(v, "num");
        if (json_is_true(ph) && json_is_integer(num) && json_object_size(v) == 2) {
            json_int_t k = json_integer_value(num);
            if (k < 0 || k >= natt)
                return false;
            json_object_clear(v);
            json_object_set_new(v, "_tenantd_binary", json_string(att[k]));
            return true;
        }
        const char *key;
        json_t *child;
        json_object_foreach(v, key, child)
        {
            if (!binary_fill(child, att, natt))
                return false;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            if (!binary_fill(child, att, natt))
                return false;
        }
    }
    return true;
}

static void handle_event(http_worker_t *w, sio_session_t *s, siop_packet_t *p);

static void binary_complete(http_worker_t *w, sio_session_t *s)
{
    siop_packet_t p;
    memset(&p, 0, sizeof(p));
    p.type = SIOP_EVENT;
    strcpy(p.nsp, "/");
    p.has_ack = s->bin->has_ack;
    p.ack_id = s->bin->ack;
    p.data = s->bin->data;
    s->bin->data = NULL;
    bool ok = binary_fill(p.data, s->bin->att, s->bin->have);
    binary_reset(s);
    if (!ok) {
        json_decref(p.data);
        session_close(w, s, "a placeholder names no attachment", false);
        return;
    }
    handle_event(w, s, &p);
    json_decref(p.data);
}

static void binary_begin(http_worker_t *w, sio_session_t *s, siop_packet_t *p)
{
    if (s->bin != NULL || p->attachments < 1 || p->attachments > SIO_MAX_ATTACHMENTS || strcmp(p->nsp, "/") != 0) {
        session_close(w, s, "bad binary packet", false);
        return;
    }
    if (p->data == NULL)
        return; /* nothing to attach to: its attachments are refused below */
    s->bin = calloc(1, sizeof(*s->bin));
    s->bin->data = p->data;
    p->data = NULL;
    s->bin->has_ack = p->has_ack;
    s->bin->ack = p->ack_id;
    s->bin->needed = p->attachments;
}

static void binary_attachment(http_worker_t *w, sio_session_t *s, const char *b64, size_t len)
{
    sio_binary_t *b = s->bin;
    if (b == NULL || b->data == NULL || b->have >= b->needed) {
        session_close(w, s, "an attachment nobody announced", false);
        return;
    }
    b->att[b->have++] = strndup(b64, len);
    if (b->have == b->needed)
        binary_complete(w, s);
}

static void process_sio_packet(http_worker_t *w, sio_session_t *s, const char *text, size_t len)
{
    siop_packet_t p;
    if (siop_parse(text, len, &p) != 0) {
        session_close(w, s, "malformed Socket.IO packet", false);
        return;
    }
    switch (p.type) {
    case SIOP_CONNECT:
        handle_connect(w, s, &p);
        break;
    case SIOP_DISCONNECT:
        session_close(w, s, "client disconnected", false);
        break;
    case SIOP_EVENT:
        if (strcmp(p.nsp, "/") == 0)
            handle_event(w, s, &p);
        break;
    case SIOP_ACK:
        break; /* the server asks for no acks */
    case SIOP_BINARY_EVENT:
        binary_begin(w, s, &p);
        break;
    default:
        session_close(w, s, "unexpected Socket.IO packet", false);
        break;
    }
    siop_free(&p);
}

/* Owner: one Engine.IO packet from the client. */
static void process_engine_packet(http_worker_t *w, sio_session_t *s, const char *p, size_t len)
{
    pthread_mutex_lock(&s->mu);
    bool closed = s->closed;
    pthread_mutex_unlock(&s->mu);
    if (closed || len == 0)
        return;
    if (s->echo != NULL && echo_engine_packet(w, s, p, len))
        return;
    switch (p[0]) {
    case '3':
        if (s->awaiting_pong) {
            /* the next ping is due pingInterval from now */
            s->awaiting_pong = false;
            atomic_store(&s->pong_deadline_ms, 0);
            s->ping_base_ms = mono_ms();
            h2o_timeout_unlink(&s->ping);
            h2o_timeout_link(w->ctx.loop, &sio_of(w)->ping_timeout, &s->ping);
        }
        break;
    case '4':
        process_sio_packet(w, s, p + 1, len - 1);
        break;
    case '1':
        pthread_mutex_lock(&s->mu);
        s->client_closed = true;
        pthread_mutex_unlock(&s->mu);
        session_close(w, s, "client closed", false);
        break;
    case '6':
        break;
    case 'b':
        binary_attachment(w, s, p + 1, len - 1);
        break;
    default:
        session_close(w, s, "malformed Engine.IO packet", false);
        break;
    }
}

/* ---------------------------------------------------------------- lifecycle (owner) */

static void on_ping(h2o_timeout_entry_t *entry)
{
    sio_session_t *s = H2O_STRUCT_FROM_MEMBER(sio_session_t, ping, entry);
    http_worker_t *w = server_worker_at(s->owner);
    if (s->awaiting_pong) {
        session_close(w, s, "ping timeout", false);
        return;
    }
    if (s->connected && s->hub.claims.exp <= (int64_t)time(NULL)) {
        session_close(w, s, "the access token expired", false);
        return;
    }
    if (!s->connected && s->echo == NULL && mono_ms() - s->opened_ms > (uint64_t)(sio_ping_interval_ms + sio_ping_timeout_ms)) {
        /* a transport that never authenticates holds resources for nothing: pingInterval + pingTimeout
         * after opening (45 s by default, Socket.IO's own connect timeout) */
        session_close(w, s, "no authenticated CONNECT in time", false);
        return;
    }
    s->awaiting_pong = true;
    /* counted from when the ping was due, so that a late timer cannot stretch the deadline */
    atomic_store(&s->pong_deadline_ms, s->ping_base_ms + (uint64_t)sio_ping_interval_ms + (uint64_t)sio_ping_timeout_ms);
    enqueue_copy(w, s, "2");
    h2o_timeout_link(w->ctx.loop, &sio_of(w)->pong_timeout, &s->ping);
}

static void session_close(http_worker_t *w, sio_session_t *s, const char *why, bool going_away)
{
    pthread_mutex_lock(&s->mu);
    if (s->closed) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->closed = true;
    s->going_away = going_away;
    int io_worker = s->parked != NULL ? s->parked_worker : s->io != IO_NONE ? s->io_worker : -1;
    int probe_worker = s->probe_ws != NULL ? s->probe_worker : -1;
    pthread_mutex_unlock(&s->mu);
    log_debug(NULL, "socket.io session %s closed: %s", s->sid, why);
    if (h2o_timeout_is_linked(&s->ping))
        h2o_timeout_unlink(&s->ping);
    if (s->cmd != NULL)
        redis_cancel(s->cmd);
    if (s->job != NULL)
        db_cancel(s->job);
    if (s->cmd != NULL || s->job != NULL)
        session_unref(s); /* the authentication chain's reference */
    s->cmd = NULL;
    s->job = NULL;
    s->hub.dead = true;
    if (s->connected)
        recovery_save(w, s);
    hub_leave_all(w, &s->hub);
    wake_io(w, s, io_worker);
    if (probe_worker >= 0 && probe_worker != io_worker)
        wake_io(w, s, probe_worker);
    registry_remove(s);
}

static sio_session_t *sio_session_new(http_request_t *hr)
{
    http_worker_t *w = hr->worker;
    sio_session_t *s = calloc(1, sizeof(*s));
    unsigned char raw[12];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(s->sid, sizeof(s->sid), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(s->hub.conn_id, sizeof(s->hub.conn_id), "%s", s->sid);
    s->hub.ops = &sio_hub_ops;
    hub_claims_free(&s->hub.claims); /* empty strings until CONNECT */
    s->owner = w->index;
    s->io_worker = w->index;
    atomic_init(&s->refs, 1); /* the registry's */
    pthread_mutex_init(&s->mu, NULL);
    /* the session cookie counts only from an allowed Origin (CSRF for sockets) */
    h2o_iovec_t origin = body_header(hr, "origin");
    if (origin.len > 0 && cors_origin_allowed(server_config, origin.base, origin.len)) {
        h2o_iovec_t cookie = body_header(hr, "cookie");
        const char *p = cookie.len > 0 ? h2o_strstr(cookie.base, cookie.len, H2O_STRLIT("__Host-access=")) != SIZE_MAX
                                             ? cookie.base + h2o_strstr(cookie.base, cookie.len, H2O_STRLIT("__Host-access=")) + 14
                                             : NULL
                                       : NULL;
        if (p != NULL) {
            const char *end = memchr(p, ';', (size_t)(cookie.base + cookie.len - p));
            size_t n = (size_t)((end != NULL ? end : cookie.base + cookie.len) - p);
            if (n > 0 && n < TOKEN_MAX_LEN)
                s->cookie_token = strndup(p, n);
        }
    }
    s->echo = echo_new(hr, s);
    s->ping.cb = on_ping;
    s->ping_base_ms = s->opened_ms = mono_ms();
    h2o_timeout_link(w->ctx.loop, &sio_of(w)->ping_timeout, &s->ping);
    pthread_mutex_lock(&registry_mu);
    uint64_t b = sid_hash(s->sid);
    s->next_in_bucket = registry[b];
    registry[b] = s;
    pthread_mutex_unlock(&registry_mu);
    return s;
}

static char *open_packet(const sio_session_t *s, bool can_upgrade, size_t *len)
{
    char *out = malloc(256);
    int n = snprintf(out, 256, "0{\"sid\":\"%s\",\"upgrades\":%s,\"pingInterval\":%d,\"pingTimeout\":%d,\"maxPayload\":%d}", s->sid,
                     can_upgrade ? "[\"websocket\"]" : "[]", sio_ping_interval_ms, sio_ping_timeout_ms, SIO_MAX_PAYLOAD);
    *len = (size_t)n;
    return out;
}

/* ---------------------------------------------------------------- HTTP entry */

static bool query_param(h2o_req_t *req, const char *name, char *out, size_t cap)
{
    if (req->query_at == SIZE_MAX)
        return false;
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nlen = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp != NULL ? amp : end;
        if ((size_t)(stop - q) > nlen && memcmp(q, name, nlen) == 0 && q[nlen] == '=') {
            size_t vlen = (size_t)(stop - q - nlen - 1);
            if (vlen >= cap)
                return false;
            memcpy(out, q + nlen + 1, vlen);
            out[vlen] = '\0';
            return true;
        }
        q = stop + 1;
    }
    return false;
}

static void handle_poll_get(http_request_t *hr, sio_session_t *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->parked != NULL || s->io == IO_WS) {
        /* a second concurrent GET closes the session (the first one gets "1"); after an upgrade, 400 only */
        bool overlap = s->io != IO_WS;
        pthread_mutex_unlock(&s->mu);
        if (overlap)
            close_from(hr->worker, s, "overlapping polls");
        send_eio_error(hr, 3, "Bad request");
        return;
    }
    s->parked = hr;
    s->parked_worker = hr->worker->index;
    s->io = s->io == IO_NONE ? IO_POLL : s->io;
    bool ready = s->nout > 0 || s->closed || s->upgrading;
    pthread_mutex_unlock(&s->mu);
    session_ref(s); /* the parked request's */
    hr->handler_data = s;
    hr->cancel = on_parked_gone;
    if (ready)
        io_drain(hr->worker, s);
}

static void handle_poll_post(http_request_t *hr, sio_session_t *s)
{
    h2o_iovec_t body = hr->req->entity;
    if (body.len > SIO_MAX_PAYLOAD) {
        send_eio_error(hr, 3, "Bad request");
        return;
    }
    const char *p = body.base, *end = body.base + body.len;
    while (p < end) {
        const char *sep = memchr(p, '\x1e', (size_t)(end - p));
        const char *stop = sep != NULL ? sep : end;
        if (stop > p) {
            /* the owner closes the session on a packet type a client may not send by polling: 400 for this POST */
            bool known = memchr("1346b", p[0], 5) != NULL;
            inbound(hr->worker, s, p, (size_t)(stop - p));
            if (!known) {
                send_eio_error(hr, 3, "Bad request");
                return;
            }
        }
        p = stop + 1;
    }
    send_text(hr, 200, "ok", 2);
}

void sio_handle(http_request_t *hr)
{
    h2o_req_t *req = hr->req;
    char eio[4] = "", transport[16] = "", sid[32] = "";
    query_param(req, "EIO", eio, sizeof(eio));
    query_param(req, "transport", transport, sizeof(transport));
    bool has_sid = query_param(req, "sid", sid, sizeof(sid));
    if (strcmp(eio, "4") != 0) {
        send_eio_error(hr, 5, "Unsupported protocol version");
        return;
    }
    bool polling = strcmp(transport, "polling") == 0, websocket = strcmp(transport, "websocket") == 0;
    if (!polling && !websocket) {
        send_eio_error(hr, 0, "Transport unknown");
        return;
    }
    bool is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
    bool is_post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
    if (!has_sid) {
        if (!is_get) {
            send_eio_error(hr, 2, "Bad handshake method");
            return;
        }
        if (websocket && req->version >= 0x200) {
            send_eio_error(hr, 3, "WebSocket needs HTTP/1.1");
            return;
        }
        sio_session_t *s = sio_session_new(hr);
        size_t len;
        char *open = open_packet(s, polling, &len);
        if (polling) {
            send_text(hr, 200, open, len);
            free(open);
            pthread_mutex_lock(&s->mu);
            s->io = IO_POLL;
            pthread_mutex_unlock(&s->mu);
            return;
        }
        session_enqueue(hr->worker, s, open, len);
        if (!upgrade(hr, s, true)) /* (direct WebSocket: the open packet waits in the queue) */
            session_close(hr->worker, s, "upgrade failed", false);
        return;
    }
    sio_session_t *s = session_find(sid);
    if (s == NULL) {
        send_eio_error(hr, 1, "Session ID unknown");
        return;
    }
    uint64_t deadline = atomic_load(&s->pong_deadline_ms);
    if (deadline != 0 && mono_ms() >= deadline) {
        /* its pong is overdue: the session is dead even if the owner's timer has not fired yet */
        close_from(hr->worker, s, "ping timeout");
        send_eio_error(hr, 1, "Session ID unknown");
        session_unref(s);
        return;
    }
    if (websocket) {
        /* one WebSocket per session: a second one (while upgrading or after) is accepted, then closed */
        ws_conn_t *conn = is_get ? upgrade(hr, s, false) : NULL;
        if (conn == NULL) {
            if (!hr->answered)
                send_eio_error(hr, 3, "Bad request");
        } else {
            pthread_mutex_lock(&s->mu);
            bool taken = s->io == IO_WS || s->probe_ws != NULL;
            if (!taken) {
                s->probe_ws = conn;
                s->probe_worker = hr->worker->index;
            }
            pthread_mutex_unlock(&s->mu);
            if (taken)
                ws_close(conn, 1008); /* written once the 101 is out */
        }
    } else if (is_get) {
        handle_poll_get(hr, s);
    } else if (is_post) {
        handle_poll_post(hr, s);
    } else {
        send_eio_error(hr, 2, "Bad request method");
    }
    session_unref(s); /* session_find's */
}

void sio_configure(int ping_interval_ms, int ping_timeout_ms)
{
    sio_ping_interval_ms = ping_interval_ms;
    sio_ping_timeout_ms = ping_timeout_ms;
}

void sio_worker_start(http_worker_t *w)
{
    sio_worker_t *sw = calloc(1, sizeof(*sw));
    sw->worker = w;
    h2o_multithread_register_receiver(w->ctx.queue, &sw->rx, on_messages);
    h2o_timeout_init(w->ctx.loop, &sw->ping_timeout, (uint64_t)sio_ping_interval_ms);
    h2o_timeout_init(w->ctx.loop, &sw->pong_timeout, (uint64_t)sio_ping_timeout_ms);
    w->sio = sw;
}

void sio_init(void)
{
    db_stmt_register(&tenant_stmt);
}

void sio_worker_stop(http_worker_t *w)
{
    sio_worker_t *sw = w->sio;
    if (sw == NULL)
        return;
    h2o_multithread_unregister_receiver(w->ctx.queue, &sw->rx);
    free(sw);
    w->sio = NULL;
}

/* ================================================================================================
 * Echo mode: the test server of the official conformance suites (tests/conformance/sio_echo).
 *
 * Nothing here runs in tenantd: sio_set_echo_mode is called only by sio_echo, and every hook in
 * the code above tests s->echo, which stays NULL unless echo mode was on when the session was
 * opened. Sessions opened under /engine.io/ echo Engine.IO messages; sessions under /socket.io/
 * behave as the reference server of the Socket.IO suite (its Readme, "Test suite"): CONNECT to
 * "/" or "/custom" without authentication, an "auth" event with the CONNECT payload, "message"
 * echoed as "message-back", events with an ack id acked with their arguments, other events
 * echoed under their own name. Binary attachments are kept as their polling form ("b" + base64)
 * in the outgoing queue and leave a WebSocket as binary frames.
 *
 * The "auth" event follows the CONNECT answer ECHO_AUTH_DELAY_MS later: the suites read the two
 * with two successive one-shot listeners, so over WebSocket they must not reach the client in the
 * same read (sent back to back they share a TCP segment and the suite misses the second one).
 * ================================================================================================ */

#define ECHO_MAX_ATTACHMENTS 16
#define ECHO_MAX_PENDING_AUTH 4
#define ECHO_AUTH_DELAY_MS 25

typedef enum { ECHO_ENGINE, ECHO_SOCKET } echo_kind_t;

struct sio_echo {
    sio_session_t *s;
    echo_kind_t kind;
    unsigned nsps;          /* connected namespaces: 1 "/", 2 "/custom" (owner thread) */
    bool has_pending;       /* a binary packet waiting for its attachments */
    siop_packet_t pending;
    char *att[ECHO_MAX_ATTACHMENTS]; /* its attachments so far, as "b<base64>" */
    int natt;
    h2o_timeout_entry_t auth_timer;   /* linked (holding a session reference) while auth events wait */
    char *auth[ECHO_MAX_PENDING_AUTH]; /* encoded "auth" events not sent yet */
    size_t auth_len[ECHO_MAX_PENDING_AUTH];
    int nauth;
};

static bool sio_echo_enabled;
static _Thread_local h2o_timeout_t echo_auth_delay; /* per worker, set up on first use */
static _Thread_local bool echo_auth_delay_ready;

void sio_set_echo_mode(bool on)
{
    sio_echo_enabled = on;
}

static struct sio_echo *echo_new(http_request_t *hr, sio_session_t *s)
{
    if (!sio_echo_enabled)
        return NULL;
    struct sio_echo *e = calloc(1, sizeof(*e));
    e->s = s;
    h2o_iovec_t path = hr->req->path_normalized;
    e->kind = path.len >= 11 && memcmp(path.base, "/engine.io/", 11) == 0 ? ECHO_ENGINE : ECHO_SOCKET;
    return e;
}

static void echo_drop_pending(struct sio_echo *e)
{
    if (e->has_pending)
        siop_free(&e->pending);
    e->has_pending = false;
    for (int i = 0; i < e->natt; i++)
        free(e->att[i]);
    e->natt = 0;
}

static void echo_free(struct sio_echo *e)
{
    if (e == NULL)
        return;
    echo_drop_pending(e);
    for (int i = 0; i < e->nauth; i++)
        free(e->auth[i]);
    free(e);
}

static unsigned echo_nsp_bit(const char *nsp)
{
    return strcmp(nsp, "/") == 0 ? 1u : strcmp(nsp, "/custom") == 0 ? 2u : 0u;
}

/* Encodes a Socket.IO packet as an Engine.IO message: "4" <type> [<natt>-] [<nsp>,] [<ack id>] <payload>. */
static char *echo_encode(siop_type_t type, const char *nsp, bool has_ack, uint64_t ack, const json_t *payload, int natt, size_t *len)
{
    char *body = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
    size_t cap = strlen(body) + strlen(nsp) + 64;
    char *out = malloc(cap);
    int n = snprintf(out, cap, "4%d", (int)type);
    if (natt > 0)
        n += snprintf(out + n, cap - (size_t)n, "%d-", natt);
    if (strcmp(nsp, "/") != 0)
        n += snprintf(out + n, cap - (size_t)n, "%s,", nsp);
    if (has_ack)
        n += snprintf(out + n, cap - (size_t)n, "%llu", (unsigned long long)ack);
    n += snprintf(out + n, cap - (size_t)n, "%s", body);
    free(body);
    *len = (size_t)n;
    return out;
}

/* Queues the auth events that wait (owner thread). */
static void echo_flush_auth(http_worker_t *w, struct sio_echo *e)
{
    for (int i = 0; i < e->nauth; i++)
        session_enqueue(w, e->s, e->auth[i], e->auth_len[i]);
    e->nauth = 0;
}

static void on_echo_auth_timer(h2o_timeout_entry_t *entry)
{
    struct sio_echo *e = H2O_STRUCT_FROM_MEMBER(struct sio_echo, auth_timer, entry);
    sio_session_t *s = e->s;
    echo_flush_auth(server_worker_at(s->owner), e);
    session_unref(s); /* the timer's */
}

/* Queues a Socket.IO packet, then its natt attachments; waiting auth events go first. */
static void echo_send(http_worker_t *w, sio_session_t *s, siop_type_t type, const char *nsp, bool has_ack, uint64_t ack,
                      const json_t *payload, char *const *att, int natt)
{
    echo_flush_auth(w, s->echo);
    size_t len;
    char *out = echo_encode(type, nsp, has_ack, ack, payload, natt, &len);
    session_enqueue(w, s, out, len);
    for (int i = 0; i < natt; i++)
        enqueue_copy(w, s, att[i]);
}

/* Queues the "auth" event of a CONNECT to be sent ECHO_AUTH_DELAY_MS from now. */
static void echo_send_auth_later(http_worker_t *w, sio_session_t *s, const char *nsp, const json_t *payload)
{
    struct sio_echo *e = s->echo;
    if (e->nauth == ECHO_MAX_PENDING_AUTH)
        echo_flush_auth(w, e);
    e->auth[e->nauth] = echo_encode(SIOP_EVENT, nsp, false, 0, payload, 0, &e->auth_len[e->nauth]);
    e->nauth++;
    if (h2o_timeout_is_linked(&e->auth_timer))
        return;
    if (!echo_auth_delay_ready) {
        h2o_timeout_init(w->ctx.loop, &echo_auth_delay, ECHO_AUTH_DELAY_MS);
        echo_auth_delay_ready = true;
    }
    e->auth_timer.cb = on_echo_auth_timer;
    session_ref(s); /* the timer's */
    h2o_timeout_link(w->ctx.loop, &echo_auth_delay, &e->auth_timer);
}

/* A complete EVENT (attachments included): ack it, or send it back. */
static void echo_event(http_worker_t *w, sio_session_t *s, const siop_packet_t *p, char *const *att, int natt)
{
    if (!(s->echo->nsps & echo_nsp_bit(p->nsp)))
        return; /* not connected to that namespace: ignored, as Socket.IO does */
    const char *name = json_string_value(json_array_get(p->data, 0));
    json_t *args = json_array();
    for (size_t i = 1; i < json_array_size(p->data); i++)
        json_array_append(args, json_array_get(p->data, i));
    if (p->has_ack) {
        echo_send(w, s, natt > 0 ? SIOP_BINARY_ACK : SIOP_ACK, p->nsp, true, p->ack_id, args, att, natt);
    } else {
        json_t *back = json_array();
        json_array_append_new(back, strcmp(name, "message") == 0 ? json_string("message-back") : json_string(name));
        json_array_extend(back, args);
        echo_send(w, s, natt > 0 ? SIOP_BINARY_EVENT : SIOP_EVENT, p->nsp, false, 0, back, att, natt);
        json_decref(back);
    }
    json_decref(args);
}

static void echo_socket_packet(http_worker_t *w, sio_session_t *s, const char *text, size_t len)
{
    struct sio_echo *e = s->echo;
    siop_packet_t p;
    if (e->has_pending || siop_parse(text, len, &p) != 0) {
        /* plain text while attachments are due is as malformed as a bad packet */
        session_close(w, s, "malformed Socket.IO packet", false);
        return;
    }
    switch (p.type) {
    case SIOP_CONNECT: {
        unsigned bit = echo_nsp_bit(p.nsp);
        if (bit == 0) {
            json_t *err = json_pack("{s:s}", "message", "Invalid namespace");
            echo_send(w, s, SIOP_CONNECT_ERROR, p.nsp, false, 0, err, NULL, 0);
            json_decref(err);
            break;
        }
        e->nsps |= bit;
        json_t *hello = json_pack("{s:s}", "sid", s->sid);
        echo_send(w, s, SIOP_CONNECT, p.nsp, false, 0, hello, NULL, 0);
        json_decref(hello);
        json_t *auth = json_pack("[s, o]", "auth", p.data != NULL ? json_incref(p.data) : json_object());
        echo_send_auth_later(w, s, p.nsp, auth);
        json_decref(auth);
        break;
    }
    case SIOP_DISCONNECT:
        e->nsps &= ~echo_nsp_bit(p.nsp); /* the Engine.IO session stays open */
        break;
    case SIOP_EVENT:
        echo_event(w, s, &p, NULL, 0);
        break;
    case SIOP_ACK:
        break;
    case SIOP_BINARY_EVENT:
    case SIOP_BINARY_ACK:
        if (p.attachments > ECHO_MAX_ATTACHMENTS) {
            session_close(w, s, "too many attachments", false);
            break;
        }
        if (p.attachments > 0) {
            e->pending = p; /* the payload moves to the pending packet */
            e->has_pending = true;
            return;
        }
        if (p.type == SIOP_BINARY_EVENT)
            echo_event(w, s, &p, NULL, 0);
        break;
    default:
        session_close(w, s, "unexpected Socket.IO packet", false);
        break;
    }
    siop_free(&p);
}

/* One attachment ("b<base64>") of the pending binary packet. */
static void echo_attachment(http_worker_t *w, sio_session_t *s, const char *text, size_t len)
{
    struct sio_echo *e = s->echo;
    if (!e->has_pending) {
        session_close(w, s, "unexpected binary data", false);
        return;
    }
    e->att[e->natt++] = strndup(text, len);
    if (e->natt < e->pending.attachments)
        return;
    if (e->pending.type == SIOP_BINARY_EVENT)
        echo_event(w, s, &e->pending, e->att, e->natt);
    echo_drop_pending(e);
}

/* Hook of process_engine_packet: true when echo mode handled the packet. */
static bool echo_engine_packet(http_worker_t *w, sio_session_t *s, const char *p, size_t len)
{
    if (p[0] != '4' && p[0] != 'b')
        return false;
    if (s->echo->kind == ECHO_ENGINE) {
        char *copy = malloc(len);
        memcpy(copy, p, len);
        session_enqueue(w, s, copy, len);
    } else if (p[0] == '4') {
        echo_socket_packet(w, s, p + 1, len - 1);
    } else {
        echo_attachment(w, s, p, len);
    }
    return true;
}

/* Hook of io_drain: a queued "b<base64>" packet leaves a WebSocket as a binary frame. */
static void echo_ws_binary_out(ws_conn_t *ws, const char *b64, size_t len)
{
    size_t cap = len / 4 * 3 + 3, n = 0;
    uint8_t *bin = malloc(cap);
    if (sodium_base642bin(bin, cap, b64, len, NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) == 0) {
        ws_send(ws, WS_OP_BINARY, bin, n);
    }
    free(bin);
}

/* Hook of on_ws_message: a binary frame becomes the Engine.IO packet "b<base64>". */
static void echo_ws_binary_in(http_worker_t *w, sio_session_t *s, const uint8_t *data, size_t len)
{
    size_t cap = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *text = malloc(cap + 1);
    text[0] = 'b';
    sodium_bin2base64(text + 1, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
    inbound(w, s, text, strlen(text));
    free(text);
}
