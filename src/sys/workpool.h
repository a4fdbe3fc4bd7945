/* SPDX-License-Identifier: MIT */
/* A small pool of worker threads for blocking system calls (preadv, fdatasync, fallocate) that a
 * device's I/O thread must not wait for; finished jobs are reported through an eventfd so the
 * I/O thread's epoll loop picks them up. */
#ifndef REVIRT_SYS_WORKPOOL_H
#define REVIRT_SYS_WORKPOOL_H

#include <stdbool.h>

struct workpool;
struct workpool_job;

typedef void (*workpool_fn)(struct workpool_job *job);

/* Embedded in the caller's request; the caller owns its memory, which must stay valid from
 * workpool_submit until the job comes back from workpool_reap. */
struct workpool_job {
    workpool_fn fn;            /* runs on a worker thread */
    struct workpool_job *next; /* the pool's link; also links the list workpool_reap returns */
};

/* Start threads (1..64) worker threads named name (up to 15 characters). -EINVAL for a bad
 * count, -errno when the eventfd or a thread cannot be made (nothing is left running). */
__attribute__((warn_unused_result)) int workpool_create(const char *name, unsigned threads,
                                                        struct workpool **out);
/* Queue job; job->fn(job) runs on some worker, jobs start in submission order. Never fails. */
void workpool_submit(struct workpool *p, struct workpool_job *job);
/* An eventfd (non-blocking) that becomes readable when jobs have finished: watch it for
 * EPOLLIN and call workpool_reap. Owned by the pool. */
int workpool_fd(const struct workpool *p);
/* Take every finished job, as a list linked by next (NULL when none), and clear the eventfd.
 * A job is on the list only after its fn returned. */
struct workpool_job *workpool_reap(struct workpool *p);
/* Wait until every submitted job has finished (they stay to be reaped). */
void workpool_drain(struct workpool *p);
/* Drain, stop the threads and free the pool (unreaped jobs are forgotten). NULL is fine. */
void workpool_destroy(struct workpool *p);

/* For tests and fuzz targets, beside inline I/O loops (ioloop.h): pools created while this is
 * on have no threads, and workpool_submit runs the job on the caller's thread before it
 * returns. Finished jobs still come back through the eventfd and workpool_reap, so the caller
 * sees the same protocol. A process-wide setting, off by default. */
void workpool_set_inline(bool on);

#endif
