/* SPDX-License-Identifier: MIT */
/* APIC bus routing: shorthand, destination matching and lowest-priority choice over the
 * board's local APICs (Intel SDM vol. 3A §11.6). */
#include "apic_bus.h"

#include <stddef.h>

static bool selected(struct lapic *l, const struct lapic *from, const struct apic_msg *m)
{
    switch (m->shorthand) {
    case APIC_SH_SELF:
        return l == from;
    case APIC_SH_ALL:
        return true;
    case APIC_SH_ALL_BUT_SELF:
        return l != from;
    default:
        return lapic_match_dest(l, m);
    }
}

unsigned apic_bus_deliver(struct lapic *const *cpus, unsigned n, const struct lapic *from,
                          const struct apic_msg *m)
{
    if (!cpus || !m)
        return 0;
    if (m->delivery == APIC_DM_LOWEST) {
        /* One of the matching APICs; PPR as the arbitration priority, which is what
         * §11.6.2.4 describes when no APIC has the vector in service (focus). PPRs may change
         * while we look: any of the candidates is an acceptable answer. */
        struct lapic *best = NULL;
        uint8_t best_ppr = 0;
        for (unsigned i = 0; i < n; i++) {
            if (!cpus[i] || !selected(cpus[i], from, m))
                continue;
            uint8_t p = lapic_ppr(cpus[i]);
            if (!best || p < best_ppr) {
                best = cpus[i];
                best_ppr = p;
            }
        }
        if (!best)
            return 0;
        lapic_accept(best, m);
        return 1;
    }
    unsigned hits = 0;
    for (unsigned i = 0; i < n; i++) {
        if (!cpus[i] || !selected(cpus[i], from, m))
            continue;
        lapic_accept(cpus[i], m);
        hits++;
    }
    return hits;
}
