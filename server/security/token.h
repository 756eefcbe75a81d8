/*
 * token: tenantd's access tokens (JWTs, CONTRACT.md §4) — the signing key set, signing, and a
 * verification that trusts nothing in a token the server did not check itself (DESIGN.md §5).
 *
 * The key set is a JWKS file with private parts. Its first key signs; every key verifies. Each key
 * pins exactly one algorithm (ES256 for EC P-256 keys, HS256 for "oct" keys, the latter only when
 * the loader is told HS256 is allowed); a token's `alg` header must equal the algorithm of the key
 * its `kid` names, so `none`, and HS256 keyed with a published public key, can never verify.
 *
 * Verification does not go through libjwt (whose jwt_decode trusts the token's `alg`): the header
 * and payload are parsed here with jansson (duplicate members refused), signatures are checked
 * directly with OpenSSL 3 (ES256: the JWS raw R||S form, 64 bytes, converted to DER for
 * EVP_DigestVerify; HS256: HMAC-SHA-256 compared in constant time). Checks, in order: length cap,
 * exactly three segments of strict unpadded base64url, header (object; `alg` and `kid` strings;
 * `typ` absent or "JWT"; no `jku`/`jwk`/`x5u`/`x5c`/`crit`), key by `kid`, algorithm equality,
 * signature, then the claims with their types, issuer, audience, `exp` and `nbf`.
 *
 * A loaded key set is immutable and holds no mutable shared state: any number of threads may sign
 * and verify with one set at once. Nothing here logs, and no error text ever carries key material.
 */
#ifndef TENANTD_SECURITY_TOKEN_H
#define TENANTD_SECURITY_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest token token_verify accepts, in bytes (longer: TOKEN_TOO_LONG). */
#define TOKEN_MAX_LEN 8192

/* Most roles a token carries. */
#define TOKEN_MAX_ROLES 16

/* Longest `sub`, `tid`, `sid` or role value in bytes (the claim buffers hold one more, the NUL). */
#define TOKEN_CLAIM_MAX 63

/* Longest key id in bytes; key ids use only [A-Za-z0-9._-]. */
#define TOKEN_KID_MAX 64

/* Seconds a token's `nbf` may lie in the future (clock skew between instances). */
#define TOKEN_NBF_LEEWAY 30

/* Default number of keys `rotate` keeps (the new one included). */
#define TOKEN_ROTATE_KEEP_DEFAULT 3

/* A loaded key set; immutable after load, shared by all threads. */
typedef struct token_keyset token_keyset_t;

/* The claims of an access token. Strings are NUL-terminated, 1..TOKEN_CLAIM_MAX bytes. */
typedef struct {
    char sub[64]; /* user id (uuid text) */
    char tid[64]; /* tenant id (uuid text) */
    char sid[64]; /* session id */
    char roles[TOKEN_MAX_ROLES][64];
    int nroles;
    int64_t iat, exp, nbf; /* nbf 0 = absent */
} token_claims_t;

/* Verification results: X(NAME, "name"). TOKEN_OK is 0; every other value means "refuse (401)". */
#define TOKEN_STATUS_MAP(X)                                                                                          \
    X(OK, "ok")                       /* valid: signature, header and claims all checked */                       \
    X(MALFORMED, "malformed")         /* not three segments of strict base64url, or empty */                      \
    X(TOO_LONG, "too_long")           /* over TOKEN_MAX_LEN bytes */                                              \
    X(BAD_HEADER, "bad_header")       /* header not an object, alg/kid missing, bad typ, forbidden member */      \
    X(UNKNOWN_KID, "unknown_kid")     /* kid names no key of our set */                                           \
    X(BAD_ALG, "bad_alg")             /* alg differs from the algorithm pinned to that key */                     \
    X(BAD_SIGNATURE, "bad_signature") /* signature does not verify with that key */                               \
    X(EXPIRED, "expired")             /* exp <= now */                                                            \
    X(NOT_YET_VALID, "not_yet_valid") /* nbf > now + TOKEN_NBF_LEEWAY */                                          \
    X(BAD_CLAIMS, "bad_claims")       /* payload not an object, a claim missing or of the wrong type/size */      \
    X(BAD_ISSUER, "bad_issuer")       /* iss missing or not the configured issuer */                              \
    X(BAD_AUDIENCE, "bad_audience")   /* aud missing or neither the audience nor an array containing it */

typedef enum {
#define TOKEN_STATUS_ENUM_(name, str) TOKEN_##name,
    TOKEN_STATUS_MAP(TOKEN_STATUS_ENUM_)
#undef TOKEN_STATUS_ENUM_
} token_status_t;

/* Loads the JWKS file at path (at most 1 MiB) for issuer/audience (both non-empty); returns 0 with
 * *out set (free with token_keyset_free), or -1 with one sentence in err naming the file and what
 * is wrong (never key material). HS256 ("oct") keys are an error unless allow_hs256. */
int token_keyset_load(const char *path, bool allow_hs256, const char *issuer, const char *audience,
                      token_keyset_t **out, char *err, size_t errlen);

/* Like token_keyset_load for JWKS text json (len bytes); name stands for the file in errors. */
int token_keyset_load_json(const char *json, size_t len, const char *name, bool allow_hs256, const char *issuer,
                           const char *audience, token_keyset_t **out, char *err, size_t errlen);

/* Frees a key set (NULL is fine); secret key bytes are wiped. */
void token_keyset_free(token_keyset_t *ks);

/* The public JWKS {"keys":[{kty,crv,x,y,kid,alg,use}]} (compact JSON, NUL-terminated, owned by ks),
 * in key-set order; HS256 keys are never published. *len (when len is not NULL) gets its length. */
const char *token_keyset_public_jwks(const token_keyset_t *ks, size_t *len);

/* Number of keys in the set (at least 1). */
size_t token_keyset_size(const token_keyset_t *ks);

/* Key id of key i (0 = the signing key), or NULL when i is out of range. */
const char *token_keyset_kid(const token_keyset_t *ks, size_t i);

/* Algorithm ("ES256" or "HS256") pinned to key i, or NULL when i is out of range. */
const char *token_keyset_alg(const token_keyset_t *ks, size_t i);

/* Signs claims with the first key: header {alg,typ:"JWT",kid}, claims sub,tid,sid,roles,iat,exp,
 * (nbf when non-zero),iss,aud. Writes the NUL-terminated JWT to out and returns its length, or -1
 * when a claim is empty/too long/nroles is out of 0..TOKEN_MAX_ROLES, exp <= iat, or outcap is too small. */
int token_sign(const token_keyset_t *ks, const token_claims_t *claims, char *out, size_t outcap);

/* Verifies jwt (len bytes, no NUL needed) at time now (Unix seconds) with every check listed at the
 * top of this file; on TOKEN_OK fills *out (when not NULL), otherwise zeroes it. */
token_status_t token_verify(const token_keyset_t *ks, const char *jwt, size_t len, int64_t now, token_claims_t *out);

/* The claim checks of token_verify alone, on a payload (JSON text, len bytes) whose signature the
 * caller has already verified: types and sizes, iss, aud, exp, nbf. Fills/zeroes *out likewise. */
token_status_t token_check_claims(const token_keyset_t *ks, const char *payload, size_t len, int64_t now,
                                  token_claims_t *out);

/* Stable lowercase name of s ("ok", "bad_signature", ...); "unknown" for a value outside the enum. */
const char *token_status_name(token_status_t s);

/* Creates a new key set holding one fresh ES256 (P-256) key with its RFC 7638 thumbprint as kid,
 * as indented JWKS text with a final newline; returns 0 with *out_json malloc'ed (free()), or -1. */
int token_keyset_generate_json(char **out_json);

/* Rotates the key set in json (len bytes; it must load, HS256 keys included): prepends a fresh ES256
 * key (which then signs) and keeps at most keep (>= 1) keys, dropping the oldest (last) ones; other
 * members of kept keys are preserved. Returns 0 with *out_json malloc'ed (free()), or -1 with err. */
int token_keyset_rotate_json(const char *json, size_t len, int keep, char **out_json, char *err, size_t errlen);

/* Encodes len bytes as unpadded base64url into out (NUL-terminated); returns the length, or -1 when
 * outcap is too small. */
int token_b64url_encode(const void *in, size_t len, char *out, size_t outcap);

/* Decodes strict unpadded base64url (only [A-Za-z0-9_-], no '=', canonical trailing bits) into
 * out; returns the number of bytes, or -1 when in is not strict base64url or outcap is too small. */
int token_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outcap);

#endif
