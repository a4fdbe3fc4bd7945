/* SPDX-License-Identifier: MIT */
/* The PS/2 (i8042) keyboard controller: enough for Linux to probe it and to reboot through it. */
#ifndef REVIRT_DEV_I8042_H
#define REVIRT_DEV_I8042_H

#include "core/bus.h"
#include "core/irq.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64 /* status on read */
#define I8042_KBD_IRQ 1
#define I8042_AUX_IRQ 12

struct i8042;

struct i8042_config {
    struct irq_line kbd_irq; /* ISA IRQ 1: output buffer holds a keyboard byte */
    struct irq_line aux_irq; /* ISA IRQ 12: output buffer holds an AUX (mouse) byte */
    /* Command 0xFE (pulse the reset line): called on the vCPU thread, no device lock held. */
    void (*reset)(void *opaque);
    void *opaque;
};

/* Register ports 0x60 and 0x64 on pio (0x61, port B, stays with the PIT/speaker). A keyboard
 * with no keys is attached so Linux's atkbd probe is answered at once; no mouse is attached.
 * -EINVAL, -EEXIST, -ENOMEM. */
__attribute__((warn_unused_result)) int
i8042_create(struct bus *pio, const struct i8042_config *cfg, struct i8042 **out);
/* Unregister and free; vCPUs must be stopped. NULL is ignored. */
void i8042_destroy(struct i8042 *k);

#endif
