/*
 * Unit tests of security/token: key-set loading and generation, sign/verify round trips, every
 * forged-token family of issue 4 item 7 (each mapped to its exact refusal status), claim types,
 * rotation, and interoperability with an independent JWS implementation (libjwt 1.10 signing and
 * verifying ES256 with PEM keys).
 *
 * Forged tokens are built here with OpenSSL directly from keys the test generates, so a valid
 * signature can be put on any header and payload: a refusal must come from the check under test,
 * not from a signature that happens to be wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "security/token.h"

#define ISS "https://tenantd.test"
#define AUD "tenantd-api"
#define NOW ((int64_t)1800000000)
#define KID1 "key-one"
#define KID2 "key-two"
#define TOK_CAP (TOKEN_MAX_LEN + 1)

/* ------------------------------------------------------------------------------------------------
 * Helpers: keys, JWKS, forging
 * ---------------------------------------------------------------------------------------------- */

static EVP_PKEY *g_k1, *g_k2, *g_other; /* P-256 keys made by the test */

static void b64(const void *in, size_t len, char *out, size_t cap)
{
    assert_true(token_b64url_encode(in, len, out, cap) >= 0);
}

/* The JWK of an EC key (with d when priv). */
static json_t *ec_jwk(EVP_PKEY *k, const char *kid, bool priv)
{
    BIGNUM *x = NULL, *y = NULL, *d = NULL;
    unsigned char bx[32], by[32], bd[32];
    char sx[64], sy[64], sd[64];
    assert_true(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x));
    assert_true(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y));
    assert_true(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &d));
    assert_int_equal(BN_bn2binpad(x, bx, 32), 32);
    assert_int_equal(BN_bn2binpad(y, by, 32), 32);
    assert_int_equal(BN_bn2binpad(d, bd, 32), 32);
    BN_free(x);
    BN_free(y);
    BN_clear_free(d);
    b64(bx, 32, sx, sizeof(sx));
    b64(by, 32, sy, sizeof(sy));
    b64(bd, 32, sd, sizeof(sd));
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", sx, "y", sy, "kid",
                          kid, "alg", "ES256", "use", "sig");
    assert_non_null(j);
    if (priv)
        json_object_set_new(j, "d", json_string(sd));
    return j;
}

static json_t *oct_jwk(const char *kid, const unsigned char *secret, size_t len)
{
    char k[2048];
    b64(secret, len, k, sizeof(k));
    return json_pack("{s:s, s:s, s:s, s:s}", "kty", "oct", "k", k, "kid", kid, "alg", "HS256");
}

/* Loads {"keys": keys} (keys stolen); returns the load result, *ks set on 0. */
static int load_keys(json_t *keys, bool allow_hs256, token_keyset_t **ks, char *err, size_t errlen)
{
    json_t *root = json_pack("{s:o}", "keys", keys);
    char *text = json_dumps(root, 0);
    json_decref(root);
    assert_non_null(text);
    int rc = token_keyset_load_json(text, strlen(text), "test.json", allow_hs256, ISS, AUD, ks, err, errlen);
    free(text);
    return rc;
}

/* The key set holding g_k1 as KID1 (signing) and, when with2, g_k2 as KID2. */
static token_keyset_t *set_k1(bool with2)
{
    json_t *keys = json_array();
    json_array_append_new(keys, ec_jwk(g_k1, KID1, true));
    if (with2)
        json_array_append_new(keys, ec_jwk(g_k2, KID2, true));
    token_keyset_t *ks = NULL;
    char err[512];
    if (load_keys(keys, false, &ks, err, sizeof(err)) != 0)
        fail_msg("load: %s", err);
    return ks;
}

static char *pem_public(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_PUBKEY(b, k));
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *s = strndup(data, (size_t)n);
    BIO_free(b);
    return s;
}

static char *pem_private(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL));
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *s = strndup(data, (size_t)n);
    BIO_free(b);
    return s;
}

typedef enum { SIG_ES256, SIG_ES256_DER, SIG_HS256, SIG_RAW } sigmode_t;

/* Builds b64(header).b64(payload).b64(signature) into out (TOK_CAP bytes); returns its length.
 * ES256 signs with key (raw R||S, or DER for SIG_ES256_DER); HS256 uses secret; SIG_RAW appends
 * secret as the signature bytes. */
static size_t forge(char *out, const char *header, const char *payload, sigmode_t mode, EVP_PKEY *key,
                    const void *secret, size_t secretlen)
{
    static char big[4 * TOKEN_MAX_LEN];
    size_t pos = 0;
    b64(header, strlen(header), big, sizeof(big));
    pos = strlen(big);
    big[pos++] = '.';
    b64(payload, strlen(payload), big + pos, sizeof(big) - pos);
    pos += strlen(big + pos);
    unsigned char sig[256];
    size_t siglen = 0;
    if (mode == SIG_ES256 || mode == SIG_ES256_DER) {
        unsigned char der[128];
        size_t derlen = sizeof(der);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
        assert_int_equal(EVP_DigestSign(ctx, der, &derlen, (unsigned char *)big, pos), 1);
        EVP_MD_CTX_free(ctx);
        if (mode == SIG_ES256_DER) {
            memcpy(sig, der, derlen);
            siglen = derlen;
        } else {
            const unsigned char *p = der;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
            assert_non_null(es);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            ECDSA_SIG_free(es);
            siglen = 64;
        }
    } else if (mode == SIG_HS256) {
        unsigned int mlen = 0;
        assert_non_null(HMAC(EVP_sha256(), secret, (int)secretlen, (unsigned char *)big, pos, sig, &mlen));
        siglen = mlen;
    } else {
        memcpy(sig, secret, secretlen);
        siglen = secretlen;
    }
    big[pos++] = '.';
    b64(sig, siglen, big + pos, sizeof(big) - pos);
    pos += strlen(big + pos);
    assert_true(pos < TOK_CAP);
    memcpy(out, big, pos + 1);
    return pos;
}

/* Valid claims as a JSON object (caller edits and frees). */
static json_t *std_claims(void)
{
    return json_pack("{s:s, s:s, s:s, s:[s,s], s:I, s:I, s:s, s:s}", "sub", "6f9619ff-8b86-d011-b42d-00c04fc964ff",
                     "tid", "0c4f3a1e-5d2b-4c7a-9e8f-1a2b3c4d5e6f", "sid", "sess-1", "roles", "admin", "member", "iat",
                     (json_int_t)(NOW - 10), "exp", (json_int_t)(NOW + 900), "iss", ISS, "aud", AUD);
}

static const char HDR1[] = "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"" KID1 "\"}";

/* Verifies an ES256 token with header hdr and payload claims (stolen), signed by g_k1, against ks. */
static token_status_t verify_claims(token_keyset_t *ks, const char *hdr, json_t *claims)
{
    char *payload = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    char tok[TOK_CAP];
    size_t n = forge(tok, hdr, payload, SIG_ES256, g_k1, NULL, 0);
    free(payload);
    return token_verify(ks, tok, n, NOW, NULL);
}

/* verify_claims for a payload given as text. */
static token_status_t verify_text(token_keyset_t *ks, const char *hdr, const char *payload)
{
    char tok[TOK_CAP];
    size_t n = forge(tok, hdr, payload, SIG_ES256, g_k1, NULL, 0);
    return token_verify(ks, tok, n, NOW, NULL);
}

#define assert_status(got, want)                                                                                     \
    do {                                                                                                             \
        token_status_t got_ = (got), want_ = (want);                                                                 \
        if (got_ != want_)                                                                                           \
            fail_msg("status %s, expected %s", token_status_name(got_), token_status_name(want_));                   \
    } while (0)

static token_claims_t sample_claims(void)
{
    token_claims_t c;
    memset(&c, 0, sizeof(c));
    strcpy(c.sub, "6f9619ff-8b86-d011-b42d-00c04fc964ff");
    strcpy(c.tid, "0c4f3a1e-5d2b-4c7a-9e8f-1a2b3c4d5e6f");
    strcpy(c.sid, "sess-42");
    strcpy(c.roles[0], "owner");
    strcpy(c.roles[1], "viewer");
    c.nroles = 2;
    c.iat = NOW;
    c.exp = NOW + 900;
    return c;
}

static int group_setup(void **state)
{
    (void)state;
    g_k1 = EVP_EC_gen("P-256");
    g_k2 = EVP_EC_gen("P-256");
    g_other = EVP_EC_gen("P-256");
    return g_k1 != NULL && g_k2 != NULL && g_other != NULL ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(g_k1);
    EVP_PKEY_free(g_k2);
    EVP_PKEY_free(g_other);
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * base64url, status names
 * ---------------------------------------------------------------------------------------------- */

static void test_b64url(void **state)
{
    (void)state;
    unsigned char buf[64];
    char enc[64];
    const char *vec[][2] = {{"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"}};
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        assert_int_equal(token_b64url_encode(vec[i][0], strlen(vec[i][0]), enc, sizeof(enc)), strlen(vec[i][1]));
        assert_string_equal(enc, vec[i][1]);
        assert_int_equal(token_b64url_decode(vec[i][1], strlen(vec[i][1]), buf, sizeof(buf)), strlen(vec[i][0]));
        assert_memory_equal(buf, vec[i][0], strlen(vec[i][0]));
    }
    const unsigned char bin[] = {0xfb, 0xff, 0xfe};
    assert_int_equal(token_b64url_encode(bin, 3, enc, sizeof(enc)), 4);
    assert_string_equal(enc, "-__-");
    const char *bad[] = {"Zg==", "Zm8=", "+/8A", "Zm 9v", "Zm9v\n", "Z", "Zm9vY", "Zh", "Zm9", "Zm\x80v"};
    /* Padding, other alphabets, whitespace, impossible lengths, non-zero unused bits, non-ASCII. */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(token_b64url_decode(bad[i], strlen(bad[i]), buf, sizeof(buf)), -1);
    assert_int_equal(token_b64url_encode("foo", 3, enc, 4), -1); /* no room for the NUL */
    assert_int_equal(token_b64url_decode("Zm9vYg", 6, buf, 3), -1);
}

static void test_status_names(void **state)
{
    (void)state;
    assert_int_equal(TOKEN_OK, 0);
    assert_string_equal(token_status_name(TOKEN_OK), "ok");
    assert_string_equal(token_status_name(TOKEN_BAD_SIGNATURE), "bad_signature");
    assert_string_equal(token_status_name(TOKEN_BAD_AUDIENCE), "bad_audience");
    assert_string_equal(token_status_name((token_status_t)99), "unknown");
    for (int i = TOKEN_OK; i <= TOKEN_BAD_AUDIENCE; i++)
        for (int j = i + 1; j <= TOKEN_BAD_AUDIENCE; j++)
            assert_string_not_equal(token_status_name((token_status_t)i), token_status_name((token_status_t)j));
}

/* ------------------------------------------------------------------------------------------------
 * Key sets
 * ---------------------------------------------------------------------------------------------- */

static void test_generate_and_load(void **state)
{
    (void)state;
    char *json = NULL;
    assert_int_equal(token_keyset_generate_json(&json), 0);
    json_t *root = json_loads(json, 0, NULL);
    assert_non_null(root);
    json_t *k = json_array_get(json_object_get(root, "keys"), 0);
    assert_int_equal(json_array_size(json_object_get(root, "keys")), 1);
    assert_string_equal(json_string_value(json_object_get(k, "kty")), "EC");
    assert_string_equal(json_string_value(json_object_get(k, "alg")), "ES256");
    assert_string_equal(json_string_value(json_object_get(k, "use")), "sig");
    assert_int_equal(json_string_length(json_object_get(k, "kid")), 43); /* RFC 7638 thumbprint */
    char d[64];
    snprintf(d, sizeof(d), "%s", json_string_value(json_object_get(k, "d")));

    /* Through a file, like the server. */
    char path[] = "/tmp/test_token_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    token_keyset_t *ks = NULL;
    char err[512];
    if (token_keyset_load(path, false, ISS, AUD, &ks, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    unlink(path);
    assert_int_equal(token_keyset_size(ks), 1);
    assert_string_equal(token_keyset_kid(ks, 0), json_string_value(json_object_get(k, "kid")));
    assert_string_equal(token_keyset_alg(ks, 0), "ES256");
    assert_null(token_keyset_kid(ks, 1));

    /* The public JWKS carries exactly the public members. */
    size_t plen = 0;
    const char *pub = token_keyset_public_jwks(ks, &plen);
    assert_int_equal(plen, strlen(pub));
    assert_null(strstr(pub, d));
    json_t *proot = json_loads(pub, 0, NULL);
    json_t *pk = json_array_get(json_object_get(proot, "keys"), 0);
    assert_int_equal(json_object_size(pk), 7);
    assert_null(json_object_get(pk, "d"));
    const char *members[] = {"kty", "crv", "x", "y", "kid", "alg", "use"};
    for (size_t i = 0; i < 7; i++)
        assert_true(json_equal(json_object_get(pk, members[i]), json_object_get(k, members[i])));
    json_decref(proot);

    /* Signs and verifies. */
    token_claims_t c = sample_claims(), got;
    char tok[TOK_CAP];
    int n = token_sign(ks, &c, tok, sizeof(tok));
    assert_true(n > 0);
    assert_status(token_verify(ks, tok, (size_t)n, NOW, &got), TOKEN_OK);
    token_keyset_free(ks);
    json_decref(root);
    free(json);
}

static void test_load_errors(void **state)
{
    (void)state;
    token_keyset_t *ks = NULL;
    char err[512];
    json_t *good = ec_jwk(g_k1, KID1, true);
    const char *d = json_string_value(json_object_get(good, "d"));

    assert_int_equal(token_keyset_load("/nonexistent/jwks.json", false, ISS, AUD, &ks, err, sizeof(err)), -1);
    assert_null(ks);
    assert_non_null(strstr(err, "/nonexistent/jwks.json"));

    const char *texts[] = {"", "{", "[]", "{\"keys\":{}}", "{\"keys\":[]}", "{\"keys\":[1]}",
                           "{\"keys\":[{\"kty\":\"EC\"}]}"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        err[0] = '\0';
        assert_int_equal(token_keyset_load_json(texts[i], strlen(texts[i]), "x.json", true, ISS, AUD, &ks, err,
                                                sizeof(err)),
                         -1);
        assert_null(ks);
        assert_non_null(strstr(err, "x.json"));
    }
    /* Bad JSON right inside a private value: the message gives the position, not the text. */
    json_t *wrapped = json_pack("{s:[O]}", "keys", good);
    char *text = json_dumps(wrapped, 0);
    json_decref(wrapped);
    char *dpos = strstr(text, d);
    assert_non_null(dpos);
    dpos[5] = '"';
    assert_int_equal(token_keyset_load_json(text, strlen(text), "x.json", false, ISS, AUD, &ks, err, sizeof(err)), -1);
    char dprefix[6] = {0};
    memcpy(dprefix, d, 5);
    assert_null(strstr(err, dprefix));
    free(text);

    /* Issuer and audience are required. */
    json_t *keys = json_pack("[O]", good);
    assert_int_equal(load_keys(keys, false, &ks, err, sizeof(err)), 0);
    token_keyset_free(ks);
    assert_int_equal(token_keyset_load_json("{}", 2, "x", false, "", AUD, &ks, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "issuer"));
    assert_int_equal(token_keyset_load_json("{}", 2, "x", false, ISS, NULL, &ks, err, sizeof(err)), -1);

    struct {
        const char *member;
        json_t *value; /* NULL: delete the member */
        const char *in_err;
    } edits[] = {
        {"d", NULL, "private"},                                   /* first key must sign */
        {"x", json_string("AAAA"), "32 bytes"},                   /* wrong size */
        {"y", json_string("not base64!"), "32 bytes"},            /* not base64url */
        {"d", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "valid P-256"}, /* d does not match */
        {"crv", json_string("P-384"), "P-256"},
        {"kty", json_string("RSA"), "kty"},
        {"alg", json_string("HS256"), "ES256"},                   /* never mix */
        {"alg", json_string("none"), "ES256"},
        {"use", json_string("enc"), "use"},
        {"kid", json_string("../etc/passwd"), "kid"},
        {"kid", json_string(""), "kid"},
        {"kid", json_integer(7), "kid"},
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        json_t *k = json_deep_copy(good);
        if (edits[i].value == NULL)
            json_object_del(k, edits[i].member);
        else
            json_object_set_new(k, edits[i].member, edits[i].value);
        err[0] = '\0';
        assert_int_equal(load_keys(json_pack("[o]", k), true, &ks, err, sizeof(err)), -1);
        assert_null(ks);
        if (strstr(err, edits[i].in_err) == NULL)
            fail_msg("edit %zu: error \"%s\" lacks \"%s\"", i, err, edits[i].in_err);
        assert_null(strstr(err, dprefix));
        assert_non_null(strstr(err, "test.json"));
    }
    /* A point off the curve. */
    json_t *k = json_deep_copy(good);
    json_object_del(k, "d");
    json_object_set_new(k, "y", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE"));
    assert_int_equal(load_keys(json_pack("[O, o]", good, k), false, &ks, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "valid P-256"));
    /* A verify-only second key (no d) is fine. */
    k = ec_jwk(g_k2, KID2, false);
    assert_int_equal(load_keys(json_pack("[O, o]", good, k), false, &ks, err, sizeof(err)), 0);
    assert_int_equal(token_keyset_size(ks), 2);
    token_keyset_free(ks);
    /* Duplicate kid. */
    assert_int_equal(load_keys(json_pack("[O, o]", good, ec_jwk(g_k2, KID1, true)), false, &ks, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "twice"));
    /* HS256: refused unless allowed; secrets under 32 bytes refused. */
    unsigned char secret[64];
    memset(secret, 0x5a, sizeof(secret));
    assert_int_equal(load_keys(json_pack("[O, o]", good, oct_jwk("h", secret, 32)), false, &ks, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not allowed"));
    assert_int_equal(load_keys(json_pack("[O, o]", good, oct_jwk("h", secret, 31)), true, &ks, err, sizeof(err)), -1);
    assert_int_equal(load_keys(json_pack("[O, o]", good, oct_jwk("h", secret, 32)), true, &ks, err, sizeof(err)), 0);
    size_t plen;
    const char *pub = token_keyset_public_jwks(ks, &plen);
    assert_null(strstr(pub, "oct")); /* HS256 keys are never published */
    assert_null(strstr(pub, "\"h\""));
    assert_non_null(strstr(pub, KID1));
    token_keyset_free(ks);
    /* An oct key pinned to another algorithm. */
    json_t *o = oct_jwk("h", secret, 32);
    json_object_set_new(o, "alg", json_string("ES256"));
    assert_int_equal(load_keys(json_pack("[O, o]", good, o), true, &ks, err, sizeof(err)), -1);
    json_decref(good);
}

/* ------------------------------------------------------------------------------------------------
 * Signing and the round trip
 * ---------------------------------------------------------------------------------------------- */

static void test_roundtrip(void **state)
{
    (void)state;
    token_keyset_t *ks = set_k1(false);
    token_claims_t c = sample_claims(), got;
    c.nbf = NOW - 5;
    char tok[TOK_CAP];
    int n = token_sign(ks, &c, tok, sizeof(tok));
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(tok));
    assert_status(token_verify(ks, tok, (size_t)n, NOW, &got), TOKEN_OK);
    assert_memory_equal(&got, &c, sizeof(c));
    assert_status(token_verify(ks, tok, (size_t)n, NOW, NULL), TOKEN_OK);

    /* The header and claims as the contract names them. */
    unsigned char buf[TOK_CAP];
    const char *dot = strchr(tok, '.');
    int hl = token_b64url_decode(tok, (size_t)(dot - tok), buf, sizeof(buf));
    assert_true(hl > 0);
    json_t *h = json_loadb((char *)buf, (size_t)hl, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
    assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
    assert_string_equal(json_string_value(json_object_get(h, "kid")), KID1);
    assert_int_equal(json_object_size(h), 3);
    json_decref(h);
    const char *dot2 = strchr(dot + 1, '.');
    int pl = token_b64url_decode(dot + 1, (size_t)(dot2 - dot - 1), buf, sizeof(buf));
    json_t *p = json_loadb((char *)buf, (size_t)pl, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(p, "iss")), ISS);
    assert_string_equal(json_string_value(json_object_get(p, "aud")), AUD);
    assert_string_equal(json_string_value(json_object_get(p, "sid")), "sess-42");
    assert_int_equal(json_array_size(json_object_get(p, "roles")), 2);
    assert_int_equal(json_integer_value(json_object_get(p, "exp")), NOW + 900);
    assert_int_equal(json_integer_value(json_object_get(p, "nbf")), NOW - 5);
    json_decref(p);
    assert_int_equal(strlen(dot2 + 1), 86); /* 64 bytes R||S */

    /* No roles, no nbf; an exactly full role list. */
    c.nroles = 0;
    c.nbf = 0;
    n = token_sign(ks, &c, tok, sizeof(tok));
    assert_status(token_verify(ks, tok, (size_t)n, NOW, &got), TOKEN_OK);
    assert_int_equal(got.nroles, 0);
    assert_null(strstr(tok, "nbf"));
    c.nroles = TOKEN_MAX_ROLES;
    for (int i = 0; i < TOKEN_MAX_ROLES; i++) { /* 63 bytes each, distinct */
        memset(c.roles[i], 'r', TOKEN_CLAIM_MAX);
        c.roles[i][0] = (char)('a' + i);
        c.roles[i][TOKEN_CLAIM_MAX] = '\0';
    }
    n = token_sign(ks, &c, tok, sizeof(tok));
    assert_true(n > 0);
    assert_status(token_verify(ks, tok, (size_t)n, NOW, &got), TOKEN_OK);
    assert_memory_equal(&got, &c, sizeof(c));

    /* Expiry at the boundary. */
    assert_status(token_verify(ks, tok, (size_t)n, c.exp - 1, NULL), TOKEN_OK);
    assert_status(token_verify(ks, tok, (size_t)n, c.exp, NULL), TOKEN_EXPIRED);
    token_keyset_free(ks);
}

static void test_sign_refuses(void **state)
{
    (void)state;
    token_keyset_t *ks = set_k1(false);
    char tok[TOK_CAP];
    token_claims_t c = sample_claims();
    assert_true(token_sign(ks, &c, tok, sizeof(tok)) > 0);
    assert_int_equal(token_sign(ks, &c, tok, 100), -1);
    assert_string_equal(tok, "");
    c.sub[0] = '\0';
    assert_int_equal(token_sign(ks, &c, tok, sizeof(tok)), -1);
    c = sample_claims();
    memset(c.tid, 'a', sizeof(c.tid)); /* not terminated */
    assert_int_equal(token_sign(ks, &c, tok, sizeof(tok)), -1);
    c = sample_claims();
    c.nroles = TOKEN_MAX_ROLES + 1;
    assert_int_equal(token_sign(ks, &c, tok, sizeof(tok)), -1);
    c.nroles = -1;
    assert_int_equal(token_sign(ks, &c, tok, sizeof(tok)), -1);
    c = sample_claims();
    c.roles[1][0] = '\0';
    assert_int_equal(token_sign(ks, &c, tok, sizeof(tok)), -1);
    c = sample_claims();
    c.exp = c.iat;
    assert_int_equal(token_sign(ks, &c, tok, sizeof(tok)), -1);
    token_keyset_free(ks);
}

/* libjwt (an independent implementation) verifies what we sign, and we verify what it signs. */
static void test_libjwt_interop(void **state)
{
    (void)state;
    token_keyset_t *ks = set_k1(false);
    char *pub = pem_public(g_k1), *priv = pem_private(g_k1);
    token_claims_t c = sample_claims(), got;
    char tok[TOK_CAP];
    int n = token_sign(ks, &c, tok, sizeof(tok));
    assert_true(n > 0);
    jwt_t *j = NULL;
    assert_int_equal(jwt_decode(&j, tok, (unsigned char *)pub, (int)strlen(pub)), 0);
    assert_int_equal(jwt_get_alg(j), JWT_ALG_ES256);
    assert_string_equal(jwt_get_grant(j, "tid"), c.tid);
    jwt_free(j);

    j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_set_alg(j, JWT_ALG_ES256, (unsigned char *)priv, (int)strlen(priv)), 0);
    assert_int_equal(jwt_add_header(j, "kid", KID1), 0);
    json_t *claims = std_claims();
    char *cj = json_dumps(claims, 0);
    json_decref(claims);
    assert_int_equal(jwt_add_grants_json(j, cj), 0);
    free(cj);
    char *lt = jwt_encode_str(j);
    assert_non_null(lt);
    assert_status(token_verify(ks, lt, strlen(lt), NOW, &got), TOKEN_OK);
    assert_string_equal(got.sid, "sess-1");
    assert_int_equal(got.nroles, 2);
    assert_string_equal(got.roles[1], "member");
    free(lt);
    jwt_free(j);
    free(pub);
    free(priv);
    token_keyset_free(ks);
}

/* ------------------------------------------------------------------------------------------------
 * Forged tokens
 * ---------------------------------------------------------------------------------------------- */

static void test_forged_alg_none(void **state)
{
    (void)state;
    token_keyset_t *ks = set_k1(false);
    json_t *cl = std_claims();
    char *payload = json_dumps(cl, JSON_COMPACT);
    json_decref(cl);
    char tok[TOK_CAP];
    const char *algs[] = {"none", "None", "NONE", "nOnE", "", "ES256 ", "es256", "ES384", "RS256", "EdDSA"};
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        char hdr[128];
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", algs[i], KID1);
        size_t n = forge(tok, hdr, payload, SIG_RAW, NULL, "", 0); /* empty signature */
        assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_ALG);
        n = forge(tok, hdr, payload, SIG_RAW, NULL, "junk-signature", 14);
        assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_ALG);
        n = forge(tok, hdr, payload, SIG_ES256, g_k1, NULL, 0); /* even a valid ES256 signature */
        assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_ALG);
    }
    /* alg none without kid, and alg not a string. */
    size_t n = forge(tok, "{\"alg\":\"none\"}", payload, SIG_RAW, NULL, "", 0);
    assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_HEADER);
    n = forge(tok, "{\"alg\":null,\"kid\":\"" KID1 "\"}", payload, SIG_ES256, g_k1, NULL, 0);
    assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_HEADER);
    n = forge(tok, "{\"kid\":\"" KID1 "\"}", payload, SIG_ES256, g_k1, NULL, 0);
    assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_HEADER);
    /* The libjwt way of writing alg none: header {"alg":"none"} and a trailing dot. */
    n = forge(tok, "{\"alg\":\"none\",\"kid\":\"" KID1 "\"}", payload, SIG_RAW, NULL, "", 0);
    assert_int_equal(tok[n - 1], '.');
    assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_ALG);
    free(payload);
    token_keyset_free(ks);
}

/* HS256 keyed with what an attacker can know of our public key: PEM bytes, JWK JSON, the JWKS. */
static void test_forged_hs256_confusion(void **state)
{
    (void)state;
    token_keyset_t *ks = set_k1(false);
    json_t *cl = std_claims();
    char *payload = json_dumps(cl, JSON_COMPACT);
    json_decref(cl);
    char *pem = pem_public(g_k1);
    size_t plen;
    const char *jwks = token_keyset_public_jwks(ks, &plen);
    json_t *jr = json_loads(jwks, 0, NULL);
    char *jwk = json_dumps(json_array_get(json_object_get(jr, "keys"), 0), JSON_COMPACT);
    json_decref(jr);
    const char *secrets[] = {pem, jwk, jwks};
    size_t lens[] = {strlen(pem), strlen(jwk), plen};
    const char *hdrs[] = {"{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"" KID1 "\"}",
                          "{\"alg\":\"HS256\",\"kid\":\"" KID1 "\"}"};
    char tok[TOK_CAP];
    for (size_t h = 0; h < 2; h++) {
        for (size_t i = 0; i < 3; i++) {
            for (size_t trim = 0; trim < 2; trim++) { /* with and without the final newline of the PEM */
                size_t n = forge(tok, hdrs[h], payload, SIG_HS256, NULL, secrets[i], lens[i] - (i == 0 ? trim : 0));
                assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_ALG);
            }
        }
    }
    /* With HS256 allowed and an oct key in the set, the EC key's kid still pins ES256, and the
     * oct key's kid pins HS256. */
    unsigned char secret[32];
    memset(secret, 7, sizeof(secret));
    token_keyset_t *hs = NULL;
    char err[512];
    assert_int_equal(load_keys(json_pack("[o, o]", ec_jwk(g_k1, KID1, true), oct_jwk("hs", secret, 32)), true, &hs,
                               err, sizeof(err)),
                     0);
    size_t n = forge(tok, hdrs[0], payload, SIG_HS256, NULL, pem, strlen(pem));
    assert_status(token_verify(hs, tok, n, NOW, NULL), TOKEN_BAD_ALG);
    n = forge(tok, "{\"alg\":\"HS256\",\"kid\":\"hs\"}", payload, SIG_HS256, NULL, secret, 32);
    assert_status(token_verify(hs, tok, n, NOW, NULL), TOKEN_OK);
    n = forge(tok, "{\"alg\":\"HS256\",\"kid\":\"hs\"}", payload, SIG_HS256, NULL, pem, strlen(pem));
    assert_status(token_verify(hs, tok, n, NOW, NULL), TOKEN_BAD_SIGNATURE);
    n = forge(tok, "{\"alg\":\"ES256\",\"kid\":\"hs\"}", payload, SIG_ES256, g_k1, NULL, 0);
    assert_status(token_verify(hs, tok, n, NOW, NULL), TOKEN_BAD_ALG);
    token_keyset_free(hs);

    /* A set whose signing key is HS256 signs HS256 tokens that verify. */
    assert_int_equal(load_keys(json_pack("[o, o]", oct_jwk("hs", secret, 32), ec_jwk(g_k1, KID1, false)), true, &hs,
                               err, sizeof(err)),
                     0);
    assert_string_equal(token_keyset_alg(hs, 0), "HS256");
    token_claims_t c = sample_claims();
    int sn = token_sign(hs, &c, tok, sizeof(tok));
    assert_true(sn > 0);
    assert_status(token_verify(hs, tok, (size_t)sn, NOW, NULL), TOKEN_OK);
    tok[sn - 1] = tok[sn - 1] == 'A' ? 'Q' : 'A';
    assert_status(token_verify(hs, tok, (size_t)sn, NOW, NULL), TOKEN_BAD_SIGNATURE);
    token_keyset_free(hs);

    free(jwk);
    free(pem);
    free(payload);
    token_keyset_free(ks);
}

static void test_forged_kid(void **state)
{
    (void)state;
    token_keyset_t *ks = set_k1(false);
    json_t *cl = std_claims();
    char *payload = json_dumps(cl, JSON_COMPACT);
    json_decref(cl);
    const char *kids[] = {"nope", "../../../../etc/passwd", "/dev/null", "key-one' OR '1'='1", "key-one\\u0000",
                          "key-one ", "KEY-ONE", "key-on", "key-one-", "|cat /etc/shadow", "${jndi:ldap://x}", ""};
    char tok[TOK_CAP], hdr[256];
    for (size_t i = 0; i < sizeof(kids) / sizeof(kids[0]); i++) {
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kids[i]);
        size_t n = forge(tok, hdr, payload, SIG_ES256, g_k1, NULL, 0);
        token_status_t st = token_verify(ks, tok, n, NOW, NULL);
        if (strstr(kids[i], "\\u0000") != NULL)
            assert_status(st, TOKEN_BAD_HEADER); /* NUL in a string: not JSON we accept */
        else
            assert_status(st, TOKEN_UNKNOWN_KID);
    }
    const char *bad[] = {"{\"alg\":\"ES256\",\"kid\":7}", "{\"alg\":\"ES256\",\"kid\":[\"" KID1 "\"]}",
                         "{\"alg\":\"ES256\",\"kid\":null}", "{\"alg\":\"ES256\",\"kid\":{\"$ne\":\"\"}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = forge(tok, bad[i], payload, SIG_ES256, g_k1, NULL, 0);
        assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_HEADER);
    }
    /* A long kid. */
    char longkid[3000];
    memset(longkid, 'k', sizeof(longkid) - 1);
    longkid[sizeof(longkid) - 1] = '\0';
    static char lhdr[4000];
    snprintf(lhdr, sizeof(lhdr), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", longkid);
    size_t n = forge(tok, lhdr, "{}", SIG_ES256, g_k1, NULL, 0);
    assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_UNKNOWN_KID);
    free(payload);
    token_keyset_free(ks);
}

static void test_forged_headers(void **state)
{
    (void)state;
    token_keyset_t *ks = set_k1(false);
    /* Each validly signed by our key: the header alone refuses it. */
    const char *hdrs[] = {
        "{\"alg\":\"ES256\",\"kid\":\"" KID1 "\",\"jku\":\"https://evil.example/jwks.json\"}",
        "{\"alg\":\"ES256\",\"kid\":\"" KID1 "\",\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}}",
        "{\"alg\":\"ES256\",\"kid\":\"" KID1 "\",\"x5u\":\"https://evil.example/cert.pem\"}",
        "{\"alg\":\"ES256\",\"kid\":\"" KID1 "\",\"x5c\":[\"MIIB\"]}",
        "{\"alg\":\"ES256\",\"kid\":\"" KID1 "\",\"crit\":[\"exp\"]}",
        "{\"alg\":\"ES256\",\"kid\":\"" KID1 "\",\"jku\":null}",
        "{\"alg\":\"ES256\",\"kid\":\"" KID1 "\",\"typ\":\"at+jwt\"}",
        "{\"alg\":\"ES256\",\"kid\":\"" KID1 "\",\"typ\":\"jwt\"}",
        "{\"alg\":\"ES256\",\"kid\":\"" KID1 "\",\"typ\":1}",
        "{\"alg\":\"ES256\",\"alg\":\"none\",\"kid\":\"" KID1 "\"}", /* duplicate member */
        "{\"alg\":\"ES256\",\"kid\":\"" KID1 "\"} ",                 /* fine JSON, then... see below */
        "[\"ES256\",\"" KID1 "\"]",
        "\"ES256\"",
        "{\"alg\":\"ES256\",\"kid\":\"" KID1 "\"}{}",
        "{\"alg\":\"ES256\",\"kid\":\"" KID1 "\"",
        "not json",
    };
    json_t *cl = std_claims();
    char *payload = json_dumps(cl, JSON_COMPACT);
    json_decref(cl);
    char tok[TOK_CAP];
    for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
        size_t n = forge(tok, hdrs[i], payload, SIG_ES256, g_k1, NULL, 0);
        token_status_t want = i == 10 ? TOKEN_OK : TOKEN_BAD_HEADER; /* trailing whitespace is valid JSON */
        token_status_t got = token_verify(ks, tok, n, NOW, NULL);
        if (got != want)
            fail_msg("header %zu (%s): %s", i, hdrs[i], token_status_name(got));
    }
    /* typ absent, unknown harmless members: accepted. */
    size_t n = forge(tok, "{\"kid\":\"" KID1 "\",\"alg\":\"ES256\",\"cty\":\"x\"}", payload, SIG_ES256, g_k1, NULL, 0);
    assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_OK);
    free(payload);
    token_keyset_free(ks);
}

static void test_forged_encoding(void **state)
{
    (void)state;
    token_keyset_t *ks = set_k1(false);
    token_claims_t c = sample_claims();
    char good[TOK_CAP], tok[TOK_CAP + 16];
    int n = token_sign(ks, &c, good, sizeof(good));
    assert_true(n > 0);
    assert_status(token_verify(ks, good, (size_t)n, NOW, NULL), TOKEN_OK);
    const char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
    size_t i1 = (size_t)(d1 - good), i2 = (size_t)(d2 - good);
    /* One bad character at the start of each segment, mid-signature, or at the end. */
    const char bad_chars[] = {'+', '/', '=', ' ', '\t', '\n', '\r', '\0', '"', '%', '*', (char)0x80, (char)0xff};
    size_t where[] = {0, i1 + 1, i2 + 1, i2 + 20, (size_t)n - 1};
    for (size_t b = 0; b < sizeof(bad_chars); b++) {
        for (size_t w = 0; w < sizeof(where) / sizeof(where[0]); w++) {
            memcpy(tok, good, (size_t)n + 1);
            tok[where[w]] = bad_chars[b];
            assert_status(token_verify(ks, tok, (size_t)n, NOW, NULL), TOKEN_MALFORMED);
        }
        /* Appended (e.g. "=" padding, a trailing newline). */
        memcpy(tok, good, (size_t)n);
        tok[n] = bad_chars[b];
        assert_status(token_verify(ks, tok, (size_t)n + 1, NOW, NULL), TOKEN_MALFORMED);
    }
    /* Padding on the payload segment. */
    memcpy(tok, good, i2);
    memcpy(tok + i2, "==", 2);
    memcpy(tok + i2 + 2, good + i2, (size_t)n - i2);
    assert_status(token_verify(ks, tok, (size_t)n + 2, NOW, NULL), TOKEN_MALFORMED);
    /* Leading whitespace, "Bearer " left in. */
    snprintf(tok, sizeof(tok), " %s", good);
    assert_status(token_verify(ks, tok, (size_t)n + 1, NOW, NULL), TOKEN_MALFORMED);
    snprintf(tok, sizeof(tok), "Bearer %s", good);
    assert_status(token_verify(ks, tok, strlen(tok), NOW, NULL), TOKEN_MALFORMED);
    /* A signature segment of impossible length (86 + 3 chars: len % 4 == 1). */
    memcpy(tok, good, (size_t)n);
    memcpy(tok + n, "AAA", 3);
    assert_status(token_verify(ks, tok, (size_t)n + 3, NOW, NULL), TOKEN_MALFORMED);
    /* Non-canonical last character of the signature (86 chars: 4 unused bits). */
    memcpy(tok, good, (size_t)n + 1);
    char last = tok[n - 1];
    int v = (int)(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last) -
                  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    tok[n - 1] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[v | 1];
    assert_status(token_verify(ks, tok, (size_t)n, NOW, NULL), TOKEN_MALFORMED);
    token_keyset_free(ks);
}

static void test_forged_segments(void **state)
{
    (void)state;
    token_keyset_t *ks = set_k1(false);
    token_claims_t c = sample_claims();
    char good[TOK_CAP], tok[2 * TOK_CAP];
    int n = token_sign(ks, &c, good, sizeof(good));
    const char *d2 = strrchr(good, '.');
    size_t i2 = (size_t)(d2 - good);
    /* Two segments (signature dropped), four and five segments. */
    assert_status(token_verify(ks, good, i2, NOW, NULL), TOKEN_MALFORMED);
    snprintf(tok, sizeof(tok), "%s.%s", good, d2 + 1);
    assert_status(token_verify(ks, tok, strlen(tok), NOW, NULL), TOKEN_MALFORMED);
    snprintf(tok, sizeof(tok), "%s.", good);
    assert_status(token_verify(ks, tok, strlen(tok), NOW, NULL), TOKEN_MALFORMED);
    snprintf(tok, sizeof(tok), "%s.AAAA.AAAA", good);
    assert_status(token_verify(ks, tok, strlen(tok), NOW, NULL), TOKEN_MALFORMED);
    /* A JWE-shaped token (five segments). */
    assert_status(token_verify(ks, "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", 32, NOW, NULL), TOKEN_MALFORMED);
    const char *tiny[] = {".", "..", "...", "a", "a.b", ".b.c", "a..c", "eyJ9..", "e30.e30"};
    for (size_t i = 0; i < sizeof(tiny) / sizeof(tiny[0]); i++)
        assert_status(token_verify(ks, tiny[i], strlen(tiny[i]), NOW, NULL), TOKEN_MALFORMED);
    assert_status(token_verify(ks, "", 0, NOW, NULL), TOKEN_MALFORMED);
    assert_status(token_verify(ks, NULL, 10, NOW, NULL), TOKEN_MALFORMED);
    assert_status(token_verify(NULL, good, (size_t)n, NOW, NULL), TOKEN_MALFORMED);
    assert_status(token_verify(ks, good, (size_t)n, NOW, NULL), TOKEN_OK);
    token_keyset_free(ks);
}

static void test_forged_length(void **state)
{
    (void)state;
    token_keyset_t *ks = set_k1(false);
    size_t big = 100 * 1024;
    char *tok = malloc(big + 1);
    /* A 100 KB token with a valid shape (our header, a huge payload). */
    char hb[256];
    b64(HDR1, strlen(HDR1), hb, sizeof(hb));
    size_t hl = strlen(hb);
    memcpy(tok, hb, hl);
    tok[hl] = '.';
    memset(tok + hl + 1, 'A', big - hl - 1 - 87);
    tok[big - 87] = '.';
    memset(tok + big - 86, 'A', 86);
    tok[big] = '\0';
    assert_status(token_verify(ks, tok, big, NOW, NULL), TOKEN_TOO_LONG);
    assert_status(token_verify(ks, tok, TOKEN_MAX_LEN + 1, NOW, NULL), TOKEN_TOO_LONG);
    /* Just under the cap it is parsed (and fails on its signature). */
    memcpy(tok + TOKEN_MAX_LEN - 87, ".", 1);
    memset(tok + TOKEN_MAX_LEN - 86, 'A', 86);
    assert_status(token_verify(ks, tok, TOKEN_MAX_LEN, NOW, NULL), TOKEN_BAD_SIGNATURE);
    free(tok);

    /* A validly signed token over the cap is refused by length alone. */
    json_t *cl = std_claims();
    char pad[TOKEN_MAX_LEN];
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    json_object_set_new(cl, "pad", json_string(pad));
    char *payload = json_dumps(cl, JSON_COMPACT);
    json_decref(cl);
    static char bigtok[4 * TOKEN_MAX_LEN];
    /* forge() caps at TOK_CAP; build this one by hand. */
    snprintf(bigtok, sizeof(bigtok), "%s.", hb);
    b64(payload, strlen(payload), bigtok + strlen(bigtok), sizeof(bigtok) - strlen(bigtok));
    strcat(bigtok, ".AAAA");
    assert_true(strlen(bigtok) > TOKEN_MAX_LEN);
    assert_status(token_verify(ks, bigtok, strlen(bigtok), NOW, NULL), TOKEN_TOO_LONG);
    free(payload);
    token_keyset_free(ks);
}

static void test_forged_signature(void **state)
{
    (void)state;
    token_keyset_t *ks = set_k1(true);
    json_t *cl = std_claims();
    char *payload = json_dumps(cl, JSON_COMPACT);
    json_decref(cl);
    char tok[TOK_CAP], good[TOK_CAP];
    /* Another EC key signing with our kid. */
    size_t n = forge(tok, HDR1, payload, SIG_ES256, g_other, NULL, 0);
    assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_SIGNATURE);
    /* Key two's signature under key one's kid. */
    n = forge(tok, HDR1, payload, SIG_ES256, g_k2, NULL, 0);
    assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_SIGNATURE);
    /* DER instead of R||S. */
    n = forge(tok, HDR1, payload, SIG_ES256_DER, g_k1, NULL, 0);
    assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_SIGNATURE);
    /* Zero, all-ones, short, long signatures. */
    unsigned char raw[80];
    memset(raw, 0, sizeof(raw));
    size_t lens[] = {0, 1, 32, 63, 64, 65, 72};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        n = forge(tok, HDR1, payload, SIG_RAW, NULL, raw, lens[i]);
        assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_SIGNATURE);
    }
    memset(raw, 0xff, sizeof(raw));
    n = forge(tok, HDR1, payload, SIG_RAW, NULL, raw, 64);
    assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_SIGNATURE);

    /* Every bit of a valid signature, flipped one at a time; and bits of header and payload. */
    size_t gn = forge(good, HDR1, payload, SIG_ES256, g_k1, NULL, 0);
    assert_status(token_verify(ks, good, gn, NOW, NULL), TOKEN_OK);
    const char *d2 = strrchr(good, '.');
    unsigned char sig[64];
    assert_int_equal(token_b64url_decode(d2 + 1, strlen(d2 + 1), sig, sizeof(sig)), 64);
    for (int bit = 0; bit < 512; bit++) {
        sig[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        n = forge(tok, HDR1, payload, SIG_RAW, NULL, sig, 64);
        assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_SIGNATURE);
        sig[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    n = forge(tok, HDR1, payload, SIG_RAW, NULL, sig, 64);
    assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_OK);
    /* Payload edits keeping the signature: another tenant's tid, more roles, a later exp. */
    const char *edits[][2] = {{"0c4f3a1e", "0c4f3a1f"}, {"\"member\"", "\"owner\""}, {"1800000900", "1900000900"}};
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        char *p2 = strdup(payload);
        char *at = strstr(p2, edits[i][0]);
        assert_non_null(at);
        char edited[1024];
        snprintf(edited, sizeof(edited), "%.*s%s%s", (int)(at - p2), p2, edits[i][1], at + strlen(edits[i][0]));
        n = forge(tok, HDR1, edited, SIG_RAW, NULL, sig, 64);
        assert_status(token_verify(ks, tok, n, NOW, NULL), TOKEN_BAD_SIGNATURE);
        free(p2);
    }
    free(payload);
    token_keyset_free(ks);
}

/* ------------------------------------------------------------------------------------------------
 * Claims (validly signed; the claim check alone refuses)
 * ---------------------------------------------------------------------------------------------- */

static void test_claims(void **state)
{
    (void)state;
    token_keyset_t *ks = set_k1(false);
    json_t *c;
    assert_status(verify_claims(ks, HDR1, std_claims()), TOKEN_OK);

    struct {
        const char *member;
        json_t *value; /* NULL: remove */
        token_status_t want;
    } cases[] = {
        {"exp", NULL, TOKEN_BAD_CLAIMS},
        {"exp", json_string("1900000000"), TOKEN_BAD_CLAIMS},
        {"exp", json_real(1900000000.0), TOKEN_BAD_CLAIMS},
        {"exp", json_real(1900000000.5), TOKEN_BAD_CLAIMS},
        {"exp", json_true(), TOKEN_BAD_CLAIMS},
        {"exp", json_null(), TOKEN_BAD_CLAIMS},
        {"exp", json_integer(NOW), TOKEN_EXPIRED},
        {"exp", json_integer(NOW - 3600), TOKEN_EXPIRED},
        {"exp", json_integer(-1), TOKEN_EXPIRED},
        {"exp", json_integer(NOW + 1), TOKEN_OK},
        {"iat", NULL, TOKEN_BAD_CLAIMS},
        {"iat", json_string("now"), TOKEN_BAD_CLAIMS},
        {"nbf", json_integer(NOW + TOKEN_NBF_LEEWAY), TOKEN_OK},
        {"nbf", json_integer(NOW + TOKEN_NBF_LEEWAY + 1), TOKEN_NOT_YET_VALID},
        {"nbf", json_integer(INT64_MAX), TOKEN_NOT_YET_VALID},
        {"nbf", json_integer(INT64_MIN), TOKEN_OK},
        {"nbf", json_string("0"), TOKEN_BAD_CLAIMS},
        {"nbf", json_real(1.0), TOKEN_BAD_CLAIMS},
        {"iss", json_string("https://evil.example"), TOKEN_BAD_ISSUER},
        {"iss", json_string(ISS "/"), TOKEN_BAD_ISSUER},
        {"iss", json_pack("[s]", ISS), TOKEN_BAD_ISSUER},
        {"iss", NULL, TOKEN_BAD_ISSUER},
        {"aud", json_string("other-api"), TOKEN_BAD_AUDIENCE},
        {"aud", json_string(AUD "x"), TOKEN_BAD_AUDIENCE},
        {"aud", NULL, TOKEN_BAD_AUDIENCE},
        {"aud", json_integer(1), TOKEN_BAD_AUDIENCE},
        {"aud", json_pack("[]"), TOKEN_BAD_AUDIENCE},
        {"aud", json_pack("[s,s]", "a", "b"), TOKEN_BAD_AUDIENCE},
        {"aud", json_pack("[s,s]", "other", AUD), TOKEN_OK},
        {"aud", json_pack("[i,s]", 1, AUD), TOKEN_OK},
        {"roles", json_string("admin"), TOKEN_BAD_CLAIMS},
        {"roles", json_pack("{s:s}", "0", "admin"), TOKEN_BAD_CLAIMS},
        {"roles", NULL, TOKEN_BAD_CLAIMS},
        {"roles", json_pack("[i]", 1), TOKEN_BAD_CLAIMS},
        {"roles", json_pack("[s]", ""), TOKEN_BAD_CLAIMS},
        {"roles", json_pack("[[s]]", "admin"), TOKEN_BAD_CLAIMS},
        {"roles", json_pack("[]"), TOKEN_OK},
        {"sub", NULL, TOKEN_BAD_CLAIMS},
        {"sub", json_string(""), TOKEN_BAD_CLAIMS},
        {"sub", json_integer(5), TOKEN_BAD_CLAIMS},
        {"sub", json_string("a\nb"), TOKEN_BAD_CLAIMS},
        {"tid", NULL, TOKEN_BAD_CLAIMS},
        {"tid", json_pack("[s]", "0c4f3a1e-5d2b-4c7a-9e8f-1a2b3c4d5e6f"), TOKEN_BAD_CLAIMS},
        {"sid", NULL, TOKEN_BAD_CLAIMS},
        {"sid", json_null(), TOKEN_BAD_CLAIMS},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        c = std_claims();
        if (cases[i].value == NULL)
            json_object_del(c, cases[i].member);
        else
            json_object_set_new(c, cases[i].member, cases[i].value);
        token_status_t got = verify_claims(ks, HDR1, c);
        if (got != cases[i].want)
            fail_msg("case %zu (%s): %s, expected %s", i, cases[i].member, token_status_name(got),
                     token_status_name(cases[i].want));
    }
    /* Sizes: 63 bytes fine, 64 not; 16 roles fine, 17 not. */
    char s63[64], s64[65];
    memset(s63, 'x', 63);
    s63[63] = '\0';
    memset(s64, 'x', 64);
    s64[64] = '\0';
    const char *fields[] = {"sub", "tid", "sid"};
    for (size_t i = 0; i < 3; i++) {
        c = std_claims();
        json_object_set_new(c, fields[i], json_string(s63));
        assert_status(verify_claims(ks, HDR1, c), TOKEN_OK);
        c = std_claims();
        json_object_set_new(c, fields[i], json_string(s64));
        assert_status(verify_claims(ks, HDR1, c), TOKEN_BAD_CLAIMS);
    }
    c = std_claims();
    json_object_set_new(c, "roles", json_pack("[s]", s64));
    assert_status(verify_claims(ks, HDR1, c), TOKEN_BAD_CLAIMS);
    json_t *roles = json_array();
    for (int i = 0; i < TOKEN_MAX_ROLES; i++)
        json_array_append_new(roles, json_string(s63));
    c = std_claims();
    json_object_set_new(c, "roles", json_copy(roles));
    assert_status(verify_claims(ks, HDR1, c), TOKEN_OK);
    json_array_append_new(roles, json_string("one-more"));
    c = std_claims();
    json_object_set_new(c, "roles", roles);
    assert_status(verify_claims(ks, HDR1, c), TOKEN_BAD_CLAIMS);

    /* Payloads that are not a claims object, or are ambiguous. */
    const char *texts[] = {
        "[]", "null", "\"x\"", "{}", "not json", "{\"sub\":\"a\"",
        "{\"sub\":\"a\",\"tid\":\"b\",\"sid\":\"c\",\"roles\":[],\"iat\":1,\"exp\":1900000000,\"exp\":1,"
        "\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"}",
        "{\"sub\":\"a\",\"tid\":\"b\",\"sid\":\"c\",\"roles\":[],\"iat\":1,\"exp\":99999999999999999999999,"
        "\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"}",
        "{\"sub\":\"a\\u0000b\",\"tid\":\"b\",\"sid\":\"c\",\"roles\":[],\"iat\":1,\"exp\":1900000000,"
        "\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"}",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        token_status_t got = verify_text(ks, HDR1, texts[i]);
        if (got != TOKEN_BAD_CLAIMS)
            fail_msg("payload %zu: %s", i, token_status_name(got));
    }
    assert_status(verify_text(ks, HDR1,
                              "{\"sub\":\"a\",\"tid\":\"b\",\"sid\":\"c\",\"roles\":[],\"iat\":1,\"exp\":1900000000,"
                              "\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"}"),
                  TOKEN_OK);

    /* token_check_claims alone; out is zeroed on refusal. */
    token_claims_t out;
    memset(&out, 0x55, sizeof(out));
    const char *exp_str = "{\"sub\":\"a\",\"tid\":\"b\",\"sid\":\"c\",\"roles\":[],\"iat\":1,\"exp\":\"2000000000\"}";
    assert_status(token_check_claims(ks, exp_str, strlen(exp_str), NOW, &out), TOKEN_BAD_CLAIMS);
    token_claims_t zero;
    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(&out, &zero, sizeof(out));
    token_keyset_free(ks);
}

/* ------------------------------------------------------------------------------------------------
 * Rotation
 * ---------------------------------------------------------------------------------------------- */

static void test_rotation(void **state)
{
    (void)state;
    char err[512];
    /* A token signed by the second key of a set verifies. */
    json_t *k2only = json_pack("[o]", ec_jwk(g_k2, KID2, true));
    token_keyset_t *old = NULL;
    assert_int_equal(load_keys(k2only, false, &old, err, sizeof(err)), 0);
    token_claims_t c = sample_claims();
    char tok[TOK_CAP];
    int n = token_sign(old, &c, tok, sizeof(tok));
    assert_true(n > 0);
    token_keyset_t *both = set_k1(true);
    assert_status(token_verify(both, tok, (size_t)n, NOW, NULL), TOKEN_OK);
    /* New tokens from the two-key set are signed by its first key. */
    char tok1[TOK_CAP];
    int n1 = token_sign(both, &c, tok1, sizeof(tok1));
    assert_status(token_verify(both, tok1, (size_t)n1, NOW, NULL), TOKEN_OK);
    assert_status(token_verify(old, tok1, (size_t)n1, NOW, NULL), TOKEN_UNKNOWN_KID);
    /* Key two removed: its tokens name an unknown kid. */
    token_keyset_t *one = set_k1(false);
    assert_status(token_verify(one, tok, (size_t)n, NOW, NULL), TOKEN_UNKNOWN_KID);
    token_keyset_free(one);
    token_keyset_free(both);

    /* token_keyset_rotate_json: generate, sign, rotate, old tokens verify, trim to keep. */
    char *json = NULL;
    assert_int_equal(token_keyset_generate_json(&json), 0);
    token_keyset_t *g0 = NULL;
    assert_int_equal(token_keyset_load_json(json, strlen(json), "g", false, ISS, AUD, &g0, err, sizeof(err)), 0);
    char t0[TOK_CAP];
    int n0 = token_sign(g0, &c, t0, sizeof(t0));
    char kid0[TOKEN_KID_MAX + 1];
    snprintf(kid0, sizeof(kid0), "%s", token_keyset_kid(g0, 0));
    token_keyset_free(g0);
    for (int round = 1; round <= 4; round++) {
        char *next = NULL;
        assert_int_equal(token_keyset_rotate_json(json, strlen(json), 3, &next, err, sizeof(err)), 0);
        free(json);
        json = next;
        token_keyset_t *g = NULL;
        assert_int_equal(token_keyset_load_json(json, strlen(json), "g", false, ISS, AUD, &g, err, sizeof(err)), 0);
        assert_int_equal(token_keyset_size(g), round + 1 > 3 ? 3 : (size_t)round + 1);
        assert_string_not_equal(token_keyset_kid(g, 0), kid0);
        /* The first key's tokens verify while it is kept (rounds 1, 2), then name an unknown kid. */
        assert_status(token_verify(g, t0, (size_t)n0, NOW, NULL), round <= 2 ? TOKEN_OK : TOKEN_UNKNOWN_KID);
        char tn[TOK_CAP];
        int nn = token_sign(g, &c, tn, sizeof(tn));
        assert_status(token_verify(g, tn, (size_t)nn, NOW, NULL), TOKEN_OK);
        token_keyset_free(g);
    }
    /* Extra members of kept keys survive; keep 1 leaves the new key only; bad input refused. */
    json_t *root = json_loads(json, 0, NULL);
    json_object_set_new(json_array_get(json_object_get(root, "keys"), 0), "note", json_string("kept"));
    char *annotated = json_dumps(root, 0);
    json_decref(root);
    char *next = NULL;
    assert_int_equal(token_keyset_rotate_json(annotated, strlen(annotated), 2, &next, err, sizeof(err)), 0);
    assert_non_null(strstr(next, "\"kept\""));
    free(next);
    assert_int_equal(token_keyset_rotate_json(annotated, strlen(annotated), 1, &next, err, sizeof(err)), 0);
    assert_null(strstr(next, "\"kept\""));
    free(next);
    assert_int_equal(token_keyset_rotate_json(annotated, strlen(annotated), 0, &next, err, sizeof(err)), -1);
    assert_null(next);
    assert_int_equal(token_keyset_rotate_json("{\"keys\":[]}", 11, 3, &next, err, sizeof(err)), -1);
    free(annotated);
    free(json);
    token_keyset_free(old);
}

/* ------------------------------------------------------------------------------------------------
 * Threads: one set, many verifiers and signers at once
 * ---------------------------------------------------------------------------------------------- */

static token_keyset_t *g_shared;
static char g_shared_tok[TOK_CAP];
static size_t g_shared_len;

static void *verify_worker(void *arg)
{
    (void)arg;
    long bad = 0;
    token_claims_t c = sample_claims(), got;
    char tok[TOK_CAP];
    for (int i = 0; i < 200; i++) {
        if (token_verify(g_shared, g_shared_tok, g_shared_len, NOW, &got) != TOKEN_OK || got.nroles != 2)
            bad++;
        int n = token_sign(g_shared, &c, tok, sizeof(tok));
        if (n <= 0 || token_verify(g_shared, tok, (size_t)n, NOW, NULL) != TOKEN_OK)
            bad++;
    }
    return (void *)bad;
}

static void test_threads(void **state)
{
    (void)state;
    g_shared = set_k1(true);
    token_claims_t c = sample_claims();
    int n = token_sign(g_shared, &c, g_shared_tok, sizeof(g_shared_tok));
    assert_true(n > 0);
    g_shared_len = (size_t)n;
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, verify_worker, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *bad = NULL;
        pthread_join(th[i], &bad);
        assert_int_equal((long)bad, 0);
    }
    token_keyset_free(g_shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_generate_and_load),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_sign_refuses),
        cmocka_unit_test(test_libjwt_interop),
        cmocka_unit_test(test_forged_alg_none),
        cmocka_unit_test(test_forged_hs256_confusion),
        cmocka_unit_test(test_forged_kid),
        cmocka_unit_test(test_forged_headers),
        cmocka_unit_test(test_forged_encoding),
        cmocka_unit_test(test_forged_segments),
        cmocka_unit_test(test_forged_length),
        cmocka_unit_test(test_forged_signature),
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
