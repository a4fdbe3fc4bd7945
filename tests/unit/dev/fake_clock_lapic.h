/* SPDX-License-Identifier: MIT */
/* A manual clock behind struct timer_ops for the local APIC tests: time moves only when the
 * test says, and the timers that come due on the way fire in deadline order. */
#ifndef REVIRT_TESTS_FAKE_CLOCK_LAPIC_H
#define REVIRT_TESTS_FAKE_CLOCK_LAPIC_H

#include <stdbool.h>
#include <stdint.h>

#include "core/timer.h"

#define FAKE_CLOCK_TIMERS 8

struct fake_clock_timer {
    bool used, armed;
    uint64_t due;
    vtimer_fire_fn fire;
    void *arg;
};

struct fake_clock {
    uint64_t now;
    unsigned fires;     /* callbacks run */
    uint64_t last_fire; /* the now of the last one */
    struct fake_clock_timer t[FAKE_CLOCK_TIMERS];
    struct timer_ops ops;
};

static inline uint64_t fake_clock_now(void *o)
{
    return ((struct fake_clock *)o)->now;
}

static inline struct vtimer *fake_clock_create(void *o, vtimer_fire_fn fire, void *arg)
{
    struct fake_clock *c = o;
    for (unsigned i = 0; i < FAKE_CLOCK_TIMERS; i++) {
        if (!c->t[i].used) {
            c->t[i] = (struct fake_clock_timer){.used = true, .fire = fire, .arg = arg};
            return (struct vtimer *)&c->t[i];
        }
    }
    return NULL;
}

static inline void fake_clock_arm(void *o, struct vtimer *vt, uint64_t deadline)
{
    (void)o;
    struct fake_clock_timer *t = (struct fake_clock_timer *)vt;
    t->armed = true;
    t->due = deadline;
}

static inline void fake_clock_cancel(void *o, struct vtimer *vt)
{
    (void)o;
    ((struct fake_clock_timer *)vt)->armed = false;
}

static inline void fake_clock_destroy(void *o, struct vtimer *vt)
{
    (void)o;
    struct fake_clock_timer *t = (struct fake_clock_timer *)vt;
    t->armed = t->used = false;
}

static inline void fake_clock_init(struct fake_clock *c, uint64_t start)
{
    *c = (struct fake_clock){.now = start};
    c->ops = (struct timer_ops){c,
                                fake_clock_now,
                                fake_clock_create,
                                fake_clock_arm,
                                fake_clock_cancel,
                                fake_clock_destroy};
}

/* Move time forward by ns, firing every timer that comes due on the way (a callback may re-arm
 * its timer, which then fires again if still within the step). Bounded: at most max_fires
 * callbacks, so a model that re-arms in the past cannot hang the test. */
static inline void fake_clock_advance_max(struct fake_clock *c, uint64_t ns, unsigned max_fires)
{
    uint64_t target = c->now + ns;
    for (unsigned n = 0; n < max_fires; n++) {
        struct fake_clock_timer *next = NULL;
        for (unsigned i = 0; i < FAKE_CLOCK_TIMERS; i++)
            if (c->t[i].armed && c->t[i].due <= target && (!next || c->t[i].due < next->due))
                next = &c->t[i];
        if (!next)
            break;
        if (next->due > c->now)
            c->now = next->due;
        next->armed = false;
        c->fires++;
        c->last_fire = c->now;
        next->fire(next->arg, c->now);
    }
    c->now = target;
}

static inline void fake_clock_advance(struct fake_clock *c, uint64_t ns)
{
    fake_clock_advance_max(c, ns, 1000000);
}

/* A stall: time passes and no timer runs (the host was busy). */
static inline void fake_clock_jump(struct fake_clock *c, uint64_t ns)
{
    c->now += ns;
}

#endif
