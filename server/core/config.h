/*
 * config: the process configuration, read once from the environment (12-factor, CONTRACT.md §1).
 *
 * config_load() fills a config_t from environ, applying the documented defaults, and validates
 * every value: an unparsable URL, a missing file, an unknown log level or a number out of range
 * fails with one line naming the variable (never echoing a secret). tenantd and tenantctl share it.
 * The loaded config is immutable afterwards and may be read from every thread.
 */
#ifndef TENANTD_CORE_CONFIG_H
#define TENANTD_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A host:port pair as given in TENANTD_LISTEN / TENANTD_TLS_LISTEN. */
typedef struct {
    char host[256];
    uint16_t port;
} config_addr_t;

/* A parsed redis://[:password@]host:port[/db] URL. */
typedef struct {
    char host[256];
    uint16_t port;
    char password[256];
    int db;
} config_redis_t;

typedef enum { CONFIG_LOG_DEBUG = 0, CONFIG_LOG_INFO, CONFIG_LOG_WARN, CONFIG_LOG_ERROR } config_log_level_t;

typedef struct {
    char *database_url;       /* DATABASE_URL: libpq URL the server connects with */
    char *database_owner_url; /* DATABASE_OWNER_URL: schema owner for tenantctl; defaults to DATABASE_URL */
    char *redis_url;          /* REDIS_URL as given (contains a secret: never log it) */
    config_redis_t redis;     /* REDIS_URL parsed */
    config_addr_t listen;     /* TENANTD_LISTEN */
    bool tls_enabled;         /* false when TENANTD_TLS_LISTEN is empty */
    config_addr_t tls_listen; /* TENANTD_TLS_LISTEN */
    char *tls_cert;           /* TENANTD_TLS_CERT */
    char *tls_key;            /* TENANTD_TLS_KEY */
    int threads;              /* TENANTD_THREADS */
    char *jwt_keys;           /* TENANTD_JWT_KEYS */
    char *policies_dir;       /* TENANTD_POLICIES */
    char *migrations_dir;     /* TENANTD_MIGRATIONS */
    char **cors_origins;      /* TENANTD_CORS_ORIGINS, NULL-terminated */
    size_t cors_origins_count;
    config_log_level_t log_level; /* TENANTD_LOG_LEVEL */
    /* limits and timeouts (extensions of the contract, README lists them) */
    size_t max_body_bytes;         /* TENANTD_MAX_BODY_BYTES, default 1 MiB */
    int db_pool_size;              /* TENANTD_DB_POOL_SIZE: connections per thread, default 2 */
    int db_queue_max;              /* TENANTD_DB_QUEUE_MAX: waiting queries per thread, default 1024 */
    int db_query_timeout_ms;       /* TENANTD_DB_QUERY_TIMEOUT_MS, default 5000 */
    int redis_timeout_ms;          /* TENANTD_REDIS_TIMEOUT_MS, default 2000 */
    int idle_timeout_ms;           /* TENANTD_IDLE_TIMEOUT_MS: HTTP/1 request and HTTP/2 idle, default 30000 */
    int shutdown_timeout_ms;       /* TENANTD_SHUTDOWN_TIMEOUT_MS: drain deadline on SIGTERM, default 10000 */
    int h2_max_streams;            /* TENANTD_H2_MAX_STREAMS: concurrent streams per connection, default 100 */
    int eio_ping_interval_ms;      /* TENANTD_EIO_PING_INTERVAL_MS: Engine.IO ping interval, default 25000 */
    int eio_ping_timeout_ms;       /* TENANTD_EIO_PING_TIMEOUT_MS: Engine.IO pong deadline, default 20000 */
} config_t;

/* Fills *cfg from the environment; returns 0, or -1 with one human line naming the variable in err. */
int config_load(config_t *cfg, char *err, size_t errlen);

/* Frees what config_load allocated; *cfg is zeroed. */
void config_free(config_t *cfg);

/* Parses "host:port" (or "[v6]:port"); returns 0 or -1. Exposed for unit tests. */
int config_parse_addr(const char *text, config_addr_t *out);

/* Parses redis://[:password@]host[:port][/db]; returns 0 or -1. Exposed for unit tests. */
int config_parse_redis_url(const char *text, config_redis_t *out);

/* Parses a log level name; returns 0 or -1. */
int config_parse_log_level(const char *text, config_log_level_t *out);

#endif
