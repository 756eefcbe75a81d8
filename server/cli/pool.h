/*
 * pool: tenantctl's `--jobs N` — runs items 0..n-1 over N threads, each with its own owner
 * connection, and shows the progress (a bar on a terminal; see progress.h).
 *
 * Threads take the next item from a shared counter. A connection that breaks while working is
 * replaced once per item; a thread that cannot connect stops, and the items nobody reached are
 * handed to the work function with a NULL connection so that the caller can mark them failed.
 * Used by `migrate` (tenant schemas) and `tenant create --from-file` (new tenants).
 */
#ifndef TENANTD_CLI_POOL_H
#define TENANTD_CLI_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>

#include "cli/cli.h"
#include "cli/progress.h"

typedef struct cli_pool cli_pool_t;

/* Prepares a new worker connection (e.g. takes an advisory lock); 0, or -1 to drop it. */
typedef int (*cli_pool_setup_fn)(PGconn *c, void *ctx);

/* Does item i on connection c (NULL: the item could not be attempted, no connection or thread);
 * returns true when the item failed. Called from worker threads, and from the calling thread for
 * unattempted items. */
typedef bool (*cli_pool_item_fn)(cli_pool_t *pool, PGconn *c, size_t i, void *ctx);

/* One run of the pool; callbacks may read progress.tty and print under out_lock. */
struct cli_pool {
    const cli_env_t *env;
    size_t n;
    cli_pool_setup_fn setup; /* may be NULL */
    cli_pool_item_fn work;
    void *ctx;
    atomic_size_t next;
    atomic_int running;
    progress_t progress;
    pthread_mutex_t out_lock;
};

/* Runs work on every item with jobs threads (at most n), drawing progress labelled label; returns
 * the number of items that failed (unattempted ones included). */
size_t cli_pool_run(const cli_env_t *env, const char *label, size_t n, int jobs, cli_pool_setup_fn setup,
                    cli_pool_item_fn work, void *ctx);

/* Parses a --jobs value (1..64) into *jobs; NULL leaves *jobs as it is. 0, or CLI_USAGE after
 * printing the error. */
int cli_pool_parse_jobs(const char *s, int *jobs);

#endif
