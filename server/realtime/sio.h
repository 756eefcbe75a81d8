/*
 * sio: the Socket.IO server (Engine.IO 4 / Socket.IO 5) at /socket.io/ — WebSocket and HTTP
 * long-polling transports with upgrade, ping/pong, the "/" namespace, acks, authentication at
 * CONNECT (auth {token} or the session cookie from an allowed Origin) and the realtime events of
 * CONTRACT.md §8 (join, leave, publish, presence) on top of the hub.
 */
#ifndef TENANTD_REALTIME_SIO_H
#define TENANTD_REALTIME_SIO_H

#include "http/server.h"

/* Any request under /socket.io/: handshake, polling GET/POST, or WebSocket upgrade. */
void sio_handle(http_request_t *hr);

/* Registers the statements sio uses; once, before workers start. */
void sio_init(void);

/* Per-worker set-up (cross-thread mailbox) and tear-down. */
void sio_worker_start(http_worker_t *w);
void sio_worker_stop(http_worker_t *w);

/* Timing of Engine.IO pings (TENANTD_EIO_PING_INTERVAL_MS / _TIMEOUT_MS; defaults 25000 / 20000). */
void sio_configure(int ping_interval_ms, int ping_timeout_ms);

/*
 * Echo mode, for tests/conformance/sio_echo only (tenantd never calls it): the server behaves as
 * the echo server the official Engine.IO / Socket.IO conformance suites expect. Sessions opened
 * under /engine.io/ echo every Engine.IO message (text or binary); sessions under /socket.io/
 * accept CONNECT to "/" and "/custom" without authentication, answer it with an "auth" event
 * carrying the CONNECT payload, echo events ("message" comes back as "message-back"), ack events
 * that ask for an ack with their arguments, and echo binary attachments. Call before server_run.
 */
void sio_set_echo_mode(bool on);

#endif
