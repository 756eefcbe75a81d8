/*
 * password: the libsodium calls behind password.h.
 */
#include "security/password.h"

#include <string.h>

static char dummy_hash[PASSWORD_HASH_MAX];

int password_init(void)
{
    if (sodium_init() < 0)
        return -1;
    unsigned char secret[32];
    randombytes_buf(secret, sizeof(secret));
    return password_hash((const char *)secret, sizeof(secret), dummy_hash);
}

int password_hash(const char *pw, size_t len, char *out)
{
    return crypto_pwhash_str(out, pw, len, crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0 ? 0 : -1;
}

bool password_verify(const char *hash, const char *pw, size_t len)
{
    if (hash == NULL || hash[0] == '\0' || strlen(hash) >= PASSWORD_HASH_MAX)
        hash = dummy_hash;
    return crypto_pwhash_str_verify(hash, pw, len) == 0 && hash != dummy_hash;
}

bool password_needs_rehash(const char *hash)
{
    return crypto_pwhash_str_needs_rehash(hash, crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0;
}

const char *password_dummy_hash(void)
{
    return dummy_hash;
}
