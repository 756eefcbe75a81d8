/*
 * keys: `tenantctl keys generate|rotate` — creates and rotates the JWT signing key set, the JWKS
 * file with private parts that the server loads from TENANTD_JWT_KEYS (security/token.h).
 *
 * `generate [--out FILE] [--force]` writes a new set with one ES256 key (refusing to replace an
 * existing file without --force; `--out -` prints it). `rotate [--file FILE] [--keep N]` puts a
 * fresh ES256 key first, so it signs, while the older keys stay to verify tokens they signed, and
 * keeps at most N keys (default 3), dropping the oldest. FILE defaults to $TENANTD_JWT_KEYS, else
 * `.dev/jwks.json`. Files are written atomically (temporary file in the same folder, fsync,
 * rename) with mode 0600. No database is needed. Running servers pick up a new set on restart.
 */
#ifndef TENANTD_CLI_KEYS_H
#define TENANTD_CLI_KEYS_H

/* `tenantctl keys ...`: argv[0] is the subcommand (a leading "keys" word is skipped); returns the
 * exit code, 0 ok, 1 failure, 2 usage (CONTRACT.md §10). */
int keys_command(int argc, char **argv);

#endif
