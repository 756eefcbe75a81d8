/*
 * redis: hiredis async contexts driven by the h2o evloop (see redis.h for the contract).
 *
 * The adapter: hiredis asks for read/write interest through ac->ev; we watch dup(fd) as an h2o
 * socket with DONT_READ (h2o reports readiness, hiredis does the I/O). h2o's notify_write is one
 * shot and hiredis does not re-ask for write interest while connecting, so the write callback
 * re-arms itself while hiredis still wants to write.
 * The connection: DOWN -> CONNECTING -> HANDSHAKE (AUTH, SELECT, PING) -> READY; any error or a
 * command past its deadline frees the context (pending callbacks get "disconnected") and a
 * backoff timer (250 ms doubling to 4 s) reconnects. A subscriber re-sends SUBSCRIBE for its
 * whole channel set once ready.
 */
#include "infra/redis.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/async.h>

#include "core/log.h"
#include "core/metrics.h"

#define REDIS_BACKOFF_TICK_MS 250
#define REDIS_BACKOFF_MAX_TICKS 16

typedef enum { RS_DOWN, RS_CONNECTING, RS_HANDSHAKE, RS_READY } redis_state_t;

struct redis_cmd {
    redis_client_t *client;
    redis_reply_cb cb;
    void *data;
    h2o_timeout_entry_t deadline;
    bool done; /* the user callback has run (or was cancelled); waiting for hiredis to let go */
    /* a command issued while the connection was being made waits here until it is ready */
    h2o_linklist_t pending;
    int argc;
    char **argv;
    size_t *argvlen;
};

#define REDIS_PENDING_MAX 4096

typedef struct {
    char *name;
    bool confirmed; /* Redis acknowledged the SUBSCRIBE on the current connection */
} channel_t;

typedef struct {
    char *channel;
    void (*cb)(void *data);
    void *data;
} sub_waiter_t;

struct redis_client {
    h2o_loop_t *loop;
    config_redis_t addr;
    redis_role_t role;
    redisAsyncContext *ac;
    h2o_socket_t *sock;
    bool want_write;
    redis_state_t state;
    h2o_timeout_t cmd_timeout, backoff_timeout, zero_timeout;
    h2o_timeout_entry_t backoff, drop_entry;
    h2o_timeout_entry_t flush_entry; /* writes the commands of this loop turn in one go */
    bool flushing;                   /* inside on_flush: hiredis asking again means the socket is full */
    int backoff_ticks_left, backoff_exp;
    redis_state_cb state_cb;
    void *state_data;
    redis_message_cb msg_cb;
    void *msg_data;
    channel_t *channels;
    size_t nchannels, capchannels;
    sub_waiter_t *waiters; /* callers waiting for a SUBSCRIBE to be acknowledged */
    size_t nwaiters, capwaiters;
    h2o_linklist_t pending; /* commands waiting for the connection being made */
    size_t npending;
    bool destroying;
};

static void client_schedule_connect(redis_client_t *c);
static void client_connect(redis_client_t *c);

/* ---------------------------------------------------------------- state */

static void client_set_state(redis_client_t *c, redis_state_t s)
{
    if (c->state == s)
        return;
    bool was_up = c->state == RS_READY, up = s == RS_READY;
    c->state = s;
    if (was_up != up) {
        metrics_gauge_add(METRICS_GAUGE_REDIS_UP, up ? 1 : -1);
        metrics_gauge_add(METRICS_GAUGE_REDIS_DOWN, up ? -1 : 1);
        if (c->state_cb != NULL)
            c->state_cb(c->state_data, up);
    }
}

/* ---------------------------------------------------------------- loop adapter */

static void on_sock_read(h2o_socket_t *sock, const char *err)
{
    redis_client_t *c = sock->data;
    if (c->ac != NULL)
        redisAsyncHandleRead(c->ac);
}

static void on_sock_write(h2o_socket_t *sock, const char *err)
{
    redis_client_t *c = sock->data;
    if (c->ac == NULL)
        return;
    redisAsyncHandleWrite(c->ac);
    if (c->ac != NULL && c->sock != NULL && c->want_write && !h2o_socket_is_writing(c->sock))
        h2o_socket_notify_write(c->sock, on_sock_write);
}

static void ev_add_read(void *p)
{
    redis_client_t *c = p;
    if (c->sock != NULL)
        h2o_socket_read_start(c->sock, on_sock_read);
}

static void ev_del_read(void *p)
{
    redis_client_t *c = p;
    if (c->sock != NULL)
        h2o_socket_read_stop(c->sock);
}

/* The end of the loop turn: write what hiredis buffered, without first waiting for epoll to say
 * the socket is writable (it nearly always is); only a partial write waits for that. */
static void on_flush(h2o_timeout_entry_t *entry)
{
    redis_client_t *c = H2O_STRUCT_FROM_MEMBER(redis_client_t, flush_entry, entry);
    if (c->ac == NULL)
        return;
    c->flushing = true;
    redisAsyncHandleWrite(c->ac);
    c->flushing = false;
    if (c->ac != NULL && c->sock != NULL && c->want_write && !h2o_socket_is_writing(c->sock))
        h2o_socket_notify_write(c->sock, on_sock_write);
}

static void ev_add_write(void *p)
{
    redis_client_t *c = p;
    c->want_write = true;
    if (c->sock == NULL || h2o_socket_is_writing(c->sock))
        return;
    if (c->state == RS_READY && !c->flushing) { /* connected: batch this turn's commands into one write */
        if (!h2o_timeout_is_linked(&c->flush_entry))
            h2o_timeout_link(c->loop, &c->zero_timeout, &c->flush_entry);
        return;
    }
    h2o_socket_notify_write(c->sock, on_sock_write); /* connecting, or the socket buffer is full */
}

static void ev_del_write(void *p)
{
    redis_client_t *c = p;
    c->want_write = false;
}

static void ev_cleanup(void *p)
{
    redis_client_t *c = p;
    c->want_write = false;
    if (h2o_timeout_is_linked(&c->flush_entry))
        h2o_timeout_unlink(&c->flush_entry);
    if (c->sock != NULL) {
        h2o_socket_read_stop(c->sock);
        h2o_socket_close(c->sock);
        c->sock = NULL;
    }
}

/* ---------------------------------------------------------------- commands */

static void cmd_finish_user(redis_cmd_t *cmd, redisReply *reply, const char *err)
{
    if (cmd->done)
        return;
    cmd->done = true;
    if (h2o_timeout_is_linked(&cmd->deadline))
        h2o_timeout_unlink(&cmd->deadline);
    metrics_count(reply != NULL && reply->type != REDIS_REPLY_ERROR ? METRICS_COUNTER_REDIS_OK
                  : err != NULL && strcmp(err, "timeout") == 0 ? METRICS_COUNTER_REDIS_TIMEOUT
                                                                 : METRICS_COUNTER_REDIS_ERROR);
    if (cmd->cb != NULL)
        cmd->cb(cmd->data, reply, err);
}

/* hiredis callback: the reply, or NULL when the context is going away. */
static void on_cmd_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redis_cmd_t *cmd = privdata;
    cmd_finish_user(cmd, r, r == NULL ? "disconnected" : NULL);
    free(cmd);
}

/* Drops the connection from a timer (never inside a hiredis callback). */
static void on_drop(h2o_timeout_entry_t *entry)
{
    redis_client_t *c = H2O_STRUCT_FROM_MEMBER(redis_client_t, drop_entry, entry);
    if (c->ac != NULL) {
        redisAsyncContext *ac = c->ac;
        redisAsyncFree(ac); /* pending callbacks get NULL; the disconnect callback does the rest */
    }
}

static void client_request_drop(redis_client_t *c)
{
    if (!h2o_timeout_is_linked(&c->drop_entry))
        h2o_timeout_link(c->loop, &c->zero_timeout, &c->drop_entry);
}

static void pending_free(redis_cmd_t *cmd)
{
    for (int i = 0; i < cmd->argc; i++)
        free(cmd->argv[i]);
    free(cmd->argv);
    free(cmd->argvlen);
    free(cmd);
}

/* Fails (or, once ready, sends) every command that waited for the connection. */
static void flush_pending(redis_client_t *c, bool send);

static void on_cmd_deadline(h2o_timeout_entry_t *entry)
{
    redis_cmd_t *cmd = H2O_STRUCT_FROM_MEMBER(redis_cmd_t, deadline, entry);
    redis_client_t *c = cmd->client;
    if (h2o_linklist_is_linked(&cmd->pending)) {
        /* still waiting for the connection: the connect attempt has its own timing */
        h2o_linklist_unlink(&cmd->pending);
        c->npending--;
        cmd_finish_user(cmd, NULL, "timeout");
        pending_free(cmd);
        return;
    }
    cmd_finish_user(cmd, NULL, "timeout");
    log_warn(NULL, "redis: command timed out; reconnecting");
    client_request_drop(c);
}

static redis_cmd_t *send_argv(redis_client_t *c, redis_reply_cb cb, void *data, int argc, const char **argv, const size_t *argvlen)
{
    redis_cmd_t *cmd = calloc(1, sizeof(*cmd));
    if (cmd == NULL)
        return NULL;
    cmd->client = c;
    cmd->cb = cb;
    cmd->data = data;
    cmd->deadline.cb = on_cmd_deadline;
    if (redisAsyncCommandArgv(c->ac, on_cmd_reply, cmd, argc, argv, argvlen) != REDIS_OK) {
        free(cmd);
        return NULL;
    }
    h2o_timeout_link(c->loop, &c->cmd_timeout, &cmd->deadline);
    return cmd;
}

redis_cmd_t *redis_command_argv(redis_client_t *c, redis_reply_cb cb, void *data, int argc, const char **argv,
                                const size_t *argvlen)
{
    if (c->role != REDIS_ROLE_COMMAND || c->destroying)
        return NULL;
    if (c->state == RS_READY && c->ac != NULL)
        return send_argv(c, cb, data, argc, argv, argvlen);
    /* A connection is being made (start-up, reconnect): wait for it, bounded, rather than fail a
     * request that arrives a moment early. When no attempt is under way, fail at once. */
    if ((c->state != RS_CONNECTING && c->state != RS_HANDSHAKE) || c->npending >= REDIS_PENDING_MAX)
        return NULL;
    redis_cmd_t *cmd = calloc(1, sizeof(*cmd));
    cmd->client = c;
    cmd->cb = cb;
    cmd->data = data;
    cmd->deadline.cb = on_cmd_deadline;
    cmd->argc = argc;
    cmd->argv = calloc((size_t)argc, sizeof(char *));
    cmd->argvlen = calloc((size_t)argc, sizeof(size_t));
    for (int i = 0; i < argc; i++) {
        cmd->argv[i] = malloc(argvlen[i] + 1);
        memcpy(cmd->argv[i], argv[i], argvlen[i]);
        cmd->argv[i][argvlen[i]] = '\0';
        cmd->argvlen[i] = argvlen[i];
    }
    h2o_linklist_insert(&c->pending, &cmd->pending);
    c->npending++;
    h2o_timeout_link(c->loop, &c->cmd_timeout, &cmd->deadline);
    return cmd;
}

static void flush_pending(redis_client_t *c, bool send)
{
    while (!h2o_linklist_is_empty(&c->pending)) {
        redis_cmd_t *cmd = H2O_STRUCT_FROM_MEMBER(redis_cmd_t, pending, c->pending.next);
        h2o_linklist_unlink(&cmd->pending);
        c->npending--;
        if (send && !cmd->done && c->ac != NULL &&
            redisAsyncCommandArgv(c->ac, on_cmd_reply, cmd, cmd->argc, (const char **)cmd->argv, cmd->argvlen) == REDIS_OK) {
            /* from now on an ordinary command: hiredis owns the reply, on_cmd_reply frees cmd */
            for (int i = 0; i < cmd->argc; i++)
                free(cmd->argv[i]);
            free(cmd->argv);
            free(cmd->argvlen);
            cmd->argv = NULL;
            cmd->argvlen = NULL;
            cmd->argc = 0;
            continue;
        }
        cmd_finish_user(cmd, NULL, "disconnected");
        pending_free(cmd);
    }
}

void redis_cancel(redis_cmd_t *cmd)
{
    cmd->cb = NULL;
    cmd->data = NULL;
}

/* ---------------------------------------------------------------- subscriber */

/* hiredis calls this for every reply on the subscriber context (confirmations and messages). */
/* Calls (and forgets) the waiters of channel, or of every channel when channel is NULL. */
static void release_waiters(redis_client_t *c, const char *channel, size_t len)
{
    for (size_t i = 0; i < c->nwaiters;) {
        sub_waiter_t w = c->waiters[i];
        if (channel == NULL || (strlen(w.channel) == len && memcmp(w.channel, channel, len) == 0)) {
            c->waiters[i] = c->waiters[--c->nwaiters];
            free(w.channel);
            w.cb(w.data);
        } else {
            i++;
        }
    }
}

static void on_pubsub(redisAsyncContext *ac, void *r, void *privdata)
{
    redis_client_t *c = privdata;
    redisReply *reply = r;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    redisReply *kind = reply->element[0];
    if (kind->type == REDIS_REPLY_STRING && kind->len == 9 && memcmp(kind->str, "subscribe", 9) == 0 &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        redisReply *ch = reply->element[1];
        for (size_t i = 0; i < c->nchannels; i++)
            if (strlen(c->channels[i].name) == ch->len && memcmp(c->channels[i].name, ch->str, ch->len) == 0)
                c->channels[i].confirmed = true;
        release_waiters(c, ch->str, ch->len);
        return;
    }
    if (kind->type == REDIS_REPLY_STRING && kind->len == 7 && memcmp(kind->str, "message", 7) == 0 && c->msg_cb != NULL) {
        redisReply *ch = reply->element[1], *msg = reply->element[2];
        if (ch->type == REDIS_REPLY_STRING && msg->type == REDIS_REPLY_STRING)
            c->msg_cb(c->msg_data, ch->str, ch->len, msg->str, msg->len);
    }
}

static int send_subscribe(redis_client_t *c, const char *verb, const char *channel)
{
    const char *argv[2] = {verb, channel};
    size_t lens[2] = {strlen(verb), strlen(channel)};
    return redisAsyncCommandArgv(c->ac, on_pubsub, c, 2, argv, lens) == REDIS_OK ? 0 : -1;
}

int redis_subscribe(redis_client_t *c, const char *channel)
{
    if (c->role != REDIS_ROLE_SUBSCRIBER)
        return -1;
    for (size_t i = 0; i < c->nchannels; i++)
        if (strcmp(c->channels[i].name, channel) == 0)
            return 0;
    if (c->nchannels == c->capchannels) {
        size_t ncap = c->capchannels ? c->capchannels * 2 : 8;
        channel_t *n = realloc(c->channels, ncap * sizeof(*n));
        if (n == NULL)
            return -1;
        c->channels = n;
        c->capchannels = ncap;
    }
    c->channels[c->nchannels].confirmed = false;
    c->channels[c->nchannels++].name = strdup(channel);
    if (c->state == RS_READY)
        send_subscribe(c, "SUBSCRIBE", channel);
    return 0;
}

int redis_unsubscribe(redis_client_t *c, const char *channel)
{
    for (size_t i = 0; i < c->nchannels; i++) {
        if (strcmp(c->channels[i].name, channel) == 0) {
            if (c->state == RS_READY)
                send_subscribe(c, "UNSUBSCRIBE", channel);
            free(c->channels[i].name);
            c->channels[i] = c->channels[--c->nchannels];
            return 0;
        }
    }
    return -1;
}

int redis_when_subscribed(redis_client_t *c, const char *channel, void (*cb)(void *data), void *data)
{
    for (size_t i = 0; i < c->nchannels; i++) {
        if (strcmp(c->channels[i].name, channel) != 0)
            continue;
        if (c->channels[i].confirmed || c->state != RS_READY) {
            cb(data); /* confirmed, or nothing to wait for on a connection that is down */
            return 0;
        }
        if (c->nwaiters == c->capwaiters) {
            size_t ncap = c->capwaiters ? c->capwaiters * 2 : 8;
            sub_waiter_t *n = realloc(c->waiters, ncap * sizeof(*n));
            if (n == NULL)
                return -1;
            c->waiters = n;
            c->capwaiters = ncap;
        }
        c->waiters[c->nwaiters++] = (sub_waiter_t){strdup(channel), cb, data};
        return 0;
    }
    return -1;
}

void redis_client_on_message(redis_client_t *c, redis_message_cb cb, void *data)
{
    c->msg_cb = cb;
    c->msg_data = data;
}

/* ---------------------------------------------------------------- connection lifecycle */

static void on_handshake_reply(void *data, redisReply *reply, const char *err)
{
    redis_client_t *c = data;
    if (reply == NULL || reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "PONG") != 0) {
        if (reply != NULL)
            log_warn(NULL, "redis: handshake refused: %s", reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        client_request_drop(c);
        return;
    }
    c->backoff_exp = 0;
    client_set_state(c, RS_READY);
    flush_pending(c, true);
    log_info(NULL, "redis: %s connection ready", c->role == REDIS_ROLE_COMMAND ? "command" : "subscriber");
    if (c->role == REDIS_ROLE_SUBSCRIBER)
        for (size_t i = 0; i < c->nchannels; i++)
            send_subscribe(c, "SUBSCRIBE", c->channels[i].name);
}

/* An AUTH or SELECT reply: an error means a misconfiguration; the PING after it reports it. */
static void on_setup_reply(void *data, redisReply *reply, const char *err)
{
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        log_error(NULL, "redis: connection set-up refused: %s", reply->str);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    redis_client_t *c = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback; the disconnect callback is not called */
        log_debug(NULL, "redis: connect failed: %s", ac->errstr);
        c->ac = NULL;
        client_set_state(c, RS_DOWN);
        flush_pending(c, false);
        if (!c->destroying)
            client_schedule_connect(c);
        return;
    }
    client_set_state(c, RS_HANDSHAKE);
    if (c->addr.password[0] != '\0') {
        const char *argv[2] = {"AUTH", c->addr.password};
        size_t lens[2] = {4, strlen(c->addr.password)};
        send_argv(c, on_setup_reply, c, 2, argv, lens);
    }
    if (c->addr.db != 0) {
        char db[8];
        snprintf(db, sizeof(db), "%d", c->addr.db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        send_argv(c, on_setup_reply, c, 2, argv, lens);
    }
    const char *ping[1] = {"PING"};
    size_t plen[1] = {4};
    send_argv(c, on_handshake_reply, c, 1, ping, plen);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_client_t *c = ac->data;
    if (c->state == RS_READY && !c->destroying)
        log_warn(NULL, "redis: connection lost%s%s", status != REDIS_OK ? ": " : "", status != REDIS_OK ? ac->errstr : "");
    c->ac = NULL;
    if (h2o_timeout_is_linked(&c->drop_entry))
        h2o_timeout_unlink(&c->drop_entry);
    client_set_state(c, RS_DOWN);
    flush_pending(c, false);
    for (size_t i = 0; i < c->nchannels; i++)
        c->channels[i].confirmed = false;
    release_waiters(c, NULL, 0); /* nobody waits for a connection that is gone */
    if (!c->destroying)
        client_schedule_connect(c);
}

static void on_backoff(h2o_timeout_entry_t *entry)
{
    redis_client_t *c = H2O_STRUCT_FROM_MEMBER(redis_client_t, backoff, entry);
    if (--c->backoff_ticks_left > 0) {
        h2o_timeout_link(c->loop, &c->backoff_timeout, &c->backoff);
        return;
    }
    client_connect(c);
}

static void client_schedule_connect(redis_client_t *c)
{
    int ticks = 1 << c->backoff_exp;
    if (ticks < REDIS_BACKOFF_MAX_TICKS)
        c->backoff_exp++;
    else
        ticks = REDIS_BACKOFF_MAX_TICKS;
    c->backoff_ticks_left = ticks;
    if (!h2o_timeout_is_linked(&c->backoff))
        h2o_timeout_link(c->loop, &c->backoff_timeout, &c->backoff);
}

static void client_connect(redis_client_t *c)
{
    redisAsyncContext *ac = redisAsyncConnect(c->addr.host, c->addr.port);
    if (ac == NULL || ac->err) {
        log_debug(NULL, "redis: connect failed: %s", ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        client_schedule_connect(c);
        return;
    }
    int fd = dup(ac->c.fd);
    if (fd < 0) {
        redisAsyncFree(ac);
        client_schedule_connect(c);
        return;
    }
    c->ac = ac;
    ac->data = c;
    c->sock = h2o_evloop_socket_create(c->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    c->sock->data = c;
    ac->ev.data = c;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    client_set_state(c, RS_CONNECTING);
    /* the non-blocking connect completes when the socket becomes writable */
    ev_add_write(c);
}

redis_client_t *redis_client_create(h2o_loop_t *loop, const config_redis_t *addr, int timeout_ms, redis_role_t role)
{
    redis_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->addr = *addr;
    c->role = role;
    c->state = RS_DOWN;
    metrics_gauge_add(METRICS_GAUGE_REDIS_DOWN, 1);
    h2o_timeout_init(loop, &c->cmd_timeout, (uint64_t)timeout_ms);
    h2o_timeout_init(loop, &c->backoff_timeout, REDIS_BACKOFF_TICK_MS);
    h2o_timeout_init(loop, &c->zero_timeout, 0);
    c->backoff.cb = on_backoff;
    c->drop_entry.cb = on_drop;
    c->flush_entry.cb = on_flush;
    h2o_linklist_init_anchor(&c->pending);
    client_connect(c);
    return c;
}

void redis_client_destroy(redis_client_t *c)
{
    if (c == NULL)
        return;
    c->destroying = true;
    if (h2o_timeout_is_linked(&c->backoff))
        h2o_timeout_unlink(&c->backoff);
    if (h2o_timeout_is_linked(&c->drop_entry))
        h2o_timeout_unlink(&c->drop_entry);
    if (h2o_timeout_is_linked(&c->flush_entry))
        h2o_timeout_unlink(&c->flush_entry);
    if (c->ac != NULL)
        redisAsyncFree(c->ac);
    flush_pending(c, false);
    client_set_state(c, RS_DOWN);
    metrics_gauge_add(METRICS_GAUGE_REDIS_DOWN, -1);
    h2o_timeout_dispose(c->loop, &c->cmd_timeout);
    h2o_timeout_dispose(c->loop, &c->backoff_timeout);
    h2o_timeout_dispose(c->loop, &c->zero_timeout);
    release_waiters(c, NULL, 0);
    free(c->waiters);
    for (size_t i = 0; i < c->nchannels; i++)
        free(c->channels[i].name);
    free(c->channels);
    free(c);
}

bool redis_client_is_up(const redis_client_t *c)
{
    return c->state == RS_READY;
}

void redis_client_on_state(redis_client_t *c, redis_state_cb cb, void *data)
{
    c->state_cb = cb;
    c->state_data = data;
}
