/* SPDX-License-Identifier: MIT */
/* Local APIC interrupt handling (Intel SDM vol. 3A §11.5, §11.6.2, §11.8): acceptance, the
 * IRR/ISR/PPR priority logic, EOI, local interrupts (LVT, LINT pins) and destination matching. */
#include "lapic_internal.h"

/* Callbacks run here, after the lock is dropped: send_ipi may deliver to this very lapic (a
 * self IPI, a broadcast), and an EOI broadcast may make the IOAPIC re-deliver a line that is
 * still asserted, again to us; both take our lock, which would deadlock (or, recursive,
 * corrupt the state half-way through a register write). The order is the one the guest
 * causes: the EOI first, then the IPI, then the kick. */
void lapic_flush(struct lapic *l, const struct lapic_out *o)
{
    if (o->eoi_vector >= 0 && l->cfg.eoi_broadcast)
        l->cfg.eoi_broadcast(l->cfg.opaque, (uint8_t)o->eoi_vector);
    if (o->send)
        l->cfg.send_ipi(l->cfg.opaque, l, &o->msg);
    if (o->kick)
        l->cfg.kick(l->cfg.opaque, l->cfg.cpu);
}

static int highest(const uint32_t *bits)
{
    for (int i = 7; i >= 0; i--)
        if (bits[i])
            return i * 32 + 31 - __builtin_clz(bits[i]);
    return -1;
}

static bool test_bit(const uint32_t *bits, unsigned v)
{
    return bits[v >> 5] & (1u << (v & 31));
}

static void set_bit(uint32_t *bits, unsigned v, bool on)
{
    if (on)
        bits[v >> 5] |= 1u << (v & 31);
    else
        bits[v >> 5] &= ~(1u << (v & 31));
}

/* §11.8.3.1: PPR = TPR if TPR[7:4] >= ISRV[7:4], else ISRV[7:4] << 4, with ISRV the highest
 * vector in service. */
uint8_t lapic_ppr_locked(const struct lapic *l)
{
    int isrv = highest(l->isr);
    uint32_t isr_class = isrv < 0 ? 0 : (uint32_t)isrv & 0xf0;
    return (uint8_t)((l->tpr & 0xf0) >= isr_class ? l->tpr : isr_class);
}

/* §11.8.3.1: only a vector whose class is above the processor-priority class is delivered. */
int lapic_next_locked(const struct lapic *l)
{
    if (!(l->apic_base & LAPIC_BASE_EN))
        return -1;
    int v = highest(l->irr);
    if (v < 0 || ((unsigned)v & 0xf0) <= (lapic_ppr_locked(l) & 0xf0u))
        return -1;
    return v;
}

/* Accept a fixed interrupt (§11.8.4): IRR, and TMR as the trigger mode says (for the EOI). */
void lapic_set_irr(struct lapic *l, uint8_t vector, bool level, struct lapic_out *o)
{
    if (vector < 16) {
        lapic_error(l, ESR_RECV_ILLEGAL, o);
        return;
    }
    set_bit(l->irr, vector, true);
    set_bit(l->tmr, vector, level);
    if (lapic_next_locked(l) >= 0)
        o->kick = true;
}

/* Record errors (§11.5.3) and raise the error LVT when a new one appears. The error LVT's own
 * illegal vector is recorded without raising it again, so this never recurses. */
void lapic_error(struct lapic *l, uint32_t bits, struct lapic_out *o)
{
    bool fresh = (l->esr_next & bits) != bits;
    l->esr_next |= bits;
    uint32_t lvt = l->lvt[LVT_ERROR];
    if (!fresh || (lvt & LVT_MASKED) || !(l->svr & SVR_ENABLE))
        return;
    if ((lvt & 0xff) < 16) {
        l->esr_next |= ESR_RECV_ILLEGAL;
        return;
    }
    set_bit(l->irr, lvt & 0xff, true);
    set_bit(l->tmr, lvt & 0xff, false);
    if (lapic_next_locked(l) >= 0)
        o->kick = true;
}

/* A local interrupt from LVT entry i (§11.5.1): nothing while masked or software disabled. */
void lapic_lvt_fire(struct lapic *l, unsigned i, struct lapic_out *o)
{
    uint32_t lvt = l->lvt[i];
    if ((lvt & LVT_MASKED) || !(l->svr & SVR_ENABLE) || !(l->apic_base & LAPIC_BASE_EN))
        return;
    /* Timer and error entries have no delivery mode field: always fixed. */
    unsigned dm = (i == LVT_TIMER || i == LVT_ERROR) ? APIC_DM_FIXED : LVT_DM(lvt);
    bool level = (i == LVT_LINT0 || i == LVT_LINT1) && (lvt & LVT_LEVEL);
    switch (dm) {
    case APIC_DM_FIXED:
        if (level) {
            if (lvt & LVT_REMOTE_IRR)
                return; /* still in service: the next edge is the EOI (§11.5.1 remote IRR) */
            l->lvt[i] |= LVT_REMOTE_IRR;
        }
        lapic_set_irr(l, (uint8_t)lvt, level, o);
        return;
    case APIC_DM_NMI:
        l->events |= LAPIC_EV_NMI;
        break;
    case APIC_DM_INIT:
        l->events |= LAPIC_EV_INIT;
        break;
    case APIC_DM_EXTINT:
        break; /* only LINT pins have it: lapic_take_events reports it from the level */
    default:
        return; /* SMI and reserved modes: not modelled */
    }
    o->kick = true;
}

/* EOI (§11.8.5): retire the highest vector in service; a level-triggered one (TMR set) is
 * broadcast to the IOAPICs unless software suppressed that (SVR bit 12, §11.8.5; then the
 * OS writes the IOAPIC's EOI register itself). A LINT input in level mode gets its remote IRR
 * cleared, and, still asserted, raises the vector again. */
void lapic_eoi(struct lapic *l, struct lapic_out *o)
{
    int v = highest(l->isr);
    if (v < 0)
        return;
    set_bit(l->isr, (unsigned)v, false);
    if (!test_bit(l->tmr, (unsigned)v))
        return;
    if (!(l->svr & SVR_SUPPRESS_EOI))
        o->eoi_vector = v;
    for (unsigned pin = 0; pin < 2; pin++) {
        uint32_t *lvt = &l->lvt[LVT_LINT0 + pin];
        if ((*lvt & LVT_REMOTE_IRR) && (*lvt & 0xff) == (uint32_t)v) {
            *lvt &= ~LVT_REMOTE_IRR;
            if (l->lint[pin])
                lapic_lvt_fire(l, LVT_LINT0 + pin, o);
        }
    }
}

void lapic_accept(struct lapic *l, const struct apic_msg *m)
{
    struct lapic_out o = {.eoi_vector = -1};
    pthread_mutex_lock(&l->lock);
    if (!(l->apic_base & LAPIC_BASE_EN))
        goto out;
    switch (m->delivery) {
    case APIC_DM_FIXED:
    case APIC_DM_LOWEST:
        /* A software-disabled APIC drops fixed interrupts (§11.4.7.2), as KVM's does. */
        if (!(l->svr & SVR_ENABLE) || (m->level && !m->assert))
            break;
        lapic_set_irr(l, m->vector, m->level, &o);
        break;
    case APIC_DM_NMI:
        l->events |= LAPIC_EV_NMI;
        o.kick = true;
        break;
    case APIC_DM_INIT:
        if (m->level && !m->assert)
            break; /* INIT level de-assert only synchronised arbitration IDs (§11.6.1) */
        l->events |= LAPIC_EV_INIT;
        o.kick = true;
        break;
    case APIC_DM_STARTUP:
        /* The board honours SIPI only in wait-for-SIPI (vol. 3A ch. 9, MP initialization);
         * the latest vector wins. */
        l->events |= LAPIC_EV_SIPI;
        l->sipi_vector = m->vector;
        o.kick = true;
        break;
    case APIC_DM_EXTINT:
        l->events |= LAPIC_EV_EXTINT;
        o.kick = true;
        break;
    default:
        break; /* SMI and reserved delivery modes: not modelled */
    }
out:
    pthread_mutex_unlock(&l->lock);
    lapic_flush(l, &o);
}

/* Destination matching (§11.6.2.1 physical, §11.6.2.2 logical, §11.12.10 x2APIC). The fields
 * read are written under the lock, so take it; the cast is safe, no lapic is ever const. */
bool lapic_match_dest(const struct lapic *cl, const struct apic_msg *m)
{
    struct lapic *l = (struct lapic *)cl;
    bool hit = false;
    pthread_mutex_lock(&l->lock);
    bool en = l->apic_base & LAPIC_BASE_EN;
    bool x2 = en && (l->apic_base & LAPIC_BASE_EXTD);
    uint32_t bcast = m->x2apic ? 0xffffffffu : 0xffu;
    if (!en) {
        hit = false;
    } else if (m->dest == bcast) {
        hit = true;
    } else if (!m->logical) {
        hit = x2 ? m->dest == l->cfg.apic_id : m->dest == l->xapic_id;
    } else if (x2) {
        /* x2APIC logical: cluster in 31:16 must match, then any of the 16 member bits.
         * 8-bit logical messages (an IOAPIC without remapping) reach no x2APIC this way. */
        uint32_t ldr = ((l->cfg.apic_id >> 4) << 16) | (1u << (l->cfg.apic_id & 0xf));
        hit = m->x2apic && (m->dest >> 16) == (ldr >> 16) && (m->dest & ldr & 0xffff);
    } else if (m->dest <= 0xff) {
        uint32_t id = l->ldr >> 24;
        if ((l->dfr >> 28) == 0xf) /* flat: a bit per APIC */
            hit = (m->dest & id) != 0;
        else /* cluster: cluster in 7:4, up to four members in 3:0 */
            hit = (m->dest >> 4) == (id >> 4) && (m->dest & id & 0xf);
    }
    pthread_mutex_unlock(&l->lock);
    return hit;
}

uint8_t lapic_ppr(const struct lapic *cl)
{
    struct lapic *l = (struct lapic *)cl; /* as in lapic_match_dest */
    pthread_mutex_lock(&l->lock);
    uint8_t p = lapic_ppr_locked(l);
    pthread_mutex_unlock(&l->lock);
    return p;
}

int lapic_next_irq(struct lapic *l)
{
    pthread_mutex_lock(&l->lock);
    int v = lapic_next_locked(l);
    pthread_mutex_unlock(&l->lock);
    return v;
}

void lapic_ack_irq(struct lapic *l, uint8_t vector)
{
    pthread_mutex_lock(&l->lock);
    if (test_bit(l->irr, vector)) {
        set_bit(l->irr, vector, false);
        set_bit(l->isr, vector, true);
    }
    pthread_mutex_unlock(&l->lock);
}

unsigned lapic_take_events(struct lapic *l, uint8_t *sipi_vector)
{
    pthread_mutex_lock(&l->lock);
    unsigned ev = l->events;
    l->events = 0;
    if (sipi_vector)
        *sipi_vector = (ev & LAPIC_EV_SIPI) ? l->sipi_vector : 0;
    bool on = l->apic_base & LAPIC_BASE_EN;
    /* The 8259's INTR is a level: reported for as long as it is asserted, through an unmasked
     * ExtINT LINT entry, or straight as INTR on LINT0 when the APIC is globally disabled
     * (§11.4.3). */
    for (unsigned pin = 0; pin < 2; pin++) {
        uint32_t lvt = l->lvt[LVT_LINT0 + pin];
        if (l->lint[pin] &&
            (on ? LVT_DM(lvt) == APIC_DM_EXTINT && !(lvt & LVT_MASKED) && (l->svr & SVR_ENABLE)
                : pin == 0))
            ev |= LAPIC_EV_EXTINT;
    }
    pthread_mutex_unlock(&l->lock);
    return ev;
}

void lapic_set_lint(struct lapic *l, int pin, bool level)
{
    if (pin != 0 && pin != 1)
        return;
    struct lapic_out o = {.eoi_vector = -1};
    pthread_mutex_lock(&l->lock);
    bool was = l->lint[pin];
    l->lint[pin] = level;
    uint32_t lvt = l->lvt[LVT_LINT0 + pin];
    if (!(l->apic_base & LAPIC_BASE_EN)) {
        /* Globally disabled: LINT0 is the processor's INTR, LINT1 its NMI (§11.4.3). */
        if (level && !was) {
            l->events |= pin ? LAPIC_EV_NMI : 0;
            o.kick = true;
        }
    } else if (level && (!was || (lvt & LVT_LEVEL))) {
        /* Edge mode fires on the rising edge; level mode while asserted and remote IRR is
         * clear. ExtINT is reported by lapic_take_events while the line is high; the fire
         * here only records it and kicks. */
        lapic_lvt_fire(l, LVT_LINT0 + (unsigned)pin, &o);
    }
    pthread_mutex_unlock(&l->lock);
    lapic_flush(l, &o);
}
