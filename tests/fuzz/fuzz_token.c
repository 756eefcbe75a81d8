/*
 * libFuzzer target for security/token: arbitrary bytes against token_verify, with a key set
 * generated once at start-up (one ES256 key from token_keyset_generate_json plus an HS256 key with
 * a fixed secret, so inputs reproduce).
 *
 * The first input byte picks a mode: 0 feeds the rest to token_verify as a token; 1 uses it as a
 * payload, signed here with the HS256 key under a fixed header, so the claim checks behind a valid
 * signature are reached (and token_check_claims is run on it directly, which must agree); 2 splits
 * the rest at the first newline into header and payload, both signed, to fuzz the header checks
 * with valid signatures. Whatever the status, a TOKEN_OK result must carry well-formed claims.
 *
 * Build: CC=clang cmake -S . -B build-fuzz -DTENANTD_FUZZ=ON -DTENANTD_TESTS=OFF &&
 *        cmake --build build-fuzz --target fuzz_token; run: build-fuzz/fuzz_token -max_total_time=30
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* The code under test is compiled into this target, not taken from td_security: the fuzz build
 * instruments only the target's own sources, and without coverage feedback from token.c libFuzzer
 * explores blindly (measured: 33 edges instead of ~290). The library's copy is then never linked. */
#include "../../server/security/token.c"

#define NOW ((int64_t)1800000000)
#define HS_KID "fuzz-hs"

static token_keyset_t *g_ks;
static unsigned char g_secret[32];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char *json = NULL;
    if (token_keyset_generate_json(&json) != 0)
        abort();
    json_t *root = json_loads(json, 0, NULL);
    free(json);
    for (size_t i = 0; i < sizeof(g_secret); i++)
        g_secret[i] = (unsigned char)(0xa5 ^ i);
    char k[64];
    token_b64url_encode(g_secret, sizeof(g_secret), k, sizeof(k));
    json_array_append_new(json_object_get(root, "keys"),
                          json_pack("{s:s, s:s, s:s, s:s}", "kty", "oct", "k", k, "kid", HS_KID, "alg", "HS256"));
    json = json_dumps(root, 0);
    json_decref(root);
    char err[256];
    if (json == NULL ||
        token_keyset_load_json(json, strlen(json), "fuzz", true, "https://iss.test", "aud-test", &g_ks, err,
                               sizeof(err)) != 0)
        abort();
    free(json);
    return 0;
}

/* A TOKEN_OK result must hold NUL-terminated, non-empty strings and a role count in range. */
static void check_claims(token_status_t st, const token_claims_t *c)
{
    if (st != TOKEN_OK)
        return;
    if (strnlen(c->sub, 64) == 0 || strnlen(c->sub, 64) > TOKEN_CLAIM_MAX || strnlen(c->tid, 64) == 0 ||
        strnlen(c->tid, 64) > TOKEN_CLAIM_MAX || strnlen(c->sid, 64) == 0 || strnlen(c->sid, 64) > TOKEN_CLAIM_MAX ||
        c->nroles < 0 || c->nroles > TOKEN_MAX_ROLES || c->exp <= NOW)
        abort();
    for (int i = 0; i < c->nroles; i++)
        if (strnlen(c->roles[i], 64) == 0 || strnlen(c->roles[i], 64) > TOKEN_CLAIM_MAX)
            abort();
}

/* Builds b64(header).b64(payload).b64(HS256) into out; returns its length, or 0 when too long. */
static size_t sign_hs(char *out, size_t cap, const uint8_t *h, size_t hlen, const uint8_t *p, size_t plen)
{
    if ((hlen + plen) / 3 * 4 + 64 > cap)
        return 0;
    int n = token_b64url_encode(h, hlen, out, cap);
    size_t pos = (size_t)n;
    out[pos++] = '.';
    pos += (size_t)token_b64url_encode(p, plen, out + pos, cap - pos);
    unsigned char mac[32];
    unsigned int mlen = 0;
    HMAC(EVP_sha256(), g_secret, sizeof(g_secret), (unsigned char *)out, pos, mac, &mlen);
    out[pos++] = '.';
    pos += (size_t)token_b64url_encode(mac, mlen, out + pos, cap - pos);
    return pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static char tok[4 * TOKEN_MAX_LEN];
    token_claims_t c;
    token_status_t st;
    const uint8_t *rest = data + 1;
    size_t rlen = size - 1;
    switch (data[0] % 3) {
    case 0:
        st = token_verify(g_ks, (const char *)rest, rlen, NOW, &c);
        check_claims(st, &c);
        break;
    case 1: {
        static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"" HS_KID "\"}";
        size_t n = sign_hs(tok, sizeof(tok), (const uint8_t *)hdr, strlen(hdr), rest, rlen);
        if (n == 0)
            break;
        st = token_verify(g_ks, tok, n, NOW, &c);
        check_claims(st, &c);
        token_claims_t c2;
        token_status_t st2 = token_check_claims(g_ks, (const char *)rest, rlen, NOW, &c2);
        /* Behind a valid signature, verify decides exactly as the claim check (or refuses the length). */
        if (rlen > 0 && st != TOKEN_TOO_LONG && (st != st2 || (st == TOKEN_OK && memcmp(&c, &c2, sizeof(c)) != 0)))
            abort();
        break;
    }
    default: {
        const uint8_t *nl = memchr(rest, '\n', rlen);
        if (nl == NULL)
            break;
        size_t hlen = (size_t)(nl - rest);
        size_t n = sign_hs(tok, sizeof(tok), rest, hlen, nl + 1, rlen - hlen - 1);
        if (n == 0)
            break;
        st = token_verify(g_ks, tok, n, NOW, &c);
        check_claims(st, &c);
        break;
    }
    }
    return 0;
}
