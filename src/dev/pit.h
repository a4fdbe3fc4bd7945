/* SPDX-License-Identifier: MIT */
/* i8254 programmable interval timer (ports 0x40-0x43) and the NMI status/control port 0x61. */
#ifndef REVIRT_DEV_PIT_H
#define REVIRT_DEV_PIT_H

#include <stdint.h>

#include "core/bus.h"
#include "core/irq.h"
#include "core/timer.h"

#define PIT_PORT 0x40
#define PIT_NMI_SC_PORT 0x61
#define PIT_IRQ 0
#define PIT_FREQ_HZ 1193182u
/* IRQ 0 is never raised more often than this, whatever the count: see pit.c. */
#define PIT_MIN_PERIOD_NS 50000u

struct pit;

struct pit_config {
    /* Clock and one-shot timers; the PIT creates one timer, for channel 0. */
    const struct timer_ops *timer;
    /* Channel 0's OUT: pulsed (true then false) on each of its rising edges, from the timer
     * thread or a vCPU thread, with the PIT's lock held, so its callee must not call back into
     * the PIT (a PIC or IOAPIC does not). */
    struct irq_line irq0;
};

/* Register ports 0x40-0x43 and 0x61 on pio. Counters start as after reset: no count written,
 * OUT of channel 0 silent. -EINVAL (no timer ops), -EEXIST, -ENOMEM. */
__attribute__((warn_unused_result)) int pit_create(struct bus *pio, const struct pit_config *cfg,
                                                   struct pit **out);
/* Unregister, destroy the timer (waiting for a callback under way) and free; vCPUs must be
 * stopped. A callback may pulse irq0 until this returns, so destroy the PIT before what irq0
 * leads to (the PIC, the IOAPIC). NULL is ignored. */
void pit_destroy(struct pit *p);

#endif
