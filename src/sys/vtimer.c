/* SPDX-License-Identifier: MIT */
/* One thread runs the device models' one-shot timers (PIT, local APIC timers) at their deadlines
 * on CLOCK_MONOTONIC, the contract of src/core/timer.h. */
#include "vtimer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct vtimer {
    struct vtimer_service *s;
    struct vtimer *next;
    vtimer_fire_fn fire;
    void *arg;
    uint64_t deadline;
    bool armed;
};

struct vtimer_service {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the thread: a timer was armed earlier than it sleeps, or stop */
    pthread_cond_t idle; /* destroy(): the callback it waits for has returned */
    pthread_t thread;
    struct vtimer *timers; /* a few per VM (PIT, one per local APIC): a list is enough */
    struct vtimer *running;
    bool stop;
    struct timer_ops ops;
};

uint64_t vtimer_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *service_main(void *arg)
{
    struct vtimer_service *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        struct vtimer *due = NULL;
        for (struct vtimer *t = s->timers; t; t = t->next)
            if (t->armed && (!due || t->deadline < due->deadline))
                due = t;
        if (!due) {
            pthread_cond_wait(&s->wake, &s->lock);
            continue;
        }
        uint64_t now = vtimer_now_ns();
        if (due->deadline > now) {
            struct timespec ts = {.tv_sec = (time_t)(due->deadline / 1000000000u),
                                  .tv_nsec = (long)(due->deadline % 1000000000u)};
            pthread_cond_timedwait(&s->wake, &s->lock, &ts);
            continue; /* whatever woke us, look again: the earliest timer may have changed */
        }
        due->armed = false;
        s->running = due;
        /* Without the lock: the callback takes its model's lock and may arm timers again. */
        pthread_mutex_unlock(&s->lock);
        due->fire(due->arg, now);
        pthread_mutex_lock(&s->lock);
        s->running = NULL;
        pthread_cond_broadcast(&s->idle);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static uint64_t ops_now(void *opaque)
{
    (void)opaque;
    return vtimer_now_ns();
}

static struct vtimer *ops_create(void *opaque, vtimer_fire_fn fire, void *arg)
{
    struct vtimer_service *s = opaque;
    struct vtimer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    *t = (struct vtimer){.s = s, .fire = fire, .arg = arg};
    pthread_mutex_lock(&s->lock);
    t->next = s->timers;
    s->timers = t;
    pthread_mutex_unlock(&s->lock);
    return t;
}

static void ops_arm(void *opaque, struct vtimer *t, uint64_t deadline_ns)
{
    struct vtimer_service *s = opaque;
    pthread_mutex_lock(&s->lock);
    t->deadline = deadline_ns;
    t->armed = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

static void ops_cancel(void *opaque, struct vtimer *t)
{
    struct vtimer_service *s = opaque;
    pthread_mutex_lock(&s->lock);
    t->armed = false;
    pthread_mutex_unlock(&s->lock);
}

static void ops_destroy(void *opaque, struct vtimer *t)
{
    struct vtimer_service *s = opaque;
    if (!t)
        return;
    pthread_mutex_lock(&s->lock);
    for (struct vtimer **p = &s->timers; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    /* From a callback of its own the wait would never end: the callback is the caller. */
    while (s->running == t && !pthread_equal(pthread_self(), s->thread))
        pthread_cond_wait(&s->idle, &s->lock);
    pthread_mutex_unlock(&s->lock);
    free(t);
}

int vtimer_service_create(struct vtimer_service **out)
{
    struct vtimer_service *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* deadlines are on the monotonic clock */
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, &ca);
    pthread_cond_init(&s->idle, NULL);
    pthread_condattr_destroy(&ca);
    s->ops = (struct timer_ops){.opaque = s,
                                .now = ops_now,
                                .create = ops_create,
                                .arm = ops_arm,
                                .cancel = ops_cancel,
                                .destroy = ops_destroy};
    int r = pthread_create(&s->thread, NULL, service_main, s);
    if (r != 0) {
        pthread_cond_destroy(&s->wake);
        pthread_cond_destroy(&s->idle);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return -r;
    }
    *out = s;
    return 0;
}

const struct timer_ops *vtimer_service_ops(struct vtimer_service *s)
{
    return &s->ops;
}

void vtimer_service_destroy(struct vtimer_service *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
