/*
 * redis: asynchronous Redis on an h2o event loop (hiredis 0.14 with our own loop adapter).
 *
 * A redis_client_t is one connection that reconnects by itself with backoff: a command client
 * (redis_command*) or a subscriber (redis_subscribe; the channel set is re-subscribed after every
 * reconnect). Every command has a deadline; past it the callback gets a timeout and the
 * connection is dropped and remade (a command stuck that long means a broken link).
 *
 * Guarantees: an accepted command's callback is called exactly once — with the reply, or with
 * reply NULL and err set ("timeout", "disconnected") — unless cancelled first with redis_cancel;
 * if redis_command* returns NULL the callback is never called. A command issued while a
 * connection attempt is under way waits for it (bounded by its deadline); with no attempt under
 * way it is refused at once. Nothing blocks the loop.
 */
#ifndef TENANTD_INFRA_REDIS_H
#define TENANTD_INFRA_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>
#include <hiredis/hiredis.h>

#include "core/config.h"

typedef struct redis_client redis_client_t;
typedef struct redis_cmd redis_cmd_t;

/* Receives a command's reply (valid during the call only) or NULL with a short reason in err. */
typedef void (*redis_reply_cb)(void *data, redisReply *reply, const char *err);

/* Receives a message published on a subscribed channel (valid during the call only). */
typedef void (*redis_message_cb)(void *data, const char *channel, size_t channel_len, const char *msg, size_t msg_len);

/* Receives every change of the connection's readiness. */
typedef void (*redis_state_cb)(void *data, bool up);

typedef enum { REDIS_ROLE_COMMAND, REDIS_ROLE_SUBSCRIBER } redis_role_t;

/* Creates a client on loop and starts connecting in the background. */
redis_client_t *redis_client_create(h2o_loop_t *loop, const config_redis_t *addr, int timeout_ms, redis_role_t role);

/* Fails pending commands ("shutting down"), disconnects and frees the client. */
void redis_client_destroy(redis_client_t *client);

/* True when the connection is ready (handshake done, subscriptions sent). */
bool redis_client_is_up(const redis_client_t *client);

/* Sets the readiness observer (may be NULL). */
void redis_client_on_state(redis_client_t *client, redis_state_cb cb, void *data);

/* Sends a command given as argv (binary safe); returns a handle, or NULL when down and not connecting. */
redis_cmd_t *redis_command_argv(redis_client_t *client, redis_reply_cb cb, void *data, int argc, const char **argv,
                                const size_t *argvlen);

/* Detaches the callback of a pending command. */
void redis_cancel(redis_cmd_t *cmd);

/* Subscriber only: adds channel to the set (subscribing now if connected); 0 or -1. */
int redis_subscribe(redis_client_t *client, const char *channel);

/* Subscriber only: calls cb(data) once Redis acknowledged the SUBSCRIBE of channel (at once when it
 * already did, or when the connection is down or goes down); -1 when channel is not in the set. */
int redis_when_subscribed(redis_client_t *c, const char *channel, void (*cb)(void *data), void *data);

/* Subscriber only: removes channel from the set; 0 or -1 when it was not subscribed. */
int redis_unsubscribe(redis_client_t *client, const char *channel);

/* Subscriber only: sets the receiver of every published message. */
void redis_client_on_message(redis_client_t *client, redis_message_cb cb, void *data);

#endif
