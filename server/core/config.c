/*
 * config: reads and validates the environment into a config_t (see config.h).
 *
 * Each variable has one reader below that applies the default and checks the value; the first
 * failure writes "VARIABLE: what is wrong" into the caller's buffer. Values holding secrets
 * (DATABASE_URL, REDIS_URL) are never copied into an error message.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEV_DATABASE_URL "postgresql://tenantd_app:tenantd_app@127.0.0.1:55432/tenantd"
#define DEV_REDIS_URL "redis://127.0.0.1:56379/0"

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Returns the variable's value, or def when it is unset. An empty value counts as set. */
static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v != NULL ? v : def;
}

static char *dup_or_die(const char *s)
{
    char *d = strdup(s);
    if (d == NULL) {
        fputs("out of memory\n", stderr);
        abort();
    }
    return d;
}

int config_parse_addr(const char *text, config_addr_t *out)
{
    const char *colon, *host_start = text, *host_end;
    if (text == NULL || *text == '\0')
        return -1;
    if (text[0] == '[') {
        host_start = text + 1;
        host_end = strchr(host_start, ']');
        if (host_end == NULL || host_end[1] != ':')
            return -1;
        colon = host_end + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            return -1;
        host_end = colon;
    }
    size_t hlen = (size_t)(host_end - host_start);
    if (hlen == 0 || hlen >= sizeof(out->host))
        return -1;
    /* ':' only inside brackets: an unbracketed "::1:8080" is ambiguous */
    for (const char *p = host_start; p < host_end; p++)
        if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '-' || (*p == ':' && text[0] == '[')))
            return -1;
    const char *port = colon + 1;
    if (*port == '\0' || strlen(port) > 5)
        return -1;
    long n = 0;
    for (const char *p = port; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        n = n * 10 + (*p - '0');
    }
    if (n < 1 || n > 65535)
        return -1;
    memcpy(out->host, host_start, hlen);
    out->host[hlen] = '\0';
    out->port = (uint16_t)n;
    return 0;
}

int config_parse_redis_url(const char *text, config_redis_t *out)
{
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (text == NULL || strncmp(text, scheme, sizeof(scheme) - 1) != 0)
        return -1;
    const char *p = text + sizeof(scheme) - 1;
    const char *at = strrchr(p, '@');
    if (at != NULL) {
        const char *pw = p;
        if (*pw == ':')
            pw++;
        else {
            /* user:password@ — Redis 6 ACL users are not supported; the password is what counts */
            const char *c = memchr(p, ':', (size_t)(at - p));
            if (c == NULL)
                return -1;
            pw = c + 1;
        }
        size_t len = (size_t)(at - pw);
        if (len >= sizeof(out->password))
            return -1;
        memcpy(out->password, pw, len);
        out->password[len] = '\0';
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *hostport_end = slash != NULL ? slash : p + strlen(p);
    char hostport[300];
    size_t hplen = (size_t)(hostport_end - p);
    if (hplen == 0 || hplen >= sizeof(hostport))
        return -1;
    memcpy(hostport, p, hplen);
    hostport[hplen] = '\0';
    config_addr_t addr;
    /* the port is optional, for "[v6]" as for "host" */
    const char *rbracket = strchr(hostport, ']');
    bool has_port = hostport[0] == '[' ? rbracket != NULL && rbracket[1] != '\0' : strchr(hostport, ':') != NULL;
    if (has_port) {
        if (config_parse_addr(hostport, &addr) != 0)
            return -1;
    } else {
        char tmp[310];
        snprintf(tmp, sizeof(tmp), "%s:6379", hostport);
        if (config_parse_addr(tmp, &addr) != 0)
            return -1;
    }
    memcpy(out->host, addr.host, sizeof(out->host));
    out->port = addr.port;
    if (slash != NULL && slash[1] != '\0') {
        const char *d = slash + 1;
        if (strlen(d) > 2)
            return -1;
        int db = 0;
        for (; *d; d++) {
            if (!isdigit((unsigned char)*d))
                return -1;
            db = db * 10 + (*d - '0');
        }
        if (db > 15)
            return -1;
        out->db = db;
    }
    return 0;
}

int config_parse_log_level(const char *text, config_log_level_t *out)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = (config_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

/* Reads an integer variable within [min, max]. */
static int read_int(const char *name, long def, long min, long max, long *out, char *err, size_t errlen)
{
    const char *v = getenv(name);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno != 0 || n < min || n > max)
        return fail(err, errlen, "%s: expected a whole number from %ld to %ld", name, min, max);
    *out = n;
    return 0;
}

static int read_file_path(const char *name, const char *def, char **out, char *err, size_t errlen)
{
    const char *v = env_or(name, def);
    if (*v == '\0')
        return fail(err, errlen, "%s: must name a file", name);
    if (access(v, R_OK) != 0)
        return fail(err, errlen, "%s: cannot read %s: %s", name, v, strerror(errno));
    *out = dup_or_die(v);
    return 0;
}

static int read_dir_path(const char *name, const char *def, char **out, char *err, size_t errlen)
{
    const char *v = env_or(name, def);
    if (*v == '\0')
        return fail(err, errlen, "%s: must name a folder", name);
    *out = dup_or_die(v);
    return 0;
}

/* Splits the comma-separated origin list; each must look like scheme://host[:port]. */
static int read_cors(config_t *cfg, char *err, size_t errlen)
{
    const char *v = env_or("TENANTD_CORS_ORIGINS", "");
    size_t cap = 1;
    for (const char *p = v; *p; p++)
        if (*p == ',')
            cap++;
    cfg->cors_origins = calloc(cap + 1, sizeof(char *));
    if (cfg->cors_origins == NULL)
        abort();
    const char *p = v;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && isspace((unsigned char)*p))
            p++, len--;
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        if (len > 0) {
            char *o = strndup(p, len);
            if (o == NULL)
                abort();
            const char *host = strncmp(o, "https://", 8) == 0 ? o + 8 : strncmp(o, "http://", 7) == 0 ? o + 7 : NULL;
            if (host == NULL || *host == '\0' || strchr(host, '/') != NULL) {
                free(o);
                return fail(err, errlen, "TENANTD_CORS_ORIGINS: each origin must be scheme://host[:port]");
            }
            cfg->cors_origins[cfg->cors_origins_count++] = o;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
}

static int read_database_url(const char *name, const char *def, char **out, char *err, size_t errlen)
{
    const char *v = env_or(name, def);
    if (strncmp(v, "postgresql://", 13) != 0 && strncmp(v, "postgres://", 11) != 0)
        return fail(err, errlen, "%s: expected a postgresql:// URL", name);
    if (strpbrk(v, "\r\n") != NULL)
        return fail(err, errlen, "%s: contains a line break", name);
    *out = dup_or_die(v);
    return 0;
}

int config_load(config_t *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    long n = 0;

    if (read_database_url("DATABASE_URL", DEV_DATABASE_URL, &cfg->database_url, err, errlen) != 0)
        return -1;
    if (read_database_url("DATABASE_OWNER_URL", cfg->database_url, &cfg->database_owner_url, err, errlen) != 0)
        return -1;

    cfg->redis_url = dup_or_die(env_or("REDIS_URL", DEV_REDIS_URL));
    if (config_parse_redis_url(cfg->redis_url, &cfg->redis) != 0)
        return fail(err, errlen, "REDIS_URL: expected redis://[:password@]host[:port][/db]");

    if (config_parse_addr(env_or("TENANTD_LISTEN", "127.0.0.1:8080"), &cfg->listen) != 0)
        return fail(err, errlen, "TENANTD_LISTEN: expected host:port");
    const char *tls = env_or("TENANTD_TLS_LISTEN", "127.0.0.1:8443");
    cfg->tls_enabled = *tls != '\0';
    if (cfg->tls_enabled) {
        if (config_parse_addr(tls, &cfg->tls_listen) != 0)
            return fail(err, errlen, "TENANTD_TLS_LISTEN: expected host:port, or empty to disable TLS");
        if (read_file_path("TENANTD_TLS_CERT", ".dev/tls/cert.pem", &cfg->tls_cert, err, errlen) != 0 ||
            read_file_path("TENANTD_TLS_KEY", ".dev/tls/key.pem", &cfg->tls_key, err, errlen) != 0)
            return -1;
    }

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (read_int("TENANTD_THREADS", cores > 0 ? cores : 1, 1, 256, &n, err, errlen) != 0)
        return -1;
    cfg->threads = (int)n;

    /* Key set and policies are checked by the modules that load them; here only their paths. */
    if (read_dir_path("TENANTD_JWT_KEYS", ".dev/jwks.json", &cfg->jwt_keys, err, errlen) != 0 ||
        read_dir_path("TENANTD_POLICIES", "policies", &cfg->policies_dir, err, errlen) != 0 ||
        read_dir_path("TENANTD_MIGRATIONS", "migrations", &cfg->migrations_dir, err, errlen) != 0)
        return -1;

    if (read_cors(cfg, err, errlen) != 0)
        return -1;

    if (config_parse_log_level(env_or("TENANTD_LOG_LEVEL", "info"), &cfg->log_level) != 0)
        return fail(err, errlen, "TENANTD_LOG_LEVEL: expected debug, info, warn or error");

    struct {
        const char *name;
        long def, min, max;
        void *dst;
        int is_size;
    } ints[] = {
        {"TENANTD_MAX_BODY_BYTES", 1 << 20, 1024, 1L << 30, &cfg->max_body_bytes, 1},
        {"TENANTD_DB_POOL_SIZE", 2, 1, 64, &cfg->db_pool_size, 0},
        {"TENANTD_DB_QUEUE_MAX", 1024, 1, 1 << 20, &cfg->db_queue_max, 0},
        {"TENANTD_DB_QUERY_TIMEOUT_MS", 5000, 10, 600000, &cfg->db_query_timeout_ms, 0},
        {"TENANTD_REDIS_TIMEOUT_MS", 2000, 10, 600000, &cfg->redis_timeout_ms, 0},
        {"TENANTD_IDLE_TIMEOUT_MS", 30000, 100, 3600000, &cfg->idle_timeout_ms, 0},
        {"TENANTD_SHUTDOWN_TIMEOUT_MS", 10000, 0, 600000, &cfg->shutdown_timeout_ms, 0},
        {"TENANTD_H2_MAX_STREAMS", 100, 1, 10000, &cfg->h2_max_streams, 0},
        {"TENANTD_EIO_PING_INTERVAL_MS", 25000, 50, 600000, &cfg->eio_ping_interval_ms, 0},
        {"TENANTD_EIO_PING_TIMEOUT_MS", 20000, 50, 600000, &cfg->eio_ping_timeout_ms, 0},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (read_int(ints[i].name, ints[i].def, ints[i].min, ints[i].max, &n, err, errlen) != 0)
            return -1;
        if (ints[i].is_size)
            *(size_t *)ints[i].dst = (size_t)n;
        else
            *(int *)ints[i].dst = (int)n;
    }
    return 0;
}

void config_free(config_t *cfg)
{
    free(cfg->database_url);
    free(cfg->database_owner_url);
    free(cfg->redis_url);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->jwt_keys);
    free(cfg->policies_dir);
    free(cfg->migrations_dir);
    if (cfg->cors_origins != NULL) {
        for (size_t i = 0; i < cfg->cors_origins_count; i++)
            free(cfg->cors_origins[i]);
        free(cfg->cors_origins);
    }
    memset(cfg, 0, sizeof(*cfg));
}
