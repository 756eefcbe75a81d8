/*
 * notify: the Redis side of tenantctl — one PUBLISH on CHANNEL_SCHEMA after `migrate` (every tenantd
 * worker re-reads the data API's table metadata) or on CHANNEL_TENANTS after a tenant's suspension,
 * resumption or drop (every worker drops its cached tenant and tokens: server/http/guard.c).
 * A blocking hiredis connection is fine here: tenantctl is a command-line program.
 */
#include "cli/notify.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "core/channels.h"

/* What still happens when Redis cannot be told. */
#define NOTIFY_FALLBACK "schema changes need SIGHUP, tenant changes reach servers within a second"

/* True when the reply is a usable answer; else prints why and returns false. */
static bool reply_ok(redisContext *rc, redisReply *r, const char *step)
{
    if (r != NULL && r->type != REDIS_REPLY_ERROR)
        return true;
    fprintf(stderr, "tenantctl: warning: could not tell running servers (%s: %s); %s\n", step, r != NULL ? r->str : rc->errstr,
            NOTIFY_FALLBACK);
    return false;
}

/* PUBLISH message on channel at REDIS_URL (2 s bound): the receivers' count, or -1 after a warning. */
static long publish(const cli_env_t *env, const char *channel, const char *message)
{
    const config_redis_t *addr = &env->cfg.redis;
    struct timeval tv = {2, 0};
    redisContext *rc = redisConnectWithTimeout(addr->host, addr->port, tv);
    if (rc == NULL || rc->err) {
        fprintf(stderr, "tenantctl: warning: could not tell running servers (Redis %s:%u: %s); %s\n", addr->host, addr->port,
                rc != NULL ? rc->errstr : "out of memory", NOTIFY_FALLBACK);
        if (rc != NULL)
            redisFree(rc);
        return -1;
    }
    redisSetTimeout(rc, tv);
    long heard = -1;
    redisReply *r = NULL;
    if (addr->password[0] != '\0') {
        r = redisCommand(rc, "AUTH %s", addr->password);
        bool ok = reply_ok(rc, r, "AUTH");
        if (r != NULL)
            freeReplyObject(r);
        if (!ok)
            goto out;
    }
    r = redisCommand(rc, "PUBLISH %s %s", channel, message);
    if (reply_ok(rc, r, "PUBLISH"))
        heard = r->type == REDIS_REPLY_INTEGER ? (long)r->integer : 0;
    if (r != NULL)
        freeReplyObject(r);
out:
    redisFree(rc);
    return heard;
}

long cli_notify_schema_change(const cli_env_t *env, const char *what)
{
    return publish(env, CHANNEL_SCHEMA, what);
}

long cli_notify_tenant_change(const cli_env_t *env, const char *tenant_id)
{
    return publish(env, CHANNEL_TENANTS, tenant_id);
}
