/* SPDX-License-Identifier: MIT */
/* The APIC bus: delivers an interrupt message to the local APICs it names (Intel SDM vol. 3A
 * §11.6.2 destinations, §11.6.1 shorthands). Stateless; the board owns the array. */
#ifndef REVIRT_DEV_APIC_BUS_H
#define REVIRT_DEV_APIC_BUS_H

#include "dev/lapic.h"

/* Deliver m to the matching lapics among cpus[0..n). The shorthand is relative to from (an
 * IPI's sender; NULL for IOAPIC and MSI messages, for which SELF and ALL_BUT_SELF name no
 * sender and ALL_BUT_SELF means all). Lowest priority (§11.6.2.4) goes to one of the matching
 * APICs: the one with the lowest PPR, ties to the lowest index (no focus processor, no
 * round-robin). Takes no lock of its own and calls lapic_accept, so it may be called from
 * send_ipi and from any thread. Returns how many lapics accepted the message. */
unsigned apic_bus_deliver(struct lapic *const *cpus, unsigned n, const struct lapic *from,
                          const struct apic_msg *m);

#endif
