/* SPDX-License-Identifier: MIT */
/* Local APIC registers (Intel SDM vol. 3A ch. 11): life cycle, the xAPIC page, the x2APIC MSRs
 * and IA32_APIC_BASE. Acceptance and delivery are in lapic_irq.c, the timer in lapic_timer.c. */
#include "lapic_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Version register (§11.4.8): version 0x14 (an integrated APIC), 6 LVT entries (bits 23:16
 * hold the count minus one: timer, thermal, perf, LINT0, LINT1, error). Linux reads this to
 * know which LVTs exist (lapic_get_maxlvt); without CMCI it never touches 0x2f0. AMD parts
 * report version 0x10 and may set bit 31 for the extended APIC space at 0x400 (AMD APM vol. 2
 * §16): we present the Intel layout, which Linux and Windows accept on either vendor's CPUID. */
#define VERSION 0x00050014u
#define VERSION_EOI_SUPPRESS (1u << 24)

/* Writable bits of each LVT (§11.5.1, Figure 11-8); delivery status (bit 12) and remote IRR
 * (bit 14) are read-only. Timer: vector, mask, mode (bit 18 only with TSC deadline). */
static const uint32_t lvt_writable[LVT_COUNT] = {
    [LVT_TIMER] = 0x000300ffu, [LVT_THERMAL] = 0x000107ffu, [LVT_PERF] = 0x000107ffu,
    [LVT_LINT0] = 0x0001a7ffu, [LVT_LINT1] = 0x0001a7ffu,   [LVT_ERROR] = 0x000100ffu,
};

/* ICR low (§11.6.1): vector, delivery mode, destination mode, level, trigger, shorthand. */
#define ICR_WRITABLE 0x000ccfffu

static bool x2apic_on(const struct lapic *l)
{
    return (l->apic_base & (LAPIC_BASE_EN | LAPIC_BASE_EXTD)) == (LAPIC_BASE_EN | LAPIC_BASE_EXTD);
}

static bool globally_on(const struct lapic *l)
{
    return l->apic_base & LAPIC_BASE_EN;
}

/* Power-up values of the registers (§11.4.7.1), which INIT also gives (§11.4.7.3). */
static void reset_regs(struct lapic *l)
{
    lapic_timer_stop(l);
    l->tpr = l->ldr = 0;
    l->dfr = 0xffffffffu;
    l->svr = 0xff;
    l->esr = l->esr_next = 0;
    l->icr_lo = l->icr_hi = 0;
    for (unsigned i = 0; i < LVT_COUNT; i++)
        l->lvt[i] = LVT_MASKED;
    memset(l->isr, 0, sizeof(l->isr));
    memset(l->tmr, 0, sizeof(l->tmr));
    memset(l->irr, 0, sizeof(l->irr));
    l->events = 0;
    l->sipi_vector = 0;
    l->dcr = l->timer_init = 0;
    l->tsc_deadline = 0;
}

static void power_up(struct lapic *l, bool bsp)
{
    reset_regs(l);
    l->xapic_id = (uint8_t)l->cfg.apic_id;
    l->apic_base = LAPIC_DEFAULT_BASE | LAPIC_BASE_EN | (bsp ? LAPIC_BASE_BSP : 0);
}

int lapic_create(const struct lapic_config *cfg, struct lapic **out)
{
    if (!cfg || !out || !cfg->timer || !cfg->timer->now || !cfg->timer->create ||
        !cfg->timer->arm || !cfg->timer->cancel || !cfg->timer->destroy || !cfg->kick ||
        !cfg->send_ipi || cfg->bus_hz > (1ull << 40) || cfg->tsc_hz > (1ull << 40) ||
        cfg->phys_bits > 52 || (cfg->phys_bits && cfg->phys_bits < 32))
        return -EINVAL;
    struct lapic *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->cfg = *cfg;
    if (!l->cfg.bus_hz)
        l->cfg.bus_hz = LAPIC_BUS_HZ;
    if (!l->cfg.phys_bits)
        l->cfg.phys_bits = 36;
    l->vt = cfg->timer->create(cfg->timer->opaque, lapic_timer_fire, l);
    if (!l->vt) {
        free(l);
        return -ENOMEM;
    }
    pthread_mutex_init(&l->lock, NULL);
    power_up(l, cfg->bsp);
    *out = l;
    return 0;
}

void lapic_destroy(struct lapic *l)
{
    if (!l)
        return;
    /* Not under the lock: destroy waits for a running fire(), which takes it. */
    l->cfg.timer->destroy(l->cfg.timer->opaque, l->vt);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

void lapic_reset(struct lapic *l, bool bsp)
{
    pthread_mutex_lock(&l->lock);
    reset_regs(l);
    l->apic_base = (l->apic_base & ~LAPIC_BASE_BSP) | (bsp ? LAPIC_BASE_BSP : 0);
    pthread_mutex_unlock(&l->lock);
}

void lapic_hard_reset(struct lapic *l, bool bsp)
{
    pthread_mutex_lock(&l->lock);
    power_up(l, bsp);
    pthread_mutex_unlock(&l->lock);
}

/* x2APIC logical ID (§11.12.10.2): cluster ID = x2APIC ID[19:4] in bits 31:16, and one bit
 * for ID[3:0] in 15:0. Read-only: derived, never written. */
static uint32_t x2apic_ldr(uint32_t id)
{
    return ((id >> 4) << 16) | (1u << (id & 0xf));
}

/* Register read by xAPIC offset; *ok = false for a reserved offset. */
static uint32_t reg_read(struct lapic *l, uint32_t off, bool *ok)
{
    *ok = true;
    if (off >= REG_ISR && off < REG_ISR + 0x80)
        return l->isr[(off - REG_ISR) >> 4];
    if (off >= REG_TMR && off < REG_TMR + 0x80)
        return l->tmr[(off - REG_TMR) >> 4];
    if (off >= REG_IRR && off < REG_IRR + 0x80)
        return l->irr[(off - REG_IRR) >> 4];
    if (off >= REG_LVT0 && off < REG_LVT0 + 0x10 * LVT_COUNT)
        return l->lvt[(off - REG_LVT0) >> 4];
    switch (off) {
    case REG_ID:
        return x2apic_on(l) ? l->cfg.apic_id : (uint32_t)l->xapic_id << 24;
    case REG_VER:
        return VERSION | (l->cfg.eoi_suppress ? VERSION_EOI_SUPPRESS : 0);
    case REG_TPR:
        return l->tpr;
    case REG_APR:
        /* Arbitration priority only matters for lowest-priority arbitration, which apic_bus
         * does by PPR; the register reads 0 like an idle APIC's. */
        return 0;
    case REG_PPR:
        return lapic_ppr_locked(l);
    case REG_RRD:
        return 0; /* remote read (§11.6.1 delivery mode 011b) is not supported: no data */
    case REG_LDR:
        return x2apic_on(l) ? x2apic_ldr(l->cfg.apic_id) : l->ldr;
    case REG_DFR:
        return l->dfr;
    case REG_SVR:
        return l->svr;
    case REG_ESR:
        return l->esr;
    case REG_ICR_LO:
        return l->icr_lo; /* delivery status (bit 12) stays 0: IPIs go out at once */
    case REG_ICR_HI:
        return l->icr_hi;
    case REG_TIMER_INIT:
        return l->timer_init;
    case REG_TIMER_CUR:
        return lapic_timer_current(l);
    case REG_TIMER_DIV:
        return l->dcr;
    default:
        *ok = false;
        return 0;
    }
}

/* An IPI from ICR (§11.6.1): vector below 16 with fixed or lowest delivery is not sent and
 * sets "send illegal vector" (§11.5.3). */
static void send_icr(struct lapic *l, uint32_t lo, uint32_t dest, struct lapic_out *o)
{
    struct apic_msg m = {
        .vector = (uint8_t)lo,
        .delivery = (enum apic_delivery)LVT_DM(lo),
        .logical = (lo >> 11) & 1,
        .assert = (lo >> 14) & 1,
        .level = (lo >> 15) & 1,
        .shorthand = (enum apic_shorthand)((lo >> 18) & 3),
        .dest = dest,
        .x2apic = x2apic_on(l),
    };
    if ((m.delivery == APIC_DM_FIXED || m.delivery == APIC_DM_LOWEST) && m.vector < 16) {
        lapic_error(l, ESR_SEND_ILLEGAL, o);
        return;
    }
    /* Edge-triggered messages have no de-assert: the level bit is meaningful only with
     * trigger = level (INIT level de-assert). */
    if (!m.level)
        m.assert = true;
    o->send = true;
    o->msg = m;
}

static void write_svr(struct lapic *l, uint32_t v)
{
    uint32_t mask = 0x3ffu | (l->cfg.eoi_suppress ? SVR_SUPPRESS_EOI : 0);
    l->svr = v & mask;
    /* Software disable (§11.4.7.2) masks every LVT; they stay masked after re-enabling. */
    if (!(l->svr & SVR_ENABLE))
        for (unsigned i = 0; i < LVT_COUNT; i++)
            l->lvt[i] |= LVT_MASKED;
}

static void write_lvt(struct lapic *l, unsigned i, uint32_t v)
{
    uint32_t mask = lvt_writable[i];
    if (i == LVT_TIMER && l->cfg.tsc_hz)
        mask |= 1u << 18;
    if (!(l->svr & SVR_ENABLE))
        v |= LVT_MASKED; /* §11.4.7.2: clearing a mask bit is ignored while disabled */
    if (i == LVT_LINT1)
        v &= ~LVT_LEVEL; /* LINT1 is edge only (§11.5.1 trigger mode note) */
    uint32_t nv = (l->lvt[i] & ~mask) | (v & mask);
    if (i == LVT_TIMER) {
        lapic_timer_write_lvt(l, nv);
        return;
    }
    l->lvt[i] = nv;
}

/* Write by xAPIC offset, the x2APIC-specific checks done by the caller. Returns false for a
 * reserved or read-only offset (ignored). */
static bool reg_write(struct lapic *l, uint32_t off, uint32_t v, struct lapic_out *o)
{
    if (off >= REG_LVT0 && off < REG_LVT0 + 0x10 * LVT_COUNT) {
        write_lvt(l, (off - REG_LVT0) >> 4, v);
        return true;
    }
    switch (off) {
    case REG_ID:
        if (x2apic_on(l))
            return false;
        l->xapic_id = (uint8_t)(v >> 24); /* software may renumber an xAPIC (§11.4.6) */
        return true;
    case REG_TPR:
        l->tpr = v & 0xff;
        return true;
    case REG_EOI:
        lapic_eoi(l, o);
        return true;
    case REG_LDR:
        if (x2apic_on(l))
            return false;
        l->ldr = v & 0xff000000u;
        return true;
    case REG_DFR:
        if (x2apic_on(l))
            return false;
        l->dfr = v | 0x0fffffffu; /* only the model (bits 31:28) is writable */
        return true;
    case REG_SVR:
        write_svr(l, v);
        return true;
    case REG_ESR:
        /* Write-to-latch (§11.5.3): the write makes the errors seen so far readable. */
        l->esr = l->esr_next;
        l->esr_next = 0;
        return true;
    case REG_ICR_LO:
        l->icr_lo = v & ICR_WRITABLE;
        if (!x2apic_on(l))
            send_icr(l, l->icr_lo, l->icr_hi >> 24, o);
        return true;
    case REG_ICR_HI:
        if (x2apic_on(l))
            return false;
        l->icr_hi = v & 0xff000000u;
        return true;
    case REG_TIMER_INIT:
        lapic_timer_write_init(l, v);
        return true;
    case REG_TIMER_DIV:
        lapic_timer_write_dcr(l, v);
        return true;
    default:
        return false;
    }
}

/* Kick when, after a register write, an interrupt is deliverable (a lowered TPR, an EOI
 * uncovering a pending vector): harmless when the writer is the vCPU itself. */
static void finish(struct lapic *l, struct lapic_out *o)
{
    if (lapic_next_locked(l) >= 0)
        o->kick = true;
    pthread_mutex_unlock(&l->lock);
    lapic_flush(l, o);
}

void lapic_mmio_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    struct lapic *l = opaque;
    struct lapic_out o = {.eoi_vector = -1};
    uint32_t slot = (uint32_t)(offset & 0xff0), in = (uint32_t)(offset & 0xf);
    if (!write)
        memset(data, 0, len);
    if (offset >= LAPIC_PAGE_SIZE || len == 0)
        return;
    pthread_mutex_lock(&l->lock);
    if (!globally_on(l) || x2apic_on(l)) {
        pthread_mutex_unlock(&l->lock);
        return;
    }
    if (!write) {
        bool ok;
        uint32_t v = reg_read(l, slot, &ok);
        if (in + len <= 4)
            for (uint32_t i = 0; i < len; i++)
                data[i] = (uint8_t)(v >> (8 * (in + i)));
        pthread_mutex_unlock(&l->lock); /* reads change nothing: no kick */
        return;
    }
    if (in == 0 && len == 4) {
        uint32_t v = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
                     (uint32_t)data[3] << 24;
        bool known = reg_write(l, slot, v, &o);
        bool ro = slot == REG_VER || slot == REG_APR || slot == REG_PPR || slot == REG_RRD ||
                  slot == REG_TIMER_CUR || (slot >= REG_ISR && slot < REG_ESR);
        if (!known && !ro)
            lapic_error(l, ESR_ILLEGAL_REG, &o); /* §11.5.3: a reserved register */
    }
    finish(l, &o);
}

uint64_t lapic_base(struct lapic *l)
{
    pthread_mutex_lock(&l->lock);
    uint64_t b = l->apic_base & ~0xfffull;
    pthread_mutex_unlock(&l->lock);
    return b;
}

bool lapic_enabled(struct lapic *l)
{
    pthread_mutex_lock(&l->lock);
    bool on = globally_on(l);
    pthread_mutex_unlock(&l->lock);
    return on;
}

bool lapic_x2apic_mode(struct lapic *l)
{
    pthread_mutex_lock(&l->lock);
    bool on = x2apic_on(l);
    pthread_mutex_unlock(&l->lock);
    return on;
}

/* x2APIC registers that exist (§11.12.1.2, Table 11-6), by xAPIC offset. */
static bool x2apic_exists(uint32_t off)
{
    switch (off) {
    case REG_APR:
    case REG_RRD:
    case REG_DFR:
    case REG_ICR_HI:
    case REG_CMCI:
        return false;
    default:
        return true;
    }
}

static bool x2apic_read_only(uint32_t off)
{
    return off == REG_ID || off == REG_VER || off == REG_PPR || off == REG_LDR ||
           off == REG_TIMER_CUR || (off >= REG_ISR && off < REG_ESR);
}

int lapic_msr_read(struct lapic *l, uint32_t msr, uint64_t *val)
{
    int ret = 0;
    *val = 0;
    pthread_mutex_lock(&l->lock);
    if (msr == LAPIC_MSR_APIC_BASE) {
        *val = l->apic_base;
    } else if (msr == LAPIC_MSR_TSC_DEADLINE) {
        if (!l->cfg.tsc_hz)
            ret = -1;
        else if (TIMER_MODE(l->lvt[LVT_TIMER]) == TIMER_TSC_DEADLINE)
            *val = l->tsc_deadline; /* §11.5.4.1: reads 0 in other modes */
    } else if (msr >= LAPIC_MSR_X2APIC_FIRST && msr <= LAPIC_MSR_X2APIC_LAST && x2apic_on(l)) {
        uint32_t off = (msr - LAPIC_MSR_X2APIC_FIRST) << 4;
        bool ok = false;
        if (off == REG_ICR_LO)
            *val = (uint64_t)l->icr_hi << 32 | l->icr_lo;
        else if (x2apic_exists(off) && off != REG_EOI && off != REG_SELF_IPI)
            *val = reg_read(l, off, &ok);
        if (off != REG_ICR_LO && !ok)
            ret = -1;
    } else {
        ret = -1;
    }
    pthread_mutex_unlock(&l->lock);
    return ret;
}

/* IA32_APIC_BASE write (§11.4.4, §11.12.5 Figure 11-28 state transitions). */
static int write_apic_base(struct lapic *l, uint64_t v)
{
    uint64_t addr_mask = ((1ull << l->cfg.phys_bits) - 1) & ~0xfffull;
    uint64_t allowed =
        addr_mask | LAPIC_BASE_EN | LAPIC_BASE_BSP | (l->cfg.x2apic ? LAPIC_BASE_EXTD : 0);
    if (v & ~allowed)
        return -1;
    bool en = v & LAPIC_BASE_EN, extd = v & LAPIC_BASE_EXTD;
    bool was_en = globally_on(l), was_x2 = x2apic_on(l);
    if (!en && extd)
        return -1; /* the invalid state */
    if (was_x2 && en && !extd)
        return -1; /* x2APIC to xAPIC must go through disabled */
    if (!was_en && en && extd)
        return -1; /* disabled to x2APIC must go through xAPIC */
    /* BSP is set by reset, not by software: the write keeps it. */
    v = (v & ~LAPIC_BASE_BSP) | (l->apic_base & LAPIC_BASE_BSP);
    if (was_en && !en) {
        /* Disabling loses the APIC's state (§11.4.3): re-enabled, it comes back as after
         * power-up, with its initial ID (§11.12.5.1). */
        reset_regs(l);
        l->xapic_id = (uint8_t)l->cfg.apic_id;
    }
    l->apic_base = v;
    return 0;
}

static int x2apic_write(struct lapic *l, uint32_t off, uint64_t v, struct lapic_out *o)
{
    if (!x2apic_exists(off) || x2apic_read_only(off))
        return -1;
    if (off == REG_ICR_LO) {
        l->icr_lo = (uint32_t)v & ICR_WRITABLE;
        l->icr_hi = (uint32_t)(v >> 32);
        send_icr(l, l->icr_lo, l->icr_hi, o);
        return 0;
    }
    if (v >> 32)
        return -1;
    if ((off == REG_EOI || off == REG_ESR) && v)
        return -1;
    if (off == REG_SELF_IPI) {
        /* SELF IPI (§11.12.11): a fixed edge interrupt to this APIC alone. */
        if (v > 0xff)
            return -1;
        if (v < 16)
            lapic_error(l, ESR_SEND_ILLEGAL, o);
        else
            lapic_set_irr(l, (uint8_t)v, false, o);
        return 0;
    }
    return reg_write(l, off, (uint32_t)v, o) ? 0 : -1;
}

int lapic_msr_write(struct lapic *l, uint32_t msr, uint64_t val)
{
    int ret = -1;
    struct lapic_out o = {.eoi_vector = -1};
    pthread_mutex_lock(&l->lock);
    if (msr == LAPIC_MSR_APIC_BASE) {
        ret = write_apic_base(l, val);
    } else if (msr == LAPIC_MSR_TSC_DEADLINE) {
        if (l->cfg.tsc_hz) {
            lapic_timer_write_deadline(l, val);
            ret = 0;
        }
    } else if (msr >= LAPIC_MSR_X2APIC_FIRST && msr <= LAPIC_MSR_X2APIC_LAST && x2apic_on(l)) {
        ret = x2apic_write(l, (msr - LAPIC_MSR_X2APIC_FIRST) << 4, val, &o);
    }
    finish(l, &o);
    return ret;
}

uint32_t lapic_id(const struct lapic *l)
{
    return l->cfg.apic_id; /* constant after create: no lock */
}

void lapic_set_tpr(struct lapic *l, uint8_t cr8)
{
    pthread_mutex_lock(&l->lock);
    l->tpr = (uint32_t)(cr8 & 0xf) << 4;
    pthread_mutex_unlock(&l->lock);
}

uint8_t lapic_get_tpr(struct lapic *l)
{
    pthread_mutex_lock(&l->lock);
    uint8_t cr8 = (uint8_t)(l->tpr >> 4);
    pthread_mutex_unlock(&l->lock);
    return cr8;
}
