/*
 * notify: the Redis side of `tenantctl migrate` — one PUBLISH on CHANNEL_SCHEMA, so every tenantd
 * worker re-reads the data API's table metadata (server/http/guard.c reloads on that channel).
 * A blocking hiredis connection is fine here: tenantctl is a command-line program.
 */
#include "cli/notify.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "core/channels.h"

/* True when the reply is a usable answer; else prints why and returns false. */
static bool reply_ok(redisContext *rc, redisReply *r, const char *step)
{
    if (r != NULL && r->type != REDIS_REPLY_ERROR)
        return true;
    fprintf(stderr, "tenantctl: warning: could not tell running servers about the schema change (%s: %s); send them SIGHUP\n", step,
            r != NULL ? r->str : rc->errstr);
    return false;
}

long cli_notify_schema_change(const cli_env_t *env, const char *what)
{
    const config_redis_t *addr = &env->cfg.redis;
    struct timeval tv = {2, 0};
    redisContext *rc = redisConnectWithTimeout(addr->host, addr->port, tv);
    if (rc == NULL || rc->err) {
        fprintf(stderr, "tenantctl: warning: could not tell running servers about the schema change (Redis %s:%u: %s); send them SIGHUP\n",
                addr->host, addr->port, rc != NULL ? rc->errstr : "out of memory");
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
    r = redisCommand(rc, "PUBLISH %s %s", CHANNEL_SCHEMA, what);
    if (reply_ok(rc, r, "PUBLISH"))
        heard = r->type == REDIS_REPLY_INTEGER ? (long)r->integer : 0;
    if (r != NULL)
        freeReplyObject(r);
out:
    redisFree(rc);
    return heard;
}
