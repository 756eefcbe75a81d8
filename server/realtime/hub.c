/*
 * hub: rooms, subscriptions, delivery and presence for one worker thread (see hub.h).
 *
 * Data: a chained hash table from "tenant_id/room" to a room (its clients in an array); every
 * registered client is also in a flat list for shutdown. Everything is touched only by the
 * worker's own thread. Publishing uses one Lua script (seq INCR, PUBLISH, XADD with MAXLEN ~),
 * so the sequence, the live message and the stored copy never disagree. Presence lives in a
 * sorted set per room scored by expiry time; a heartbeat refreshes this worker's members every 10 s,
 * a tenth of the rooms each second and one ZADD per HUB_PRESENCE_BATCH members (not one command per
 * member and room every 10 s at once: 30,000 ZADDs stalled the loop ~20 ms with 10,000 sockets),
 * so members of a crashed instance vanish within 30 s.
 */
#include "realtime/hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/log.h"
#include "http/guard.h"
#include "security/session.h"

#define HUB_BUCKETS 4096
#define HUB_STREAM_MAX "10000"
#define HUB_PRESENCE_TTL_S 30
#define HUB_HEARTBEAT_MS 10000
#define HUB_PRESENCE_SLICES 10  /* rooms refreshed per tick: those of every 10th bucket */
#define HUB_PRESENCE_BATCH 256  /* members per ZADD */
#define HUB_PRESENCE_MEMBER 112 /* "sub|conn_id" fits: 63 + 1 + 39 and the NUL */

typedef struct hub_room {
    struct hub_room *next;
    char *key; /* tenant_id/room */
    char tenant_id[64];
    char name[HUB_ROOM_MAX + 1];
    hub_client_t **clients;
    size_t nclients, cap;
} hub_room_t;

typedef struct {
    http_worker_t *worker;
    hub_room_t *buckets[HUB_BUCKETS];
    hub_client_t **all;
    size_t nall, capall;
    h2o_timeout_t heartbeat_timeout; /* 10 s: the pings of SSE streams and sockets (hub_ping_timeout) */
    h2o_timeout_t presence_timeout;  /* HUB_HEARTBEAT_MS / HUB_PRESENCE_SLICES */
    h2o_timeout_entry_t presence_tick;
    unsigned slice;
    char (*members)[HUB_PRESENCE_MEMBER]; /* HUB_PRESENCE_BATCH of them, for building a ZADD */
} hub_t;

/* Publishes: KEYS[1] seq, KEYS[2] stream; ARGV tenant, room, event, data JSON, from. Returns the seq. */
static const char publish_lua[] =
    "local seq = redis.call('INCR', KEYS[1])\n"
    "local room = cjson.encode(ARGV[2])\n"
    "local data\n"
    "if ARGV[6] == 'raw' then data = '{\"room\":' .. room .. ',' .. string.sub(ARGV[4], 2, -2) .. ',\"seq\":' .. seq .. '}'\n"
    "else data = '{\"room\":' .. room .. ',\"data\":' .. ARGV[4] .. ',\"from\":' .. cjson.encode(ARGV[5]) .. ',\"seq\":' .. seq .. '}' end\n"
    "local msg = '{\"event\":' .. cjson.encode(ARGV[3]) .. ',\"room\":' .. room .. ',\"seq\":' .. seq .. ',\"data\":' .. data .. '}'\n"
    "redis.call('PUBLISH', 't:' .. ARGV[1] .. ':room:' .. ARGV[2], msg)\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', '" HUB_STREAM_MAX "', seq .. '-1', 'msg', msg)\n"
    "return seq\n";

static const char presence_lua[] =
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])\n"
    "return redis.call('ZRANGE', KEYS[1], 0, 999)\n";

static hub_t *hub_of(http_worker_t *w);
static redis_cmd_t *publish(http_worker_t *w, const char *tenant_id, const char *room, const char *event, const char *data_json,
                            const char *from, const char *mode, redis_reply_cb cb, void *data);

/* ---------------------------------------------------------------- helpers */

void hub_claims_set(hub_claims_t *dst, const token_claims_t *t)
{
    hub_claims_free(dst);
    int n = t->nroles;
    size_t lsub = strlen(t->sub) + 1, ltid = strlen(t->tid) + 1, lsid = strlen(t->sid) + 1, total = (size_t)n * sizeof(char *) + lsub + ltid + lsid;
    for (int i = 0; i < n; i++)
        total += strlen(t->roles[i]) + 1;
    char *mem = malloc(total);
    const char **roles = (const char **)mem;
    char *p = mem + (size_t)n * sizeof(char *);
    dst->sub = memcpy(p, t->sub, lsub), p += lsub;
    dst->tid = memcpy(p, t->tid, ltid), p += ltid;
    dst->sid = memcpy(p, t->sid, lsid), p += lsid;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(t->roles[i]) + 1;
        roles[i] = memcpy(p, t->roles[i], l);
        p += l;
    }
    dst->roles = roles;
    dst->nroles = n;
    dst->exp = t->exp;
    dst->mem = mem;
}

void hub_claims_free(hub_claims_t *dst)
{
    free(dst->mem);
    *dst = (hub_claims_t){.sub = "", .tid = "", .sid = ""};
}

void hub_event_release(hub_event_t *ev)
{
    for (int k = 0; k < HUB_ENC_KINDS; k++) {
        if (ev->enc[k] != NULL)
            ev->enc_free[k](ev->enc[k]);
        ev->enc[k] = NULL;
    }
}

const char *hub_client_room(const hub_client_t *c, size_t i)
{
    return c->rooms[i]->name;
}

bool hub_client_in_room(const hub_client_t *c, const char *room)
{
    for (size_t i = 0; i < c->nrooms; i++)
        if (strcmp(c->rooms[i]->name, room) == 0)
            return true;
    return false;
}

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void room_key(char *out, size_t cap, const char *tenant_id, const char *room)
{
    snprintf(out, cap, "%s/%s", tenant_id, room);
}

static void room_channel(char *out, size_t cap, const char *tenant_id, const char *room)
{
    snprintf(out, cap, "t:%s:room:%s", tenant_id, room);
}

static hub_room_t *room_find(hub_t *h, const char *key)
{
    for (hub_room_t *r = h->buckets[hash_key(key) % HUB_BUCKETS]; r != NULL; r = r->next)
        if (strcmp(r->key, key) == 0)
            return r;
    return NULL;
}

static void ignore_reply(void *data, redisReply *reply, const char *err)
{
}

bool hub_event_name_valid(const char *name)
{
    /* Socket.IO's own event names, and the ones tenantd emits itself */
    static const char *const reserved[] = {"connect", "connect_error", "disconnect", "disconnecting", "newListener",
                                           "removeListener", "error", "message", "change", "presence"};
    if (name == NULL || !hub_room_name_valid(name, strlen(name)))
        return false;
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcmp(name, reserved[i]) == 0)
            return false;
    return true;
}

bool hub_room_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > HUB_ROOM_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

static bool client_has_role(const hub_client_t *c, const char *role)
{
    for (int i = 0; i < c->claims.nroles; i++)
        if (strcmp(c->claims.roles[i], role) == 0)
            return true;
    return false;
}

int hub_may_join(const hub_client_t *c, const char *room, int *status, const char **reason)
{
    *status = 403;
    if (!hub_room_name_valid(room, strlen(room))) {
        *status = 400;
        *reason = "room names match ^[A-Za-z0-9_.:-]{1,64}$";
        return -1;
    }
    if (strcmp(room, "tenant") == 0)
        return 0;
    if (strncmp(room, "user:", 5) == 0) {
        if (strcmp(room + 5, c->claims.sub) == 0)
            return 0;
        *reason = "user rooms are only for oneself";
        return -1;
    }
    if (strncmp(room, "role:", 5) == 0) {
        if (client_has_role(c, room + 5))
            return 0;
        *reason = "role rooms are only for holders of the role";
        return -1;
    }
    if (strncmp(room, "table:", 6) == 0) {
        if (rbac_check(c->grants, room + 6, "read") != RBAC_DENY)
            return 0;
        *reason = "no read permission on that table";
        return -1;
    }
    if (rbac_check(c->grants, "realtime", "join") != RBAC_DENY)
        return 0;
    *reason = "joining rooms needs realtime:join";
    return -1;
}

/* ---------------------------------------------------------------- presence */

static void presence_touch(http_worker_t *w, hub_client_t *c, const char *room, bool add)
{
    char key[200], member[200], score[32];
    snprintf(key, sizeof(key), "t:%s:presence:%s", c->claims.tid, room);
    snprintf(member, sizeof(member), "%s|%s", c->claims.sub, c->conn_id);
    if (add) {
        snprintf(score, sizeof(score), "%lld", (long long)time(NULL) + HUB_PRESENCE_TTL_S);
        const char *argv[4] = {"ZADD", key, score, member};
        size_t lens[4] = {4, strlen(key), strlen(score), strlen(member)};
        redis_command_argv(w->redis, ignore_reply, NULL, 4, argv, lens);
    } else {
        const char *argv[3] = {"ZREM", key, member};
        size_t lens[3] = {4, strlen(key), strlen(member)};
        redis_command_argv(w->redis, ignore_reply, NULL, 3, argv, lens);
    }
}

/* Announces a join or leave in a custom room. The rooms every client joins by itself (tenant,
 * user:, role:) and the change feeds (table:) get no announcements: there, every connect would
 * be sent to every member, n² messages for n members; presence(room) still answers for them. */
static void presence_announce(http_worker_t *w, hub_client_t *c, const char *room, bool joined)
{
    if (strcmp(room, "tenant") == 0 || strncmp(room, "user:", 5) == 0 || strncmp(room, "role:", 5) == 0 || strncmp(room, "table:", 6) == 0)
        return;
    char data[160];
    snprintf(data, sizeof(data), "{\"joined\":[%s%s%s],\"left\":[%s%s%s]}", joined ? "\"" : "", joined ? c->claims.sub : "",
             joined ? "\"" : "", joined ? "" : "\"", joined ? "" : c->claims.sub, joined ? "" : "\"");
    /* presence {room, joined, left, seq}: the object's members go in as they are */
    publish(w, c->claims.tid, room, "presence", data, c->claims.sub, "raw", ignore_reply, NULL);
}

/* Refreshes the presence of r's live local members: ZADD key score m score m ..., in batches. */
static void presence_refresh_room(hub_t *h, hub_room_t *r, const char *score)
{
    char key[200];
    snprintf(key, sizeof(key), "t:%s:presence:%s", r->tenant_id, r->name);
    const char *argv[2 + 2 * HUB_PRESENCE_BATCH];
    size_t lens[2 + 2 * HUB_PRESENCE_BATCH];
    size_t slen = strlen(score);
    int n = 0; /* members in this batch */
    for (size_t i = 0; i <= r->nclients; i++) {
        if (i < r->nclients && !r->clients[i]->dead) {
            hub_client_t *c = r->clients[i];
            int ml = snprintf(h->members[n], HUB_PRESENCE_MEMBER, "%s|%s", c->claims.sub, c->conn_id);
            argv[2 + 2 * n] = score;
            lens[2 + 2 * n] = slen;
            argv[3 + 2 * n] = h->members[n];
            lens[3 + 2 * n] = (size_t)ml < HUB_PRESENCE_MEMBER ? (size_t)ml : HUB_PRESENCE_MEMBER - 1;
            n++;
        }
        if (n > 0 && (n == HUB_PRESENCE_BATCH || i == r->nclients)) {
            argv[0] = "ZADD";
            lens[0] = 4;
            argv[1] = key;
            lens[1] = strlen(key);
            redis_command_argv(h->worker->redis, ignore_reply, NULL, 2 + 2 * n, argv, lens);
            n = 0;
        }
    }
}

/* Every HUB_HEARTBEAT_MS / HUB_PRESENCE_SLICES: refreshes the rooms of one slice of the buckets, so
 * that each local member is refreshed every HUB_HEARTBEAT_MS and only a crashed instance's expire. */
static void on_presence_tick(h2o_timeout_entry_t *entry)
{
    hub_t *h = H2O_STRUCT_FROM_MEMBER(hub_t, presence_tick, entry);
    char score[32];
    snprintf(score, sizeof(score), "%lld", (long long)time(NULL) + HUB_PRESENCE_TTL_S);
    for (size_t b = h->slice; b < HUB_BUCKETS; b += HUB_PRESENCE_SLICES)
        for (hub_room_t *r = h->buckets[b]; r != NULL; r = r->next)
            presence_refresh_room(h, r, score);
    h->slice = (h->slice + 1) % HUB_PRESENCE_SLICES;
    h2o_timeout_link(h->worker->ctx.loop, &h->presence_timeout, &h->presence_tick);
}

/* ---------------------------------------------------------------- membership */

int hub_join(http_worker_t *w, hub_client_t *c, const char *room)
{
    if (hub_client_in_room(c, room))
        return 0;
    if (c->nrooms >= HUB_ROOMS_PER_CLIENT)
        return -1;
    hub_t *h = hub_of(w);
    char key[200];
    room_key(key, sizeof(key), c->claims.tid, room);
    hub_room_t *r = room_find(h, key);
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        r->key = strdup(key);
        snprintf(r->tenant_id, sizeof(r->tenant_id), "%s", c->claims.tid);
        snprintf(r->name, sizeof(r->name), "%s", room);
        uint64_t b = hash_key(key) % HUB_BUCKETS;
        r->next = h->buckets[b];
        h->buckets[b] = r;
        char channel[200];
        room_channel(channel, sizeof(channel), c->claims.tid, room);
        redis_subscribe(w->redis_sub, channel);
    }
    if (r->nclients == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 4;
        r->clients = realloc(r->clients, r->cap * sizeof(*r->clients));
    }
    r->clients[r->nclients++] = c;
    if (c->nrooms == c->caprooms) {
        /* 4 fit the usual tenant, user: and role: rooms */
        c->caprooms = c->caprooms != 0 ? (uint8_t)(c->caprooms * 2 < HUB_ROOMS_PER_CLIENT ? c->caprooms * 2 : HUB_ROOMS_PER_CLIENT) : 4;
        c->rooms = realloc(c->rooms, c->caprooms * sizeof(*c->rooms));
    }
    c->rooms[c->nrooms++] = r; /* the room's own name: no copy per member */
    presence_touch(w, c, room, true);
    presence_announce(w, c, room, true);
    return 0;
}

int hub_join_then(http_worker_t *w, hub_client_t *c, const char *room, void (*cb)(void *data), void *data)
{
    if (hub_join(w, c, room) != 0)
        return -1;
    char channel[200];
    room_channel(channel, sizeof(channel), c->claims.tid, room);
    if (redis_when_subscribed(w->redis_sub, channel, cb, data) != 0)
        cb(data);
    return 0;
}

int hub_leave(http_worker_t *w, hub_client_t *c, const char *room)
{
    size_t idx = c->nrooms;
    for (size_t i = 0; i < c->nrooms; i++)
        if (strcmp(c->rooms[i]->name, room) == 0)
            idx = i;
    if (idx == c->nrooms)
        return -1;
    hub_t *h = hub_of(w);
    hub_room_t *r = c->rooms[idx];
    c->rooms[idx] = c->rooms[--c->nrooms];
    if (c->nrooms == 0) {
        free(c->rooms);
        c->rooms = NULL;
        c->caprooms = 0;
    }
    /* the name outlives the room (freed below when it empties) for the announcements */
    char name[HUB_ROOM_MAX + 1];
    snprintf(name, sizeof(name), "%s", r->name);
    room = name;
    {
        for (size_t i = 0; i < r->nclients; i++) {
            if (r->clients[i] == c) {
                r->clients[i] = r->clients[--r->nclients];
                break;
            }
        }
        if (r->nclients == 0) {
            char channel[200];
            room_channel(channel, sizeof(channel), r->tenant_id, r->name);
            redis_unsubscribe(w->redis_sub, channel);
            hub_room_t **pp = &h->buckets[hash_key(r->key) % HUB_BUCKETS];
            while (*pp != r)
                pp = &(*pp)->next;
            *pp = r->next;
            free(r->key);
            free(r->clients);
            free(r);
        }
    }
    presence_touch(w, c, room, false);
    presence_announce(w, c, room, false);
    return 0;
}

void hub_leave_all(http_worker_t *w, hub_client_t *c)
{
    while (c->nrooms > 0)
        hub_leave(w, c, c->rooms[c->nrooms - 1]->name);
    hub_t *h = hub_of(w);
    for (size_t i = 0; i < h->nall; i++) {
        if (h->all[i] == c) {
            h->all[i] = h->all[--h->nall];
            break;
        }
    }
}

void hub_register_client(http_worker_t *w, hub_client_t *c)
{
    hub_t *h = hub_of(w);
    if (h->nall == h->capall) {
        h->capall = h->capall ? h->capall * 2 : 64;
        h->all = realloc(h->all, h->capall * sizeof(*h->all));
    }
    h->all[h->nall++] = c;
}

h2o_timeout_t *hub_ping_timeout(http_worker_t *w)
{
    return &hub_of(w)->heartbeat_timeout;
}

void hub_join_defaults(http_worker_t *w, hub_client_t *c)
{
    hub_register_client(w, c);
    char room[HUB_ROOM_MAX + 8];
    hub_join(w, c, "tenant");
    snprintf(room, sizeof(room), "user:%s", c->claims.sub);
    hub_join(w, c, room);
    for (int i = 0; i < c->claims.nroles; i++) {
        snprintf(room, sizeof(room), "role:%s", c->claims.roles[i]);
        if (hub_room_name_valid(room, strlen(room)))
            hub_join(w, c, room);
    }
}

/* ---------------------------------------------------------------- delivery */

/* True when c may see this message (change events honour own-row read grants). */
static bool may_see(const hub_client_t *c, const char *event, json_t *data, const char *room)
{
    if (strcmp(event, "change") != 0 || strncmp(room, "table:", 6) != 0)
        return true;
    rbac_decision_t d = rbac_check(c->grants, room + 6, "read");
    if (d == RBAC_ALLOW)
        return true;
    if (d == RBAC_DENY)
        return false;
    json_t *owner = json_object_get(json_object_get(data, "record"), "owner_id");
    return json_is_string(owner) && strcmp(json_string_value(owner), c->claims.sub) == 0;
}

/* The change event as client c may see it: the record without the columns hidden from its roles. */
static char *visible_change(const hub_client_t *c, const char *table, json_t *data)
{
    const char *roles[TOKEN_MAX_ROLES];
    for (int i = 0; i < c->claims.nroles; i++)
        roles[i] = c->claims.roles[i];
    json_t *copy = json_deep_copy(data);
    json_t *record = json_object_get(copy, "record");
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(record, tmp, key, v)
    {
        if (colpol_hidden(guard_columns(), table, key, roles, (size_t)c->claims.nroles))
            json_object_del(record, key);
    }
    char *text = json_dumps(copy, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(copy);
    return text;
}

static void deliver(hub_room_t *r, const char *msg, size_t len)
{
    json_error_t jerr;
    json_t *m = json_loadb(msg, len, 0, &jerr);
    const char *event = json_string_value(json_object_get(m, "event"));
    json_t *data = json_object_get(m, "data");
    json_t *seqv = json_object_get(m, "seq");
    if (event == NULL || data == NULL) {
        json_decref(m);
        return;
    }
    char *data_text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    uint64_t seq = json_is_integer(seqv) ? (uint64_t)json_integer_value(seqv) : 0;
    /* one event for every member: client kinds encode it once (ev.enc) and share the bytes */
    hub_event_t ev = {.event = event, .event_len = strlen(event), .data = data_text, .data_len = strlen(data_text), .seq = seq};
    /* iterate over a copy: a kill may change the room */
    size_t n = r->nclients;
    hub_client_t **copy = malloc(n * sizeof(*copy) + 1);
    if (n > 0)
        memcpy(copy, r->clients, n * sizeof(*copy));
    bool column_rules = strcmp(event, "change") == 0 && strncmp(r->name, "table:", 6) == 0 && colpol_has_table(guard_columns(), r->name + 6);
    for (size_t i = 0; i < n; i++) {
        hub_client_t *c = copy[i];
        if (c->dead || !may_see(c, event, data, r->name))
            continue;
        int rc;
        if (column_rules) {
            /* this member's own view of the row: encoded for it alone */
            char *own_text = visible_change(c, r->name + 6, data);
            hub_event_t own = {.event = event, .event_len = ev.event_len, .data = own_text, .data_len = strlen(own_text), .seq = seq};
            rc = c->ops->send(c, &own);
            hub_event_release(&own);
            free(own_text);
        } else {
            rc = c->ops->send(c, &ev);
        }
        if (rc != 0) {
            c->dead = true;
            c->ops->kill(c, "slow reader: send queue full");
        }
    }
    free(copy);
    hub_event_release(&ev);
    free(data_text);
    json_decref(m);
}

/* A revoked session: close its realtime clients on this worker. */
static void kill_session(hub_t *h, const char *sid, size_t len)
{
    /* kill() makes the client leave, which reorders h->all: walk a copy */
    size_t n = h->nall;
    if (n == 0)
        return;
    hub_client_t **copy = malloc(n * sizeof(*copy));
    memcpy(copy, h->all, n * sizeof(*copy));
    for (size_t i = 0; i < n; i++) {
        hub_client_t *c = copy[i];
        if (!c->dead && strlen(c->claims.sid) == len && memcmp(c->claims.sid, sid, len) == 0) {
            c->dead = true;
            c->ops->kill(c, "the session was revoked");
        }
    }
    free(copy);
}

static void on_room_message(void *data, const char *channel, size_t channel_len, const char *msg, size_t msg_len)
{
    http_worker_t *w = data;
    if (channel_len == sizeof(SESSION_REVOCATION_CHANNEL) - 1 && memcmp(channel, SESSION_REVOCATION_CHANNEL, channel_len) == 0) {
        kill_session(hub_of(w), msg, msg_len);
        return;
    }
    /* t:{tenant}:room:{room} */
    if (channel_len < 2 || channel[0] != 't' || channel[1] != ':')
        return;
    const char *tid = channel + 2;
    const char *sep = memchr(tid, ':', channel_len - 2);
    if (sep == NULL || (size_t)(channel + channel_len - sep) < 7 || memcmp(sep, ":room:", 6) != 0)
        return;
    char key[200];
    snprintf(key, sizeof(key), "%.*s/%.*s", (int)(sep - tid), tid, (int)(channel + channel_len - sep - 6), sep + 6);
    hub_room_t *r = room_find(hub_of(w), key);
    if (r != NULL)
        deliver(r, msg, msg_len);
}

void hub_deliver_replayed(hub_client_t *c, const char *msg, size_t len)
{
    json_error_t jerr;
    json_t *m = json_loadb(msg, len, 0, &jerr);
    const char *event = json_string_value(json_object_get(m, "event"));
    const char *room = json_string_value(json_object_get(m, "room"));
    json_t *data = json_object_get(m, "data");
    bool member = room != NULL && hub_client_in_room(c, room);
    if (event != NULL && data != NULL && member && may_see(c, event, data, room)) {
        bool column_rules = strcmp(event, "change") == 0 && strncmp(room, "table:", 6) == 0 && colpol_has_table(guard_columns(), room + 6);
        char *text = column_rules ? visible_change(c, room + 6, data) : json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
        json_t *seqv = json_object_get(m, "seq");
        hub_event_t ev = {.event = event, .event_len = strlen(event), .data = text, .data_len = strlen(text),
                          .seq = json_is_integer(seqv) ? (uint64_t)json_integer_value(seqv) : 0};
        int rc = c->ops->send(c, &ev);
        hub_event_release(&ev);
        if (rc != 0) {
            c->dead = true;
            c->ops->kill(c, "slow reader: send queue full");
        }
        free(text);
    }
    json_decref(m);
}

/* ---------------------------------------------------------------- Redis side */

static redis_cmd_t *publish(http_worker_t *w, const char *tenant_id, const char *room, const char *event, const char *data_json,
                            const char *from, const char *mode, redis_reply_cb cb, void *data)
{
    char seq_key[128], stream_key[128];
    snprintf(seq_key, sizeof(seq_key), "t:%s:seq", tenant_id);
    snprintf(stream_key, sizeof(stream_key), "t:%s:events", tenant_id);
    const char *argv[] = {"EVAL", publish_lua, "2", seq_key, stream_key, tenant_id, room, event, data_json, from, mode};
    size_t lens[11];
    for (int i = 0; i < 11; i++)
        lens[i] = strlen(argv[i]);
    return redis_command_argv(w->redis, cb, data, 11, argv, lens);
}

redis_cmd_t *hub_publish(http_worker_t *w, const char *tenant_id, const char *room, const char *event, const char *data_json,
                         const char *from, redis_reply_cb cb, void *data)
{
    return publish(w, tenant_id, room, event, data_json, from, "wrapped", cb, data);
}

redis_cmd_t *hub_presence(http_worker_t *w, const char *tenant_id, const char *room, redis_reply_cb cb, void *data)
{
    char key[200], now[32];
    snprintf(key, sizeof(key), "t:%s:presence:%s", tenant_id, room);
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    const char *argv[] = {"EVAL", presence_lua, "1", key, now};
    size_t lens[5];
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    return redis_command_argv(w->redis, cb, data, 5, argv, lens);
}

redis_cmd_t *hub_replay(http_worker_t *w, const char *tenant_id, uint64_t after_seq, redis_reply_cb cb, void *data)
{
    char key[128], start[32];
    snprintf(key, sizeof(key), "t:%s:events", tenant_id);
    snprintf(start, sizeof(start), "%llu-0", (unsigned long long)after_seq + 1);
    const char *argv[] = {"XRANGE", key, start, "+", "COUNT", "1000"};
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    return redis_command_argv(w->redis, cb, data, 6, argv, lens);
}

/* ---------------------------------------------------------------- lifecycle */

static hub_t *hub_of(http_worker_t *w)
{
    return (hub_t *)w->realtime;
}

void hub_kill_all(http_worker_t *w, const char *why)
{
    hub_t *h = hub_of(w);
    if (h == NULL || h->nall == 0)
        return;
    size_t n = h->nall;
    hub_client_t **copy = malloc(n * sizeof(*copy));
    memcpy(copy, h->all, n * sizeof(*copy));
    for (size_t i = 0; i < n; i++) {
        if (!copy[i]->dead) {
            copy[i]->dead = true;
            copy[i]->ops->kill(copy[i], why);
        }
    }
    free(copy);
}

void hub_worker_start(http_worker_t *w)
{
    hub_t *h = calloc(1, sizeof(*h));
    h->worker = w;
    w->realtime = h;
    guard_on_other_messages(w, on_room_message, w);
    h2o_timeout_init(w->ctx.loop, &h->heartbeat_timeout, HUB_HEARTBEAT_MS);
    h->members = malloc(HUB_PRESENCE_BATCH * sizeof(*h->members));
    h2o_timeout_init(w->ctx.loop, &h->presence_timeout, HUB_HEARTBEAT_MS / HUB_PRESENCE_SLICES);
    h->presence_tick.cb = on_presence_tick;
    h2o_timeout_link(w->ctx.loop, &h->presence_timeout, &h->presence_tick);
}

void hub_worker_stop(http_worker_t *w)
{
    hub_t *h = hub_of(w);
    if (h == NULL)
        return;
    if (h2o_timeout_is_linked(&h->presence_tick))
        h2o_timeout_unlink(&h->presence_tick);
    h2o_timeout_dispose(w->ctx.loop, &h->presence_timeout);
    h2o_timeout_dispose(w->ctx.loop, &h->heartbeat_timeout);
    free(h->members);
    for (size_t b = 0; b < HUB_BUCKETS; b++) {
        hub_room_t *r = h->buckets[b];
        while (r != NULL) {
            hub_room_t *next = r->next;
            free(r->key);
            free(r->clients);
            free(r);
            r = next;
        }
    }
    free(h->all);
    free(h);
    w->realtime = NULL;
}
