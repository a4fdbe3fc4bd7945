/* SPDX-License-Identifier: MIT */
/* The worker pool: every job runs once, comes back through the eventfd, and drain waits; an
 * inline pool runs jobs in submit. */
#include "../check.h"
#include "sys/workpool.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

struct job {
    struct workpool_job w; /* first: the pool hands this back */
    unsigned id;
    atomic_uint runs;
    unsigned delay_us;
};

static atomic_uint running, peak;

static void run(struct workpool_job *w)
{
    struct job *j = (struct job *)w;
    unsigned now = atomic_fetch_add(&running, 1) + 1;
    unsigned p = atomic_load(&peak);
    while (now > p && !atomic_compare_exchange_weak(&peak, &p, now))
        ;
    /* A slow job waits (up to 5 s) for company, so that parallelism is observed however busy
     * the machine is, without the test depending on timing. */
    for (unsigned waited = 0; j->delay_us && waited < 5000000 && atomic_load(&peak) < 2;
         waited += 1000)
        usleep(1000);
    if (j->delay_us)
        usleep(j->delay_us);
    atomic_fetch_add(&j->runs, 1);
    atomic_fetch_sub(&running, 1);
}

static void test_bad_count(void)
{
    struct workpool *p = NULL;
    CHECK(workpool_create("wp", 0, &p) < 0, "0 threads accepted");
    CHECK(workpool_create("wp", 1000, &p) < 0, "1000 threads accepted");
    workpool_destroy(NULL);
}

static void test_all_jobs_come_back(void)
{
    enum { N = 200 };
    static struct job jobs[N];
    struct workpool *p;
    CHECK_EQ(workpool_create("wp-test", 4, &p), 0);
    atomic_store(&peak, 0);
    for (unsigned i = 0; i < N; i++) {
        jobs[i] = (struct job){.w.fn = run, .id = i, .delay_us = i % 10 == 0 ? 2000 : 0};
        workpool_submit(p, &jobs[i].w);
    }
    unsigned back = 0;
    static bool seen[N];
    for (int spins = 0; back < N && spins < 1000; spins++) {
        struct pollfd pfd = {.fd = workpool_fd(p), .events = POLLIN};
        if (poll(&pfd, 1, 20) < 0)
            break;
        for (struct workpool_job *w = workpool_reap(p); w; w = w->next) {
            struct job *j = (struct job *)w;
            CHECK(!seen[j->id], "job %u reaped twice", j->id);
            CHECK_EQ(atomic_load(&j->runs), 1);
            seen[j->id] = true;
            back++;
        }
    }
    CHECK_EQ(back, N);
    CHECK(atomic_load(&peak) > 1, "jobs never ran in parallel (peak %u)", atomic_load(&peak));
    CHECK(workpool_reap(p) == NULL, "nothing left");
    workpool_destroy(p);
}

static void test_drain(void)
{
    enum { N = 16 };
    static struct job jobs[N];
    struct workpool *p;
    CHECK_EQ(workpool_create("wp-drain", 2, &p), 0);
    for (unsigned i = 0; i < N; i++) {
        jobs[i] = (struct job){.w.fn = run, .id = i, .delay_us = 1000};
        workpool_submit(p, &jobs[i].w);
    }
    workpool_drain(p);
    for (unsigned i = 0; i < N; i++)
        CHECK_EQ(atomic_load(&jobs[i].runs), 1);
    unsigned back = 0;
    for (struct workpool_job *w = workpool_reap(p); w; w = w->next)
        back++;
    CHECK_EQ(back, N);
    /* Destroy with jobs still queued: they run before the threads stop. */
    for (unsigned i = 0; i < N; i++) {
        atomic_store(&jobs[i].runs, 0);
        workpool_submit(p, &jobs[i].w);
    }
    workpool_destroy(p);
    for (unsigned i = 0; i < N; i++)
        CHECK_EQ(atomic_load(&jobs[i].runs), 1);
}

static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

static pthread_t ran_on;

static void run_here(struct workpool_job *w)
{
    ran_on = pthread_self();
    atomic_fetch_add(&((struct job *)w)->runs, 1);
}

/* Inline: the job has run, on this thread, when submit returns, and comes back the usual way. */
static void test_inline(void)
{
    static struct job jobs[3];
    struct workpool *p = NULL;
    workpool_set_inline(true);
    CHECK_EQ(workpool_create("wp-inline", 2, &p), 0);
    workpool_set_inline(false);
    CHECK(!readable(workpool_fd(p)), "nothing finished yet");
    for (unsigned i = 0; i < 3; i++) {
        jobs[i].w.fn = run_here;
        workpool_submit(p, &jobs[i].w);
        CHECK_EQ(atomic_load(&jobs[i].runs), 1);
        CHECK(pthread_equal(ran_on, pthread_self()), "job %u ran on the submitter", i);
    }
    CHECK(readable(workpool_fd(p)), "finished jobs announced");
    workpool_drain(p); /* nothing in flight: returns at once */
    struct workpool_job *j = workpool_reap(p);
    for (unsigned i = 0; i < 3; i++, j = j ? j->next : NULL)
        CHECK(j == &jobs[i].w, "job %u back in submission order", i);
    CHECK(j == NULL, "three jobs");
    CHECK(!readable(workpool_fd(p)), "eventfd cleared");
    workpool_destroy(p);
}

int main(void)
{
    RUN(test_bad_count);
    RUN(test_all_jobs_come_back);
    RUN(test_drain);
    RUN(test_inline);
    return check_done();
}
