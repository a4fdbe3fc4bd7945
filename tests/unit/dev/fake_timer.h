/* SPDX-License-Identifier: MIT */
/* A fake timer_ops for tests: time moves only when the test says, and due timers fire then. */
#ifndef REVIRT_TESTS_FAKE_TIMER_H
#define REVIRT_TESTS_FAKE_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/timer.h"

#define FAKE_TIMERS 4
/* A model that keeps re-arming in the past would make fake_timer_advance spin: it stops
 * after this many callbacks per call and counts the overrun. */
#define FAKE_MAX_FIRES 100000u

struct vtimer {
    vtimer_fire_fn fire;
    void *arg;
    uint64_t deadline;
    bool used, armed;
};

struct fake_timer {
    struct timer_ops ops;
    uint64_t now;
    struct vtimer t[FAKE_TIMERS];
    unsigned fires, overruns;
};

static inline uint64_t fake_now(void *opaque)
{
    return ((struct fake_timer *)opaque)->now;
}

static inline struct vtimer *fake_create(void *opaque, vtimer_fire_fn fire, void *arg)
{
    struct fake_timer *ft = opaque;
    for (unsigned i = 0; i < FAKE_TIMERS; i++) {
        if (!ft->t[i].used) {
            ft->t[i] = (struct vtimer){.fire = fire, .arg = arg, .used = true};
            return &ft->t[i];
        }
    }
    return NULL;
}

static inline void fake_arm(void *opaque, struct vtimer *t, uint64_t deadline)
{
    (void)opaque;
    t->deadline = deadline;
    t->armed = true;
}

static inline void fake_cancel(void *opaque, struct vtimer *t)
{
    (void)opaque;
    t->armed = false;
}

static inline void fake_destroy(void *opaque, struct vtimer *t)
{
    (void)opaque;
    t->used = t->armed = false;
}

/* A clock that reads start_ns (not 0: models must not assume time starts at zero). */
static inline void fake_timer_init(struct fake_timer *ft, uint64_t start_ns)
{
    *ft = (struct fake_timer){
        .ops = {.now = fake_now,
                .create = fake_create,
                .arm = fake_arm,
                .cancel = fake_cancel,
                .destroy = fake_destroy},
        .now = start_ns,
    };
    ft->ops.opaque = ft;
}

/* Move the clock forward by ns in one jump (as a stalled host thread sees it), then run every
 * timer that is due, earliest first, until none is; callbacks see the new time. */
static inline void fake_timer_advance(struct fake_timer *ft, uint64_t ns)
{
    ft->now += ns;
    for (unsigned n = 0;; n++) {
        struct vtimer *due = NULL;
        for (unsigned i = 0; i < FAKE_TIMERS; i++) {
            struct vtimer *t = &ft->t[i];
            if (t->used && t->armed && t->deadline <= ft->now &&
                (!due || t->deadline < due->deadline))
                due = t;
        }
        if (!due)
            return;
        if (n == FAKE_MAX_FIRES) {
            ft->overruns++;
            return;
        }
        due->armed = false;
        ft->fires++;
        due->fire(due->arg, ft->now);
    }
}

/* The deadline the first timer is armed for, or 0. */
static inline uint64_t fake_timer_deadline(const struct fake_timer *ft)
{
    return ft->t[0].used && ft->t[0].armed ? ft->t[0].deadline : 0;
}

#endif
