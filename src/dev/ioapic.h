/* SPDX-License-Identifier: MIT */
/* 82093AA-compatible I/O APIC: 24 pins, redirection table, messages out as struct apic_msg. */
#ifndef REVIRT_DEV_IOAPIC_H
#define REVIRT_DEV_IOAPIC_H

#include <stdbool.h>
#include <stdint.h>

#include "apic_msg.h"
#include "core/bus.h"

#define IOAPIC_BASE 0xfec00000u
#define IOAPIC_MMIO_SIZE 0x1000u /* the page the MADT describes; registers at 0x00, 0x10, 0x40 */
#define IOAPIC_PINS 24
#define IOAPIC_VERSION 0x00170020u /* 24 entries (max index 0x17), version 0x20 */

struct ioapic;

struct ioapic_config {
    uint8_t id; /* IOAPIC ID (bits 0-3 used), as the MADT says */
    /* Send an interrupt message to the local APICs. Called with no IOAPIC lock held, from the
     * thread that caused it (device thread, vCPU); it may call ioapic_eoi and ioapic_set_irq
     * back synchronously. Required. */
    void (*deliver)(void *opaque, const struct apic_msg *m);
    void *opaque;
};

/* Register the MMIO window at base (IOAPIC_BASE on a PC) on mmio. Every pin starts masked,
 * edge, vector 0, as after reset. -EINVAL, -EEXIST, -ENOMEM. */
__attribute__((warn_unused_result)) int ioapic_create(struct bus *mmio, uint64_t base,
                                                      const struct ioapic_config *cfg,
                                                      struct ioapic **out);
/* Drive pin (0-23; others ignored) to level: true = asserted. Polarity (bit 13) is the
 * board's business: it passes the logical level, so an active-low PCI line asserted is true.
 * Any thread. */
void ioapic_set_irq(struct ioapic *io, unsigned pin, bool level);
/* End of interrupt for vector, as a local APIC's EOI broadcast or a write of the EOI register:
 * level-triggered entries with that vector leave remote IRR and are sent again if their pin
 * is still asserted. Any thread, also from within deliver. */
void ioapic_eoi(struct ioapic *io, uint8_t vector);
/* Unregister and free; nothing may call in any more. NULL is ignored. */
void ioapic_destroy(struct ioapic *io);

#endif
