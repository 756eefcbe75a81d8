/*
 * session: the Redis side of sessions (see session.h). Every multi-key change is one Lua script,
 * so it is atomic and costs one round trip; scripts go out with EVAL (Redis caches them).
 */
#include "security/session.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

static const char create_lua[] =
    "redis.call('HSET', KEYS[1], 'uid', ARGV[2], 'tid', ARGV[3], 'rh', ARGV[4], 'prh', '', 'created', ARGV[5], 'used', ARGV[5],"
    " 'ip', ARGV[6], 'ua', ARGV[7])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[8])\n"
    "local u = 'tenantd:usess:' .. ARGV[2]\n"
    "redis.call('SADD', u, ARGV[1])\n"
    "redis.call('EXPIRE', u, ARGV[8])\n"
    "return 1\n";

static const char rotate_lua[] =
    "local s = redis.call('HMGET', KEYS[1], 'rh', 'prh', 'uid', 'tid')\n"
    "if not s[1] then return {0} end\n"
    "if s[1] == ARGV[2] then\n"
    "  redis.call('HSET', KEYS[1], 'rh', ARGV[3], 'prh', ARGV[2], 'used', ARGV[4])\n"
    "  return {1, s[3], s[4]}\n"
    "end\n"
    "if s[2] ~= '' and s[2] == ARGV[2] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('SREM', 'tenantd:usess:' .. s[3], ARGV[1])\n"
    "  redis.call('PUBLISH', '" SESSION_REVOCATION_CHANNEL "', ARGV[1])\n"
    "  return {-1}\n"
    "end\n"
    "return {0}\n";

static const char revoke_lua[] =
    "local uid = redis.call('HGET', KEYS[1], 'uid')\n"
    "if not uid then return 0 end\n"
    "if ARGV[2] ~= '' and uid ~= ARGV[2] then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('SREM', 'tenantd:usess:' .. uid, ARGV[1])\n"
    "redis.call('PUBLISH', '" SESSION_REVOCATION_CHANNEL "', ARGV[1])\n"
    "return 1\n";

static const char revoke_user_tenant_lua[] =
    "local n = 0\n"
    "for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local t = redis.call('HGET', 'tenantd:sess:' .. sid, 'tid')\n"
    "  if not t then redis.call('SREM', KEYS[1], sid)\n"
    "  elseif t == ARGV[1] then\n"
    "    redis.call('DEL', 'tenantd:sess:' .. sid)\n"
    "    redis.call('SREM', KEYS[1], sid)\n"
    "    redis.call('PUBLISH', '" SESSION_REVOCATION_CHANNEL "', sid)\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

static const char list_lua[] =
    "local out = {}\n"
    "for _, sid in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local s = redis.call('HMGET', 'tenantd:sess:' .. sid, 'tid', 'created', 'used', 'ip', 'ua')\n"
    "  if s[1] then table.insert(out, {sid, s[1], s[2], s[3], s[4], s[5]})\n"
    "  else redis.call('SREM', KEYS[1], sid) end\n"
    "  if #out >= 100 then break end\n"
    "end\n"
    "return out\n";

static const char rate_hit_lua[] =
    "local n = redis.call('INCR', KEYS[1])\n"
    "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end\n"
    "return {n, redis.call('TTL', KEYS[1])}\n";

static void hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static void hash_secret(const char *secret, size_t len, char *out_hex)
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)secret, len);
    hex_encode(digest, sizeof(digest), out_hex);
}

void session_next_refresh(const char *sid, char *refresh_token, char *refresh_hash)
{
    unsigned char raw[32];
    char secret[64];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(secret, sizeof(secret), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(refresh_token, SESSION_REFRESH_MAX, "rt_%s.%s", sid, secret);
    hash_secret(secret, strlen(secret), refresh_hash);
}

void session_new(char *sid, char *refresh_token, char *refresh_hash)
{
    unsigned char raw[SESSION_ID_LEN / 2];
    randombytes_buf(raw, sizeof(raw));
    hex_encode(raw, sizeof(raw), sid);
    session_next_refresh(sid, refresh_token, refresh_hash);
}

bool session_parse_refresh(const char *token, size_t len, char *sid, char *secret_hash)
{
    if (len < 3 + SESSION_ID_LEN + 2 || len >= SESSION_REFRESH_MAX || memcmp(token, "rt_", 3) != 0 || token[3 + SESSION_ID_LEN] != '.')
        return false;
    for (size_t i = 0; i < SESSION_ID_LEN; i++) {
        char c = token[3 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    const char *secret = token + 4 + SESSION_ID_LEN;
    size_t slen = len - 4 - SESSION_ID_LEN;
    for (size_t i = 0; i < slen; i++) {
        char c = secret[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_'))
            return false;
    }
    memcpy(sid, token + 3, SESSION_ID_LEN);
    sid[SESSION_ID_LEN] = '\0';
    hash_secret(secret, slen, secret_hash);
    return true;
}

/* EVAL script with one key and up to 8 arguments. */
static redis_cmd_t *eval1(redis_client_t *r, const char *script, const char *key, int nargs, const char *const *args, redis_reply_cb cb,
                          void *data)
{
    const char *argv[12];
    size_t lens[12];
    int n = 0;
    argv[n] = "EVAL", lens[n] = 4, n++;
    argv[n] = script, lens[n] = strlen(script), n++;
    argv[n] = "1", lens[n] = 1, n++;
    argv[n] = key, lens[n] = strlen(key), n++;
    for (int i = 0; i < nargs && n < 12; i++) {
        argv[n] = args[i] != NULL ? args[i] : "";
        lens[n] = strlen(argv[n]);
        n++;
    }
    return redis_command_argv(r, cb, data, n, argv, lens);
}

static void sess_key(char *out, size_t cap, const char *sid)
{
    snprintf(out, cap, "tenantd:sess:%s", sid);
}

redis_cmd_t *session_create(redis_client_t *r, const char *sid, const char *user_id, const char *tenant_id, const char *refresh_hash,
                            const char *ip, const char *user_agent, redis_reply_cb cb, void *data)
{
    char key[96], now[24], ttl[24], ua[256];
    sess_key(key, sizeof(key), sid);
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    snprintf(ttl, sizeof(ttl), "%d", SESSION_LIFETIME_S);
    snprintf(ua, sizeof(ua), "%s", user_agent != NULL ? user_agent : "");
    const char *args[] = {sid, user_id, tenant_id, refresh_hash, now, ip, ua, ttl};
    return eval1(r, create_lua, key, 8, args, cb, data);
}

redis_cmd_t *session_rotate(redis_client_t *r, const char *sid, const char *presented_hash, const char *new_hash, redis_reply_cb cb,
                            void *data)
{
    char key[96], now[24];
    sess_key(key, sizeof(key), sid);
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    const char *args[] = {sid, presented_hash, new_hash, now};
    return eval1(r, rotate_lua, key, 4, args, cb, data);
}

redis_cmd_t *session_revoke(redis_client_t *r, const char *sid, redis_reply_cb cb, void *data)
{
    return session_revoke_own(r, sid, "", cb, data);
}

redis_cmd_t *session_revoke_own(redis_client_t *r, const char *sid, const char *user_id, redis_reply_cb cb, void *data)
{
    char key[96];
    sess_key(key, sizeof(key), sid);
    const char *args[] = {sid, user_id};
    return eval1(r, revoke_lua, key, 2, args, cb, data);
}

redis_cmd_t *session_revoke_user_tenant(redis_client_t *r, const char *user_id, const char *tenant_id, redis_reply_cb cb, void *data)
{
    char key[128];
    snprintf(key, sizeof(key), "tenantd:usess:%s", user_id);
    const char *args[] = {tenant_id};
    return eval1(r, revoke_user_tenant_lua, key, 1, args, cb, data);
}

redis_cmd_t *session_exists(redis_client_t *r, const char *sid, redis_reply_cb cb, void *data)
{
    char key[96];
    sess_key(key, sizeof(key), sid);
    const char *argv[4] = {"HMGET", key, "uid", "tid"};
    size_t lens[4] = {5, strlen(key), 3, 3};
    return redis_command_argv(r, cb, data, 4, argv, lens);
}

redis_cmd_t *session_list(redis_client_t *r, const char *user_id, redis_reply_cb cb, void *data)
{
    char key[128];
    snprintf(key, sizeof(key), "tenantd:usess:%s", user_id);
    return eval1(r, list_lua, key, 0, NULL, cb, data);
}

redis_cmd_t *session_rate_hit(redis_client_t *r, const char *bucket, int window_s, redis_reply_cb cb, void *data)
{
    char key[300], win[16];
    snprintf(key, sizeof(key), "tenantd:rl:%s", bucket);
    snprintf(win, sizeof(win), "%d", window_s);
    const char *args[] = {win};
    return eval1(r, rate_hit_lua, key, 1, args, cb, data);
}

