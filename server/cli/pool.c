/*
 * pool: the worker threads behind tenantctl's --jobs (see pool.h). The calling thread only draws
 * the progress display every 100 ms until the workers are done.
 */
#include "cli/pool.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Opens and prepares one worker connection; NULL when either fails. */
static PGconn *pool_connect(cli_pool_t *pool)
{
    PGconn *c = cli_connect_owner(pool->env);
    if (c != NULL && pool->setup != NULL && pool->setup(c, pool->ctx) != 0) {
        PQfinish(c);
        c = NULL;
    }
    return c;
}

static void *worker_main(void *arg)
{
    cli_pool_t *pool = arg;
    PGconn *c = pool_connect(pool);
    while (c != NULL) {
        size_t i = atomic_fetch_add(&pool->next, 1);
        if (i >= pool->n)
            break;
        progress_tick(&pool->progress, pool->work(pool, c, i, pool->ctx));
        if (PQstatus(c) != CONNECTION_OK) {
            /* The server went away: reconnect once for the next item. */
            PQfinish(c);
            c = pool_connect(pool);
        }
    }
    PQfinish(c);
    atomic_fetch_sub(&pool->running, 1);
    return NULL;
}

size_t cli_pool_run(const cli_env_t *env, const char *label, size_t n, int jobs, cli_pool_setup_fn setup,
                    cli_pool_item_fn work, void *ctx)
{
    cli_pool_t pool = {.env = env, .n = n, .setup = setup, .work = work, .ctx = ctx};
    atomic_init(&pool.next, 0);
    pthread_mutex_init(&pool.out_lock, NULL);
    progress_start(&pool.progress, label, n, env->tty);
    if ((size_t)jobs > n)
        jobs = (int)n;
    pthread_t *threads = calloc(jobs > 0 ? (size_t)jobs : 1, sizeof(pthread_t));
    bool *started = calloc(jobs > 0 ? (size_t)jobs : 1, sizeof(bool));
    if (threads == NULL || started == NULL)
        jobs = 0; /* out of memory: every item ends up unattempted below */
    atomic_init(&pool.running, jobs);
    for (int i = 0; i < jobs; i++) {
        started[i] = pthread_create(&threads[i], NULL, worker_main, &pool) == 0;
        if (!started[i])
            atomic_fetch_sub(&pool.running, 1);
    }
    while (atomic_load(&pool.running) > 0) {
        progress_draw(&pool.progress);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < jobs; i++)
        if (started[i])
            pthread_join(threads[i], NULL);
    free(threads);
    free(started);
    /* Items handed out were all worked on; the rest were never reached. */
    size_t reached = atomic_load(&pool.next);
    for (size_t i = reached < n ? reached : n; i < n; i++)
        progress_tick(&pool.progress, work(&pool, NULL, i, ctx));
    progress_finish(&pool.progress);
    pthread_mutex_destroy(&pool.out_lock);
    return atomic_load(&pool.progress.failed);
}

int cli_pool_parse_jobs(const char *s, int *jobs)
{
    if (s == NULL)
        return 0;
    char *end;
    long j = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || j < 1 || j > 64) {
        cli_error("--jobs: expected a number from 1 to 64");
        return CLI_USAGE;
    }
    *jobs = (int)j;
    return 0;
}
