/* SPDX-License-Identifier: MIT */
/* An interrupt line as a device sees it: one callback, so devices never see the HAV API. */
#ifndef REVIRT_CORE_IRQ_H
#define REVIRT_CORE_IRQ_H

#include <stdbool.h>

typedef void (*irq_set_fn)(void *opaque, unsigned gsi, bool level);

struct irq_line {
    irq_set_fn set;
    void *opaque;
    unsigned gsi;
};

static inline void irq_line_set(const struct irq_line *l, bool level)
{
    if (l->set)
        l->set(l->opaque, l->gsi, level);
}

/* An edge for edge-triggered (ISA) interrupts. */
static inline void irq_line_pulse(const struct irq_line *l)
{
    irq_line_set(l, true);
    irq_line_set(l, false);
}

#endif
