/*
 * session: login sessions and refresh-token families in Redis.
 *
 * A session (id = the access token's `sid`) is a Redis hash `tenantd:sess:{sid}` holding the user,
 * the tenant, the SHA-256 of the current refresh secret and of the one before it, and client
 * details; it expires at the absolute session lifetime. `tenantd:usess:{user}` indexes a user's
 * sessions. Refresh tokens are `rt_{sid}.{secret}`: single use, rotated atomically by a Lua
 * script. Presenting the previous (spent) secret again revokes the whole session; any other
 * wrong secret is simply refused. Revocation deletes the hash and PUBLISHes the sid on
 * SESSION_REVOCATION_CHANNEL so every instance evicts its cached tokens at once; a token whose
 * session hash is gone is refused on its next uncached check.
 */
#ifndef TENANTD_SECURITY_SESSION_H
#define TENANTD_SECURITY_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infra/redis.h"

#define SESSION_REVOCATION_CHANNEL "tenantd:revocations"
#define SESSION_ID_LEN 32           /* hex chars */
#define SESSION_REFRESH_MAX 128     /* bytes of a refresh token, NUL included */
#define SESSION_LIFETIME_S (30 * 24 * 3600)

/* A fresh session id (SESSION_ID_LEN hex + NUL) and refresh token for it; refresh_hash gets the secret's SHA-256 hex (65 bytes). */
void session_new(char *sid, char *refresh_token, char *refresh_hash);

/* Splits a refresh token into sid and the SHA-256 hex of its secret; false when malformed. */
bool session_parse_refresh(const char *token, size_t len, char *sid, char *secret_hash);

/* A new secret for sid: the token and its hash. */
void session_next_refresh(const char *sid, char *refresh_token, char *refresh_hash);

/* Stores a new session; cb gets the reply (integer 1) or an error. */
redis_cmd_t *session_create(redis_client_t *r, const char *sid, const char *user_id, const char *tenant_id, const char *refresh_hash,
                            const char *ip, const char *user_agent, redis_reply_cb cb, void *data);

/*
 * Rotates sid's refresh secret from presented_hash to new_hash. Reply: array [1, user_id, tenant_id]
 * on success, [0] for unknown/expired/wrong, [-1] when a spent secret was replayed (session revoked).
 */
redis_cmd_t *session_rotate(redis_client_t *r, const char *sid, const char *presented_hash, const char *new_hash, redis_reply_cb cb,
                            void *data);

/* Revokes sid (all its refresh tokens and access tokens); reply integer 1 if it existed. */
redis_cmd_t *session_revoke(redis_client_t *r, const char *sid, redis_reply_cb cb, void *data);

/* Revokes sid only if it belongs to user_id; reply integer 1 when revoked, 0 otherwise. */
redis_cmd_t *session_revoke_own(redis_client_t *r, const char *sid, const char *user_id, redis_reply_cb cb, void *data);

/* Revokes every session of user_id in tenant_id (role change, removal); reply integer count. */
redis_cmd_t *session_revoke_user_tenant(redis_client_t *r, const char *user_id, const char *tenant_id, redis_reply_cb cb, void *data);

/* Reads sid's owner: reply array [user_id, tenant_id], both nil when the session is gone. */
redis_cmd_t *session_exists(redis_client_t *r, const char *sid, redis_reply_cb cb, void *data);

/* Lists user_id's live sessions: reply array of [sid, tenant_id, created, used, ip, ua] arrays. */
redis_cmd_t *session_list(redis_client_t *r, const char *user_id, redis_reply_cb cb, void *data);

/* Counts one event in a fixed-window bucket; reply [count, ttl_seconds]. */
redis_cmd_t *session_rate_hit(redis_client_t *r, const char *bucket, int window_s, redis_reply_cb cb, void *data);

#endif
