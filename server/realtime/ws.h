/*
 * ws: a small server-side WebSocket (RFC 6455) over an h2o 2.2.5 socket, the Socket.IO transport.
 *
 * It replaces h2o_upgrade_to_websocket + wslay for memory and fan-out cost: wslay keeps two 4 KiB
 * buffers in every connection's contexts (8.6 KiB per idle WebSocket before anything else), and
 * copies every outgoing message twice. Here an idle connection holds only this struct and h2o's
 * socket: the socket's input buffer is handed back whenever it is empty, the outgoing arrays are
 * freed when drained, and frames are parsed in place in the input buffer. Outgoing bytes are queued
 * by reference with a release callback, so the same encoded frame can go to many connections.
 *
 * Protocol: masked client frames only, no extensions (RSV bits refused), fragmented messages
 * reassembled up to max_msg bytes (1009 beyond), text messages must be valid UTF-8 (1007),
 * control frames answered (ping -> pong, close -> close echo). Once a close frame is queued, the
 * closing handshake (what is queued before it, the frame, the peer's answer) has WS_CLOSE_WAIT_MS;
 * then the TCP connection is closed anyway, also when the peer stopped reading.
 * Everything runs on the socket's event-loop thread.
 */
#ifndef TENANTD_REALTIME_WS_H
#define TENANTD_REALTIME_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#define WS_OP_TEXT 1
#define WS_OP_BINARY 2
#define WS_HEADER_MAX 10 /* longest unmasked frame header */
#define WS_CLOSE_WAIT_MS 5000

typedef struct ws_conn ws_conn_t;

/* A complete message (opcode WS_OP_TEXT or WS_OP_BINARY; msg is valid during the call only), or
 * the end of the connection (opcode 0, msg NULL): conn is freed right after that last call. */
typedef void (*ws_message_cb)(ws_conn_t *conn, int opcode, const uint8_t *msg, size_t len);

/* True when req is a WebSocket handshake this module can answer (HTTP/1.1 GET, upgrade: websocket,
 * a 24-character sec-websocket-key, stored in *key). */
bool ws_is_handshake(h2o_req_t *req, const char **key);

/* Answers req with 101 and takes its socket once that is written; messages queued before are sent
 * then. cb gets every message and, once, the end. max_msg caps a (reassembled) message. */
ws_conn_t *ws_upgrade(h2o_req_t *req, const char *key, size_t max_msg, ws_message_cb cb, void *data);

/* The data pointer given to ws_upgrade. */
void *ws_data(ws_conn_t *conn);

/* Writes the header of an unmasked final frame of len payload bytes into out (WS_HEADER_MAX bytes
 * of room); returns its length. */
size_t ws_frame_header(uint8_t *out, int opcode, size_t len);

/* Queues len bytes of complete frames by reference; release(arg) runs once they are written or
 * dropped (never inside this call). Dropped at once (released) after a close was queued. */
void ws_send_frames(ws_conn_t *conn, const void *bytes, size_t len, void (*release)(void *arg), void *arg);

/* Queues one message as a frame (copied). */
void ws_send(ws_conn_t *conn, int opcode, const void *msg, size_t len);

/* Queues a close frame with code (nothing after it is sent); the connection ends after the
 * closing handshake, or WS_CLOSE_WAIT_MS after this call. A second call does nothing. */
void ws_close(ws_conn_t *conn, uint16_t code);

/* Bytes queued and not yet written. */
size_t ws_queued_bytes(const ws_conn_t *conn);

/* A client frame's header as ws_parse_header read it. */
typedef struct {
    bool fin;
    int opcode;
    uint64_t payload_len;
    size_t header_len; /* including the 4-byte mask */
    const uint8_t *mask;
} ws_frame_t;

/* Reads the frame header at p (avail bytes): 1 and *f when complete and valid for a client frame
 * (masked, no RSV bits, control frames final and <= 125 bytes), 0 when more bytes are needed,
 * -1 on a protocol error (close code 1002). The payload may still be incomplete. */
int ws_parse_header(const uint8_t *p, size_t avail, ws_frame_t *f);

/* True when text is valid UTF-8 (no overlong forms, surrogates or code points over U+10FFFF). */
bool ws_utf8_valid(const uint8_t *text, size_t len);

#endif
