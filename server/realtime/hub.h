/*
 * hub: realtime rooms of one worker thread, fed by Redis pub/sub (DESIGN.md §4).
 *
 * A room is always inside a tenant: its Redis channel is `t:{tenant_id}:room:{name}`. The worker
 * subscribes to a room's channel while at least one of its local clients (Socket.IO sockets, SSE
 * streams) is in the room, and unsubscribes when the last one leaves, so events reach only
 * interested instances. Every event — a data change, an emit, a client publish, a presence change
 * — is published to Redis first (with a per-tenant seq and a copy in the tenant's capped stream
 * `t:{tenant_id}:events`), and delivered to local clients only when it comes back from Redis: one
 * ordering path, also for the sender's own instance.
 *
 * Redis messages are JSON: {"event", "room", "seq", "data"}. Change events (`change`) are
 * filtered per client: a client whose read grant on the table is `own` only gets rows whose
 * owner_id is its user.
 */
#ifndef TENANTD_REALTIME_HUB_H
#define TENANTD_REALTIME_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/server.h"
#include "security/rbac.h"
#include "security/token.h"

#define HUB_ROOM_MAX 64          /* characters of a room name */
#define HUB_ROOMS_PER_CLIENT 64  /* rooms one client may be in */

typedef struct hub_client hub_client_t;
struct hub_room;

/* Client kinds that cache an encoding of an event in hub_event_t.enc (one slot each). */
#define HUB_ENC_SIO 0
#define HUB_ENC_KINDS 1

/* One event on its way to a room's local clients. A client kind may encode it once into
 * enc[kind] (with enc_free[kind] to release it) and hand the same bytes to every recipient; the
 * hub releases the encodings when the delivery is over (hub_event_release). */
typedef struct {
    const char *event;
    size_t event_len;
    const char *data; /* JSON text */
    size_t data_len;
    uint64_t seq;
    void *enc[HUB_ENC_KINDS];
    void (*enc_free[HUB_ENC_KINDS])(void *enc);
} hub_event_t;

/* Releases the cached encodings of ev. */
void hub_event_release(hub_event_t *ev);

/* The claims a realtime client keeps, compact: sub, tid, sid and the roles point into one
 * allocation sized to fit (hub_claims_set), instead of token_claims_t's fixed 64-byte arrays. */
typedef struct {
    const char *sub, *tid, *sid;
    const char **roles;
    int nroles;
    int64_t exp;
    void *mem; /* the allocation; NULL when unset */
} hub_claims_t;

/* Copies the claims c needs from t into dst (replacing what dst held). */
void hub_claims_set(hub_claims_t *dst, const token_claims_t *t);

/* Frees what hub_claims_set allocated (an unset dst is fine). */
void hub_claims_free(hub_claims_t *dst);

typedef struct {
    /* Delivers one event to the client; returns -1 when the client cannot take it (slow reader), and the hub then calls kill. */
    int (*send)(hub_client_t *c, hub_event_t *ev);
    /* Ends the client from the hub's side (its queue overflowed); the client must hub_leave_all later. */
    void (*kill)(hub_client_t *c, const char *why);
} hub_client_ops_t;

struct hub_client {
    const hub_client_ops_t *ops;
    hub_claims_t claims;     /* user (sub), tenant (tid), session (sid), roles; free with hub_claims_free */
    rbac_grants_t *grants;   /* owned by the client; free with rbac_grants_free */
    char conn_id[40];        /* this connection's id (Socket.IO sid) for presence */
    struct hub_room **rooms; /* the rooms it is in (hub-owned array, freed when it leaves the last one) */
    uint8_t nrooms, caprooms;
    bool dead;
};

/* Per-worker set-up: hooks the worker's subscriber and starts the presence heartbeat. */
void hub_worker_start(http_worker_t *w);

/* Per-worker tear-down. */
void hub_worker_stop(http_worker_t *w);

/* True when name is a syntactically valid room name (^[A-Za-z0-9_.:-]{1,64}$). */
bool hub_room_name_valid(const char *name, size_t len);

/* True when name may be used for an emitted or published event: room-name syntax, and not a name Socket.IO or tenantd reserves. */
bool hub_event_name_valid(const char *name);

/* 0 when c may join room; else -1 with an HTTP-like status (403/400) and a reason. */
int hub_may_join(const hub_client_t *c, const char *room, int *status, const char **reason);

/* Adds c to room (must have passed hub_may_join); 0, or -1 when c is in too many rooms. Announces presence. */
int hub_join(http_worker_t *w, hub_client_t *c, const char *room);

/* Like hub_join, then calls cb(data) once this instance hears the room (Redis acknowledged the
 * subscription), so that an event published after cb runs reaches c; -1 (cb not called) when c is in too many rooms. */
int hub_join_then(http_worker_t *w, hub_client_t *c, const char *room, void (*cb)(void *data), void *data);

/* Removes c from room; 0, or -1 when it was not in it. Announces presence. */
int hub_leave(http_worker_t *w, hub_client_t *c, const char *room);

/* The name of the i-th room c is in (i < c->nrooms). */
const char *hub_client_room(const hub_client_t *c, size_t i);

/* True when c is in room. */
bool hub_client_in_room(const hub_client_t *c, const char *room);

/* Removes c from every room (a closing connection). */
void hub_leave_all(http_worker_t *w, hub_client_t *c);

/* Registers c with this worker (shutdown, presence heartbeat, revocation); hub_leave_all unregisters. */
void hub_register_client(http_worker_t *w, hub_client_t *c);

/* The worker's 10 s timer queue (heartbeats of SSE streams and sockets). */
h2o_timeout_t *hub_ping_timeout(http_worker_t *w);

/* Registers c and joins the rooms every authenticated client is in: tenant, user:{id} and role:{name}. */
void hub_join_defaults(http_worker_t *w, hub_client_t *c);

/* Publishes event with data (JSON text) to room of tenant_id through Redis; cb gets the seq (integer reply) or an error. */
redis_cmd_t *hub_publish(http_worker_t *w, const char *tenant_id, const char *room, const char *event, const char *data_json,
                         const char *from, redis_reply_cb cb, void *data);

/* Reads the presence of room: reply array of "user_id|conn_id" strings (live within the last 30 s). */
redis_cmd_t *hub_presence(http_worker_t *w, const char *tenant_id, const char *room, redis_reply_cb cb, void *data);

/* Reads missed events of tenant_id after seq (at most 1000) from the stream: reply as XRANGE. */
redis_cmd_t *hub_replay(http_worker_t *w, const char *tenant_id, uint64_t after_seq, redis_reply_cb cb, void *data);

/* Delivers a replayed message (the JSON as published) to c if c is in its room and may see it. */
void hub_deliver_replayed(hub_client_t *c, const char *msg, size_t len);

/* Closes every local client of this worker with kill (graceful shutdown: going away). */
void hub_kill_all(http_worker_t *w, const char *why);

#endif
