/* SPDX-License-Identifier: MIT */
/* Local APIC tests: register by register through the xAPIC page and the x2APIC MSRs, the timer
 * on a manual clock, and IPIs between three APICs on the APIC bus. */
#include "../check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "dev/apic_bus.h"
#include "dev/lapic.h"
#include "fake_clock_lapic.h"
#include "sys/vtimer.h"

/* xAPIC offsets (SDM vol. 3A Table 11-1). */
#define ID 0x20
#define VER 0x30
#define TPR 0x80
#define APR 0x90
#define PPR 0xa0
#define EOI 0xb0
#define LDR 0xd0
#define DFR 0xe0
#define SVR 0xf0
#define ISR 0x100
#define TMR 0x180
#define IRR 0x200
#define ESR 0x280
#define ICR_LO 0x300
#define ICR_HI 0x310
#define LVT_TIMER 0x320
#define LVT_THERMAL 0x330
#define LVT_PERF 0x340
#define LVT_LINT0 0x350
#define LVT_LINT1 0x360
#define LVT_ERROR 0x370
#define TIMER_INIT 0x380
#define TIMER_CUR 0x390
#define TIMER_DIV 0x3e0

#define GP (-1)

static struct fake_clock clk;

static struct board {
    struct lapic *cpu[3];
    unsigned n;
    unsigned kicks[3];
    unsigned eois;
    int eoi_vector;
    unsigned ipis;
    struct apic_msg ipi;
} b;

struct opts {
    unsigned n;
    uint32_t ids[3];
    bool no_x2apic, eoi_suppress;
    uint64_t bus_hz, tsc_hz;
    uint64_t (*guest_tsc)(void *opaque, uint64_t now_ns);
};

static void kick(void *opaque, unsigned cpu)
{
    (void)opaque;
    if (cpu < 3)
        b.kicks[cpu]++;
}

static void send_ipi(void *opaque, const struct lapic *from, const struct apic_msg *m)
{
    (void)opaque;
    b.ipis++;
    b.ipi = *m;
    apic_bus_deliver(b.cpu, b.n, from, m);
}

static void eoi_broadcast(void *opaque, uint8_t vector)
{
    (void)opaque;
    b.eois++;
    b.eoi_vector = vector;
}

static void setup_opts(const struct opts *o)
{
    fake_clock_init(&clk, 1000000);
    b = (struct board){.n = o->n ? o->n : 1, .eoi_vector = -1};
    for (unsigned i = 0; i < b.n; i++) {
        struct lapic_config cfg = {
            .cpu = i,
            .apic_id = o->ids[i] ? o->ids[i] : i,
            .bsp = i == 0,
            .x2apic = !o->no_x2apic,
            .eoi_suppress = o->eoi_suppress,
            .bus_hz = o->bus_hz,
            .tsc_hz = o->tsc_hz,
            .guest_tsc = o->guest_tsc,
            .timer = &clk.ops,
            .opaque = &b,
            .kick = kick,
            .send_ipi = send_ipi,
            .eoi_broadcast = eoi_broadcast,
        };
        int ret = lapic_create(&cfg, &b.cpu[i]);
        CHECK(ret == 0 && b.cpu[i], "lapic_create: %d", ret);
    }
}

static struct lapic *setup(unsigned n)
{
    struct opts o = {.n = n};
    setup_opts(&o);
    return b.cpu[0];
}

static void done(void)
{
    for (unsigned i = 0; i < b.n; i++)
        lapic_destroy(b.cpu[i]);
    for (unsigned i = 0; i < FAKE_CLOCK_TIMERS; i++)
        CHECK(!clk.t[i].used, "timer %u destroyed", i);
}

static uint32_t rd(struct lapic *l, uint32_t off)
{
    uint8_t d[4] = {0xaa, 0xaa, 0xaa, 0xaa};
    lapic_mmio_access(l, off, d, 4, false);
    return (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
}

static void wr(struct lapic *l, uint32_t off, uint32_t v)
{
    uint8_t d[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    lapic_mmio_access(l, off, d, 4, true);
}

static uint64_t mrd(struct lapic *l, uint32_t msr)
{
    uint64_t v = 0xdeadbeef;
    int ret = lapic_msr_read(l, msr, &v);
    CHECK(ret == 0, "rdmsr %#x: %d", msr, ret);
    return v;
}

static void mwr(struct lapic *l, uint32_t msr, uint64_t v)
{
    int ret = lapic_msr_write(l, msr, v);
    CHECK(ret == 0, "wrmsr %#x = %#llx: %d", msr, (unsigned long long)v, ret);
}

static int mrd_ret(struct lapic *l, uint32_t msr)
{
    uint64_t v;
    return lapic_msr_read(l, msr, &v);
}

static void fixed(struct lapic *l, uint8_t vector, bool level)
{
    struct apic_msg m = {.vector = vector, .delivery = APIC_DM_FIXED, .level = level, .assert = 1};
    lapic_accept(l, &m);
}

/* The vCPU takes the interrupt it would inject now. */
static int take(struct lapic *l)
{
    int v = lapic_next_irq(l);
    if (v >= 0)
        lapic_ack_irq(l, (uint8_t)v);
    return v;
}

static void enable(struct lapic *l)
{
    wr(l, SVR, 0x1ff);
}

static void to_x2apic(struct lapic *l)
{
    uint64_t base = mrd(l, 0x1b);
    mwr(l, 0x1b, base | (1u << 10));
}

static void test_reset_values(void)
{
    struct opts o = {.n = 2, .ids = {3, 5}};
    setup_opts(&o);
    struct lapic *l = b.cpu[0];
    CHECK_EQ(rd(l, ID), 0x03000000);
    CHECK_EQ(rd(b.cpu[1], ID), 0x05000000);
    CHECK_EQ(rd(l, VER), 0x00050014);
    CHECK_EQ(rd(l, TPR), 0);
    CHECK_EQ(rd(l, APR), 0);
    CHECK_EQ(rd(l, PPR), 0);
    CHECK_EQ(rd(l, LDR), 0);
    CHECK_EQ(rd(l, DFR), 0xffffffffu);
    CHECK_EQ(rd(l, SVR), 0xff);
    for (unsigned i = 0; i < 8; i++) {
        CHECK_EQ(rd(l, ISR + 16 * i), 0);
        CHECK_EQ(rd(l, TMR + 16 * i), 0);
        CHECK_EQ(rd(l, IRR + 16 * i), 0);
    }
    CHECK_EQ(rd(l, ESR), 0);
    CHECK_EQ(rd(l, ICR_LO), 0);
    CHECK_EQ(rd(l, ICR_HI), 0);
    for (uint32_t off = LVT_TIMER; off <= LVT_ERROR; off += 16)
        CHECK_EQ(rd(l, off), 0x00010000);
    CHECK_EQ(rd(l, TIMER_INIT), 0);
    CHECK_EQ(rd(l, TIMER_CUR), 0);
    CHECK_EQ(rd(l, TIMER_DIV), 0);
    CHECK_EQ(mrd(l, 0x1b), 0xfee00900u);
    CHECK_EQ(mrd(b.cpu[1], 0x1b), 0xfee00800u);
    CHECK_EQ(lapic_base(l), 0xfee00000u);

    /* INIT keeps the ID (also one software wrote) and the base, the rest goes back. */
    enable(l);
    wr(l, ID, 0x07000000);
    wr(l, TPR, 0x40);
    wr(l, LVT_LINT0, 0x700);
    fixed(l, 0x40, false);
    mwr(l, 0x1b, 0xfed00900u);
    lapic_reset(l, true);
    CHECK_EQ(rd(l, ID), 0x07000000);
    CHECK_EQ(mrd(l, 0x1b), 0xfed00900u);
    CHECK_EQ(rd(l, TPR), 0);
    CHECK_EQ(rd(l, SVR), 0xff);
    CHECK_EQ(rd(l, LVT_LINT0), 0x00010000);
    CHECK_EQ(rd(l, IRR + 0x20), 0);
    lapic_hard_reset(l, false);
    CHECK_EQ(rd(l, ID), 0x03000000);
    CHECK_EQ(mrd(l, 0x1b), 0xfee00800u);
    done();

    o = (struct opts){.eoi_suppress = true};
    setup_opts(&o);
    CHECK_EQ(rd(b.cpu[0], VER), 0x01050014);
    done();
}

static void test_tpr_ppr(void)
{
    struct lapic *l = setup(1);
    enable(l);
    fixed(l, 0x45, false);
    CHECK_EQ(take(l), 0x45);
    CHECK_EQ(rd(l, PPR), 0x40);
    wr(l, TPR, 0x3f);
    CHECK_EQ(rd(l, PPR), 0x40);
    wr(l, TPR, 0x4f);
    CHECK_EQ(rd(l, PPR), 0x4f); /* TPR class equal to ISRV's: the TPR, low bits included */
    wr(l, TPR, 0x1ff);
    CHECK_EQ(rd(l, TPR), 0xff);
    CHECK_EQ(lapic_get_tpr(l), 0xf);
    lapic_set_tpr(l, 0x12);
    CHECK_EQ(rd(l, TPR), 0x20);
    CHECK_EQ(lapic_get_tpr(l), 2);
    CHECK_EQ(rd(l, PPR), 0x40);
    wr(l, EOI, 0);
    CHECK_EQ(rd(l, PPR), 0x20);
    /* TPR blocks a class at or below its own. */
    fixed(l, 0x2f, false);
    CHECK_EQ(lapic_next_irq(l), -1);
    fixed(l, 0x30, false);
    CHECK_EQ(lapic_next_irq(l), 0x30);
    done();
}

static void test_priority(void)
{
    struct lapic *l = setup(1);
    enable(l);
    fixed(l, 0x31, false);
    fixed(l, 0x52, false);
    fixed(l, 0x61, false);
    CHECK_EQ(rd(l, IRR + 0x10), 1u << 17);
    CHECK_EQ(rd(l, IRR + 0x20), 1u << 18);
    CHECK_EQ(rd(l, IRR + 0x30), 1u << 1);
    CHECK_EQ(take(l), 0x61);
    CHECK_EQ(rd(l, ISR + 0x30), 1u << 1);
    CHECK_EQ(rd(l, IRR + 0x30), 0);
    CHECK_EQ(lapic_next_irq(l), -1); /* 0x52 is below the class in service */
    fixed(l, 0x65, false);
    CHECK_EQ(lapic_next_irq(l), -1); /* same class as in service: waits */
    fixed(l, 0x71, false);
    CHECK_EQ(take(l), 0x71); /* nests */
    CHECK_EQ(rd(l, PPR), 0x70);
    wr(l, EOI, 0);
    CHECK_EQ(rd(l, ISR + 0x30), 1u << 1);
    CHECK_EQ(lapic_next_irq(l), -1); /* 0x65 still waits for 0x61 */
    wr(l, EOI, 0);
    CHECK_EQ(take(l), 0x65);
    CHECK_EQ(rd(l, ISR + 0x30), 1u << 5);
    wr(l, EOI, 0);
    CHECK_EQ(take(l), 0x52);
    wr(l, EOI, 0);
    CHECK_EQ(take(l), 0x31);
    wr(l, EOI, 0);
    CHECK_EQ(lapic_next_irq(l), -1);
    for (unsigned i = 0; i < 8; i++)
        CHECK_EQ(rd(l, ISR + 16 * i) | rd(l, IRR + 16 * i), 0);
    lapic_ack_irq(l, 0x80); /* not pending: ignored */
    CHECK_EQ(rd(l, ISR + 0x40), 0);
    done();
}

static void test_eoi_several(void)
{
    struct lapic *l = setup(1);
    enable(l);
    fixed(l, 0x31, false);
    CHECK_EQ(take(l), 0x31);
    fixed(l, 0x52, false);
    CHECK_EQ(take(l), 0x52);
    fixed(l, 0xe0, false);
    CHECK_EQ(take(l), 0xe0);
    CHECK_EQ(rd(l, ISR + 0x10), 1u << 17);
    CHECK_EQ(rd(l, ISR + 0x20), 1u << 18);
    CHECK_EQ(rd(l, ISR + 0x70), 1u << 0);
    CHECK_EQ(rd(l, PPR), 0xe0);
    wr(l, EOI, 0x12345678); /* the value written does not matter in xAPIC mode */
    CHECK_EQ(rd(l, ISR + 0x70), 0);
    CHECK_EQ(rd(l, PPR), 0x50);
    wr(l, EOI, 0);
    CHECK_EQ(rd(l, ISR + 0x20), 0);
    CHECK_EQ(rd(l, ISR + 0x10), 1u << 17);
    CHECK_EQ(rd(l, PPR), 0x30);
    wr(l, EOI, 0);
    CHECK_EQ(rd(l, PPR), 0);
    wr(l, EOI, 0); /* nothing in service: no effect */
    CHECK_EQ(b.eois, 0);
    done();
}

static void test_level_eoi(void)
{
    struct lapic *l = setup(1);
    enable(l);
    fixed(l, 0x40, true);
    fixed(l, 0x50, false);
    CHECK_EQ(rd(l, TMR + 0x20), 1u);
    CHECK_EQ(rd(l, TMR + 0x20) & (1u << 16), 0);
    CHECK_EQ(take(l), 0x50);
    wr(l, EOI, 0);
    CHECK_EQ(b.eois, 0); /* edge: no broadcast */
    CHECK_EQ(take(l), 0x40);
    wr(l, EOI, 0);
    CHECK_EQ(b.eois, 1);
    CHECK_EQ(b.eoi_vector, 0x40);
    /* Without the capability, bit 12 of SVR is not writable and the broadcast stays. */
    wr(l, SVR, 0x11ff);
    CHECK_EQ(rd(l, SVR), 0x1ff);
    fixed(l, 0x40, true);
    take(l);
    wr(l, EOI, 0);
    CHECK_EQ(b.eois, 2);
    done();

    struct opts o = {.eoi_suppress = true};
    setup_opts(&o);
    l = b.cpu[0];
    wr(l, SVR, 0x11ff);
    CHECK_EQ(rd(l, SVR), 0x11ff);
    fixed(l, 0x40, true);
    CHECK_EQ(take(l), 0x40);
    wr(l, EOI, 0);
    CHECK_EQ(b.eois, 0);
    CHECK_EQ(rd(l, ISR + 0x20), 0);
    done();
}

static void test_esr(void)
{
    struct lapic *l = setup(2);
    enable(l);
    wr(l, ICR_HI, 0x01000000);
    wr(l, ICR_LO, 0x00004003); /* fixed, vector 3: illegal */
    CHECK_EQ(b.ipis, 0);
    CHECK_EQ(rd(l, ESR), 0); /* not latched yet */
    wr(l, ESR, 0);
    CHECK_EQ(rd(l, ESR), 0x20);
    wr(l, ESR, 0);
    CHECK_EQ(rd(l, ESR), 0);
    fixed(l, 5, false);
    CHECK_EQ(rd(l, IRR), 0);
    wr(l, ESR, 0);
    CHECK_EQ(rd(l, ESR), 0x40);
    /* A write to a reserved register. */
    wr(l, 0x040, 1);
    wr(l, ESR, 0);
    CHECK_EQ(rd(l, ESR), 0x80);
    /* Writes to read-only registers are just ignored. */
    wr(l, VER, 0);
    wr(l, PPR, 0);
    wr(l, ISR, 0xffffffffu);
    wr(l, ESR, 0);
    CHECK_EQ(rd(l, ESR), 0);
    CHECK_EQ(rd(l, VER), 0x00050014);
    /* The error LVT raises its vector once per new error. */
    wr(l, LVT_ERROR, 0xfe);
    CHECK_EQ(rd(l, LVT_ERROR), 0xfe);
    unsigned k = b.kicks[0];
    fixed(l, 7, false);
    CHECK_EQ(rd(l, IRR + 0x70), 1u << 30);
    CHECK_EQ(b.kicks[0], k + 1);
    CHECK_EQ(take(l), 0xfe);
    fixed(l, 8, false); /* the same error again, not latched yet: no new interrupt */
    CHECK_EQ(rd(l, IRR + 0x70), 0);
    wr(l, ESR, 0);
    CHECK_EQ(rd(l, ESR), 0x40);
    /* An illegal error vector is recorded, never raised. */
    wr(l, EOI, 0);
    wr(l, LVT_ERROR, 0x02);
    wr(l, ICR_LO, 0x00004001);
    wr(l, ESR, 0);
    CHECK_EQ(rd(l, ESR), 0x60);
    CHECK_EQ(lapic_next_irq(l), -1);
    done();
}

static void test_timer_oneshot(void)
{
    struct lapic *l = setup(1);
    enable(l);
    wr(l, TIMER_DIV, 0xb); /* divide by 1: 1 count per ns */
    CHECK_EQ(rd(l, TIMER_DIV), 0xb);
    wr(l, LVT_TIMER, 0x30);
    wr(l, TIMER_INIT, 1000);
    CHECK_EQ(rd(l, TIMER_INIT), 1000);
    CHECK_EQ(rd(l, TIMER_CUR), 1000);
    fake_clock_advance(&clk, 300);
    CHECK_EQ(rd(l, TIMER_CUR), 700);
    CHECK_EQ(rd(l, IRR + 0x10), 0);
    fake_clock_advance(&clk, 699);
    CHECK_EQ(rd(l, TIMER_CUR), 1);
    CHECK_EQ(clk.fires, 0);
    unsigned k = b.kicks[0];
    fake_clock_advance(&clk, 1);
    CHECK_EQ(clk.fires, 1);
    CHECK_EQ(b.kicks[0], k + 1);
    CHECK_EQ(rd(l, IRR + 0x10), 1u << 16);
    CHECK_EQ(rd(l, TIMER_CUR), 0);
    fake_clock_advance(&clk, 100000);
    CHECK_EQ(clk.fires, 1);
    CHECK_EQ(rd(l, TIMER_INIT), 1000);

    /* Divide by 16 (0x3): 1000 counts take 16 us. */
    wr(l, TIMER_DIV, 0x3);
    wr(l, TIMER_INIT, 1000);
    fake_clock_advance(&clk, 1600);
    CHECK_EQ(rd(l, TIMER_CUR), 900);
    /* Changing to divide by 2 (0x0) keeps the count, then counts faster. */
    wr(l, TIMER_DIV, 0x0);
    CHECK_EQ(rd(l, TIMER_CUR), 900);
    fake_clock_advance(&clk, 200);
    CHECK_EQ(rd(l, TIMER_CUR), 800);
    fake_clock_advance(&clk, 1599);
    CHECK_EQ(clk.fires, 1);
    fake_clock_advance(&clk, 1);
    CHECK_EQ(clk.fires, 2);
    /* Each divide value: 0x8 -> 32, 0x9 -> 64, 0xa -> 128, 0x2 -> 8, 0x1 -> 4. */
    const uint32_t dcr[5] = {0x8, 0x9, 0xa, 0x2, 0x1}, div[5] = {32, 64, 128, 8, 4};
    for (unsigned i = 0; i < 5; i++) {
        wr(l, TIMER_DIV, dcr[i]);
        wr(l, TIMER_INIT, 100);
        fake_clock_advance(&clk, div[i] * 10);
        CHECK_EQ(rd(l, TIMER_CUR), 90);
    }
    /* Writing 0 stops it; masked, it counts but raises nothing. */
    wr(l, TIMER_INIT, 0);
    CHECK_EQ(rd(l, TIMER_CUR), 0);
    CHECK_EQ(take(l), 0x30);
    wr(l, EOI, 0);
    wr(l, LVT_TIMER, 0x10030);
    wr(l, TIMER_DIV, 0xb);
    unsigned f = clk.fires;
    wr(l, TIMER_INIT, 50);
    fake_clock_advance(&clk, 50);
    CHECK_EQ(clk.fires, f + 1);
    CHECK_EQ(rd(l, IRR + 0x10), 0);
    done();
}

static void test_timer_periodic(void)
{
    struct lapic *l = setup(1);
    enable(l);
    wr(l, TIMER_DIV, 0xb);
    wr(l, LVT_TIMER, 0x20031); /* periodic, vector 0x31 */
    CHECK_EQ(rd(l, LVT_TIMER), 0x20031);
    wr(l, TIMER_INIT, 250000);
    fake_clock_advance(&clk, 100000);
    CHECK_EQ(rd(l, TIMER_CUR), 150000);
    fake_clock_advance(&clk, 150000);
    CHECK_EQ(clk.fires, 1);
    CHECK_EQ(rd(l, TIMER_CUR), 250000); /* reloaded */
    CHECK_EQ(take(l), 0x31);
    wr(l, EOI, 0);
    fake_clock_advance(&clk, 50000);
    CHECK_EQ(rd(l, TIMER_CUR), 200000);
    fake_clock_advance(&clk, 200000);
    CHECK_EQ(clk.fires, 2);
    CHECK_EQ(take(l), 0x31);
    wr(l, EOI, 0);
    /* Switching to one-shot keeps the count running down to 0, once. */
    fake_clock_advance(&clk, 1000);
    wr(l, LVT_TIMER, 0x31);
    CHECK_EQ(rd(l, TIMER_CUR), 249000);
    fake_clock_advance(&clk, 249000);
    CHECK_EQ(clk.fires, 3);
    fake_clock_advance(&clk, 10000000);
    CHECK_EQ(clk.fires, 3);
    CHECK_EQ(rd(l, TIMER_CUR), 0);
    done();
}

/* A period of 333333.33 ns (1e6 counts at 3 GHz): rounding each period to whole nanoseconds
 * and adding would be a third of a nanosecond off per period. */
static void test_timer_drift(void)
{
    struct opts o = {.bus_hz = 3000000000ull};
    setup_opts(&o);
    struct lapic *l = b.cpu[0];
    enable(l);
    wr(l, TIMER_DIV, 0xb);
    wr(l, LVT_TIMER, 0x20040);
    uint64_t t0 = clk.now;
    wr(l, TIMER_INIT, 1000000);
    for (unsigned i = 0; i < 100; i++) {
        fake_clock_advance(&clk, 33333333);
        take(l);
        wr(l, EOI, 0);
    }
    /* The 10000th expiry is at ceil(10000 * 1e6 / 3e9 s) = t0 + 3333333334 ns. */
    fake_clock_advance(&clk, t0 + 3333333333ull - clk.now);
    CHECK_EQ(clk.fires, 9999);
    fake_clock_advance(&clk, 1);
    CHECK_EQ(clk.fires, 10000);
    CHECK_EQ(clk.last_fire, t0 + 3333333334ull);
    /* The deadline is the reload rounded up to a whole ns: 2 counts (2/3 ns) past it. */
    CHECK_EQ(rd(l, TIMER_CUR), 999998);

    /* A stall of 10.5 periods: one interrupt, and the next one back on the grid. */
    take(l);
    wr(l, EOI, 0);
    fake_clock_jump(&clk, 3500000);
    fake_clock_advance(&clk, 0);
    CHECK_EQ(clk.fires, 10001);
    CHECK_EQ(take(l), 0x40);
    CHECK_EQ(lapic_next_irq(l), -1);
    /* Expiry 10010 was passed by the stall; 10011 is at ceil(10011e6 / 3e9 s). */
    fake_clock_advance(&clk, t0 + 3337000000ull - clk.now);
    CHECK_EQ(clk.fires, 10002);
    CHECK_EQ(clk.last_fire, t0 + 3337000000ull);

    /* A period below the floor fires at most every LAPIC_MIN_PERIOD_NS. */
    wr(l, TIMER_INIT, 3);
    unsigned f = clk.fires;
    fake_clock_advance(&clk, 10 * LAPIC_MIN_PERIOD_NS);
    CHECK_EQ(clk.fires, f + 10);
    done();
}

static uint64_t tsc_offset;

static uint64_t guest_tsc(void *opaque, uint64_t now_ns)
{
    (void)opaque;
    return now_ns * 2 + tsc_offset;
}

static void test_tsc_deadline(void)
{
    struct opts o = {.tsc_hz = 2000000000ull};
    setup_opts(&o);
    struct lapic *l = b.cpu[0];
    enable(l);
    uint64_t tsc = clk.now * 2; /* guest_tsc NULL: the TSC counts from the clock's 0 */
    mwr(l, 0x6e0, tsc + 2000);  /* not in TSC-deadline mode: ignored */
    CHECK_EQ(mrd(l, 0x6e0), 0);
    wr(l, TIMER_INIT, 100);
    wr(l, LVT_TIMER, 0x40050);
    CHECK_EQ(rd(l, LVT_TIMER), 0x40050);
    CHECK_EQ(rd(l, TIMER_INIT), 0); /* the mode change disarmed the count */
    wr(l, TIMER_INIT, 100);
    CHECK_EQ(rd(l, TIMER_INIT), 0); /* and writes to it are ignored */
    mwr(l, 0x6e0, tsc + 2000);
    CHECK_EQ(mrd(l, 0x6e0), tsc + 2000);
    CHECK_EQ(rd(l, TIMER_CUR), 0);
    fake_clock_advance(&clk, 999);
    CHECK_EQ(clk.fires, 0);
    fake_clock_advance(&clk, 1);
    CHECK_EQ(clk.fires, 1);
    CHECK_EQ(mrd(l, 0x6e0), 0);
    CHECK_EQ(take(l), 0x50);
    wr(l, EOI, 0);
    /* A deadline that has passed fires at once; 0 disarms. */
    mwr(l, 0x6e0, 1);
    fake_clock_advance(&clk, 0);
    CHECK_EQ(clk.fires, 2);
    mwr(l, 0x6e0, clk.now * 2 + 10);
    mwr(l, 0x6e0, 0);
    fake_clock_advance(&clk, 1000);
    CHECK_EQ(clk.fires, 2);
    /* An odd TSC distance rounds up: 3 ticks at 2 GHz are 2 ns away. */
    mwr(l, 0x6e0, clk.now * 2 + 3);
    fake_clock_advance(&clk, 1);
    CHECK_EQ(clk.fires, 2);
    fake_clock_advance(&clk, 1);
    CHECK_EQ(clk.fires, 3);
    /* Leaving TSC-deadline mode disarms. */
    mwr(l, 0x6e0, clk.now * 2 + 100);
    wr(l, LVT_TIMER, 0x50);
    CHECK_EQ(mrd(l, 0x6e0), 0);
    fake_clock_advance(&clk, 1000);
    CHECK_EQ(clk.fires, 3);
    done();

    /* The board's guest TSC, with an offset. */
    o.guest_tsc = guest_tsc;
    tsc_offset = 1000000;
    setup_opts(&o);
    l = b.cpu[0];
    enable(l);
    wr(l, LVT_TIMER, 0x40050);
    mwr(l, 0x6e0, clk.now * 2 + tsc_offset + 400);
    fake_clock_advance(&clk, 199);
    CHECK_EQ(clk.fires, 0);
    fake_clock_advance(&clk, 1);
    CHECK_EQ(clk.fires, 1);
    done();

    /* Without tsc_hz: no TSC-deadline mode at all. */
    setup(1);
    l = b.cpu[0];
    enable(l);
    CHECK_EQ(lapic_msr_write(l, 0x6e0, 5), GP);
    CHECK_EQ(mrd_ret(l, 0x6e0), GP);
    wr(l, LVT_TIMER, 0x40050);
    CHECK_EQ(rd(l, LVT_TIMER), 0x50);
    done();
}

static void test_x2apic_msrs(void)
{
    struct opts o = {.n = 1, .ids = {0x23}};
    setup_opts(&o);
    struct lapic *l = b.cpu[0];
    for (uint32_t msr = 0x800; msr <= 0x8ff; msr++) {
        CHECK_EQ(mrd_ret(l, msr), GP); /* xAPIC mode: no MSRs */
        CHECK_EQ(lapic_msr_write(l, msr, 0), GP);
    }
    wr(l, LDR, 0x01000000);
    to_x2apic(l);
    CHECK(lapic_x2apic_mode(l), "x2APIC on");
    CHECK_EQ(mrd(l, 0x1b), 0xfee00d00u);
    CHECK_EQ(rd(l, ID), 0); /* the page is gone */
    CHECK_EQ(mrd(l, 0x802), 0x23);
    CHECK_EQ(mrd(l, 0x803), 0x00050014);
    CHECK_EQ(mrd(l, 0x80d), 0x00020008); /* cluster 2, bit 3 */
    CHECK_EQ(mrd(l, 0x80f), 0xff);
    mwr(l, 0x80f, 0x1ff);
    CHECK_EQ(mrd(l, 0x80f), 0x1ff);
    mwr(l, 0x808, 0x30);
    CHECK_EQ(mrd(l, 0x808), 0x30);
    CHECK_EQ(mrd(l, 0x80a), 0x30);
    /* SELF IPI and the ISR/IRR/TMR words. */
    mwr(l, 0x83f, 0x61);
    CHECK_EQ(mrd(l, 0x823), 1u << 1);
    CHECK_EQ(take(l), 0x61);
    CHECK_EQ(mrd(l, 0x813), 1u << 1);
    CHECK_EQ(mrd(l, 0x81b), 0);
    CHECK_EQ(lapic_msr_write(l, 0x80b, 1), GP);
    mwr(l, 0x80b, 0);
    CHECK_EQ(mrd(l, 0x813), 0);
    /* ICR is one 64-bit register. */
    mwr(l, 0x830, 0x0000001200004055ull);
    CHECK_EQ(mrd(l, 0x830), 0x0000001200004055ull);
    CHECK_EQ(b.ipis, 1);
    CHECK_EQ(b.ipi.vector, 0x55);
    CHECK_EQ(b.ipi.dest, 0x12);
    CHECK(b.ipi.x2apic && !b.ipi.logical, "x2APIC physical");
    /* LVTs, timer and divide through MSRs. */
    mwr(l, 0x835, 0x700);
    CHECK_EQ(mrd(l, 0x835), 0x700);
    mwr(l, 0x83e, 0xb);
    CHECK_EQ(mrd(l, 0x83e), 0xb);
    mwr(l, 0x838, 500);
    CHECK_EQ(mrd(l, 0x838), 500);
    fake_clock_advance(&clk, 100);
    CHECK_EQ(mrd(l, 0x839), 400);
    mwr(l, 0x828, 0);
    CHECK_EQ(mrd(l, 0x828), 0);
    /* Every #GP. */
    const uint32_t absent[] = {0x800, 0x801, 0x804, 0x807, 0x809, 0x80c, 0x80e,
                               0x829, 0x82f, 0x831, 0x83a, 0x83d, 0x840, 0x8ff};
    for (unsigned i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
        CHECK_EQ(mrd_ret(l, absent[i]), GP);
        CHECK_EQ(lapic_msr_write(l, absent[i], 0), GP);
    }
    CHECK_EQ(mrd_ret(l, 0x80b), GP); /* EOI is write-only */
    CHECK_EQ(mrd_ret(l, 0x83f), GP); /* SELF IPI too */
    const uint32_t ro[] = {0x802, 0x803, 0x80a, 0x80d, 0x810, 0x817, 0x818, 0x820, 0x827, 0x839};
    for (unsigned i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
        CHECK_EQ(lapic_msr_write(l, ro[i], 0), GP);
    CHECK_EQ(lapic_msr_write(l, 0x808, 1ull << 32), GP);
    CHECK_EQ(lapic_msr_write(l, 0x828, 1), GP);
    CHECK_EQ(lapic_msr_write(l, 0x83f, 0x100), GP);
    CHECK_EQ(mrd(l, 0x808), 0x30);
    CHECK_EQ(mrd_ret(l, 0x10), GP); /* not an APIC MSR */
    CHECK_EQ(lapic_msr_write(l, 0x10, 0), GP);
    /* SELF IPI of a vector below 16: an error, no interrupt. */
    mwr(l, 0x83f, 0x0f);
    mwr(l, 0x828, 0);
    CHECK_EQ(mrd(l, 0x828), 0x20);
    done();
}

static void test_apic_base(void)
{
    struct lapic *l = setup(1);
    CHECK_EQ(lapic_msr_write(l, 0x1b, 0xfee00000u | (1u << 10)), GP); /* EN=0 EXTD=1 */
    CHECK_EQ(lapic_msr_write(l, 0x1b, 0xfee00a00u), GP);              /* bit 9 reserved */
    CHECK_EQ(lapic_msr_write(l, 0x1b, 0x1000000800ull), GP);          /* above 36 bits */
    CHECK_EQ(lapic_msr_write(l, 0x1b, 0xfee00801u), GP);              /* bit 0 reserved */
    /* Relocation; the BSP flag is not the guest's to change. */
    mwr(l, 0x1b, 0xfed00800u);
    CHECK_EQ(mrd(l, 0x1b), 0xfed00900u);
    CHECK_EQ(lapic_base(l), 0xfed00000u);
    mwr(l, 0x1b, 0xfee00800u);
    /* xAPIC -> x2APIC -> (not xAPIC) -> disabled -> (not x2APIC) -> xAPIC. */
    enable(l);
    wr(l, TPR, 0x20);
    mwr(l, 0x1b, 0xfee00c00u);
    CHECK(lapic_x2apic_mode(l), "x2APIC");
    CHECK_EQ(mrd(l, 0x808), 0x20); /* state kept */
    CHECK_EQ(lapic_msr_write(l, 0x1b, 0xfee00800u), GP);
    CHECK(lapic_x2apic_mode(l), "still x2APIC");
    mwr(l, 0x1b, 0xfee00c00u); /* the same state again: fine */
    mwr(l, 0x1b, 0xfee00000u);
    CHECK(!lapic_enabled(l), "disabled");
    CHECK_EQ(mrd(l, 0x1b), 0xfee00100u);
    CHECK_EQ(rd(l, SVR), 0); /* the page answers nothing */
    CHECK_EQ(mrd_ret(l, 0x808), GP);
    fixed(l, 0x40, false);
    CHECK_EQ(lapic_next_irq(l), -1);
    CHECK_EQ(lapic_msr_write(l, 0x1b, 0xfee00c00u), GP);
    mwr(l, 0x1b, 0xfee00800u);
    CHECK(lapic_enabled(l) && !lapic_x2apic_mode(l), "xAPIC again");
    CHECK_EQ(rd(l, TPR), 0); /* as after power-up */
    CHECK_EQ(rd(l, SVR), 0xff);
    CHECK_EQ(rd(l, IRR + 0x20), 0);
    done();

    struct opts o = {.no_x2apic = true};
    setup_opts(&o);
    CHECK_EQ(lapic_msr_write(b.cpu[0], 0x1b, 0xfee00c00u), GP);
    CHECK_EQ(mrd(b.cpu[0], 0x1b), 0xfee00900u);
    done();
}

static void ipi(struct lapic *from, uint32_t hi, uint32_t lo)
{
    wr(from, ICR_HI, hi);
    wr(from, ICR_LO, lo);
}

static unsigned irr_bit(struct lapic *l, uint8_t v)
{
    return (rd(l, IRR + 16u * (v >> 5)) >> (v & 31)) & 1;
}

static void test_ipi(void)
{
    setup(3);
    struct lapic **c = b.cpu;
    for (unsigned i = 0; i < 3; i++)
        enable(c[i]);
    /* Fixed, physical. */
    ipi(c[0], 0x01000000, 0x00004041);
    CHECK_EQ(b.ipis, 1);
    CHECK_EQ(rd(c[0], ICR_LO), 0x00004041); /* delivery status idle */
    CHECK_EQ(rd(c[0], ICR_HI), 0x01000000);
    CHECK_EQ(irr_bit(c[1], 0x41), 1);
    CHECK_EQ(irr_bit(c[0], 0x41) + irr_bit(c[2], 0x41), 0);
    CHECK_EQ(b.kicks[1], 1);
    CHECK_EQ(b.kicks[0] + b.kicks[2], 0);
    /* NMI, INIT assert and de-assert, SIPI. */
    ipi(c[0], 0x02000000, 0x00004400);
    uint8_t sv = 0xff;
    CHECK_EQ(lapic_take_events(c[2], &sv), LAPIC_EV_NMI);
    CHECK_EQ(sv, 0);
    CHECK_EQ(lapic_take_events(c[2], NULL), 0);
    ipi(c[0], 0x02000000, 0x0000c500);
    CHECK_EQ(lapic_take_events(c[2], NULL), LAPIC_EV_INIT);
    ipi(c[0], 0x02000000, 0x00008500);
    CHECK_EQ(b.ipi.assert, 0);
    CHECK_EQ(lapic_take_events(c[2], NULL), 0);
    ipi(c[0], 0x02000000, 0x00004608);
    CHECK_EQ(lapic_take_events(c[2], &sv), LAPIC_EV_SIPI);
    CHECK_EQ(sv, 8);
    /* Shorthands: self, all including self, all but self (the destination is ignored). */
    ipi(c[1], 0x02000000, 0x00044050);
    CHECK_EQ(irr_bit(c[0], 0x50) + irr_bit(c[1], 0x50) * 2 + irr_bit(c[2], 0x50) * 4, 2);
    ipi(c[1], 0, 0x00084051);
    CHECK_EQ(irr_bit(c[0], 0x51) + irr_bit(c[1], 0x51) * 2 + irr_bit(c[2], 0x51) * 4, 7);
    ipi(c[1], 0, 0x000c4052);
    CHECK_EQ(irr_bit(c[0], 0x52) + irr_bit(c[1], 0x52) * 2 + irr_bit(c[2], 0x52) * 4, 5);
    ipi(c[1], 0xff000000, 0x00004053); /* physical broadcast */
    CHECK_EQ(irr_bit(c[0], 0x53) + irr_bit(c[1], 0x53) * 2 + irr_bit(c[2], 0x53) * 4, 7);
    /* Logical flat. */
    for (unsigned i = 0; i < 3; i++)
        wr(c[i], LDR, (1u << i) << 24);
    CHECK_EQ(rd(c[2], LDR), 0x04000000);
    ipi(c[0], 0x06000000, 0x00004854);
    CHECK_EQ(irr_bit(c[0], 0x54) + irr_bit(c[1], 0x54) * 2 + irr_bit(c[2], 0x54) * 4, 6);
    /* Lowest priority among 0, 1, 2: c[0] busy (TPR), c[1] and c[2] idle: the lower index. */
    wr(c[0], TPR, 0x20);
    ipi(c[2], 0x07000000, 0x00004955);
    CHECK_EQ(irr_bit(c[0], 0x55) + irr_bit(c[1], 0x55) * 2 + irr_bit(c[2], 0x55) * 4, 2);
    /* Logical cluster: cluster 1 members 1 and 2, cluster 2 member 1. */
    wr(c[0], LDR, 0x11000000);
    wr(c[1], LDR, 0x12000000);
    wr(c[2], LDR, 0x21000000);
    for (unsigned i = 0; i < 3; i++)
        wr(c[i], DFR, 0x0fffffff);
    CHECK_EQ(rd(c[0], DFR), 0x0fffffff);
    ipi(c[0], 0x13000000, 0x00004856);
    CHECK_EQ(irr_bit(c[0], 0x56) + irr_bit(c[1], 0x56) * 2 + irr_bit(c[2], 0x56) * 4, 3);
    ipi(c[0], 0x21000000, 0x00004857);
    CHECK_EQ(irr_bit(c[0], 0x57) + irr_bit(c[1], 0x57) * 2 + irr_bit(c[2], 0x57) * 4, 4);
    ipi(c[0], 0x14000000, 0x00004858); /* no member 3 in cluster 1 */
    CHECK_EQ(irr_bit(c[0], 0x58) + irr_bit(c[1], 0x58) * 2 + irr_bit(c[2], 0x58) * 4, 0);
    done();

    /* x2APIC cluster: IDs 0, 1, 0x11 have LDRs 0x1, 0x2, 0x10002. */
    struct opts o = {.n = 3, .ids = {0, 1, 0x11}};
    setup_opts(&o);
    for (unsigned i = 0; i < 3; i++) {
        to_x2apic(c[i]);
        mwr(c[i], 0x80f, 0x1ff);
    }
    CHECK_EQ(mrd(c[2], 0x80d), 0x10002);
    mwr(c[0], 0x830, 0x0000000300004860ull);
    CHECK_EQ(irr_bit(c[0], 0x60) + irr_bit(c[1], 0x60) * 2 + irr_bit(c[2], 0x60) * 4, 0);
    CHECK_EQ(mrd(c[0], 0x820 + (0x60 >> 5)) >> (0x60 & 31) & 1, 1);
    CHECK_EQ(mrd(c[1], 0x820 + (0x60 >> 5)) >> (0x60 & 31) & 1, 1);
    CHECK_EQ(mrd(c[2], 0x820 + (0x60 >> 5)) >> (0x60 & 31) & 1, 0);
    mwr(c[0], 0x830, 0x0001000200004861ull);
    CHECK_EQ(mrd(c[2], 0x820 + (0x61 >> 5)) >> (0x61 & 31) & 1, 1);
    CHECK_EQ(mrd(c[1], 0x820 + (0x61 >> 5)) >> (0x61 & 31) & 1, 0);
    mwr(c[0], 0x830, 0x0000001100004062ull); /* physical 0x11 */
    CHECK_EQ(mrd(c[2], 0x820 + (0x62 >> 5)) >> (0x62 & 31) & 1, 1);
    mwr(c[0], 0x830, 0xffffffff00004063ull); /* x2APIC broadcast */
    for (unsigned i = 0; i < 3; i++)
        CHECK_EQ(mrd(c[i], 0x820 + (0x63 >> 5)) >> (0x63 & 31) & 1, 1);
    done();
}

static void test_lint(void)
{
    struct lapic *l = setup(1);
    enable(l);
    wr(l, LVT_LINT0, 0x700); /* ExtINT, as Linux's BSP in virtual-wire mode */
    CHECK_EQ(rd(l, LVT_LINT0), 0x700);
    wr(l, LVT_LINT1, 0x400); /* NMI */
    CHECK_EQ(lapic_take_events(l, NULL), 0);
    lapic_set_lint(l, 0, true);
    CHECK_EQ(b.kicks[0], 1);
    CHECK_EQ(lapic_take_events(l, NULL), LAPIC_EV_EXTINT);
    CHECK_EQ(lapic_take_events(l, NULL), LAPIC_EV_EXTINT); /* a level: still there */
    lapic_set_lint(l, 0, false);
    CHECK_EQ(lapic_take_events(l, NULL), 0);
    lapic_set_lint(l, 1, true);
    CHECK_EQ(lapic_take_events(l, NULL), LAPIC_EV_NMI);
    lapic_set_lint(l, 1, true); /* no new edge */
    CHECK_EQ(lapic_take_events(l, NULL), 0);
    lapic_set_lint(l, 1, false);
    /* Masked LINT0: the PIC is not heard. */
    wr(l, LVT_LINT0, 0x10700);
    lapic_set_lint(l, 0, true);
    CHECK_EQ(lapic_take_events(l, NULL), 0);
    lapic_set_lint(l, 0, false);
    /* LINT0 fixed, level: remote IRR until the EOI, raised again while still asserted. */
    wr(l, LVT_LINT0, 0x8050);
    CHECK_EQ(rd(l, LVT_LINT0), 0x8050);
    lapic_set_lint(l, 0, true);
    CHECK_EQ(rd(l, LVT_LINT0), 0xc050);
    CHECK_EQ(rd(l, TMR + 0x20), 1u << 16);
    CHECK_EQ(take(l), 0x50);
    wr(l, EOI, 0);
    CHECK_EQ(rd(l, LVT_LINT0), 0xc050);
    CHECK_EQ(take(l), 0x50);
    lapic_set_lint(l, 0, false);
    wr(l, EOI, 0);
    CHECK_EQ(rd(l, LVT_LINT0), 0x8050);
    CHECK_EQ(lapic_next_irq(l), -1);
    /* LINT1 has no level mode. */
    wr(l, LVT_LINT1, 0x8400);
    CHECK_EQ(rd(l, LVT_LINT1), 0x400);
    /* Globally disabled: LINT0 is INTR and LINT1 NMI. */
    mwr(l, 0x1b, 0xfee00100u);
    lapic_set_lint(l, 0, true);
    lapic_set_lint(l, 1, true);
    CHECK_EQ(lapic_take_events(l, NULL), LAPIC_EV_EXTINT | LAPIC_EV_NMI);
    CHECK_EQ(lapic_take_events(l, NULL), LAPIC_EV_EXTINT);
    lapic_set_lint(l, 5, true); /* no such pin */
    lapic_set_lint(l, -1, true);
    done();
}

static void test_sw_disabled(void)
{
    struct lapic *l = setup(1);
    wr(l, LVT_LINT0, 0x700);
    CHECK_EQ(rd(l, LVT_LINT0), 0x10700); /* cannot unmask while disabled */
    fixed(l, 0x40, false);
    CHECK_EQ(rd(l, IRR + 0x20), 0);
    struct apic_msg m = {.delivery = APIC_DM_NMI};
    lapic_accept(l, &m);
    m = (struct apic_msg){.delivery = APIC_DM_INIT, .assert = true};
    lapic_accept(l, &m);
    m = (struct apic_msg){.delivery = APIC_DM_STARTUP, .vector = 0x9a};
    lapic_accept(l, &m);
    uint8_t sv;
    CHECK_EQ(lapic_take_events(l, &sv), LAPIC_EV_NMI | LAPIC_EV_INIT | LAPIC_EV_SIPI);
    CHECK_EQ(sv, 0x9a);
    lapic_set_lint(l, 0, true);
    CHECK_EQ(lapic_take_events(l, NULL), 0);
    /* Enabled: LVTs are still masked until written. */
    enable(l);
    CHECK_EQ(rd(l, LVT_LINT0), 0x10700);
    wr(l, LVT_LINT0, 0x700);
    CHECK_EQ(lapic_take_events(l, NULL), LAPIC_EV_EXTINT);
    wr(l, LVT_TIMER, 0x20);
    wr(l, LVT_ERROR, 0xfe);
    /* Disabling masks them all again; the spurious vector is kept. */
    wr(l, SVR, 0x0ef);
    CHECK_EQ(rd(l, SVR), 0xef);
    CHECK_EQ(rd(l, LVT_LINT0), 0x10700);
    CHECK_EQ(rd(l, LVT_TIMER), 0x10020);
    CHECK_EQ(rd(l, LVT_ERROR), 0x100fe);
    CHECK_EQ(lapic_take_events(l, NULL), 0);
    done();
}

static void test_mmio_odd(void)
{
    struct opts o = {.ids = {0x5a}};
    setup_opts(&o);
    struct lapic *l = b.cpu[0];
    uint8_t d[8];
    memset(d, 0xcc, sizeof(d));
    lapic_mmio_access(l, ID + 3, d, 1, false);
    CHECK_EQ(d[0], 0x5a);
    lapic_mmio_access(l, ID + 2, d, 2, false);
    CHECK_EQ(d[0] | d[1] << 8, 0x5a00);
    lapic_mmio_access(l, ID + 2, d, 4, false); /* crosses the dword */
    CHECK_EQ(d[0] | d[1] | d[2] | d[3], 0);
    lapic_mmio_access(l, ID + 4, d, 4, false);
    CHECK_EQ(d[0] | d[1] | d[2] | d[3], 0);
    memset(d, 0xcc, sizeof(d));
    lapic_mmio_access(l, ID, d, 8, false);
    for (unsigned i = 0; i < 8; i++)
        CHECK_EQ(d[i], 0);
    d[0] = 0x30;
    lapic_mmio_access(l, TPR, d, 1, true); /* sub-dword write: ignored */
    CHECK_EQ(rd(l, TPR), 0);
    lapic_mmio_access(l, TPR + 4, d, 4, true);
    CHECK_EQ(rd(l, TPR), 0);
    lapic_mmio_access(l, 0x1000, d, 4, true);
    lapic_mmio_access(l, 0xffffffffffffffffull, d, 4, false);
    CHECK_EQ(d[0], 0);
    lapic_mmio_access(l, 0, d, 0, false);
    wr(l, ESR, 0);
    CHECK_EQ(rd(l, ESR), 0);
    done();
}

/* Kicks only for what is deliverable; IOAPIC/MSI messages (no sender) on the bus. */
static void test_kick_and_bus(void)
{
    setup(3);
    struct lapic **c = b.cpu;
    for (unsigned i = 0; i < 3; i++)
        enable(c[i]);
    wr(c[0], TPR, 0x50);
    fixed(c[0], 0x45, false); /* below TPR: pending, no kick */
    CHECK_EQ(b.kicks[0], 0);
    wr(c[0], TPR, 0); /* now deliverable */
    CHECK_EQ(b.kicks[0], 1);
    CHECK_EQ(take(c[0]), 0x45);
    fixed(c[0], 0x41, false); /* same class as in service: no kick */
    CHECK_EQ(b.kicks[0], 1);
    wr(c[0], EOI, 0); /* uncovers 0x41 */
    CHECK_EQ(b.kicks[0], 2);
    CHECK_EQ(take(c[0]), 0x41);
    wr(c[0], EOI, 0);
    /* An MSI to APIC 2 (address 0xfee02000, fixed vector 0x66). */
    struct apic_msg m;
    CHECK(apic_msg_from_msi(0xfee02000u, 0x66, &m), "MSI");
    CHECK_EQ(apic_bus_deliver(c, 3, NULL, &m), 1);
    CHECK_EQ(irr_bit(c[2], 0x66), 1);
    CHECK(!apic_msg_from_msi(0xfed00000u, 0x66, &m), "not an MSI address");
    /* No sender: SELF names nobody, ALL_BUT_SELF everybody. */
    m = (struct apic_msg){.vector = 0x70, .shorthand = APIC_SH_SELF};
    CHECK_EQ(apic_bus_deliver(c, 3, NULL, &m), 0);
    m.shorthand = APIC_SH_ALL_BUT_SELF;
    CHECK_EQ(apic_bus_deliver(c, 3, NULL, &m), 3);
    /* Lowest priority by PPR: c[1] has a vector in service, c[2] a TPR; c[0] is the lowest. */
    for (unsigned i = 0; i < 3; i++) {
        take(c[i]);
        wr(c[i], EOI, 0);
        wr(c[i], LDR, 0x01000000u << i);
    }
    fixed(c[1], 0x90, false);
    CHECK_EQ(take(c[1]), 0x90);
    wr(c[2], TPR, 0x30);
    wr(c[0], TPR, 0x20);
    m = (struct apic_msg){.vector = 0xa0, .delivery = APIC_DM_LOWEST, .logical = true, .dest = 7};
    CHECK_EQ(apic_bus_deliver(c, 3, NULL, &m), 1);
    CHECK_EQ(irr_bit(c[0], 0xa0) + irr_bit(c[1], 0xa0) * 2 + irr_bit(c[2], 0xa0) * 4, 1);
    m.dest = 6;
    CHECK_EQ(apic_bus_deliver(c, 3, NULL, &m), 1);
    CHECK_EQ(irr_bit(c[1], 0xa0) + irr_bit(c[2], 0xa0) * 2, 2);
    m.dest = 0x08; /* nobody */
    CHECK_EQ(apic_bus_deliver(c, 3, NULL, &m), 0);
    struct lapic *sparse[3] = {NULL, c[1], NULL};
    m = (struct apic_msg){.vector = 0xb0, .dest = 0xff};
    CHECK_EQ(apic_bus_deliver(sparse, 3, NULL, &m), 1);
    CHECK_EQ(apic_bus_deliver(NULL, 3, NULL, &m), 0);
    /* INIT keeps x2APIC mode and the x2APIC ID. */
    to_x2apic(c[1]);
    lapic_reset(c[1], false);
    CHECK(lapic_x2apic_mode(c[1]), "x2APIC kept over INIT");
    CHECK_EQ(mrd(c[1], 0x802), 1);
    CHECK_EQ(mrd(c[1], 0x80f), 0xff);
    /* The other LVTs' writable bits. */
    wr(c[0], LVT_THERMAL, 0xffffffffu);
    CHECK_EQ(rd(c[0], LVT_THERMAL), 0x000107ff);
    wr(c[0], LVT_PERF, 0xffffffffu);
    CHECK_EQ(rd(c[0], LVT_PERF), 0x000107ff);
    wr(c[0], LVT_ERROR, 0xffffffffu);
    CHECK_EQ(rd(c[0], LVT_ERROR), 0x000100ff);
    wr(c[0], LVT_LINT0, 0xffffffffu);
    CHECK_EQ(rd(c[0], LVT_LINT0), 0x0001a7ff);
    wr(c[0], LVT_TIMER, 0xffffffffu);
    CHECK_EQ(rd(c[0], LVT_TIMER), 0x000300ff);
    wr(c[0], ICR_HI, 0xffffffffu);
    CHECK_EQ(rd(c[0], ICR_HI), 0xff000000u);
    done();
}

/* The real timer service and a second thread delivering like an IOAPIC, while this thread is
 * the vCPU: self IPIs and EOI broadcasts that re-deliver run from the callbacks, so a callback
 * made under the lapic's lock would deadlock here. */
static struct lapic *real_l;
static atomic_uint real_kicks, real_line;
static atomic_bool real_stop;

static void real_kick(void *opaque, unsigned cpu)
{
    (void)opaque;
    (void)cpu;
    atomic_fetch_add(&real_kicks, 1);
}

static void real_send(void *opaque, const struct lapic *from, const struct apic_msg *m)
{
    (void)opaque;
    apic_bus_deliver(&real_l, 1, from, m);
}

static void real_eoi(void *opaque, uint8_t vector)
{
    (void)opaque;
    unsigned n = atomic_load(&real_line);
    if (n && atomic_compare_exchange_strong(&real_line, &n, n - 1)) {
        struct apic_msg m = {.vector = vector, .level = true, .assert = true};
        lapic_accept(real_l, &m); /* the line is still asserted */
    }
}

static void *ioapic_thread(void *arg)
{
    (void)arg;
    for (unsigned i = 0; !atomic_load(&real_stop) && i < 100000; i++) {
        fixed(real_l, (uint8_t)(0x50 + i % 32), (i % 7) == 0);
        if (i % 64 == 0) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static void test_real_service(void)
{
    struct vtimer_service *svc = NULL;
    CHECK_EQ(vtimer_service_create(&svc), 0);
    if (!svc)
        return;
    struct lapic_config cfg = {.timer = vtimer_service_ops(svc),
                               .bsp = true,
                               .kick = real_kick,
                               .send_ipi = real_send,
                               .eoi_broadcast = real_eoi};
    CHECK_EQ(lapic_create(&cfg, &real_l), 0);
    atomic_store(&real_line, 1000);
    atomic_store(&real_stop, false);
    enable(real_l);
    wr(real_l, TIMER_DIV, 0xb);
    wr(real_l, LVT_TIMER, 0x200ec);
    wr(real_l, TIMER_INIT, 1000000); /* 1 ms */
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, ioapic_thread, NULL), 0);
    unsigned timer = 0, self = 0;
    uint64_t end = vtimer_now_ns() + 3000000000ull;
    while ((timer < 5 || self < 100) && vtimer_now_ns() < end) {
        int v = lapic_next_irq(real_l);
        if (v < 0) {
            wr(real_l, ICR_LO, 0x000440f0); /* self IPI */
            continue;
        }
        lapic_ack_irq(real_l, (uint8_t)v);
        timer += v == 0xec;
        self += v == 0xf0;
        wr(real_l, EOI, 0);
    }
    atomic_store(&real_stop, true);
    pthread_join(t, NULL);
    CHECK(timer >= 5 && self >= 100, "timer %u, self IPIs %u", timer, self);
    CHECK(atomic_load(&real_kicks) > 0, "kicked");
    wr(real_l, TIMER_INIT, 0);
    for (unsigned i = 0; i < 1000 && lapic_next_irq(real_l) >= 0; i++) {
        lapic_ack_irq(real_l, (uint8_t)lapic_next_irq(real_l));
        wr(real_l, EOI, 0);
    }
    atomic_store(&real_line, 0);
    for (unsigned i = 0; i < 16; i++)
        wr(real_l, EOI, 0);
    CHECK_EQ(lapic_next_irq(real_l), -1);
    for (unsigned i = 0; i < 8; i++)
        CHECK_EQ(rd(real_l, ISR + 16 * i), 0);
    lapic_destroy(real_l);
    vtimer_service_destroy(svc);
}

int main(void)
{
    RUN(test_reset_values);
    RUN(test_tpr_ppr);
    RUN(test_priority);
    RUN(test_eoi_several);
    RUN(test_level_eoi);
    RUN(test_esr);
    RUN(test_timer_oneshot);
    RUN(test_timer_periodic);
    RUN(test_timer_drift);
    RUN(test_tsc_deadline);
    RUN(test_x2apic_msrs);
    RUN(test_apic_base);
    RUN(test_ipi);
    RUN(test_lint);
    RUN(test_sw_disabled);
    RUN(test_mmio_odd);
    RUN(test_kick_and_bus);
    RUN(test_real_service);
    return check_done();
}
