/*
 * workpool: a small pool of threads for CPU-heavy work that must never run on an event loop
 * (argon2id password hashing: ~70 ms and 64 MiB each). The pool's size bounds both CPU and
 * memory; its queue is bounded too, so a flood of logins is refused (503) instead of queueing
 * without end.
 *
 * A job runs work() on a pool thread, then its done() runs back on the event loop that
 * submitted it (delivered through h2o's multithread queue of that loop). done() is always called
 * exactly once for an accepted job, also when the submitter lost interest (it checks its own
 * cancelled flag); if workpool_submit fails, neither is called.
 */
#ifndef TENANTD_INFRA_WORKPOOL_H
#define TENANTD_INFRA_WORKPOOL_H

#include <stdbool.h>

#include <h2o.h>
#include <h2o/multithread.h>

typedef struct workpool_job workpool_job_t;

struct workpool_job {
    h2o_multithread_message_t _msg;
    h2o_multithread_receiver_t *_reply_to;
    void (*work)(workpool_job_t *job); /* runs on a pool thread: touch only the job's own data */
    void (*done)(workpool_job_t *job); /* runs on the submitting loop; frees the job */
};

/* A loop's endpoint for finished jobs; one per event loop. */
typedef struct {
    h2o_multithread_receiver_t receiver;
} workpool_receiver_t;

/* Starts threads workers with at most queue_max jobs waiting; 0 or -1. Call once. */
int workpool_start(int threads, int queue_max);

/* Attaches rx to the loop owning queue (h2o_context_t.queue) so done() callbacks run there. */
void workpool_receiver_init(workpool_receiver_t *rx, h2o_multithread_queue_t *queue);

/* Detaches rx from its queue. */
void workpool_receiver_dispose(workpool_receiver_t *rx);

/* Queues job; returns 0, or -1 when the queue is full (then nothing is called). */
int workpool_submit(workpool_receiver_t *rx, workpool_job_t *job);

#endif
