/*
 * log: JSON-lines writer (see log.h). Lines are built in a stack buffer of 4 KiB (longer messages
 * are truncated, never split) and written with one write(2) to stdout.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096
/* Free text (msg, path) stops this far before the end of the line, short values (request id,
 * method, tenant) half as far, so the keys, numbers and closing characters written after them
 * always fit and a truncated line is still one JSON object. */
#define LOG_TEXT_LIMIT (LOG_LINE_MAX - 512)
#define LOG_VALUE_LIMIT (LOG_LINE_MAX - 256)

static atomic_int log_min_level = CONFIG_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(config_log_level_t level)
{
    atomic_store(&log_min_level, (int)level);
}

int log_enabled(config_log_level_t level)
{
    return (int)level >= atomic_load_explicit(&log_min_level, memory_order_relaxed);
}

void log_json_escape(char *buf, size_t cap, size_t *pos, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t p = *pos;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (p + 7 >= cap)
            break;
        if (c == '"' || c == '\\') {
            buf[p++] = '\\';
            buf[p++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            buf[p++] = '\\';
            buf[p++] = 'u';
            buf[p++] = '0';
            buf[p++] = '0';
            buf[p++] = hex[c >> 4];
            buf[p++] = hex[c & 15];
        } else {
            buf[p++] = (char)c;
        }
    }
    *pos = p;
}

static void append(char *buf, size_t *pos, const char *s)
{
    size_t n = strlen(s);
    if (*pos + n >= LOG_LINE_MAX - 2)
        n = LOG_LINE_MAX - 2 - *pos;
    memcpy(buf + *pos, s, n);
    *pos += n;
}

/* Starts a line with ts and level. */
static void begin_line(char *buf, size_t *pos, config_log_level_t level)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    *pos = (size_t)snprintf(buf, LOG_LINE_MAX, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\"",
                            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                            ts.tv_nsec / 1000000, level_names[level]);
}

static void field_str(char *buf, size_t *pos, const char *name, const char *value, size_t len, size_t limit)
{
    append(buf, pos, ",\"");
    append(buf, pos, name);
    append(buf, pos, "\":\"");
    log_json_escape(buf, limit, pos, value, len);
    append(buf, pos, "\"");
}

static void end_line(char *buf, size_t pos)
{
    buf[pos++] = '}';
    buf[pos++] = '\n';
    ssize_t r = write(STDOUT_FILENO, buf, pos);
    (void)r;
}

void log_msg(config_log_level_t level, const char *request_id, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char buf[LOG_LINE_MAX], msg[LOG_LINE_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(msg))
        n = sizeof(msg) - 1;
    size_t pos;
    begin_line(buf, &pos, level);
    field_str(buf, &pos, "msg", msg, (size_t)n, LOG_TEXT_LIMIT);
    if (request_id != NULL)
        field_str(buf, &pos, "request_id", request_id, strlen(request_id), LOG_VALUE_LIMIT);
    end_line(buf, pos);
}

void log_access(const char *request_id, const char *method, size_t method_len, const char *path, size_t path_len, int status,
                double duration_ms, const char *tenant, int http_version)
{
    if (!log_enabled(CONFIG_LOG_INFO))
        return;
    char buf[LOG_LINE_MAX], num[96];
    size_t pos;
    begin_line(buf, &pos, CONFIG_LOG_INFO);
    field_str(buf, &pos, "msg", "access", 6, LOG_VALUE_LIMIT);
    field_str(buf, &pos, "request_id", request_id, strlen(request_id), LOG_VALUE_LIMIT);
    field_str(buf, &pos, "method", method, method_len, LOG_VALUE_LIMIT);
    if (path_len > 1024)
        path_len = 1024;
    field_str(buf, &pos, "path", path, path_len, LOG_TEXT_LIMIT);
    snprintf(num, sizeof(num), ",\"status\":%d,\"duration_ms\":%.3f,\"http\":\"%d.%d\"", status, duration_ms,
             http_version >> 8, http_version & 0xff);
    append(buf, &pos, num);
    if (tenant != NULL)
        field_str(buf, &pos, "tenant", tenant, strlen(tenant), LOG_VALUE_LIMIT);
    end_line(buf, pos);
}
