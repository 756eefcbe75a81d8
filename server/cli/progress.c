/*
 * progress: a single-line terminal progress bar redrawn with "\r" (see progress.h).
 */
#include "cli/progress.h"

#include <stdio.h>

#include "cli/cli.h"

void progress_start(progress_t *p, const char *label, size_t total, bool tty)
{
    p->label = label;
    p->total = total;
    atomic_init(&p->done, 0);
    atomic_init(&p->failed, 0);
    p->started = cli_now();
    p->tty = tty;
    p->drawn = false;
}

void progress_tick(progress_t *p, bool failed)
{
    if (failed)
        atomic_fetch_add(&p->failed, 1);
    atomic_fetch_add(&p->done, 1);
}

void progress_draw(progress_t *p)
{
    if (!p->tty)
        return;
    size_t done = atomic_load(&p->done), failed = atomic_load(&p->failed);
    double elapsed = cli_now() - p->started;
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    char bar[31];
    size_t width = sizeof(bar) - 1, fill = p->total > 0 ? done * width / p->total : width;
    for (size_t i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    char eta[32] = "-";
    if (rate > 0 && done < p->total)
        snprintf(eta, sizeof(eta), "%.1fs", (double)(p->total - done) / rate);
    else if (done >= p->total)
        snprintf(eta, sizeof(eta), "0s");
    fprintf(stderr, "\r\033[K%s [%s] %zu/%zu  failed %zu  %.0f/s  ETA %s", p->label, bar, done, p->total, failed,
            rate, eta);
    fflush(stderr);
    p->drawn = true;
}

void progress_finish(progress_t *p)
{
    if (!p->tty)
        return;
    progress_draw(p);
    fputc('\n', stderr);
}
