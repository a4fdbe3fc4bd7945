/* SPDX-License-Identifier: MIT */
/* Dual 8259A PIC of the PC (master 0x20, slave 0xa0 on master IR2) and its ELCR at 0x4d0. */
#ifndef REVIRT_DEV_PIC_H
#define REVIRT_DEV_PIC_H

#include <stdbool.h>
#include <stdint.h>

#include "core/bus.h"

#define PIC_MASTER_PORT 0x20
#define PIC_SLAVE_PORT 0xa0
#define PIC_ELCR_PORT 0x4d0
#define PIC_CASCADE_IRQ 2
#define PIC_IRQS 16

struct pic;

struct pic_config {
    /* The master's INT output changed. Called with the PIC's lock held, from whichever thread
     * changed it (a vCPU, a device thread, the timer thread): it must not call back into this
     * PIC, only note the level and kick the vCPU that takes ExtINT (which then calls pic_ack
     * from its own thread). Only changes are reported. May be NULL (poll pic_intr). */
    void (*intr)(void *opaque, bool level);
    void *opaque;
};

/* Register the master, slave and ELCR ports on pio. Both controllers start uninitialised as
 * after reset (no ICW1 yet: every IRQ unmasked, vector base 0), ELCR all edge.
 * -EINVAL, -EEXIST (port clash), -ENOMEM. */
__attribute__((warn_unused_result)) int pic_create(struct bus *pio, const struct pic_config *cfg,
                                                   struct pic **out);
/* Drive input irq (0-15; others are ignored) to level. Edge-triggered inputs (ELCR bit clear)
 * latch a request on 0 -> 1, so a pulse (true then false) is one request; level-triggered
 * inputs request while high. IRQ 2 is the cascade and only the slave drives it: ignored. Any
 * thread. */
void pic_set_irq(struct pic *p, unsigned irq, bool level);
/* The INTA cycle a vCPU performs when it takes the interrupt: returns the vector to deliver
 * (0-255). When the request has vanished since INT was raised it is the spurious IRQ 7 of the
 * master (or 15 of the slave) and no ISR bit of that level is set. Any thread. */
int pic_ack(struct pic *p);
/* The master's INT output right now. Any thread. */
bool pic_intr(const struct pic *p);
/* Unregister and free; nothing may call in any more. NULL is ignored. */
void pic_destroy(struct pic *p);

#endif
