/* SPDX-License-Identifier: MIT */
/* Worker threads for blocking system calls: a FIFO of intrusive jobs under one mutex, finished
 * jobs handed back in a list and announced through an eventfd; or, for tests, no threads. */
#include "workpool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WORKPOOL_MAX_THREADS 64u

struct workpool {
    pthread_mutex_t lock;
    pthread_cond_t work;               /* a job was queued, or the pool is stopping */
    pthread_cond_t idle;               /* a job finished (for workpool_drain) */
    struct workpool_job *head, **tail; /* queued, not yet started */
    struct workpool_job *done;         /* finished, not yet reaped (newest first) */
    unsigned busy;                     /* submitted and not finished */
    bool stopping;
    bool inline_mode; /* no threads: submit runs the job itself */
    int efd;
    unsigned nthreads;
    pthread_t threads[WORKPOOL_MAX_THREADS];
};

static bool inline_on;

void workpool_set_inline(bool on)
{
    __atomic_store_n(&inline_on, on, __ATOMIC_RELAXED);
}

/* A job has finished (p->lock held). */
static void finish(struct workpool *p, struct workpool_job *job)
{
    job->next = p->done;
    p->done = job;
    p->busy--;
    pthread_cond_broadcast(&p->idle);
    /* Written after the job is on the list, and the reaper reads the eventfd before taking
     * the list, so a wake-up can be spurious but never lost. */
    uint64_t one = 1;
    (void)!write(p->efd, &one, sizeof(one));
}

static void *worker(void *opaque)
{
    struct workpool *p = opaque;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->work, &p->lock);
        if (!p->head)
            break; /* stopping, and nothing left to run */
        struct workpool_job *job = p->head;
        p->head = job->next;
        if (!p->head)
            p->tail = &p->head;
        pthread_mutex_unlock(&p->lock);

        job->fn(job);

        pthread_mutex_lock(&p->lock);
        finish(p, job);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void stop_threads(struct workpool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    p->nthreads = 0;
}

static void free_pool(struct workpool *p)
{
    if (p->efd >= 0)
        close(p->efd);
    pthread_cond_destroy(&p->idle);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int workpool_create(const char *name, unsigned threads, struct workpool **out)
{
    if (threads == 0 || threads > WORKPOOL_MAX_THREADS)
        return -EINVAL;
    struct workpool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->idle, NULL);
    p->tail = &p->head;
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0) {
        int err = -errno;
        free_pool(p);
        return err;
    }
    p->inline_mode = __atomic_load_n(&inline_on, __ATOMIC_RELAXED);
    if (p->inline_mode) {
        *out = p;
        return 0;
    }
    /* Workers only make blocking calls for their device: leave signals to the VMM's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = 0;
    for (; p->nthreads < threads; p->nthreads++) {
        err = -pthread_create(&p->threads[p->nthreads], NULL, worker, p);
        if (err < 0)
            break;
        if (name) {
            char n[16];
            strncpy(n, name, sizeof(n) - 1);
            n[sizeof(n) - 1] = '\0';
            pthread_setname_np(p->threads[p->nthreads], n);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err < 0) {
        stop_threads(p);
        free_pool(p);
        return err;
    }
    *out = p;
    return 0;
}

void workpool_submit(struct workpool *p, struct workpool_job *job)
{
    job->next = NULL;
    if (p->inline_mode) {
        pthread_mutex_lock(&p->lock);
        p->busy++;
        pthread_mutex_unlock(&p->lock);
        job->fn(job);
        pthread_mutex_lock(&p->lock);
        finish(p, job);
        pthread_mutex_unlock(&p->lock);
        return;
    }
    pthread_mutex_lock(&p->lock);
    *p->tail = job;
    p->tail = &job->next;
    p->busy++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

int workpool_fd(const struct workpool *p)
{
    return p->efd;
}

struct workpool_job *workpool_reap(struct workpool *p)
{
    uint64_t n;
    (void)!read(p->efd, &n, sizeof(n));
    pthread_mutex_lock(&p->lock);
    struct workpool_job *newest = p->done;
    p->done = NULL;
    pthread_mutex_unlock(&p->lock);
    /* Hand them back oldest first: completions then follow the order they happened in. */
    struct workpool_job *list = NULL;
    while (newest) {
        struct workpool_job *next = newest->next;
        newest->next = list;
        list = newest;
        newest = next;
    }
    return list;
}

void workpool_drain(struct workpool *p)
{
    pthread_mutex_lock(&p->lock);
    while (p->busy)
        pthread_cond_wait(&p->idle, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

void workpool_destroy(struct workpool *p)
{
    if (!p)
        return;
    workpool_drain(p);
    stop_threads(p);
    free_pool(p);
}
