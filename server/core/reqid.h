/*
 * reqid: request identifiers. An inbound x-request-id is kept only when it is sane (1–128 chars of
 * [A-Za-z0-9._:-]); anything else (CR/LF, spaces, oversize) is replaced by a fresh random id of
 * 32 lowercase hex characters.
 */
#ifndef TENANTD_CORE_REQID_H
#define TENANTD_CORE_REQID_H

#include <stdbool.h>
#include <stddef.h>

#define REQID_MAX_LEN 128

/* True when the len bytes at s may be echoed as a request id. */
bool reqid_is_sane(const char *s, size_t len);

/* Writes a new random id (32 hex chars + NUL) into out, which holds at least 33 bytes. */
void reqid_generate(char *out);

/* Fills out (REQID_MAX_LEN + 1 bytes) with the inbound id when sane (in may be NULL), else a new one; returns its length. */
size_t reqid_choose(const char *in, size_t in_len, char *out);

#endif
