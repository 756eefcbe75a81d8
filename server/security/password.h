/*
 * password: argon2id password hashes through libsodium (crypto_pwhash_str, INTERACTIVE limits:
 * 64 MiB, ~70 ms). These calls are slow on purpose: call them only from workpool threads, never
 * on an event loop. password_dummy_hash gives a valid hash of a random secret, verified against
 * when the account does not exist so that an unknown e-mail and a wrong password take the same time.
 */
#ifndef TENANTD_SECURITY_PASSWORD_H
#define TENANTD_SECURITY_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#include <sodium.h>

#define PASSWORD_MIN_LEN 8
#define PASSWORD_MAX_LEN 4096
#define PASSWORD_HASH_MAX crypto_pwhash_STRBYTES

/* Initialises libsodium and the dummy hash; 0 or -1. Call once at start-up. */
int password_init(void);

/* Hashes pw (len bytes) into out (PASSWORD_HASH_MAX bytes, NUL-terminated); 0 or -1 (out of memory). */
int password_hash(const char *pw, size_t len, char *out);

/* True when pw matches hash. */
bool password_verify(const char *hash, const char *pw, size_t len);

/* True when hash was made with other parameters than the current ones (rehash after login). */
bool password_needs_rehash(const char *hash);

/* A hash no password matches, for timing-equal failures. */
const char *password_dummy_hash(void);

#endif
