/*
 * ws: server-side WebSocket framing over an h2o socket (see ws.h for what and why).
 *
 * Reading: frames are parsed straight from sock->input; a frame is handled only once all of it is
 * there (h2o grows the buffer while it arrives, up to max_msg plus a header), unmasked in place and
 * handed over without a copy unless it is a fragment (fragments are gathered in conn->frag). After
 * every read the input buffer is given back when it is empty, so an idle connection holds none.
 *
 * Writing: `q` holds queued chunks (bytes + release callback), `w` the chunks of the write in
 * flight (h2o allows one at a time); both arrays are freed once empty. A flush hands up to
 * WS_IOV_MAX chunks to one h2o_socket_write (one writev when the socket takes them).
 *
 * Lifetime: the connection ends (finish) on a socket error, after the closing handshake, or
 * WS_CLOSE_WAIT_MS after a close frame was queued (the handshake did not finish: the peer does not
 * read, or does not answer); finish runs the callback with opcode 0 and frees everything. It never
 * runs inside a call made by the user (busy): those only mark it due, and the event-loop callback
 * that is on the stack finishes afterwards.
 */
#include "realtime/ws.h"

#include <stdlib.h>
#include <string.h>

#include <h2o/http1.h>
#include <openssl/sha.h>

#define WS_IOV_MAX 64

#define OP_CONT 0x0
#define OP_CLOSE 0x8
#define OP_PING 0x9
#define OP_PONG 0xa

typedef struct {
    const uint8_t *bytes;
    size_t len;
    void (*release)(void *arg);
    void *arg;
} ws_chunk_t;

struct ws_conn {
    h2o_socket_t *sock; /* NULL until the 101 is written */
    h2o_loop_t *loop;
    ws_message_cb cb;
    void *data;
    size_t max_msg;
    ws_chunk_t *q; /* queued, not handed to the socket yet */
    size_t nq, capq;
    ws_chunk_t *w; /* in the write in flight */
    size_t nw;
    size_t queued_bytes;
    uint8_t *frag; /* a fragmented message being gathered */
    size_t frag_len;
    int frag_op; /* its opcode, 0 when none */
    h2o_timeout_entry_t close_timer;
    uint8_t close_frame[4]; /* ours, once queued */
    bool close_queued, close_in_flight, close_sent, close_received;
    bool busy, finish_due, finished;
};

static _Thread_local h2o_timeout_t close_wait;
static _Thread_local bool close_wait_ready;

static void flush(ws_conn_t *c);
static void finish(ws_conn_t *c);

/* ---------------------------------------------------------------- helpers */

void *ws_data(ws_conn_t *conn)
{
    return conn->data;
}

size_t ws_queued_bytes(const ws_conn_t *conn)
{
    return conn->queued_bytes;
}

size_t ws_frame_header(uint8_t *out, int opcode, size_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

bool ws_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

bool ws_is_handshake(h2o_req_t *req, const char **key)
{
    *key = NULL;
    if (req->version != 0x101 && req->version != 0x100)
        return false;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        return false;
    if (req->upgrade.base == NULL || !h2o_lcstris(req->upgrade.base, req->upgrade.len, H2O_STRLIT("websocket")))
        return false;
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("sec-websocket-key"), -1);
    if (i == -1 || req->headers.entries[i].value.len != 24)
        return false;
    *key = req->headers.entries[i].value.base;
    return true;
}

/* ---------------------------------------------------------------- writing */

static void release_chunks(ws_chunk_t *chunks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (chunks[i].release != NULL)
            chunks[i].release(chunks[i].arg);
}

static void push(ws_conn_t *c, const uint8_t *bytes, size_t len, void (*release)(void *), void *arg)
{
    if (c->nq == c->capq) {
        c->capq = c->capq != 0 ? c->capq * 2 : 4;
        c->q = realloc(c->q, c->capq * sizeof(*c->q));
    }
    c->q[c->nq++] = (ws_chunk_t){bytes, len, release, arg};
    c->queued_bytes += len;
}

static void on_write_complete(h2o_socket_t *sock, const char *err)
{
    ws_conn_t *c = sock->data;
    for (size_t i = 0; i < c->nw; i++)
        c->queued_bytes -= c->w[i].len;
    c->busy = true;
    release_chunks(c->w, c->nw);
    c->busy = false;
    free(c->w);
    c->w = NULL;
    c->nw = 0;
    if (err != NULL || c->finish_due) {
        finish(c);
        return;
    }
    if (c->close_in_flight) {
        c->close_in_flight = false;
        c->close_sent = true;
        if (c->close_received)
            finish(c);
        return; /* else the peer's close frame is awaited, until the close timer (see ws_close) */
    }
    flush(c);
}

/* Hands the queued chunks (up to WS_IOV_MAX) to the socket when no write is in flight. */
static void flush(ws_conn_t *c)
{
    if (c->sock == NULL || c->nq == 0 || c->nw != 0 || c->close_sent || c->finished)
        return;
    size_t n = c->nq < WS_IOV_MAX ? c->nq : WS_IOV_MAX;
    h2o_iovec_t iov[WS_IOV_MAX];
    for (size_t i = 0; i < n; i++) {
        iov[i] = h2o_iovec_init(c->q[i].bytes, c->q[i].len);
        if (c->q[i].bytes == c->close_frame)
            c->close_in_flight = true;
    }
    if (n == c->nq) {
        c->w = c->q;
        c->q = NULL;
        c->nq = c->capq = 0;
    } else {
        c->w = malloc(n * sizeof(*c->w));
        memcpy(c->w, c->q, n * sizeof(*c->w));
        memmove(c->q, c->q + n, (c->nq - n) * sizeof(*c->q));
        c->nq -= n;
    }
    c->nw = n;
    h2o_socket_write(c->sock, iov, n, on_write_complete);
}

void ws_send_frames(ws_conn_t *conn, const void *bytes, size_t len, void (*release)(void *arg), void *arg)
{
    if (conn->close_queued || conn->finished) {
        if (release != NULL)
            release(arg);
        return;
    }
    push(conn, bytes, len, release, arg);
    flush(conn);
}

void ws_send(ws_conn_t *conn, int opcode, const void *msg, size_t len)
{
    if (conn->close_queued || conn->finished)
        return;
    uint8_t *frame = malloc(WS_HEADER_MAX + len);
    size_t hl = ws_frame_header(frame, opcode, len);
    if (len > 0)
        memcpy(frame + hl, msg, len);
    ws_send_frames(conn, frame, hl + len, free, frame);
}

/* Once a close is queued and the socket is ours: the closing handshake gets WS_CLOSE_WAIT_MS, so
 * that a peer that stops reading cannot keep the socket and its queue (h2o has no write timeout).
 * Not before the socket is ours: h2o still holds conn for the upgrade's callback until then. */
static void arm_close_timer(ws_conn_t *c)
{
    if (!c->close_queued || c->sock == NULL || h2o_timeout_is_linked(&c->close_timer))
        return;
    if (!close_wait_ready) {
        h2o_timeout_init(c->loop, &close_wait, WS_CLOSE_WAIT_MS);
        close_wait_ready = true;
    }
    h2o_timeout_link(c->loop, &close_wait, &c->close_timer);
}

void ws_close(ws_conn_t *conn, uint16_t code)
{
    if (conn->close_queued || conn->finished)
        return;
    conn->close_queued = true;
    conn->close_frame[0] = 0x80 | OP_CLOSE;
    conn->close_frame[1] = 2;
    conn->close_frame[2] = (uint8_t)(code >> 8);
    conn->close_frame[3] = (uint8_t)code;
    push(conn, conn->close_frame, 4, NULL, NULL);
    arm_close_timer(conn);
    flush(conn);
}

/* ---------------------------------------------------------------- reading */

/* A protocol error: close with code, read nothing more. */
static void fail(ws_conn_t *c, uint16_t code)
{
    c->close_received = true; /* nothing more is read: finish once our close is out */
    ws_close(c, code);
}

static void deliver(ws_conn_t *c, int opcode, const uint8_t *msg, size_t len)
{
    if (opcode == WS_OP_TEXT && !ws_utf8_valid(msg, len)) {
        fail(c, 1007);
        return;
    }
    if (!c->close_queued)
        c->cb(c, opcode, msg, len);
}

/* Handles one complete frame (payload unmasked); false when reading must stop. */
static bool on_frame(ws_conn_t *c, bool fin, int op, uint8_t *payload, size_t len)
{
    switch (op) {
    case OP_CLOSE: {
        bool had_close = c->close_queued;
        c->close_received = true;
        if (len == 1) {
            fail(c, 1002);
        } else if (!had_close) {
            uint16_t code = len >= 2 ? (uint16_t)(payload[0] << 8 | payload[1]) : 1000;
            ws_close(c, code);
        } else if (c->close_sent) {
            c->finish_due = true;
        }
        return false;
    }
    case OP_PING:
        if (!c->close_queued)
            ws_send(c, OP_PONG, payload, len);
        return true;
    case OP_PONG:
        return true;
    case OP_CONT:
        if (c->frag_op == 0) {
            fail(c, 1002);
            return false;
        }
        c->frag = realloc(c->frag, c->frag_len + len + 1);
        memcpy(c->frag + c->frag_len, payload, len);
        c->frag_len += len;
        if (fin) {
            int fop = c->frag_op;
            uint8_t *m = c->frag;
            size_t mlen = c->frag_len;
            c->frag = NULL;
            c->frag_len = 0;
            c->frag_op = 0;
            deliver(c, fop, m, mlen);
            free(m);
        }
        return true; /* after our close, frames are skipped until the peer's close */
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (c->frag_op != 0) {
            fail(c, 1002);
            return false;
        }
        if (fin) {
            deliver(c, op, payload, len);
        } else {
            c->frag_op = op;
            c->frag = malloc(len + 1);
            memcpy(c->frag, payload, len);
            c->frag_len = len;
        }
        return true; /* after our close, frames are skipped until the peer's close */
    default:
        fail(c, 1002);
        return false;
    }
}

int ws_parse_header(const uint8_t *p, size_t avail, ws_frame_t *f)
{
    if (avail < 2)
        return 0;
    f->fin = (p[0] & 0x80) != 0;
    f->opcode = p[0] & 0x0f;
    bool masked = (p[1] & 0x80) != 0;
    uint64_t plen = p[1] & 0x7f;
    size_t hl = 2;
    if (plen == 126) {
        if (avail < 4)
            return 0;
        plen = (uint64_t)p[2] << 8 | p[3];
        hl = 4;
    } else if (plen == 127) {
        if (avail < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | p[2 + i];
        hl = 10;
    }
    if ((p[0] & 0x70) != 0 || !masked)
        return -1;
    if (f->opcode >= 8 && (!f->fin || plen > 125))
        return -1;
    if (avail < hl + 4)
        return 0;
    f->payload_len = plen;
    f->mask = p + hl;
    f->header_len = hl + 4;
    return 1;
}

/* Parses and handles every complete frame in the socket's input buffer. */
static void parse_input(ws_conn_t *c)
{
    h2o_buffer_t **in = &c->sock->input;
    while (!c->close_received && (*in)->size >= 2) {
        uint8_t *p = (uint8_t *)(*in)->bytes;
        size_t avail = (*in)->size;
        ws_frame_t f;
        int parsed = ws_parse_header(p, avail, &f);
        if (parsed < 0) {
            fail(c, 1002);
            break;
        }
        if (parsed == 0)
            break; /* the header is still on its way */
        bool fin = f.fin;
        int op = f.opcode;
        uint64_t plen = f.payload_len;
        size_t hl = f.header_len;
        if (op < 8 && plen > c->max_msg - (op == OP_CONT ? c->frag_len : 0)) {
            fail(c, 1009);
            break;
        }
        if (avail - hl < plen)
            break; /* the rest of the frame is still on its way */
        const uint8_t *mask = f.mask;
        uint8_t *payload = p + hl;
        for (size_t i = 0; i < plen; i++)
            payload[i] ^= mask[i & 3];
        c->busy = true;
        bool go_on = on_frame(c, fin, op, payload, (size_t)plen);
        c->busy = false;
        h2o_buffer_consume(in, hl + (size_t)plen);
        if (!go_on || c->finish_due)
            break;
    }
    if (c->close_received)
        h2o_buffer_consume(in, (*in)->size); /* nothing after a close counts */
    if ((*in)->size == 0 && (*in)->bytes != NULL) {
        /* idle: give the input buffer back (h2o keeps an empty one allocated after a read that found nothing) */
        h2o_buffer_dispose(in);
        h2o_buffer_init(in, &h2o_socket_buffer_prototype);
    }
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    ws_conn_t *c = sock->data;
    if (err != NULL) {
        finish(c);
        return;
    }
    parse_input(c);
    if (c->finish_due)
        finish(c);
}

/* ---------------------------------------------------------------- lifecycle */

static void finish(ws_conn_t *c)
{
    if (c->busy) {
        c->finish_due = true;
        return;
    }
    if (c->finished)
        return;
    c->finished = true;
    if (h2o_timeout_is_linked(&c->close_timer))
        h2o_timeout_unlink(&c->close_timer);
    c->cb(c, 0, NULL, 0);
    if (c->sock != NULL)
        h2o_socket_close(c->sock); /* a write in flight is dropped without its callback */
    release_chunks(c->w, c->nw);
    release_chunks(c->q, c->nq);
    free(c->w);
    free(c->q);
    free(c->frag);
    free(c);
}

static void on_close_wait(h2o_timeout_entry_t *entry)
{
    finish(H2O_STRUCT_FROM_MEMBER(ws_conn_t, close_timer, entry));
}

static void on_upgraded(void *data, h2o_socket_t *sock, size_t reqsize)
{
    ws_conn_t *c = data;
    if (sock == NULL) {
        finish(c);
        return;
    }
    c->sock = sock;
    sock->data = c;
    h2o_buffer_consume(&sock->input, reqsize);
    h2o_socket_read_start(sock, on_read);
    arm_close_timer(c);
    flush(c);
    parse_input(c); /* frames that came with the handshake */
    if (c->finish_due)
        finish(c);
}

ws_conn_t *ws_upgrade(h2o_req_t *req, const char *key, size_t max_msg, ws_message_cb cb, void *data)
{
    ws_conn_t *c = calloc(1, sizeof(*c));
    c->cb = cb;
    c->data = data;
    c->max_msg = max_msg;
    c->loop = req->conn->ctx->loop;
    c->close_timer.cb = on_close_wait;

    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t src[24 + sizeof(guid) - 1], sha[SHA_DIGEST_LENGTH];
    memcpy(src, key, 24);
    memcpy(src + 24, guid, sizeof(guid) - 1);
    SHA1(src, sizeof(src), sha);
    char accept[32];
    size_t alen = h2o_base64_encode(accept, sha, sizeof(sha), 0);

    req->res.status = 101;
    req->res.reason = "Switching Protocols";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_UPGRADE, NULL, H2O_STRLIT("websocket"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-accept"), 0, NULL, accept, alen);
    h2o_http1_upgrade(req, NULL, 0, on_upgraded, c);
    return c;
}
