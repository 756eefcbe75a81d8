/*
 * db_bench: drives the db module (server/infra/db.h) directly with pgbench's select-only query,
 * so its throughput can be compared with `pgbench -S -M prepared` measured in the same run.
 *
 * Each thread owns what a tenantd worker owns: an h2o evloop and a db pool on it. It keeps
 * `depth` jobs outstanding (`SELECT abalance FROM pgbench_accounts WHERE aid = $1`, random aid)
 * and resubmits one from every callback. After the pools are up and a warm-up (not counted; it
 * also prepares the statement on every connection), all threads measure the same window of
 * `seconds`, then drain. Latency is submit-to-callback, per job, in a 1 us histogram.
 *
 * Output: one line of key=value pairs on stdout (run.sh parses it); diagnostics on stderr.
 * Exit 0 when every counted job succeeded, 1 on any failure or when the pool never came up.
 *
 *   db_bench -d CONNINFO [-t threads] [-c conns/thread] [-n depth/thread] [-T seconds]
 *            [-w warmup_seconds] [-a accounts]
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "infra/db.h"

#define HIST_BUCKETS 1000000 /* 1 us each: up to 1 s; slower jobs land in the last bucket */
#define MAX_THREADS 64

static db_stmt_t stmt_select = {"bench_select", "SELECT abalance FROM pgbench_accounts WHERE aid = $1", 1, 0};

typedef struct {
    const char *conninfo;
    int threads, conns, depth, seconds, warmup, accounts;
} bench_opts_t;

static bench_opts_t opts = {NULL, 1, 2, 256, 10, 2, 100000};

/* Phases shared by all threads: 0 warm-up, 1 measuring, 2 stopping. */
static atomic_int phase;
static pthread_barrier_t barrier_up, barrier_go;

typedef struct thread_state thread_state_t;

/* One outstanding job slot: resubmitted from its own callback until the run stops. */
typedef struct {
    thread_state_t *ts;
    struct timespec start;
    int counted; /* submitted during the measuring phase */
    char aid[16];
} slot_t;

struct thread_state {
    int index;
    pthread_t tid;
    h2o_evloop_t *loop;
    db_pool_t *pool;
    slot_t *slots;
    uint64_t rng;
    uint64_t ok, failed, rejected, outstanding;
    uint32_t *hist;
    char first_error[256];
    int up;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void submit(slot_t *slot);

static void on_result(void *data, const db_result_t *r)
{
    slot_t *slot = data;
    thread_state_t *ts = slot->ts;
    ts->outstanding--;
    if (slot->counted) {
        struct timespec end;
        clock_gettime(CLOCK_MONOTONIC, &end);
        int64_t us = (int64_t)(end.tv_sec - slot->start.tv_sec) * 1000000 + (end.tv_nsec - slot->start.tv_nsec) / 1000;
        if (r->status == DB_OK && PQntuples(r->results[0]) == 1) {
            ts->ok++;
            ts->hist[us < 0 ? 0 : us >= HIST_BUCKETS ? HIST_BUCKETS - 1 : us]++;
        } else {
            ts->failed++;
        }
    }
    if (r->status != DB_OK && ts->first_error[0] == '\0')
        snprintf(ts->first_error, sizeof(ts->first_error), "%s: %s", db_status_name(r->status), r->message);
    if (atomic_load_explicit(&phase, memory_order_relaxed) < 2)
        submit(slot);
}

static void submit(slot_t *slot)
{
    thread_state_t *ts = slot->ts;
    snprintf(slot->aid, sizeof(slot->aid), "%d", (int)(xorshift(&ts->rng) % (uint64_t)opts.accounts) + 1);
    const char *params[1] = {slot->aid};
    slot->counted = atomic_load_explicit(&phase, memory_order_relaxed) == 1;
    clock_gettime(CLOCK_MONOTONIC, &slot->start);
    db_status_t st;
    if (db_query(ts->pool, &stmt_select, params, on_result, slot, &st) == NULL) {
        ts->rejected++;
        if (ts->first_error[0] == '\0')
            snprintf(ts->first_error, sizeof(ts->first_error), "db_query refused: %s", db_status_name(st));
        return;
    }
    ts->outstanding++;
}

/* Runs the loop for up to ms milliseconds, returning early when done(ts) turns true. */
static void run_loop_until(thread_state_t *ts, int64_t ms, int (*done)(thread_state_t *))
{
    uint64_t deadline = now_ns() + (uint64_t)ms * 1000000u;
    while (!(done != NULL && done(ts)) && now_ns() < deadline)
        h2o_evloop_run(ts->loop, 10);
}

/* db_pool_is_up means "at least one connection"; run_thread then waits a little for the rest. */
static int pool_up(thread_state_t *ts)
{
    return db_pool_is_up(ts->pool);
}

static int drained(thread_state_t *ts)
{
    return ts->outstanding == 0;
}

static void *run_thread(void *arg)
{
    thread_state_t *ts = arg;
    ts->loop = h2o_evloop_create();
    db_pool_options_t po = {opts.conns, opts.depth * 2, 5000};
    ts->pool = db_pool_create(ts->loop, opts.conninfo, &po);
    run_loop_until(ts, 10000, pool_up);
    run_loop_until(ts, 300, NULL); /* let the other connections of the pool finish connecting */
    ts->up = db_pool_is_up(ts->pool);
    pthread_barrier_wait(&barrier_up);

    if (ts->up) {
        for (int i = 0; i < opts.depth; i++)
            submit(&ts->slots[i]);
    }
    /* The main thread moves the phases; every thread runs its loop until phase 2. */
    while (atomic_load(&phase) < 2)
        h2o_evloop_run(ts->loop, 10);
    run_loop_until(ts, 6000, drained);
    pthread_barrier_wait(&barrier_go);
    db_pool_destroy(ts->pool);
    run_loop_until(ts, 50, NULL);
    h2o_evloop_destroy(ts->loop);
    return NULL;
}

static uint64_t percentile_us(const uint32_t *hist, uint64_t total, double p)
{
    uint64_t want = (uint64_t)((double)total * p), seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen > want)
            return (uint64_t)i;
    }
    return HIST_BUCKETS;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: db_bench -d CONNINFO [-t threads] [-c conns/thread] [-n depth/thread] [-T seconds] "
                    "[-w warmup_seconds] [-a accounts]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int c;
    while ((c = getopt(argc, argv, "d:t:c:n:T:w:a:")) != -1) {
        int bad = 0;
        switch (c) {
        case 'd':
            opts.conninfo = optarg;
            break;
        case 't':
            bad = parse_int(optarg, 1, MAX_THREADS, &opts.threads);
            break;
        case 'c':
            bad = parse_int(optarg, 1, 64, &opts.conns);
            break;
        case 'n':
            bad = parse_int(optarg, 1, 100000, &opts.depth);
            break;
        case 'T':
            bad = parse_int(optarg, 1, 3600, &opts.seconds);
            break;
        case 'w':
            bad = parse_int(optarg, 0, 600, &opts.warmup);
            break;
        case 'a':
            bad = parse_int(optarg, 1, 2000000000, &opts.accounts);
            break;
        default:
            usage();
        }
        if (bad)
            usage();
    }
    if (opts.conninfo == NULL || optind != argc)
        usage();

    log_set_level(CONFIG_LOG_WARN); /* the pool logs "connection ready" at info */
    db_stmt_register(&stmt_select);

    thread_state_t *ts = calloc((size_t)opts.threads, sizeof(*ts));
    pthread_barrier_init(&barrier_up, NULL, (unsigned)opts.threads + 1);
    pthread_barrier_init(&barrier_go, NULL, (unsigned)opts.threads);
    for (int i = 0; i < opts.threads; i++) {
        ts[i].index = i;
        ts[i].rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)(i + 1) * 0xBF58476D1CE4E5B9ull) ^ now_ns();
        ts[i].hist = calloc(HIST_BUCKETS, sizeof(uint32_t));
        ts[i].slots = calloc((size_t)opts.depth, sizeof(slot_t));
        if (ts[i].hist == NULL || ts[i].slots == NULL) {
            fprintf(stderr, "db_bench: out of memory\n");
            return 1;
        }
        for (int s = 0; s < opts.depth; s++)
            ts[i].slots[s].ts = &ts[i];
        if (pthread_create(&ts[i].tid, NULL, run_thread, &ts[i]) != 0) {
            fprintf(stderr, "db_bench: pthread_create failed\n");
            return 1;
        }
    }

    pthread_barrier_wait(&barrier_up);
    int all_up = 1;
    for (int i = 0; i < opts.threads; i++)
        all_up &= ts[i].up;
    uint64_t t0 = 0, t1 = 0;
    if (all_up) {
        struct timespec w = {opts.warmup, 0};
        nanosleep(&w, NULL);
        t0 = now_ns();
        atomic_store(&phase, 1);
        struct timespec m = {opts.seconds, 0};
        nanosleep(&m, NULL);
        t1 = now_ns();
    }
    atomic_store(&phase, 2);
    for (int i = 0; i < opts.threads; i++)
        pthread_join(ts[i].tid, NULL);

    if (!all_up) {
        for (int i = 0; i < opts.threads; i++)
            if (!ts[i].up)
                fprintf(stderr, "db_bench: thread %d: the pool did not come up within 10 s (%s)\n", i, opts.conninfo);
        return 1;
    }

    /* Jobs submitted in the window but finished after it are counted too; the window is wall time
     * from the first counted submission to the phase change, so the tail adds at most one round
     * trip of jobs per thread (depth / qps: well under 1%). */
    uint32_t *hist = ts[0].hist;
    uint64_t ok = 0, failed = 0, rejected = 0;
    for (int i = 0; i < opts.threads; i++) {
        ok += ts[i].ok;
        failed += ts[i].failed;
        rejected += ts[i].rejected;
        if (i > 0)
            for (int b = 0; b < HIST_BUCKETS; b++)
                hist[b] += ts[i].hist[b];
        if (ts[i].first_error[0] != '\0')
            fprintf(stderr, "db_bench: thread %d: first error: %s\n", i, ts[i].first_error);
    }
    double secs = (double)(t1 - t0) / 1e9;
    printf("db_bench threads=%d conns=%d depth=%d seconds=%.2f ok=%" PRIu64 " failed=%" PRIu64 " rejected=%" PRIu64
           " qps=%.0f p50_us=%" PRIu64 " p99_us=%" PRIu64 "\n",
           opts.threads, opts.conns, opts.depth, secs, ok, failed, rejected, (double)ok / secs, percentile_us(hist, ok, 0.50),
           percentile_us(hist, ok, 0.99));
    return failed == 0 && rejected == 0 && ok > 0 ? 0 : 1;
}
