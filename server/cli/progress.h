/*
 * progress: the progress display of work over many tenants — a redrawn one-line bar on a
 * terminal (done/total, failures, rate, ETA), nothing between the plain per-item lines otherwise.
 * Counters are atomic so worker threads tick them; only the main thread draws.
 */
#ifndef TENANTD_CLI_PROGRESS_H
#define TENANTD_CLI_PROGRESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* State of one progress display. */
typedef struct {
    const char *label;
    size_t total;
    atomic_size_t done;
    atomic_size_t failed;
    double started;
    bool tty;
    bool drawn;
} progress_t;

/* Starts a display of total items; draws only when tty is true. */
void progress_start(progress_t *p, const char *label, size_t total, bool tty);

/* Counts one finished item (thread-safe). */
void progress_tick(progress_t *p, bool failed);

/* Redraws the bar (main thread only; no-op without a terminal). */
void progress_draw(progress_t *p);

/* Draws the final state and ends the line (no-op without a terminal). */
void progress_finish(progress_t *p);

#endif
