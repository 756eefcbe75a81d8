/*
 * workpool: the thread pool behind workpool.h — a mutex/condvar FIFO drained by detached
 * threads. Finished jobs travel back as h2o multithread messages, which wake the receiving loop.
 */
#include "infra/workpool.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

static pthread_mutex_t wp_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wp_cond = PTHREAD_COND_INITIALIZER;
static h2o_linklist_t wp_queue = {&wp_queue, &wp_queue};
static int wp_queued, wp_queue_max;

static void *wp_thread(void *arg)
{
    for (;;) {
        pthread_mutex_lock(&wp_mutex);
        while (h2o_linklist_is_empty(&wp_queue))
            pthread_cond_wait(&wp_cond, &wp_mutex);
        workpool_job_t *job = H2O_STRUCT_FROM_MEMBER(workpool_job_t, _msg.link, wp_queue.next);
        h2o_linklist_unlink(&job->_msg.link);
        wp_queued--;
        pthread_mutex_unlock(&wp_mutex);
        job->work(job);
        h2o_multithread_send_message(job->_reply_to, &job->_msg);
    }
    return NULL;
}

int workpool_start(int threads, int queue_max)
{
    wp_queue_max = queue_max;
    /* Pool threads take no signals: a process-directed SIGTERM must reach the main thread's
     * sigwait, not kill the process through a thread that left it unblocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (int i = 0; i < threads && rc == 0; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, wp_thread, NULL) != 0)
            rc = -1;
        else
            pthread_detach(t);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        workpool_job_t *job = H2O_STRUCT_FROM_MEMBER(workpool_job_t, _msg.link, messages->next);
        h2o_linklist_unlink(&job->_msg.link);
        job->done(job);
    }
}

void workpool_receiver_init(workpool_receiver_t *rx, h2o_multithread_queue_t *queue)
{
    h2o_multithread_register_receiver(queue, &rx->receiver, on_messages);
}

void workpool_receiver_dispose(workpool_receiver_t *rx)
{
    h2o_multithread_unregister_receiver(rx->receiver.queue, &rx->receiver);
}

int workpool_submit(workpool_receiver_t *rx, workpool_job_t *job)
{
    pthread_mutex_lock(&wp_mutex);
    if (wp_queued >= wp_queue_max) {
        pthread_mutex_unlock(&wp_mutex);
        return -1;
    }
    job->_reply_to = &rx->receiver;
    h2o_linklist_insert(&wp_queue, &job->_msg.link);
    wp_queued++;
    pthread_cond_signal(&wp_cond);
    pthread_mutex_unlock(&wp_mutex);
    return 0;
}
