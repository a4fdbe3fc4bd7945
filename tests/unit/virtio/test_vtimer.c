/* SPDX-License-Identifier: MIT */
/* The timer service: deadlines kept (never early), re-arming from a callback, cancel, several
 * timers in deadline order, and destroy waiting for a callback under way. */
#include "../check.h"
#include "sys/vtimer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define MS 1000000ull

struct probe {
    const struct timer_ops *ops;
    struct vtimer *t;
    uint64_t deadline, fired_at[200];
    atomic_uint fires;
    unsigned rearm; /* fire this many times, every period */
    uint64_t period;
    atomic_uint *order;
    unsigned my_order;
    unsigned sleep_us; /* stay in the callback this long */
};

static void probe_fire(void *arg, uint64_t now)
{
    struct probe *p = arg;
    unsigned n = atomic_fetch_add(&p->fires, 1);
    if (n < 200)
        p->fired_at[n] = now;
    if (p->order)
        p->my_order = atomic_fetch_add(p->order, 1);
    if (p->sleep_us)
        usleep(p->sleep_us);
    if (n + 1 < p->rearm) {
        p->deadline += p->period;
        p->ops->arm(p->ops->opaque, p->t, p->deadline);
    }
}

static void wait_fires(struct probe *p, unsigned n, unsigned max_ms)
{
    for (unsigned i = 0; i < max_ms && atomic_load(&p->fires) < n; i++)
        usleep(1000);
}

static void test_deadline(void)
{
    struct vtimer_service *s;
    CHECK_EQ(vtimer_service_create(&s), 0);
    const struct timer_ops *ops = vtimer_service_ops(s);
    struct probe p = {.ops = ops};
    p.t = ops->create(ops->opaque, probe_fire, &p);
    CHECK(p.t != NULL, "create");
    p.deadline = ops->now(ops->opaque) + 20 * MS;
    ops->arm(ops->opaque, p.t, p.deadline);
    wait_fires(&p, 1, 2000);
    CHECK_EQ(atomic_load(&p.fires), 1);
    CHECK(p.fired_at[0] >= p.deadline, "fired %llu ns early",
          (unsigned long long)(p.deadline - p.fired_at[0]));
    /* A deadline in the past fires at once. */
    p.deadline = 0;
    ops->arm(ops->opaque, p.t, 0);
    wait_fires(&p, 2, 2000);
    CHECK_EQ(atomic_load(&p.fires), 2);
    ops->destroy(ops->opaque, p.t);
    vtimer_service_destroy(s);
}

static void test_periodic_and_cancel(void)
{
    struct vtimer_service *s;
    CHECK_EQ(vtimer_service_create(&s), 0);
    const struct timer_ops *ops = vtimer_service_ops(s);
    struct probe p = {.ops = ops, .rearm = 50, .period = 2 * MS};
    p.t = ops->create(ops->opaque, probe_fire, &p);
    uint64_t start = ops->now(ops->opaque);
    p.deadline = start + 2 * MS;
    ops->arm(ops->opaque, p.t, p.deadline);
    wait_fires(&p, 50, 5000);
    CHECK_EQ(atomic_load(&p.fires), 50);
    for (unsigned i = 0; i < 50; i++)
        CHECK(p.fired_at[i] >= start + (i + 1) * 2 * MS, "tick %u early", i);
    /* Cancelled: it does not fire. */
    ops->arm(ops->opaque, p.t, ops->now(ops->opaque) + 30 * MS);
    ops->cancel(ops->opaque, p.t);
    usleep(60000);
    CHECK_EQ(atomic_load(&p.fires), 50);
    ops->destroy(ops->opaque, p.t);
    vtimer_service_destroy(s);
}

static void test_order(void)
{
    struct vtimer_service *s;
    CHECK_EQ(vtimer_service_create(&s), 0);
    const struct timer_ops *ops = vtimer_service_ops(s);
    atomic_uint order = 0;
    struct probe p[3] = {{.ops = ops, .order = &order},
                         {.ops = ops, .order = &order},
                         {.ops = ops, .order = &order}};
    uint64_t now = ops->now(ops->opaque);
    const unsigned at_ms[3] = {30, 10, 20}; /* armed out of order */
    for (int i = 0; i < 3; i++) {
        p[i].t = ops->create(ops->opaque, probe_fire, &p[i]);
        ops->arm(ops->opaque, p[i].t, now + at_ms[i] * MS);
    }
    for (int i = 0; i < 3; i++)
        wait_fires(&p[i], 1, 2000);
    CHECK_EQ(p[1].my_order, 0);
    CHECK_EQ(p[2].my_order, 1);
    CHECK_EQ(p[0].my_order, 2);
    for (int i = 0; i < 3; i++)
        ops->destroy(ops->opaque, p[i].t);
    vtimer_service_destroy(s);
}

/* destroy() returns only once the callback under way has returned. */
static void test_destroy_waits(void)
{
    struct vtimer_service *s;
    CHECK_EQ(vtimer_service_create(&s), 0);
    const struct timer_ops *ops = vtimer_service_ops(s);
    struct probe p = {.ops = ops, .sleep_us = 100000};
    p.t = ops->create(ops->opaque, probe_fire, &p);
    ops->arm(ops->opaque, p.t, 0);
    wait_fires(&p, 1, 2000);
    uint64_t t0 = ops->now(ops->opaque);
    ops->destroy(ops->opaque, p.t);
    uint64_t waited = ops->now(ops->opaque) - t0;
    CHECK(waited >= 50 * MS, "destroy returned after %llu ns, during the callback",
          (unsigned long long)waited);
    vtimer_service_destroy(s);
}

int main(void)
{
    RUN(test_deadline);
    RUN(test_periodic_and_cancel);
    RUN(test_order);
    RUN(test_destroy_waits);
    return check_done();
}
