/* SPDX-License-Identifier: MIT */
/* The timer service behind struct timer_ops (src/core/timer.h): CLOCK_MONOTONIC and one thread
 * that runs every one-shot timer's callback when its deadline has come. */
#ifndef REVIRT_SYS_VTIMER_H
#define REVIRT_SYS_VTIMER_H

#include <stdint.h>

#include "core/timer.h"

struct vtimer_service;

/* Start the service's thread. -ENOMEM or the pthread error (negative). */
__attribute__((warn_unused_result)) int vtimer_service_create(struct vtimer_service **out);
/* The ops table device models take; valid while the service lives. */
const struct timer_ops *vtimer_service_ops(struct vtimer_service *s);
/* Stop the thread; every timer must have been destroyed. NULL is ignored. */
void vtimer_service_destroy(struct vtimer_service *s);
/* CLOCK_MONOTONIC in nanoseconds (the service's now()). */
uint64_t vtimer_now_ns(void);

#endif
