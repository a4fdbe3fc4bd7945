/* SPDX-License-Identifier: MIT */
/* The local APIC's state and the helpers its files share (lapic.c registers, lapic_irq.c
 * acceptance and delivery, lapic_timer.c the timer); not for other models. */
#ifndef REVIRT_DEV_LAPIC_INTERNAL_H
#define REVIRT_DEV_LAPIC_INTERNAL_H

#include <pthread.h>

#include "lapic.h"

/* xAPIC register offsets (SDM Table 11-1); x2APIC MSR = 0x800 + offset / 16 (§11.12.1.2). */
#define REG_ID 0x020
#define REG_VER 0x030
#define REG_TPR 0x080
#define REG_APR 0x090
#define REG_PPR 0x0a0
#define REG_EOI 0x0b0
#define REG_RRD 0x0c0
#define REG_LDR 0x0d0
#define REG_DFR 0x0e0
#define REG_SVR 0x0f0
#define REG_ISR 0x100
#define REG_TMR 0x180
#define REG_IRR 0x200
#define REG_ESR 0x280
#define REG_CMCI 0x2f0
#define REG_ICR_LO 0x300
#define REG_ICR_HI 0x310
#define REG_LVT0 0x320 /* timer, thermal, perf, LINT0, LINT1, error at 0x10 steps */
#define REG_TIMER_INIT 0x380
#define REG_TIMER_CUR 0x390
#define REG_TIMER_DIV 0x3e0
#define REG_SELF_IPI 0x3f0 /* x2APIC only */

enum { LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR, LVT_COUNT };

#define LVT_MASKED (1u << 16)
#define LVT_REMOTE_IRR (1u << 14)
#define LVT_LEVEL (1u << 15)
#define LVT_DM(v) (((v) >> 8) & 7u)
#define TIMER_MODE(v) (((v) >> 17) & 3u)
#define TIMER_ONESHOT 0u
#define TIMER_PERIODIC 1u
#define TIMER_TSC_DEADLINE 2u

#define SVR_ENABLE (1u << 8)
#define SVR_SUPPRESS_EOI (1u << 12)

/* ESR bits (§11.5.3, Figure 11-9). */
#define ESR_SEND_ILLEGAL (1u << 5)
#define ESR_RECV_ILLEGAL (1u << 6)
#define ESR_ILLEGAL_REG (1u << 7)

/* Callbacks gathered under the lock and made after it is dropped (lapic_flush). */
struct lapic_out {
    bool kick;
    bool send;
    struct apic_msg msg;
    int eoi_vector; /* -1: none */
};

struct lapic {
    pthread_mutex_t lock; /* a leaf: nothing but timer_ops arm/cancel is called under it */
    struct lapic_config cfg;
    struct vtimer *vt;

    uint64_t apic_base;
    uint8_t xapic_id; /* the xAPIC ID register (writable); x2APIC ID is cfg.apic_id */
    uint32_t tpr, ldr, dfr, svr;
    uint32_t esr;      /* the latched value software reads */
    uint32_t esr_next; /* errors seen since the last ESR write (§11.5.3) */
    uint32_t icr_lo, icr_hi;
    uint32_t lvt[LVT_COUNT];
    uint32_t isr[8], tmr[8], irr[8];
    unsigned events;
    uint8_t sipi_vector;
    bool lint[2];

    /* Timer (lapic_timer.c). */
    uint32_t dcr, timer_init;
    bool timer_running;   /* one-shot or periodic counting */
    uint64_t timer_start; /* ns at which the count was (re)loaded with timer_init */
    uint64_t timer_n;     /* periodic expiries since timer_start already delivered */
    bool armed;           /* the vtimer is armed for timer_due */
    uint64_t timer_due;
    uint64_t tsc_deadline;
};

/* lapic_irq.c */
void lapic_set_irr(struct lapic *l, uint8_t vector, bool level, struct lapic_out *o);
void lapic_lvt_fire(struct lapic *l, unsigned lvt, struct lapic_out *o);
void lapic_error(struct lapic *l, uint32_t bits, struct lapic_out *o);
void lapic_eoi(struct lapic *l, struct lapic_out *o);
uint8_t lapic_ppr_locked(const struct lapic *l);
int lapic_next_locked(const struct lapic *l);
void lapic_flush(struct lapic *l, const struct lapic_out *o);

/* lapic_timer.c */
void lapic_timer_fire(void *arg, uint64_t now_ns);
void lapic_timer_stop(struct lapic *l);
uint32_t lapic_timer_current(struct lapic *l);
void lapic_timer_write_lvt(struct lapic *l, uint32_t v);
void lapic_timer_write_init(struct lapic *l, uint32_t v);
void lapic_timer_write_dcr(struct lapic *l, uint32_t v);
void lapic_timer_write_deadline(struct lapic *l, uint64_t tsc);

#endif
