/*
 * Unit tests of core/config: config_load from the environment (defaults, every variable's bad
 * value naming the variable, secrets kept out of error text) and the parsers behind it
 * (host:port addresses, redis:// URLs, log level names).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

/* Every variable config_load reads. */
static const char *const all_vars[] = {
    "DATABASE_URL",           "DATABASE_OWNER_URL",       "REDIS_URL",
    "TENANTD_LISTEN",         "TENANTD_TLS_LISTEN",       "TENANTD_TLS_CERT",
    "TENANTD_TLS_KEY",        "TENANTD_THREADS",          "TENANTD_JWT_KEYS",
    "TENANTD_POLICIES",       "TENANTD_MIGRATIONS",       "TENANTD_CORS_ORIGINS",
    "TENANTD_LOG_LEVEL",      "TENANTD_MAX_BODY_BYTES",   "TENANTD_DB_POOL_SIZE",
    "TENANTD_DB_QUEUE_MAX",   "TENANTD_DB_QUERY_TIMEOUT_MS", "TENANTD_REDIS_TIMEOUT_MS",
    "TENANTD_IDLE_TIMEOUT_MS", "TENANTD_SHUTDOWN_TIMEOUT_MS", "TENANTD_H2_MAX_STREAMS",
};

static char cert_path[64], key_path[64];

static int make_temp_file(char *path, size_t cap, const char *content)
{
    snprintf(path, cap, "/tmp/tenantd-test-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, content, strlen(content));
    close(fd);
    return w < 0 ? -1 : 0;
}

static int group_setup(void **state)
{
    (void)state;
    if (make_temp_file(cert_path, sizeof(cert_path), "-----BEGIN CERTIFICATE-----\n") != 0 ||
        make_temp_file(key_path, sizeof(key_path), "-----BEGIN PRIVATE KEY-----\n") != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    unlink(cert_path);
    unlink(key_path);
    return 0;
}

/* Clears the environment of every config variable, then points the TLS pair at readable files. */
static int env_setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(all_vars) / sizeof(all_vars[0]); i++)
        unsetenv(all_vars[i]);
    setenv("TENANTD_TLS_CERT", cert_path, 1);
    setenv("TENANTD_TLS_KEY", key_path, 1);
    return 0;
}

/* Loads with one variable set; expects failure whose text starts with the variable's name. */
static void expect_bad(const char *name, const char *value)
{
    config_t cfg;
    char err[512] = "";
    setenv(name, value, 1);
    int rc = config_load(&cfg, err, sizeof(err));
    config_free(&cfg);
    if (rc != -1)
        fail_msg("%s=\"%s\" was accepted", name, value);
    if (strncmp(err, name, strlen(name)) != 0 || err[strlen(name)] != ':')
        fail_msg("%s=\"%s\": error does not name the variable: %s", name, value, err);
    assert_null(strchr(err, '\n'));
    unsetenv(name);
}

static void expect_good(const char *name, const char *value, config_t *cfg)
{
    char err[512] = "";
    setenv(name, value, 1);
    if (config_load(cfg, err, sizeof(err)) != 0)
        fail_msg("%s=\"%s\" was refused: %s", name, value, err);
}

static void test_defaults(void **state)
{
    (void)state;
    config_t cfg;
    char err[512] = "";
    assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.database_url, "postgresql://tenantd_app:tenantd_app@127.0.0.1:55432/tenantd");
    assert_string_equal(cfg.database_owner_url, cfg.database_url);
    assert_string_equal(cfg.redis_url, "redis://127.0.0.1:56379/0");
    assert_string_equal(cfg.redis.host, "127.0.0.1");
    assert_int_equal(cfg.redis.port, 56379);
    assert_int_equal(cfg.redis.db, 0);
    assert_string_equal(cfg.redis.password, "");
    assert_string_equal(cfg.listen.host, "127.0.0.1");
    assert_int_equal(cfg.listen.port, 8080);
    assert_true(cfg.tls_enabled);
    assert_string_equal(cfg.tls_listen.host, "127.0.0.1");
    assert_int_equal(cfg.tls_listen.port, 8443);
    assert_string_equal(cfg.tls_cert, cert_path);
    assert_string_equal(cfg.tls_key, key_path);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(cfg.threads, cores > 0 ? cores : 1);
    assert_string_equal(cfg.jwt_keys, ".dev/jwks.json");
    assert_string_equal(cfg.policies_dir, "policies");
    assert_string_equal(cfg.migrations_dir, "migrations");
    assert_non_null(cfg.cors_origins);
    assert_int_equal(cfg.cors_origins_count, 0);
    assert_null(cfg.cors_origins[0]);
    assert_int_equal(cfg.log_level, CONFIG_LOG_INFO);
    assert_int_equal(cfg.max_body_bytes, 1 << 20);
    assert_int_equal(cfg.db_pool_size, 2);
    assert_int_equal(cfg.db_queue_max, 1024);
    assert_int_equal(cfg.db_query_timeout_ms, 5000);
    assert_int_equal(cfg.redis_timeout_ms, 2000);
    assert_int_equal(cfg.idle_timeout_ms, 30000);
    assert_int_equal(cfg.shutdown_timeout_ms, 10000);
    assert_int_equal(cfg.h2_max_streams, 100);
    config_free(&cfg);
    assert_null(cfg.database_url);
    assert_null(cfg.cors_origins);
}

static void test_every_value_set(void **state)
{
    (void)state;
    setenv("DATABASE_URL", "postgres://app:s3cret@db.internal:5432/tenantd", 1);
    setenv("DATABASE_OWNER_URL", "postgresql://owner:0wner@db.internal/tenantd", 1);
    setenv("REDIS_URL", "redis://:pw@cache.internal:6380/3", 1);
    setenv("TENANTD_LISTEN", "0.0.0.0:9000", 1);
    setenv("TENANTD_TLS_LISTEN", "[::]:9443", 1);
    setenv("TENANTD_THREADS", "3", 1);
    setenv("TENANTD_JWT_KEYS", "/etc/tenantd/jwks.json", 1);
    setenv("TENANTD_POLICIES", "/etc/tenantd/policies", 1);
    setenv("TENANTD_MIGRATIONS", "/usr/share/tenantd/migrations", 1);
    setenv("TENANTD_CORS_ORIGINS", " https://app.example.com , http://localhost:5173,,", 1);
    setenv("TENANTD_LOG_LEVEL", "debug", 1);
    setenv("TENANTD_MAX_BODY_BYTES", "1024", 1);
    setenv("TENANTD_DB_POOL_SIZE", "64", 1);
    setenv("TENANTD_DB_QUEUE_MAX", "1", 1);
    setenv("TENANTD_DB_QUERY_TIMEOUT_MS", "600000", 1);
    setenv("TENANTD_REDIS_TIMEOUT_MS", "10", 1);
    setenv("TENANTD_IDLE_TIMEOUT_MS", "100", 1);
    setenv("TENANTD_SHUTDOWN_TIMEOUT_MS", "0", 1);
    setenv("TENANTD_H2_MAX_STREAMS", "10000", 1);
    config_t cfg;
    char err[512] = "";
    if (config_load(&cfg, err, sizeof(err)) != 0)
        fail_msg("refused: %s", err);
    assert_string_equal(cfg.database_url, "postgres://app:s3cret@db.internal:5432/tenantd");
    assert_string_equal(cfg.database_owner_url, "postgresql://owner:0wner@db.internal/tenantd");
    assert_string_equal(cfg.redis.host, "cache.internal");
    assert_int_equal(cfg.redis.port, 6380);
    assert_string_equal(cfg.redis.password, "pw");
    assert_int_equal(cfg.redis.db, 3);
    assert_string_equal(cfg.listen.host, "0.0.0.0");
    assert_int_equal(cfg.listen.port, 9000);
    assert_true(cfg.tls_enabled);
    assert_string_equal(cfg.tls_listen.host, "::");
    assert_int_equal(cfg.tls_listen.port, 9443);
    assert_int_equal(cfg.threads, 3);
    assert_string_equal(cfg.jwt_keys, "/etc/tenantd/jwks.json");
    assert_string_equal(cfg.policies_dir, "/etc/tenantd/policies");
    assert_string_equal(cfg.migrations_dir, "/usr/share/tenantd/migrations");
    assert_int_equal(cfg.cors_origins_count, 2);
    assert_string_equal(cfg.cors_origins[0], "https://app.example.com");
    assert_string_equal(cfg.cors_origins[1], "http://localhost:5173");
    assert_null(cfg.cors_origins[2]);
    assert_int_equal(cfg.log_level, CONFIG_LOG_DEBUG);
    assert_int_equal(cfg.max_body_bytes, 1024);
    assert_int_equal(cfg.db_pool_size, 64);
    assert_int_equal(cfg.db_queue_max, 1);
    assert_int_equal(cfg.db_query_timeout_ms, 600000);
    assert_int_equal(cfg.redis_timeout_ms, 10);
    assert_int_equal(cfg.idle_timeout_ms, 100);
    assert_int_equal(cfg.shutdown_timeout_ms, 0);
    assert_int_equal(cfg.h2_max_streams, 10000);
    config_free(&cfg);
}

static void test_tls_disabled(void **state)
{
    (void)state;
    /* With TLS off, the cert and key are not looked at at all. */
    setenv("TENANTD_TLS_CERT", "/nonexistent/cert.pem", 1);
    setenv("TENANTD_TLS_KEY", "", 1);
    config_t cfg;
    expect_good("TENANTD_TLS_LISTEN", "", &cfg);
    assert_false(cfg.tls_enabled);
    assert_null(cfg.tls_cert);
    assert_null(cfg.tls_key);
    config_free(&cfg);
}

static void test_bad_values_name_the_variable(void **state)
{
    (void)state;
    expect_bad("DATABASE_URL", "mysql://u:p@h/db");
    expect_bad("DATABASE_URL", "");
    expect_bad("DATABASE_URL", "postgresql://u:p@h/db\r\nX-Injected: 1");
    expect_bad("DATABASE_OWNER_URL", "host=localhost dbname=x");
    expect_bad("REDIS_URL", "http://127.0.0.1:6379");
    expect_bad("REDIS_URL", "redis://");
    expect_bad("REDIS_URL", "redis://h:6379/16");
    expect_bad("TENANTD_LISTEN", "8080");
    expect_bad("TENANTD_LISTEN", "");
    expect_bad("TENANTD_LISTEN", "localhost:0");
    expect_bad("TENANTD_TLS_LISTEN", "localhost");
    expect_bad("TENANTD_TLS_LISTEN", "localhost:65536");

    expect_bad("TENANTD_TLS_CERT", "");
    expect_bad("TENANTD_TLS_CERT", "/nonexistent/tenantd/cert.pem");
    setenv("TENANTD_TLS_CERT", cert_path, 1);
    expect_bad("TENANTD_TLS_KEY", "");
    expect_bad("TENANTD_TLS_KEY", "/nonexistent/tenantd/key.pem");
    setenv("TENANTD_TLS_KEY", key_path, 1);

    expect_bad("TENANTD_THREADS", "0");
    expect_bad("TENANTD_THREADS", "257");
    expect_bad("TENANTD_THREADS", "");
    expect_bad("TENANTD_THREADS", "four");
    expect_bad("TENANTD_THREADS", "4x");
    expect_bad("TENANTD_THREADS", "99999999999999999999999");
    expect_bad("TENANTD_JWT_KEYS", "");
    expect_bad("TENANTD_POLICIES", "");
    expect_bad("TENANTD_MIGRATIONS", "");
    expect_bad("TENANTD_CORS_ORIGINS", "app.example.com");
    expect_bad("TENANTD_CORS_ORIGINS", "https://app.example.com/");
    expect_bad("TENANTD_CORS_ORIGINS", "https://ok.example.com,ftp://x");
    expect_bad("TENANTD_CORS_ORIGINS", "http://");
    expect_bad("TENANTD_CORS_ORIGINS", "https://");
    expect_bad("TENANTD_CORS_ORIGINS", "http:///path");
    expect_bad("TENANTD_LOG_LEVEL", "");
    expect_bad("TENANTD_LOG_LEVEL", "verbose");
    expect_bad("TENANTD_LOG_LEVEL", "INFO");
    expect_bad("TENANTD_MAX_BODY_BYTES", "1023");
    expect_bad("TENANTD_MAX_BODY_BYTES", "1073741825");
    expect_bad("TENANTD_MAX_BODY_BYTES", "-1");
    expect_bad("TENANTD_DB_POOL_SIZE", "0");
    expect_bad("TENANTD_DB_POOL_SIZE", "65");
    expect_bad("TENANTD_DB_QUEUE_MAX", "0");
    expect_bad("TENANTD_DB_QUEUE_MAX", "1048577");
    expect_bad("TENANTD_DB_QUERY_TIMEOUT_MS", "9");
    expect_bad("TENANTD_DB_QUERY_TIMEOUT_MS", "600001");
    expect_bad("TENANTD_REDIS_TIMEOUT_MS", "9");
    expect_bad("TENANTD_REDIS_TIMEOUT_MS", "1e3");
    expect_bad("TENANTD_IDLE_TIMEOUT_MS", "99");
    expect_bad("TENANTD_IDLE_TIMEOUT_MS", "3600001");
    expect_bad("TENANTD_SHUTDOWN_TIMEOUT_MS", "-1");
    expect_bad("TENANTD_SHUTDOWN_TIMEOUT_MS", "600001");
    expect_bad("TENANTD_H2_MAX_STREAMS", "0");
    expect_bad("TENANTD_H2_MAX_STREAMS", "10001");
}

/* The password in a URL must not leak into the one-line error, whatever makes the URL bad. */
static void test_secrets_stay_out_of_errors(void **state)
{
    (void)state;
    static const char *const bad_db[] = {
        "mysql://app:Sup3rS3cretPw@db/x",
        "postgresql://app:Sup3rS3cretPw@db/x\n",
        "postgres://app:Sup3rS3cretPw@db/x\rmore",
        "Sup3rS3cretPw",
    };
    static const char *const bad_redis[] = {
        "rediss://:Sup3rS3cretPw@cache:6379/0",
        "redis://:Sup3rS3cretPw@cache:99999/0",
        "redis://:Sup3rS3cretPw@cache:6379/99",
        "redis://Sup3rS3cretPw@cache:6379",
        "redis://:Sup3rS3cretPw@",
        "Sup3rS3cretPw",
    };
    config_t cfg;
    char err[512];
    for (size_t i = 0; i < sizeof(bad_db) / sizeof(bad_db[0]); i++) {
        for (int owner = 0; owner < 2; owner++) {
            const char *name = owner ? "DATABASE_OWNER_URL" : "DATABASE_URL";
            memset(err, 0, sizeof(err));
            setenv(name, bad_db[i], 1);
            assert_int_equal(config_load(&cfg, err, sizeof(err)), -1);
            config_free(&cfg);
            assert_int_equal(strncmp(err, name, strlen(name)), 0);
            if (strstr(err, "Sup3rS3cretPw") != NULL)
                fail_msg("%s leaked into: %s", name, err);
            unsetenv(name);
        }
    }
    for (size_t i = 0; i < sizeof(bad_redis) / sizeof(bad_redis[0]); i++) {
        memset(err, 0, sizeof(err));
        setenv("REDIS_URL", bad_redis[i], 1);
        assert_int_equal(config_load(&cfg, err, sizeof(err)), -1);
        config_free(&cfg);
        assert_int_equal(strncmp(err, "REDIS_URL:", 10), 0);
        if (strstr(err, "Sup3rS3cretPw") != NULL)
            fail_msg("REDIS_URL leaked into: %s", err);
    }
}

/* A short error buffer truncates the message instead of overflowing; the name still leads. */
static void test_small_error_buffer(void **state)
{
    (void)state;
    config_t cfg;
    char err[16];
    memset(err, 'x', sizeof(err));
    setenv("TENANTD_LOG_LEVEL", "loud", 1);
    assert_int_equal(config_load(&cfg, err, 12), -1);
    config_free(&cfg);
    assert_string_equal(err, "TENANTD_LOG");
    assert_int_equal(err[12], 'x');
}

static void test_parse_addr(void **state)
{
    (void)state;
    config_addr_t a;
    assert_int_equal(config_parse_addr("127.0.0.1:8080", &a), 0);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 8080);
    assert_int_equal(config_parse_addr("localhost:1", &a), 0);
    assert_string_equal(a.host, "localhost");
    assert_int_equal(a.port, 1);
    assert_int_equal(config_parse_addr("my-host.example.com:65535", &a), 0);
    assert_string_equal(a.host, "my-host.example.com");
    assert_int_equal(a.port, 65535);
    assert_int_equal(config_parse_addr("[::1]:8443", &a), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 8443);
    assert_int_equal(config_parse_addr("[::]:80", &a), 0);
    assert_string_equal(a.host, "::");
    assert_int_equal(config_parse_addr("[2001:db8::42]:00080", &a), 0);
    assert_string_equal(a.host, "2001:db8::42");
    assert_int_equal(a.port, 80);

    /* a host of 255 characters fits, 256 does not */
    char longhost[300];
    memset(longhost, 'a', 255);
    strcpy(longhost + 255, ":80");
    assert_int_equal(config_parse_addr(longhost, &a), 0);
    assert_int_equal(strlen(a.host), 255);
    memset(longhost, 'a', 256);
    strcpy(longhost + 256, ":80");
    assert_int_equal(config_parse_addr(longhost, &a), -1);

    static const char *const bad[] = {
        "",           "8080",          ":8080",         "localhost",    "localhost:",    "localhost:0",
        "localhost:65536", "localhost:99999", "localhost:123456", "localhost:-1", "localhost:+80", "localhost: 80",
        "localhost:80 ", "local host:80", "host/x:80",   "[::1]",        "[::1]8080",     "[::1]:",
        "[]:80",      "[::1:80",       "::1]:80x",      "[::1]:80]",    "[::1]x:80",     "ho\nst:80",
        "[fe80::1%eth0]:80", "host:8o",  "host:0x50",    "::1:8080",     "a:b:80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&a, 0x5a, sizeof(a));
        if (config_parse_addr(bad[i], &a) != -1)
            fail_msg("accepted \"%s\" as host \"%s\" port %u", bad[i], a.host, a.port);
    }
    assert_int_equal(config_parse_addr(NULL, &a), -1);
}

static void test_parse_redis_url(void **state)
{
    (void)state;
    config_redis_t r;
    assert_int_equal(config_parse_redis_url("redis://127.0.0.1:6379/0", &r), 0);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.port, 6379);
    assert_string_equal(r.password, "");
    assert_int_equal(r.db, 0);

    assert_int_equal(config_parse_redis_url("redis://cache", &r), 0);
    assert_string_equal(r.host, "cache");
    assert_int_equal(r.port, 6379);
    assert_int_equal(r.db, 0);

    assert_int_equal(config_parse_redis_url("redis://cache/", &r), 0);
    assert_int_equal(r.port, 6379);
    assert_int_equal(r.db, 0);

    assert_int_equal(config_parse_redis_url("redis://cache/15", &r), 0);
    assert_int_equal(r.port, 6379);
    assert_int_equal(r.db, 15);

    assert_int_equal(config_parse_redis_url("redis://:hunter2@cache:6380/7", &r), 0);
    assert_string_equal(r.host, "cache");
    assert_int_equal(r.port, 6380);
    assert_string_equal(r.password, "hunter2");
    assert_int_equal(r.db, 7);

    /* user:password (the user is ignored), and a password holding '@' and ':' */
    assert_int_equal(config_parse_redis_url("redis://default:pw@cache", &r), 0);
    assert_string_equal(r.password, "pw");
    assert_string_equal(r.host, "cache");
    assert_int_equal(config_parse_redis_url("redis://:p@ss:w0rd@cache:7000", &r), 0);
    assert_string_equal(r.password, "p@ss:w0rd");
    assert_string_equal(r.host, "cache");
    assert_int_equal(r.port, 7000);
    assert_int_equal(config_parse_redis_url("redis://:@cache", &r), 0);
    assert_string_equal(r.password, "");

    /* IPv6, with and without a port */
    assert_int_equal(config_parse_redis_url("redis://[::1]:6390/2", &r), 0);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 6390);
    assert_int_equal(r.db, 2);
    assert_int_equal(config_parse_redis_url("redis://[::1]", &r), 0);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 6379);
    assert_int_equal(config_parse_redis_url("redis://:pw@[2001:db8::1]/4", &r), 0);
    assert_string_equal(r.host, "2001:db8::1");
    assert_int_equal(r.port, 6379);
    assert_string_equal(r.password, "pw");
    assert_int_equal(r.db, 4);

    /* a password of 255 bytes fits, 256 does not */
    char url[600];
    strcpy(url, "redis://:");
    memset(url + 9, 'p', 255);
    strcpy(url + 9 + 255, "@h");
    assert_int_equal(config_parse_redis_url(url, &r), 0);
    assert_int_equal(strlen(r.password), 255);
    memset(url + 9, 'p', 256);
    strcpy(url + 9 + 256, "@h");
    assert_int_equal(config_parse_redis_url(url, &r), -1);

    static const char *const bad[] = {
        "",
        "redis:/cache",
        "rediss://cache:6379",
        "REDIS://cache",
        "http://cache:6379",
        "unix:///tmp/redis.sock",
        "redis://",
        "redis:///0",
        "redis://:pw@",
        "redis://:pw@/1",
        "redis://nopasscolon@cache",
        "redis://cache:",
        "redis://cache:0",
        "redis://cache:65536",
        "redis://cache:port",
        "redis://cache/16",
        "redis://cache/100",
        "redis://cache/-1",
        "redis://cache/1x",
        "redis://cache/0/",
        "redis://cache/0?timeout=1",
        "redis://[::1",
        "redis://[]:6379",
        "redis://ca che",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_parse_redis_url(bad[i], &r) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(config_parse_redis_url(NULL, &r), -1);
}

static void test_parse_log_level(void **state)
{
    (void)state;
    config_log_level_t l;
    assert_int_equal(config_parse_log_level("debug", &l), 0);
    assert_int_equal(l, CONFIG_LOG_DEBUG);
    assert_int_equal(config_parse_log_level("info", &l), 0);
    assert_int_equal(l, CONFIG_LOG_INFO);
    assert_int_equal(config_parse_log_level("warn", &l), 0);
    assert_int_equal(l, CONFIG_LOG_WARN);
    assert_int_equal(config_parse_log_level("error", &l), 0);
    assert_int_equal(l, CONFIG_LOG_ERROR);
    assert_int_equal(config_parse_log_level("warning", &l), -1);
    assert_int_equal(config_parse_log_level("Error", &l), -1);
    assert_int_equal(config_parse_log_level("info ", &l), -1);
    assert_int_equal(config_parse_log_level("", &l), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, env_setup),
        cmocka_unit_test_setup(test_every_value_set, env_setup),
        cmocka_unit_test_setup(test_tls_disabled, env_setup),
        cmocka_unit_test_setup(test_bad_values_name_the_variable, env_setup),
        cmocka_unit_test_setup(test_secrets_stay_out_of_errors, env_setup),
        cmocka_unit_test_setup(test_small_error_buffer, env_setup),
        cmocka_unit_test(test_parse_addr),
        cmocka_unit_test(test_parse_redis_url),
        cmocka_unit_test(test_parse_log_level),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
