/*
 * keys: the key-set commands of tenantctl (see keys.h). The JWKS work itself — generating a key,
 * validating a set, rotating it — is token_keyset_generate_json / token_keyset_rotate_json in
 * security/token.c, so what the server loads and what this writes are checked by the same code;
 * this file parses options, reads and atomically replaces the file, and reports kids (never key
 * material). Buffers that held private keys are wiped before they are freed.
 */
#include "cli/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli/cli.h"
#include "security/token.h"

#define KEYS_DEFAULT_FILE ".dev/jwks.json"
#define KEYS_FILE_MAX (1024 * 1024)

static const char KEYS_USAGE[] =
    "usage: tenantctl keys generate [--out FILE] [--force]\n"
    "       tenantctl keys rotate [--file FILE] [--keep N]\n"
    "\n"
    "Manages the JWT signing key set (JWKS with private parts; the first key signs, all verify).\n"
    "FILE defaults to $TENANTD_JWT_KEYS, else .dev/jwks.json. Files are written atomically, mode 0600.\n"
    "\n"
    "  generate   write a new key set with one ES256 (P-256) key; an existing FILE is replaced only\n"
    "             with --force (its keys are lost and every token they signed stops verifying);\n"
    "             --out - prints the set to stdout\n"
    "  rotate     put a new ES256 key first (it signs from the next server start); older keys keep\n"
    "             verifying; keep at most N keys, the new one included (default 3), dropping the\n"
    "             oldest. Rotate again only after the access-token lifetime has passed, or tokens\n"
    "             signed by a dropped key stop verifying early.\n";

static const char *default_file(void)
{
    const char *env = getenv("TENANTD_JWT_KEYS");
    return env != NULL && env[0] != '\0' ? env : KEYS_DEFAULT_FILE;
}

static void wipe_free(char *p)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, strlen(p));
        free(p);
    }
}

/* Reads the key set file (at most KEYS_FILE_MAX bytes) into a malloc'ed NUL-terminated buffer. */
static char *read_keys(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT)
            cli_error("%s: no key set there (create one with `tenantctl keys generate`)", path);
        else
            cli_error("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(KEYS_FILE_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, KEYS_FILE_MAX + 1, f) : 0;
    bool bad = buf == NULL || ferror(f) || n > KEYS_FILE_MAX;
    fclose(f);
    if (bad) {
        cli_error("cannot read %s%s", path, n > KEYS_FILE_MAX ? ": larger than 1 MiB" : "");
        if (buf != NULL)
            OPENSSL_cleanse(buf, n);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Replaces path with data atomically: a 0600 temporary file in the same folder, written and
 * fsync'ed, renamed over path, then the folder fsync'ed. 0, or -1 after printing why. */
static int write_atomic(const char *path, const char *data, size_t len)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= sizeof(tmp)) {
        cli_error("%s: path too long", path);
        return -1;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        cli_error("cannot create a file in %s: %s", dir, strerror(errno));
        return -1;
    }
    bool ok = fchmod(fd, 0600) == 0;
    for (size_t off = 0; ok && off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        off += ok ? (size_t)w : 0;
    }
    int saved = errno;
    ok = ok && fsync(fd) == 0;
    if (!ok)
        saved = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        unlink(tmp);
        cli_error("cannot write %s: %s", path, strerror(saved));
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* Loads json as a key set (HS256 allowed) to list its kids; NULL after printing. */
static token_keyset_t *load_for_listing(const char *json, size_t len, const char *path)
{
    token_keyset_t *ks = NULL;
    char err[512];
    if (token_keyset_load_json(json, len, path, true, "tenantctl", "tenantctl", &ks, err, sizeof(err)) != 0) {
        cli_error("%s", err);
        return NULL;
    }
    return ks;
}

static int cmd_generate(int argc, char **argv)
{
    static const char usage[] = "usage: tenantctl keys generate [--out FILE] [--force]\n"
                                "\n"
                                "Writes a new JWT key set with one ES256 key (see `tenantctl keys --help`).\n";
    const char *out = NULL;
    bool force = false;
    const cli_opt_t opts[] = {{"out", &out, NULL}, {"force", NULL, &force}, {NULL, NULL, NULL}};
    int npos = 0;
    int rc = cli_parse(argc, argv, opts, NULL, 0, 0, &npos, usage);
    if (rc == CLI_HELP_SHOWN)
        return CLI_OK;
    if (rc != 0)
        return rc;
    if (out == NULL)
        out = default_file();
    if (out[0] == '\0') {
        cli_error("--out needs a file name");
        return CLI_USAGE;
    }
    bool to_stdout = strcmp(out, "-") == 0;
    if (!to_stdout && !force && access(out, F_OK) == 0) {
        cli_error("%s already exists; replacing it drops its keys (every token they signed stops verifying): "
                  "use `tenantctl keys rotate`, or --force",
                  out);
        return CLI_FAIL;
    }
    char *json = NULL;
    if (token_keyset_generate_json(&json) != 0) {
        cli_error("could not generate a key");
        return CLI_FAIL;
    }
    size_t len = strlen(json);
    token_keyset_t *ks = load_for_listing(json, len, "generated key set");
    rc = CLI_FAIL;
    if (ks == NULL)
        goto out;
    if (to_stdout) {
        if (fwrite(json, 1, len, stdout) != len || fflush(stdout) != 0) {
            cli_error("cannot write to stdout");
            goto out;
        }
    } else {
        if (write_atomic(out, json, len) != 0)
            goto out;
        printf("wrote %s: one ES256 key, kid %s\n", out, token_keyset_kid(ks, 0));
    }
    rc = CLI_OK;
out:
    token_keyset_free(ks);
    wipe_free(json);
    return rc;
}

static int cmd_rotate(int argc, char **argv)
{
    static const char usage[] = "usage: tenantctl keys rotate [--file FILE] [--keep N]\n"
                                "\n"
                                "Puts a new ES256 key first in the key set (it signs); keeps at most N keys\n"
                                "(default 3), dropping the oldest (see `tenantctl keys --help`).\n";
    const char *file = NULL, *keep_s = NULL;
    const cli_opt_t opts[] = {{"file", &file, NULL}, {"keep", &keep_s, NULL}, {NULL, NULL, NULL}};
    int npos = 0;
    int rc = cli_parse(argc, argv, opts, NULL, 0, 0, &npos, usage);
    if (rc == CLI_HELP_SHOWN)
        return CLI_OK;
    if (rc != 0)
        return rc;
    if (file == NULL)
        file = default_file();
    int keep = TOKEN_ROTATE_KEEP_DEFAULT;
    if (keep_s != NULL) {
        char *end = NULL;
        errno = 0;
        long v = strtol(keep_s, &end, 10);
        if (errno != 0 || end == keep_s || *end != '\0' || v < 1 || v > 64) {
            cli_error("--keep must be a number from 1 to 64");
            fputs(usage, stderr);
            return CLI_USAGE;
        }
        keep = (int)v;
    }
    size_t len = 0;
    char *old = read_keys(file, &len);
    if (old == NULL)
        return CLI_FAIL;
    char *json = NULL;
    token_keyset_t *before = NULL, *after = NULL;
    rc = CLI_FAIL;
    before = load_for_listing(old, len, file);
    if (before == NULL)
        goto out;
    char err[512];
    if (token_keyset_rotate_json(old, len, keep, &json, err, sizeof(err)) != 0) {
        cli_error("%s: %s", file, err);
        goto out;
    }
    after = load_for_listing(json, strlen(json), "rotated key set");
    if (after == NULL || write_atomic(file, json, strlen(json)) != 0)
        goto out;
    printf("rotated %s: new signing key %s; %zu key%s kept\n", file, token_keyset_kid(after, 0),
           token_keyset_size(after), token_keyset_size(after) == 1 ? "" : "s");
    for (size_t i = 0; i < token_keyset_size(before); i++) {
        const char *kid = token_keyset_kid(before, i);
        bool kept = false;
        for (size_t j = 0; j < token_keyset_size(after) && !kept; j++)
            kept = strcmp(kid, token_keyset_kid(after, j)) == 0;
        if (!kept)
            printf("removed key %s (tokens it signed no longer verify)\n", kid);
    }
    printf("restart the servers to sign with the new key\n");
    rc = CLI_OK;
out:
    token_keyset_free(before);
    token_keyset_free(after);
    wipe_free(json);
    if (old != NULL) {
        OPENSSL_cleanse(old, len);
        free(old);
    }
    return rc;
}

int keys_command(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "keys") == 0) {
        argc--;
        argv++;
    }
    if (argc < 1) {
        fputs(KEYS_USAGE, stderr);
        return CLI_USAGE;
    }
    const char *sub = argv[0];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        fputs(KEYS_USAGE, stdout);
        return CLI_OK;
    }
    if (strcmp(sub, "generate") == 0)
        return cmd_generate(argc - 1, argv + 1);
    if (strcmp(sub, "rotate") == 0)
        return cmd_rotate(argc - 1, argv + 1);
    cli_error("unknown keys command '%s'", sub);
    fputs(KEYS_USAGE, stderr);
    return CLI_USAGE;
}
