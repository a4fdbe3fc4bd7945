/* SPDX-License-Identifier: MIT */
/* Time as device models see it: a monotonic clock and one-shot timers behind a table of
 * callbacks, so models (PIT, local APIC timer) never own threads and unit tests drive time. */
#ifndef REVIRT_CORE_TIMER_H
#define REVIRT_CORE_TIMER_H

#include <stdint.h>

struct vtimer; /* one one-shot timer, owned by the service that created it */

typedef void (*vtimer_fire_fn)(void *arg, uint64_t now_ns);

/* Contract:
 *  - now() is monotonic nanoseconds, the same clock for every timer of the service.
 *  - create() returns a disarmed timer (NULL when out of memory); destroy() cancels it and
 *    returns only when its callback is not running, so the model may be freed after it.
 *  - arm() replaces any earlier deadline; a deadline in the past fires as soon as possible.
 *    cancel() disarms.  Both may be called from any thread, also from within a callback.
 *  - fire() runs on the service's thread with none of the service's locks held, so it may take
 *    the model's lock and call arm() again. Because a cancel() or re-arm() can race with a fire
 *    already under way, a model must check in fire() that its deadline has really come. */
struct timer_ops {
    void *opaque;
    uint64_t (*now)(void *opaque);
    struct vtimer *(*create)(void *opaque, vtimer_fire_fn fire, void *arg);
    void (*arm)(void *opaque, struct vtimer *t, uint64_t deadline_ns);
    void (*cancel)(void *opaque, struct vtimer *t);
    void (*destroy)(void *opaque, struct vtimer *t);
};

#endif
