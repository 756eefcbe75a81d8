/*
 * token: access-token key set, signing and verification (see token.h for the contract).
 *
 * How it works. A key set is loaded once from JWKS JSON into an array of keys, each with its kid,
 * its one pinned algorithm, an OpenSSL EVP_PKEY (ES256) or secret bytes (HS256), the precomputed
 * base64url of the header token_sign writes, and the public JWKS text built at load. Nothing in a
 * loaded set is written again, and every signing or verifying call creates its own EVP context, so
 * the set needs no lock. Verification walks the token once for segments and alphabet, decodes into
 * stack buffers (a token is at most TOKEN_MAX_LEN bytes), parses header and payload with jansson
 * and checks each step in the order token.h lists; the first failing step decides the status.
 *
 * ES256 signatures in JWS (RFC 7518 §3.4) are R||S, two 32-byte big-endian integers; OpenSSL
 * signs and verifies DER ECDSA-Sig-Value, so both directions convert through ECDSA_SIG.
 */
#include "security/token.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

/* ------------------------------------------------------------------------------------------------
 * Types and limits
 * ---------------------------------------------------------------------------------------------- */

#define KEYSET_FILE_MAX (1024 * 1024) /* largest key set file read */
#define KEYSET_MAX_KEYS 64            /* most keys in one set */
#define HS256_MIN_SECRET 32           /* bytes: the HMAC-SHA-256 output size (RFC 7518 §3.2) */
#define HS256_MAX_SECRET 1024
#define EC_COORD 32                   /* P-256 coordinate / scalar / R / S size */
#define ES256_SIG_LEN (2 * EC_COORD)
#define AUD_MAX_ITEMS 16              /* most entries of an `aud` array looked at */
#define DECODED_MAX (TOKEN_MAX_LEN / 4 * 3)

typedef enum { ALG_ES256, ALG_HS256 } alg_t;

static const char *const alg_names[] = {[ALG_ES256] = "ES256", [ALG_HS256] = "HS256"};

typedef struct {
    char kid[TOKEN_KID_MAX + 1];
    size_t kid_len;
    alg_t alg;
    EVP_PKEY *pkey;         /* ES256: public key, with the private part when has_private */
    bool has_private;
    unsigned char *secret;  /* HS256 secret (wiped on free) */
    size_t secret_len;
    char *header_b64;       /* base64url of {"alg","typ":"JWT","kid"} for token_sign */
    size_t header_b64_len;
} token_key_t;

struct token_keyset {
    token_key_t *keys;
    size_t nkeys;
    char *issuer;
    size_t issuer_len;
    char *audience;
    size_t audience_len;
    char *public_jwks;
    size_t public_jwks_len;
    EVP_MD *sha256; /* fetched once; EVP_MD objects are immutable and shareable */
};

static const char *const status_names[] = {
#define TOKEN_STATUS_NAME_(name, str) [TOKEN_##name] = str,
    TOKEN_STATUS_MAP(TOKEN_STATUS_NAME_)
#undef TOKEN_STATUS_NAME_
};

const char *token_status_name(token_status_t s)
{
    if ((unsigned)s >= sizeof(status_names) / sizeof(status_names[0]))
        return "unknown";
    return status_names[s];
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------------------------------
 * base64url (RFC 4648 §5, unpadded, strict)
 * ---------------------------------------------------------------------------------------------- */

static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of c in the base64url alphabet, or -1. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int token_b64url_encode(const void *in, size_t len, char *out, size_t outcap)
{
    const unsigned char *p = in;
    size_t need = len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
    if (out == NULL || need + 1 > outcap || need > INT32_MAX)
        return -1;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64url_alphabet[v >> 18 & 63];
        out[o++] = b64url_alphabet[v >> 12 & 63];
        out[o++] = b64url_alphabet[v >> 6 & 63];
    }
    out[o] = '\0';
    return (int)o;
}

int token_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outcap)
{
    if (in == NULL || len % 4 == 1)
        return -1;
    size_t need = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
    if (need > outcap || need > INT32_MAX)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    /* Leftover bits (2 or 4) must be zero: one encoding per byte string. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (int)o;
}

/* Decodes a JSON string member that must be base64url of exactly want bytes (want 0: 1..max). */
static int b64_member(const json_t *obj, const char *name, unsigned char *out, size_t want, size_t max)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_string(v))
        return -1;
    int n = token_b64url_decode(json_string_value(v), json_string_length(v), out, want ? want : max);
    if (n < 0 || (want && (size_t)n != want) || n == 0)
        return -1;
    return n;
}

/* ------------------------------------------------------------------------------------------------
 * Keys
 * ---------------------------------------------------------------------------------------------- */

static bool kid_valid(const char *s, size_t len)
{
    if (len == 0 || len > TOKEN_KID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(b64url_value(c) >= 0 || c == '.'))
            return false;
    }
    return true;
}

/* Builds a P-256 EVP_PKEY from raw coordinates and (when d != NULL) the private scalar, and checks
 * the point is on the curve and, with d, that d belongs to it. NULL on failure. */
static EVP_PKEY *ec_key_from_raw(const unsigned char x[EC_COORD], const unsigned char y[EC_COORD],
                                 const unsigned char *d)
{
    unsigned char point[1 + 2 * EC_COORD];
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, EC_COORD);
    memcpy(point + 1 + EC_COORD, y, EC_COORD);
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = NULL, *check = NULL;
    BIGNUM *priv = NULL;
    OSSL_PARAM *params = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld == NULL)
        goto out;
    if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
        goto out;
    if (d != NULL) {
        priv = BN_secure_new();
        if (priv == NULL || BN_bin2bn(d, EC_COORD, priv) == NULL ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv))
            goto out;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, d != NULL ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) <= 0)
        goto out;
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (check == NULL || EVP_PKEY_public_check(check) <= 0 || (d != NULL && EVP_PKEY_pairwise_check(check) <= 0)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(priv);
    OPENSSL_cleanse(point, sizeof(point));
    return pkey;
}

static void key_clear(token_key_t *k)
{
    EVP_PKEY_free(k->pkey);
    if (k->secret != NULL) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    free(k->header_b64);
    memset(k, 0, sizeof(*k));
}

void token_keyset_free(token_keyset_t *ks)
{
    if (ks == NULL)
        return;
    for (size_t i = 0; i < ks->nkeys; i++)
        key_clear(&ks->keys[i]);
    free(ks->keys);
    free(ks->issuer);
    free(ks->audience);
    free(ks->public_jwks);
    EVP_MD_free(ks->sha256);
    free(ks);
}

/* Precomputes the base64url header token_sign writes for k. */
static int key_make_header(token_key_t *k)
{
    json_t *h = json_pack("{s:s, s:s, s:s#}", "alg", alg_names[k->alg], "typ", "JWT", "kid", k->kid, k->kid_len);
    char *text = h != NULL ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(h);
    if (text == NULL)
        return -1;
    size_t tlen = strlen(text);
    size_t cap = tlen / 3 * 4 + 5;
    k->header_b64 = malloc(cap);
    int n = k->header_b64 != NULL ? token_b64url_encode(text, tlen, k->header_b64, cap) : -1;
    free(text);
    if (n < 0)
        return -1;
    k->header_b64_len = (size_t)n;
    return 0;
}

/* Parses key i of the set (the JWK object jwk) into k and appends its public form to pub (ES256).
 * Returns 0, or -1 with err naming the key and what is wrong. */
static int key_load(const json_t *jwk, size_t i, const char *name, bool allow_hs256, token_key_t *k, json_t *pub,
                    char *err, size_t errlen)
{
    if (!json_is_object(jwk)) {
        set_err(err, errlen, "%s: keys[%zu] is not an object", name, i);
        return -1;
    }
    const json_t *kid = json_object_get(jwk, "kid");
    if (!json_is_string(kid) || !kid_valid(json_string_value(kid), json_string_length(kid))) {
        set_err(err, errlen, "%s: keys[%zu]: \"kid\" must be 1..%d characters of [A-Za-z0-9._-]", name, i,
                TOKEN_KID_MAX);
        return -1;
    }
    k->kid_len = json_string_length(kid);
    memcpy(k->kid, json_string_value(kid), k->kid_len);
    k->kid[k->kid_len] = '\0';

    const json_t *use = json_object_get(jwk, "use");
    if (use != NULL && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0)) {
        set_err(err, errlen, "%s: key \"%s\": \"use\" must be \"sig\" when present", name, k->kid);
        return -1;
    }
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *alg = json_string_value(json_object_get(jwk, "alg"));
    if (json_object_get(jwk, "alg") != NULL && alg == NULL) {
        set_err(err, errlen, "%s: key \"%s\": \"alg\" is not a string", name, k->kid);
        return -1;
    }
    if (kty != NULL && strcmp(kty, "EC") == 0) {
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        if (crv == NULL || strcmp(crv, "P-256") != 0) {
            set_err(err, errlen, "%s: key \"%s\": only EC keys on curve P-256 are supported", name, k->kid);
            return -1;
        }
        if (alg != NULL && strcmp(alg, "ES256") != 0) {
            set_err(err, errlen, "%s: key \"%s\": an EC P-256 key must have \"alg\": \"ES256\"", name, k->kid);
            return -1;
        }
        k->alg = ALG_ES256;
        unsigned char x[EC_COORD], y[EC_COORD], d[EC_COORD];
        if (b64_member(jwk, "x", x, EC_COORD, 0) < 0 || b64_member(jwk, "y", y, EC_COORD, 0) < 0) {
            set_err(err, errlen, "%s: key \"%s\": \"x\" and \"y\" must be 32 bytes of base64url each", name, k->kid);
            return -1;
        }
        bool has_d = json_object_get(jwk, "d") != NULL;
        if (has_d && b64_member(jwk, "d", d, EC_COORD, 0) < 0) {
            OPENSSL_cleanse(d, sizeof(d));
            set_err(err, errlen, "%s: key \"%s\": \"d\" must be 32 bytes of base64url", name, k->kid);
            return -1;
        }
        if (i == 0 && !has_d) {
            set_err(err, errlen, "%s: key \"%s\" is the signing key (the first) but has no private part \"d\"", name,
                    k->kid);
            return -1;
        }
        k->pkey = ec_key_from_raw(x, y, has_d ? d : NULL);
        OPENSSL_cleanse(d, sizeof(d));
        if (k->pkey == NULL) {
            set_err(err, errlen, "%s: key \"%s\" is not a valid P-256 key (point off the curve, or \"d\" does not match)",
                    name, k->kid);
            return -1;
        }
        k->has_private = has_d;
        char xs[64], ys[64];
        token_b64url_encode(x, EC_COORD, xs, sizeof(xs));
        token_b64url_encode(y, EC_COORD, ys, sizeof(ys));
        json_t *p = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", xs, "y", ys,
                              "kid", k->kid, "alg", "ES256", "use", "sig");
        if (p == NULL || json_array_append_new(pub, p) != 0) {
            set_err(err, errlen, "%s: out of memory", name);
            return -1;
        }
    } else if (kty != NULL && strcmp(kty, "oct") == 0) {
        if (alg != NULL && strcmp(alg, "HS256") != 0) {
            set_err(err, errlen, "%s: key \"%s\": an \"oct\" key must have \"alg\": \"HS256\"", name, k->kid);
            return -1;
        }
        if (!allow_hs256) {
            set_err(err, errlen, "%s: key \"%s\" is an HS256 key but HS256 is not allowed by the configuration", name,
                    k->kid);
            return -1;
        }
        k->alg = ALG_HS256;
        k->secret = malloc(HS256_MAX_SECRET);
        if (k->secret == NULL) {
            set_err(err, errlen, "%s: out of memory", name);
            return -1;
        }
        int n = b64_member(jwk, "k", k->secret, 0, HS256_MAX_SECRET);
        k->secret_len = HS256_MAX_SECRET; /* wipe it all on failure */
        if (n < HS256_MIN_SECRET) {
            set_err(err, errlen, "%s: key \"%s\": \"k\" must be %d..%d bytes of base64url", name, k->kid,
                    HS256_MIN_SECRET, HS256_MAX_SECRET);
            return -1;
        }
        k->secret_len = (size_t)n;
    } else {
        set_err(err, errlen, "%s: key \"%s\": \"kty\" must be \"EC\" (ES256) or \"oct\" (HS256)", name, k->kid);
        return -1;
    }
    if (key_make_header(k) != 0) {
        set_err(err, errlen, "%s: out of memory", name);
        return -1;
    }
    return 0;
}

int token_keyset_load_json(const char *json, size_t len, const char *name, bool allow_hs256, const char *issuer,
                           const char *audience, token_keyset_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (name == NULL)
        name = "key set";
    if (issuer == NULL || issuer[0] == '\0' || audience == NULL || audience[0] == '\0') {
        set_err(err, errlen, "%s: no issuer or audience configured for tokens", name);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        /* jerr.text may quote the text near the error (key material): give the position only. */
        set_err(err, errlen, "%s: not valid JSON (line %d, column %d)", name, jerr.line, jerr.column);
        return -1;
    }
    const json_t *keys = json_object_get(root, "keys");
    if (!json_is_array(keys) || json_array_size(keys) == 0) {
        set_err(err, errlen, "%s: expected a JWKS object {\"keys\": [...]} with at least one key", name);
        json_decref(root);
        return -1;
    }
    if (json_array_size(keys) > KEYSET_MAX_KEYS) {
        set_err(err, errlen, "%s: more than %d keys", name, KEYSET_MAX_KEYS);
        json_decref(root);
        return -1;
    }
    token_keyset_t *ks = calloc(1, sizeof(*ks));
    json_t *pub = json_array();
    json_t *pubroot = NULL;
    if (ks == NULL || pub == NULL)
        goto oom;
    ks->keys = calloc(json_array_size(keys), sizeof(token_key_t));
    ks->issuer = strdup(issuer);
    ks->audience = strdup(audience);
    ks->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (ks->keys == NULL || ks->issuer == NULL || ks->audience == NULL || ks->sha256 == NULL)
        goto oom;
    ks->issuer_len = strlen(issuer);
    ks->audience_len = strlen(audience);
    for (size_t i = 0; i < json_array_size(keys); i++) {
        token_key_t *k = &ks->keys[i];
        ks->nkeys = i + 1;
        if (key_load(json_array_get(keys, i), i, name, allow_hs256, k, pub, err, errlen) != 0)
            goto fail;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(ks->keys[j].kid, k->kid) == 0) {
                set_err(err, errlen, "%s: kid \"%s\" appears twice", name, k->kid);
                goto fail;
            }
        }
    }
    pubroot = json_pack("{s:O}", "keys", pub);
    ks->public_jwks = pubroot != NULL ? json_dumps(pubroot, JSON_COMPACT) : NULL;
    if (ks->public_jwks == NULL)
        goto oom;
    ks->public_jwks_len = strlen(ks->public_jwks);
    json_decref(pubroot);
    json_decref(pub);
    json_decref(root);
    *out = ks;
    return 0;
oom:
    set_err(err, errlen, "%s: out of memory", name);
fail:
    json_decref(pubroot);
    json_decref(pub);
    json_decref(root);
    token_keyset_free(ks);
    return -1;
}

int token_keyset_load(const char *path, bool allow_hs256, const char *issuer, const char *audience,
                      token_keyset_t **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        set_err(err, errlen, "%s: cannot open the JWT key set: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(KEYSET_FILE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        set_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    size_t n = fread(buf, 1, KEYSET_FILE_MAX + 1, f);
    int rerr = ferror(f);
    fclose(f);
    int rc = -1;
    if (rerr)
        set_err(err, errlen, "%s: cannot read the JWT key set", path);
    else if (n > KEYSET_FILE_MAX)
        set_err(err, errlen, "%s: JWT key set larger than %d bytes", path, KEYSET_FILE_MAX);
    else
        rc = token_keyset_load_json(buf, n, path, allow_hs256, issuer, audience, out, err, errlen);
    OPENSSL_cleanse(buf, n < KEYSET_FILE_MAX + 1 ? n : KEYSET_FILE_MAX + 1);
    free(buf);
    return rc;
}

const char *token_keyset_public_jwks(const token_keyset_t *ks, size_t *len)
{
    if (len != NULL)
        *len = ks->public_jwks_len;
    return ks->public_jwks;
}

size_t token_keyset_size(const token_keyset_t *ks)
{
    return ks->nkeys;
}

const char *token_keyset_kid(const token_keyset_t *ks, size_t i)
{
    return i < ks->nkeys ? ks->keys[i].kid : NULL;
}

const char *token_keyset_alg(const token_keyset_t *ks, size_t i)
{
    return i < ks->nkeys ? alg_names[ks->keys[i].alg] : NULL;
}

/* ------------------------------------------------------------------------------------------------
 * Signatures
 * ---------------------------------------------------------------------------------------------- */

/* Signs in[0..len) with k into sig (ES256: 64 bytes R||S; HS256: 32 bytes); returns the length or -1. */
static int sign_bytes(const token_keyset_t *ks, const token_key_t *k, const char *in, size_t len,
                      unsigned char sig[ES256_SIG_LEN])
{
    if (k->alg == ALG_HS256) {
        unsigned int mlen = 0;
        if (HMAC(ks->sha256, k->secret, (int)k->secret_len, (const unsigned char *)in, len, sig, &mlen) == NULL)
            return -1;
        return (int)mlen;
    }
    if (!k->has_private)
        return -1;
    int rc = -1;
    unsigned char der[128];
    size_t derlen = sizeof(der);
    ECDSA_SIG *es = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, ks->sha256, NULL, k->pkey) <= 0 ||
        EVP_DigestSign(ctx, der, &derlen, (const unsigned char *)in, len) <= 0)
        goto out;
    const unsigned char *p = der;
    es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    if (es == NULL)
        goto out;
    const BIGNUM *r = ECDSA_SIG_get0_r(es), *s = ECDSA_SIG_get0_s(es);
    if (BN_bn2binpad(r, sig, EC_COORD) != EC_COORD || BN_bn2binpad(s, sig + EC_COORD, EC_COORD) != EC_COORD)
        goto out;
    rc = ES256_SIG_LEN;
out:
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* True when sig (siglen bytes) is k's valid signature of in[0..len). */
static bool verify_bytes(const token_keyset_t *ks, const token_key_t *k, const char *in, size_t len,
                         const unsigned char *sig, size_t siglen)
{
    if (k->alg == ALG_HS256) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mlen = 0;
        if (siglen != 32 ||
            HMAC(ks->sha256, k->secret, (int)k->secret_len, (const unsigned char *)in, len, mac, &mlen) == NULL ||
            mlen != 32)
            return false;
        return CRYPTO_memcmp(mac, sig, 32) == 0;
    }
    if (siglen != ES256_SIG_LEN)
        return false;
    bool ok = false;
    unsigned char *der = NULL;
    EVP_MD_CTX *ctx = NULL;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, EC_COORD, NULL), *s = BN_bin2bn(sig + EC_COORD, EC_COORD, NULL);
    if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        goto out;
    }
    int derlen = i2d_ECDSA_SIG(es, &der);
    if (derlen <= 0)
        goto out;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestVerifyInit(ctx, NULL, ks->sha256, NULL, k->pkey) <= 0)
        goto out;
    ok = EVP_DigestVerify(ctx, der, (size_t)derlen, (const unsigned char *)in, len) == 1;
out:
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    return ok;
}

/* ------------------------------------------------------------------------------------------------
 * Signing
 * ---------------------------------------------------------------------------------------------- */

/* True when s is a NUL-terminated string of 1..TOKEN_CLAIM_MAX bytes within its 64-byte field. */
static bool claim_field_ok(const char s[64])
{
    size_t n = strnlen(s, 64);
    return n >= 1 && n <= TOKEN_CLAIM_MAX;
}

int token_sign(const token_keyset_t *ks, const token_claims_t *claims, char *out, size_t outcap)
{
    if (ks == NULL || claims == NULL || out == NULL)
        return -1;
    if (!claim_field_ok(claims->sub) || !claim_field_ok(claims->tid) || !claim_field_ok(claims->sid) ||
        claims->nroles < 0 || claims->nroles > TOKEN_MAX_ROLES || claims->exp <= claims->iat)
        return -1;
    json_t *roles = json_array();
    for (int i = 0; roles != NULL && i < claims->nroles; i++) {
        if (!claim_field_ok(claims->roles[i]) || json_array_append_new(roles, json_string(claims->roles[i])) != 0) {
            json_decref(roles);
            return -1;
        }
    }
    json_t *p = roles == NULL ? NULL
                              : json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:s, s:s}", "sub", claims->sub, "tid",
                                          claims->tid, "sid", claims->sid, "roles", roles, "iat",
                                          (json_int_t)claims->iat, "exp", (json_int_t)claims->exp, "iss", ks->issuer,
                                          "aud", ks->audience);
    if (p != NULL && claims->nbf != 0 && json_object_set_new(p, "nbf", json_integer(claims->nbf)) != 0) {
        json_decref(p);
        p = NULL;
    }
    char *payload = p != NULL ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    if (payload == NULL)
        return -1;
    const token_key_t *k = &ks->keys[0];
    size_t plen = strlen(payload);
    int rc = -1;
    size_t pos = k->header_b64_len;
    if (pos + 1 + (plen / 3 * 4 + 4) + 1 > outcap)
        goto out;
    memcpy(out, k->header_b64, pos);
    out[pos++] = '.';
    int n = token_b64url_encode(payload, plen, out + pos, outcap - pos);
    if (n < 0)
        goto out;
    pos += (size_t)n;
    unsigned char sig[ES256_SIG_LEN];
    int slen = sign_bytes(ks, k, out, pos, sig);
    if (slen < 0 || pos + 1 >= outcap)
        goto out;
    out[pos++] = '.';
    n = token_b64url_encode(sig, (size_t)slen, out + pos, outcap - pos);
    if (n < 0)
        goto out;
    pos += (size_t)n;
    if (pos > TOKEN_MAX_LEN)
        goto out;
    rc = (int)pos;
out:
    free(payload);
    if (rc < 0 && outcap > 0)
        out[0] = '\0';
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * Verification
 * ---------------------------------------------------------------------------------------------- */

/* Header members whose presence alone refuses a token: key or certificate sources the token would
 * choose for itself (jku, jwk, x5u, x5c) and extensions we would have to understand (crit). */
static const char *const forbidden_header[] = {"jku", "jwk", "x5u", "x5c", "crit"};

/* Copies a string claim of 1..TOKEN_CLAIM_MAX bytes without control characters into dst[64]. */
static bool copy_claim(const json_t *v, char dst[64])
{
    if (!json_is_string(v))
        return false;
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n < 1 || n > TOKEN_CLAIM_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

static bool string_is(const json_t *v, const char *want, size_t wantlen)
{
    return json_is_string(v) && json_string_length(v) == wantlen && memcmp(json_string_value(v), want, wantlen) == 0;
}

token_status_t token_check_claims(const token_keyset_t *ks, const char *payload, size_t len, int64_t now,
                                  token_claims_t *out)
{
    token_claims_t c;
    memset(&c, 0, sizeof(c));
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (ks == NULL || payload == NULL)
        return TOKEN_BAD_CLAIMS;
    json_t *p = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL);
    token_status_t st = TOKEN_BAD_CLAIMS;
    if (!json_is_object(p))
        goto out;
    if (!copy_claim(json_object_get(p, "sub"), c.sub) || !copy_claim(json_object_get(p, "tid"), c.tid) ||
        !copy_claim(json_object_get(p, "sid"), c.sid))
        goto out;
    const json_t *roles = json_object_get(p, "roles");
    if (!json_is_array(roles) || json_array_size(roles) > TOKEN_MAX_ROLES)
        goto out;
    for (size_t i = 0; i < json_array_size(roles); i++) {
        if (!copy_claim(json_array_get(roles, i), c.roles[i]))
            goto out;
    }
    c.nroles = (int)json_array_size(roles);
    const json_t *iat = json_object_get(p, "iat"), *exp = json_object_get(p, "exp"), *nbf = json_object_get(p, "nbf");
    if (!json_is_integer(iat) || !json_is_integer(exp) || (nbf != NULL && !json_is_integer(nbf)))
        goto out;
    c.iat = json_integer_value(iat);
    c.exp = json_integer_value(exp);
    c.nbf = nbf != NULL ? json_integer_value(nbf) : 0;

    st = TOKEN_BAD_ISSUER;
    if (!string_is(json_object_get(p, "iss"), ks->issuer, ks->issuer_len))
        goto out;
    st = TOKEN_BAD_AUDIENCE;
    const json_t *aud = json_object_get(p, "aud");
    bool aud_ok = string_is(aud, ks->audience, ks->audience_len);
    for (size_t i = 0; !aud_ok && json_is_array(aud) && i < json_array_size(aud) && i < AUD_MAX_ITEMS; i++)
        aud_ok = string_is(json_array_get(aud, i), ks->audience, ks->audience_len);
    if (!aud_ok)
        goto out;

    st = TOKEN_EXPIRED;
    if (c.exp <= now)
        goto out;
    st = TOKEN_NOT_YET_VALID;
    if (nbf != NULL && c.nbf > now && (uint64_t)c.nbf - (uint64_t)now > TOKEN_NBF_LEEWAY)
        goto out;
    st = TOKEN_OK;
    if (out != NULL)
        *out = c;
out:
    json_decref(p);
    return st;
}

/* The header checks; on TOKEN_OK *key is the key its kid names (alg already compared). */
static token_status_t check_header(const token_keyset_t *ks, const unsigned char *h, size_t hlen,
                                   const token_key_t **key)
{
    json_t *hdr = json_loadb((const char *)h, hlen, JSON_REJECT_DUPLICATES, NULL);
    token_status_t st = TOKEN_BAD_HEADER;
    if (!json_is_object(hdr))
        goto out;
    const json_t *alg = json_object_get(hdr, "alg"), *kid = json_object_get(hdr, "kid"),
                 *typ = json_object_get(hdr, "typ");
    if (!json_is_string(alg) || !json_is_string(kid))
        goto out;
    if (typ != NULL && !string_is(typ, "JWT", 3))
        goto out;
    for (size_t i = 0; i < sizeof(forbidden_header) / sizeof(forbidden_header[0]); i++) {
        if (json_object_get(hdr, forbidden_header[i]) != NULL)
            goto out;
    }
    st = TOKEN_UNKNOWN_KID;
    const token_key_t *k = NULL;
    for (size_t i = 0; i < ks->nkeys && k == NULL; i++) {
        if (string_is(kid, ks->keys[i].kid, ks->keys[i].kid_len))
            k = &ks->keys[i];
    }
    if (k == NULL)
        goto out;
    st = TOKEN_BAD_ALG;
    if (!string_is(alg, alg_names[k->alg], strlen(alg_names[k->alg])))
        goto out;
    *key = k;
    st = TOKEN_OK;
out:
    json_decref(hdr);
    return st;
}

token_status_t token_verify(const token_keyset_t *ks, const char *jwt, size_t len, int64_t now, token_claims_t *out)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (ks == NULL || jwt == NULL || len == 0)
        return TOKEN_MALFORMED;
    if (len > TOKEN_MAX_LEN)
        return TOKEN_TOO_LONG;
    size_t dots[2], ndots = 0;
    for (size_t i = 0; i < len; i++) {
        if (jwt[i] == '.') {
            if (ndots == 2)
                return TOKEN_MALFORMED;
            dots[ndots++] = i;
        } else if (b64url_value((unsigned char)jwt[i]) < 0) {
            return TOKEN_MALFORMED;
        }
    }
    if (ndots != 2 || dots[0] == 0 || dots[1] == dots[0] + 1)
        return TOKEN_MALFORMED; /* the signature may be empty (then it fails later), header and payload not */
    const char *hseg = jwt, *pseg = jwt + dots[0] + 1, *sseg = jwt + dots[1] + 1;
    size_t hlen = dots[0], plen = dots[1] - dots[0] - 1, slen = len - dots[1] - 1;

    unsigned char buf[DECODED_MAX];
    int n = token_b64url_decode(hseg, hlen, buf, sizeof(buf));
    if (n <= 0)
        return TOKEN_MALFORMED;
    const token_key_t *k = NULL;
    token_status_t st = check_header(ks, buf, (size_t)n, &k);
    if (st != TOKEN_OK)
        return st;

    n = token_b64url_decode(sseg, slen, buf, sizeof(buf));
    if (n < 0)
        return TOKEN_MALFORMED;
    if (!verify_bytes(ks, k, jwt, dots[1], buf, (size_t)n))
        return TOKEN_BAD_SIGNATURE;

    n = token_b64url_decode(pseg, plen, buf, sizeof(buf));
    if (n <= 0)
        return TOKEN_MALFORMED;
    return token_check_claims(ks, (const char *)buf, (size_t)n, now, out);
}

/* ------------------------------------------------------------------------------------------------
 * Key set files: generation and rotation
 * ---------------------------------------------------------------------------------------------- */

/* A fresh P-256 key as a private JWK object {kty,crv,x,y,d,kid,alg,use}; kid is its RFC 7638
 * thumbprint. NULL on failure. */
static json_t *new_ec_jwk(void)
{
    json_t *jwk = NULL;
    BIGNUM *bx = NULL, *by = NULL, *bd = NULL;
    unsigned char x[EC_COORD], y[EC_COORD], d[EC_COORD];
    char xs[64], ys[64], ds[64], kid[64];
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    if (pkey == NULL || !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &bx) ||
        !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &by) ||
        !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &bd) || BN_bn2binpad(bx, x, EC_COORD) != EC_COORD ||
        BN_bn2binpad(by, y, EC_COORD) != EC_COORD || BN_bn2binpad(bd, d, EC_COORD) != EC_COORD)
        goto out;
    token_b64url_encode(x, EC_COORD, xs, sizeof(xs));
    token_b64url_encode(y, EC_COORD, ys, sizeof(ys));
    token_b64url_encode(d, EC_COORD, ds, sizeof(ds));
    /* RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace. */
    char canon[256];
    int clen = snprintf(canon, sizeof(canon), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", xs, ys);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    if (clen <= 0 || (size_t)clen >= sizeof(canon) ||
        EVP_Digest(canon, (size_t)clen, digest, NULL, EVP_sha256(), NULL) != 1)
        goto out;
    token_b64url_encode(digest, sizeof(digest), kid, sizeof(kid));
    jwk = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", xs, "y", ys, "d", ds,
                    "kid", kid, "alg", "ES256", "use", "sig");
out:
    OPENSSL_cleanse(d, sizeof(d));
    OPENSSL_cleanse(ds, sizeof(ds));
    BN_free(bx);
    BN_free(by);
    BN_clear_free(bd);
    EVP_PKEY_free(pkey);
    return jwk;
}

/* Dumps a JWKS object as indented text with a final newline (malloc'ed), or NULL. */
static char *dump_jwks(const json_t *root)
{
    char *text = json_dumps(root, JSON_INDENT(2));
    if (text == NULL)
        return NULL;
    size_t n = strlen(text);
    char *withnl = realloc(text, n + 2);
    if (withnl == NULL) {
        OPENSSL_cleanse(text, n);
        free(text);
        return NULL;
    }
    withnl[n] = '\n';
    withnl[n + 1] = '\0';
    return withnl;
}

int token_keyset_generate_json(char **out_json)
{
    *out_json = NULL;
    json_t *jwk = new_ec_jwk();
    json_t *root = jwk != NULL ? json_pack("{s:[o]}", "keys", jwk) : NULL;
    if (root == NULL)
        return -1;
    *out_json = dump_jwks(root);
    json_decref(root);
    return *out_json != NULL ? 0 : -1;
}

int token_keyset_rotate_json(const char *json, size_t len, int keep, char **out_json, char *err, size_t errlen)
{
    *out_json = NULL;
    if (keep < 1 || keep > KEYSET_MAX_KEYS) {
        set_err(err, errlen, "the number of keys to keep must be 1..%d", KEYSET_MAX_KEYS);
        return -1;
    }
    token_keyset_t *old = NULL;
    if (token_keyset_load_json(json, len, "key set", true, "rotate", "rotate", &old, err, errlen) != 0)
        return -1;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *keys = json_object_get(root, "keys");
    json_t *jwk = NULL;
    int rc = -1;
    /* A thumbprint collision with a kept key is practically impossible, but never write a set that
     * would not load. */
    for (int attempt = 0; attempt < 3 && jwk == NULL; attempt++) {
        jwk = new_ec_jwk();
        const char *kid = json_string_value(json_object_get(jwk, "kid"));
        for (size_t i = 0; jwk != NULL && kid != NULL && i < token_keyset_size(old); i++) {
            if (strcmp(token_keyset_kid(old, i), kid) == 0) {
                json_decref(jwk);
                jwk = NULL;
            }
        }
    }
    if (keys == NULL || jwk == NULL || json_array_insert_new(keys, 0, jwk) != 0) {
        set_err(err, errlen, "could not create a new key");
        goto out;
    }
    while (json_array_size(keys) > (size_t)keep)
        json_array_remove(keys, json_array_size(keys) - 1);
    *out_json = dump_jwks(root);
    if (*out_json == NULL) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    token_keyset_free(old);
    return rc;
}
