/*
 * log: structured logging as JSON lines on stdout, one write(2) per line so lines from several
 * threads never interleave. Every line has "ts", "level" and "msg"; request-scoped lines carry
 * "request_id". Callers never pass secrets; values are JSON-escaped here.
 */
#ifndef TENANTD_CORE_LOG_H
#define TENANTD_CORE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

/* Sets the minimum level written; lines below it are dropped cheaply. */
void log_set_level(config_log_level_t level);

/* True when a line of this level would be written. */
int log_enabled(config_log_level_t level);

/* Writes {"ts","level","msg", "request_id"?} with msg formatted printf-style; request_id may be NULL. */
void log_msg(config_log_level_t level, const char *request_id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* One access-log line; tenant may be NULL (unknown). */
void log_access(const char *request_id, const char *method, size_t method_len, const char *path, size_t path_len, int status,
                double duration_ms, const char *tenant, int http_version);

#define log_debug(rid, ...) log_msg(CONFIG_LOG_DEBUG, rid, __VA_ARGS__)
#define log_info(rid, ...) log_msg(CONFIG_LOG_INFO, rid, __VA_ARGS__)
#define log_warn(rid, ...) log_msg(CONFIG_LOG_WARN, rid, __VA_ARGS__)
#define log_error(rid, ...) log_msg(CONFIG_LOG_ERROR, rid, __VA_ARGS__)

/* Appends s (len bytes) JSON-escaped, without quotes, to buf at *pos (bounded by cap; truncates). */
void log_json_escape(char *buf, size_t cap, size_t *pos, const char *s, size_t len);

#endif
