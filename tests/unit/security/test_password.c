/*
 * Unit tests of security/password: argon2id hashing and verification, the rehash rule, the
 * dummy hash that no password matches, and the length limits the API relies on.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "security/password.h"

static int setup(void **state)
{
    (void)state;
    return password_init();
}

static void hash_and_verify(void **state)
{
    (void)state;
    char h[PASSWORD_HASH_MAX];
    assert_int_equal(password_hash("correct horse", 13, h), 0);
    assert_true(strncmp(h, "$argon2id$", 10) == 0);
    assert_true(password_verify(h, "correct horse", 13));
    assert_false(password_verify(h, "correct horsf", 13));
    assert_false(password_verify(h, "correct horse", 12)); /* length-delimited, not NUL-delimited */
    assert_false(password_needs_rehash(h));
}

static void older_parameters_need_rehash(void **state)
{
    (void)state;
    char h[PASSWORD_HASH_MAX];
    assert_int_equal(crypto_pwhash_str(h, "pw-pw-pw", 8, crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN), 0);
    assert_true(password_verify(h, "pw-pw-pw", 8));
    assert_true(password_needs_rehash(h));
}

static void dummy_and_garbage_never_verify(void **state)
{
    (void)state;
    const char *dummy = password_dummy_hash();
    assert_true(strncmp(dummy, "$argon2id$", 10) == 0);
    assert_false(password_verify(dummy, "", 0));
    assert_false(password_verify(dummy, "anything", 8));
    assert_false(password_verify("", "anything", 8));
    assert_false(password_verify(NULL, "anything", 8));
    assert_false(password_verify("$argon2id$garbage", "anything", 8));
}

static void long_passwords(void **state)
{
    (void)state;
    static char pw[PASSWORD_MAX_LEN];
    memset(pw, 'x', sizeof(pw));
    char h[PASSWORD_HASH_MAX];
    assert_int_equal(password_hash(pw, sizeof(pw), h), 0);
    assert_true(password_verify(h, pw, sizeof(pw)));
    pw[PASSWORD_MAX_LEN - 1] = 'y';
    assert_false(password_verify(h, pw, sizeof(pw)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hash_and_verify),
        cmocka_unit_test(older_parameters_need_rehash),
        cmocka_unit_test(dummy_and_garbage_never_verify),
        cmocka_unit_test(long_passwords),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
