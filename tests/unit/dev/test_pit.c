/* SPDX-License-Identifier: MIT */
/* i8254 tests on a fake clock: counting in each mode, latches, read-back, channel 2 through port
 * 0x61 as Linux's TSC calibration drives it, and IRQ 0's rate, drift and coalescing. */
#include "../check.h"

#include <time.h>

#include "dev/pit.h"
#include "fake_timer.h"
#include "sys/vtimer.h"

#define NS 1000000000ull
#define START_NS (5 * NS + 123) /* neither zero nor on a tick */

static struct bus pio;
static struct fake_timer ft;
static unsigned pulses, irq_high;
static uint64_t start_tick; /* tick of the last count write, see load16 */

static void on_irq(void *opaque, unsigned gsi, bool level)
{
    (void)opaque;
    CHECK_EQ(gsi, 0);
    if (level)
        pulses++;
    CHECK(level != (irq_high != 0), "alternating levels");
    irq_high = level;
}

static uint64_t ticks(uint64_t ns)
{
    return ns / NS * PIT_FREQ_HZ + ns % NS * PIT_FREQ_HZ / NS;
}

/* The first ns at which tick t has come. */
static uint64_t tick_ns(uint64_t t)
{
    uint64_t ns = t / PIT_FREQ_HZ * NS + (t % PIT_FREQ_HZ * NS + PIT_FREQ_HZ - 1) / PIT_FREQ_HZ;
    CHECK(ticks(ns) == t && ticks(ns - 1) == t - 1, "tick_ns(%llu)", (unsigned long long)t);
    return ns;
}

/* Advance the clock to k ticks after the last count write. */
static void to_tick(uint64_t k)
{
    uint64_t target = tick_ns(start_tick + k);
    CHECK(target >= ft.now, "time goes forward");
    fake_timer_advance(&ft, target - ft.now);
}

static void outb(uint16_t port, uint8_t v)
{
    CHECK(bus_dispatch(&pio, port, &v, 1, true), "port %#x", port);
}

static uint8_t inb(uint16_t port)
{
    uint8_t v = 0;
    CHECK(bus_dispatch(&pio, port, &v, 1, false), "port %#x", port);
    return v;
}

static uint16_t in16(uint16_t port)
{
    uint8_t lo = inb(port);
    return (uint16_t)(lo | inb(port) << 8);
}

static void load16(uint16_t port, uint16_t count)
{
    outb(port, (uint8_t)count);
    start_tick = ticks(ft.now);
    outb(port, (uint8_t)(count >> 8));
}

static struct pit *make(void)
{
    bus_init(&pio, "pio");
    fake_timer_init(&ft, START_NS);
    pulses = irq_high = 0;
    struct pit *p = NULL;
    struct pit_config cfg = {.timer = &ft.ops, .irq0 = {.set = on_irq, .gsi = 0}};
    int ret = pit_create(&pio, &cfg, &p);
    CHECK(ret == 0 && p, "pit_create: %d", ret);
    return p;
}

static void done(struct pit *p)
{
    pit_destroy(p);
    CHECK_EQ(pio.count, 0);
    CHECK(!ft.t[0].used, "timer destroyed");
    CHECK_EQ(ft.overruns, 0);
    bus_free(&pio);
}

static void test_mode2_count_and_latch(void)
{
    struct pit *p = make();
    outb(0x43, 0x34); /* channel 0, lobyte/hibyte, mode 2 */
    load16(0x40, 1000);
    to_tick(100);
    outb(0x43, 0x00); /* counter latch */
    to_tick(300);
    outb(0x43, 0x00); /* ignored: the first latch is unread */
    CHECK_EQ(in16(0x40), 900);
    CHECK_EQ(in16(0x40), 700); /* live again */
    to_tick(999);
    CHECK_EQ(in16(0x40), 1);
    to_tick(1000);
    CHECK_EQ(in16(0x40), 1000); /* reloaded */
    CHECK_EQ(pulses, 1);
    to_tick(2500);
    CHECK_EQ(in16(0x40), 500);
    CHECK_EQ(pulses, 2);
    /* A count written while counting takes over at the end of the period. */
    load16(0x40, 100);
    start_tick -= 500; /* the period under way started at tick 2000 */
    to_tick(2999);
    CHECK_EQ(in16(0x40), 1);
    to_tick(3000 + 10);
    CHECK_EQ(in16(0x40), 90);
    CHECK_EQ(pulses, 3);
    to_tick(3100);
    CHECK_EQ(pulses, 4);
    done(p);
}

static void test_mode3_and_readback(void)
{
    struct pit *p = make();
    outb(0x43, 0x36); /* channel 0, lobyte/hibyte, mode 3 */
    load16(0x40, 100);
    to_tick(10);
    CHECK_EQ(in16(0x40), 80);
    outb(0x43, 0xe2);                        /* read-back status of channel 0 */
    CHECK_EQ(inb(0x40), 0x80 | 0x30 | 0x06); /* OUT high, lohi, mode 3, binary */
    to_tick(55);
    CHECK_EQ(in16(0x40), 90);
    outb(0x43, 0xc2); /* read-back count and status: status first */
    CHECK_EQ(inb(0x40), 0x36);
    to_tick(60);
    CHECK_EQ(in16(0x40), 90); /* the latched count */
    CHECK_EQ(in16(0x40), 80);
    for (unsigned k = 1; k <= 10; k++)
        to_tick(100 * k);
    CHECK_EQ(pulses, 10); /* one rising edge per period */
    /* Odd count: high for (N + 1) / 2 = 3 ticks, low for 2. */
    outb(0x43, 0x16); /* lobyte only, mode 3 */
    outb(0x40, 5);
    start_tick = ticks(ft.now);
    outb(0x43, 0xe2);
    CHECK_EQ(inb(0x40), 0x80 | 0x16); /* high, count loaded (null count clear) */
    to_tick(2);
    CHECK_EQ(inb(0x40), 1);
    to_tick(3);
    outb(0x43, 0xe2);
    CHECK_EQ(inb(0x40), 0x16); /* low */
    CHECK_EQ(inb(0x40), 4);
    done(p);
}

static void test_mode0_out_and_wrap(void)
{
    struct pit *p = make();
    outb(0x43, 0x30); /* channel 0, lobyte/hibyte, mode 0 */
    outb(0x43, 0xe2);
    CHECK_EQ(inb(0x40), 0x40 | 0x30); /* OUT low, null count */
    load16(0x40, 500);
    to_tick(499);
    CHECK_EQ(pulses, 0);
    outb(0x43, 0xe2);
    CHECK_EQ(inb(0x40), 0x30);
    to_tick(500);
    CHECK_EQ(pulses, 1);
    outb(0x43, 0xe2);
    CHECK_EQ(inb(0x40), 0x80 | 0x30);
    to_tick(600);
    CHECK_EQ(in16(0x40), 65436); /* counts on past zero */
    CHECK_EQ(pulses, 1);         /* but OUT stays high: one interrupt */
    /* The first byte of a new count stops counting and drops OUT. */
    outb(0x40, 0x10);
    outb(0x43, 0xe2);
    CHECK_EQ(inb(0x40), 0x30);
    to_tick(700);
    start_tick = ticks(ft.now);
    outb(0x40, 0x00);
    to_tick(15);
    CHECK_EQ(in16(0x40), 1);
    to_tick(16);
    CHECK_EQ(pulses, 2);
    /* Mode 4 strobe: one edge, one tick after terminal count. */
    fake_timer_advance(&ft, 1000000);
    outb(0x43, 0x38);
    load16(0x40, 50);
    to_tick(50);
    CHECK_EQ(pulses, 2);
    to_tick(51);
    CHECK_EQ(pulses, 3);
    to_tick(70000);
    CHECK_EQ(pulses, 3);
    done(p);
}

static void test_count_forms(void)
{
    struct pit *p = make();
    /* 0 is 65536. */
    outb(0x43, 0x34);
    load16(0x40, 0);
    to_tick(1);
    CHECK_EQ(in16(0x40), 65535);
    to_tick(65535);
    CHECK_EQ(pulses, 0);
    to_tick(65536);
    CHECK_EQ(pulses, 1);
    /* BCD: 0x1000 is 1000, and reads in BCD. */
    outb(0x43, 0x35);
    load16(0x40, 0x1000);
    to_tick(1);
    CHECK_EQ(in16(0x40), 0x0999);
    to_tick(1000 + 7);
    CHECK_EQ(in16(0x40), 0x0993);
    /* Not BCD written in BCD mode: each digit is clamped to 9, never out of range. */
    outb(0x43, 0x31);
    load16(0x40, 0xffff);
    CHECK_EQ(in16(0x40), 0x9999);
    /* lobyte and hibyte only. */
    outb(0x43, 0x10);
    outb(0x40, 0x50);
    start_tick = ticks(ft.now);
    to_tick(0x10);
    CHECK_EQ(inb(0x40), 0x40);
    CHECK_EQ(inb(0x40), 0x40);
    outb(0x43, 0x20);
    outb(0x40, 0x12);
    start_tick = ticks(ft.now);
    to_tick(0x100);
    CHECK_EQ(inb(0x40), 0x11);
    /* Mode 6 and 7 are 2 and 3; the control port reads nothing. */
    outb(0x43, 0x3c);
    outb(0x43, 0xe2);
    CHECK_EQ(inb(0x40) & 0x0e, 0x04);
    CHECK_EQ(inb(0x43), 0xff);
    done(p);
}

/* pit_calibrate_tsc and quick_pit_calibrate (arch/x86/kernel/tsc.c) on channel 2. */
static void test_channel2_gate_port61(void)
{
    struct pit *p = make();
    outb(0x61, 0x00);
    outb(0x43, 0xb0); /* channel 2, lobyte/hibyte, mode 0 */
    load16(0x42, 1000);
    to_tick(500);
    CHECK_EQ(in16(0x42), 1000); /* gate low: not counting */
    CHECK_EQ(inb(0x61) & 0x20, 0);
    outb(0x61, (inb(0x61) & ~0x02) | 0x01);
    start_tick = ticks(ft.now);
    to_tick(999);
    CHECK_EQ(inb(0x61) & 0x23, 0x01);
    CHECK_EQ(in16(0x42), 1);
    to_tick(1000);
    CHECK_EQ(inb(0x61) & 0x23, 0x21); /* OUT 2 high */
    CHECK_EQ(pulses, 0);              /* channel 2 is not IRQ 0 */
    uint8_t a = inb(0x61), b = inb(0x61);
    CHECK_EQ((a ^ b) & 0xff, 0x10); /* only the refresh bit flips */
    CHECK_EQ(a & 0xc0, 0);          /* no NMI sources */
    /* Gate low in mode 0 pauses, high resumes where it was. */
    outb(0x61, 0x00);
    outb(0x43, 0xb0);
    outb(0x61, 0x01);
    load16(0x42, 300);
    to_tick(100);
    outb(0x61, 0x00);
    to_tick(5000);
    CHECK_EQ(in16(0x42), 200);
    outb(0x61, 0x01);
    start_tick = ticks(ft.now);
    to_tick(150);
    CHECK_EQ(in16(0x42), 50);
    /* quick_pit_calibrate: count 0xffff, the MSB falls by one each 256 ticks. */
    outb(0x43, 0xb0);
    load16(0x42, 0xffff);
    for (unsigned k = 1; k < 200; k++) {
        to_tick(256 * k);
        inb(0x42);
        CHECK_EQ(inb(0x42), 0xff - k);
    }
    /* Mode 2 stops with the gate low and reloads on its rising edge. */
    outb(0x43, 0xb4);
    load16(0x42, 100);
    to_tick(40);
    outb(0x61, 0x00);
    CHECK_EQ(inb(0x61) & 0x20, 0x20);
    outb(0x61, 0x01);
    start_tick = ticks(ft.now);
    to_tick(5);
    CHECK_EQ(in16(0x42), 95);
    /* Mode 1 one-shot starts on the gate's rising edge. */
    outb(0x43, 0xb2);
    load16(0x42, 10);
    CHECK_EQ(inb(0x61) & 0x20, 0x20);
    outb(0x61, 0x00);
    outb(0x61, 0x01);
    start_tick = ticks(ft.now);
    to_tick(3);
    CHECK_EQ(inb(0x61) & 0x20, 0x00);
    CHECK_EQ(in16(0x42), 7);
    to_tick(10);
    CHECK_EQ(inb(0x61) & 0x20, 0x20);
    /* Mode 5: one tick low at terminal count after each trigger; retriggerable. */
    outb(0x43, 0xba);
    load16(0x42, 20);
    outb(0x61, 0x00);
    outb(0x61, 0x01);
    start_tick = ticks(ft.now);
    to_tick(19);
    CHECK_EQ(inb(0x61) & 0x20, 0x20);
    outb(0x61, 0x00); /* retrigger */
    outb(0x61, 0x01);
    start_tick = ticks(ft.now);
    to_tick(19);
    CHECK_EQ(in16(0x42), 1);
    to_tick(20);
    CHECK_EQ(inb(0x61) & 0x20, 0x00);
    to_tick(21);
    CHECK_EQ(inb(0x61) & 0x20, 0x20);
    done(p);
}

/* One read-back command latches several counters at the same instant. */
static void test_readback_several(void)
{
    struct pit *p = make();
    outb(0x61, 0x01);
    outb(0x43, 0x34);
    load16(0x40, 1000);
    outb(0x43, 0x74); /* channel 1 */
    outb(0x41, 0xd0);
    outb(0x41, 0x07); /* 2000 */
    outb(0x43, 0xb0);
    outb(0x42, 0xb8);
    outb(0x42, 0x0b); /* 3000 */
    to_tick(100);
    outb(0x43, 0xce); /* count and status of all three */
    to_tick(400);
    CHECK_EQ(inb(0x40), 0x80 | 0x34); /* OUT high, lohi, mode 2 */
    CHECK_EQ(in16(0x40), 900);
    CHECK_EQ(inb(0x41), 0x80 | 0x34);
    CHECK_EQ(in16(0x41), 1900);
    CHECK_EQ(inb(0x42), 0x30); /* mode 0 before terminal count: OUT low */
    CHECK_EQ(in16(0x42), 2900);
    CHECK_EQ(in16(0x42), 2600); /* live once read */
    /* Read-back with neither count nor status selected latches nothing. */
    outb(0x43, 0xfe);
    to_tick(500);
    CHECK_EQ(in16(0x41), 1500);
    done(p);
}

/* Linux's periodic PIT at HZ = 1000: count 1193, IRQ 0 every 999.847 us. */
static void test_mode2_no_drift_and_coalesce(void)
{
    struct pit *p = make();
    outb(0x43, 0x34);
    load16(0x40, 1193);
    uint64_t end = tick_ns(start_tick + 10000ull * 1193);
    /* Time moves in 137 us steps, so callbacks come up to that late, never on time. */
    while (ft.now + 137000 < end)
        fake_timer_advance(&ft, 137000);
    fake_timer_advance(&ft, end - ft.now);
    CHECK_EQ(pulses, 10000);
    CHECK_EQ(ft.fires, 10000);
    /* The next deadline is still the exact tick, not "last callback + period". */
    CHECK_EQ(fake_timer_deadline(&ft), tick_ns(start_tick + 10001ull * 1193));
    /* A 3 s stall: one pulse for all the missed edges, then on the grid again. */
    fake_timer_advance(&ft, 3 * NS);
    CHECK_EQ(pulses, 10001);
    uint64_t k = (ticks(ft.now) - start_tick) / 1193 + 1;
    CHECK_EQ(fake_timer_deadline(&ft), tick_ns(start_tick + k * 1193));
    to_tick(k * 1193);
    CHECK_EQ(pulses, 10002);
    done(p);
}

static void test_rate_cap(void)
{
    struct pit *p = make();
    outb(0x43, 0x34);
    load16(0x40, 2); /* 597 kHz asked */
    for (unsigned i = 0; i < 1000; i++)
        fake_timer_advance(&ft, 1000);
    /* 1 ms at most one per PIT_MIN_PERIOD_NS. */
    CHECK(pulses >= 1000000 / PIT_MIN_PERIOD_NS - 1 && pulses <= 1000000 / PIT_MIN_PERIOD_NS,
          "pulses %u", pulses);
    /* Count 1 is illegal in mode 2 and divides by 2. */
    outb(0x43, 0x34);
    load16(0x40, 1);
    to_tick(1);
    CHECK_EQ(in16(0x40), 1);
    /* Reprogramming to mode 0 without a count silences IRQ 0. */
    outb(0x43, 0x30);
    CHECK_EQ(fake_timer_deadline(&ft), 0);
    unsigned before = pulses;
    fake_timer_advance(&ft, NS);
    CHECK_EQ(pulses, before);
    done(p);
}

/* The real timer service: its thread pulses IRQ 0 while this one reads the counter. Timing on
 * a loaded host is loose, so only what cannot fail is checked: some pulses came, and never
 * more than the programmed rate allows. */
static unsigned real_pulses;

static void on_irq_real(void *opaque, unsigned gsi, bool level)
{
    (void)opaque;
    (void)gsi;
    if (level)
        __atomic_fetch_add(&real_pulses, 1, __ATOMIC_RELAXED);
}

static void test_real_timer_service(void)
{
    struct vtimer_service *svc = NULL;
    CHECK_EQ(vtimer_service_create(&svc), 0);
    bus_init(&pio, "pio");
    struct pit *p = NULL;
    struct pit_config cfg = {.timer = vtimer_service_ops(svc), .irq0 = {.set = on_irq_real}};
    CHECK_EQ(pit_create(&pio, &cfg, &p), 0);
    uint64_t t0 = vtimer_now_ns();
    outb(0x43, 0x34);
    outb(0x40, 0xa9);
    outb(0x40, 0x04); /* 1193: about 1 kHz */
    unsigned reloads = 0;
    uint16_t last = 0;
    while (vtimer_now_ns() - t0 < 200000000ull) {
        outb(0x43, 0x00);
        uint16_t c = in16(0x40);
        CHECK(c >= 1 && c <= 1193, "count %u", c);
        reloads += c > last;
        last = c;
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    pit_destroy(p);
    uint64_t ticks_run = ticks(vtimer_now_ns()) - ticks(t0);
    vtimer_service_destroy(svc);
    bus_free(&pio);
    unsigned n = __atomic_load_n(&real_pulses, __ATOMIC_RELAXED);
    CHECK(n >= 1 && n <= ticks_run / 1193 + 1, "pulses %u in %llu ticks", n,
          (unsigned long long)ticks_run);
    CHECK(reloads >= 2, "the counter wrapped %u times", reloads);
}

int main(void)
{
    RUN(test_mode2_count_and_latch);
    RUN(test_mode3_and_readback);
    RUN(test_mode0_out_and_wrap);
    RUN(test_count_forms);
    RUN(test_channel2_gate_port61);
    RUN(test_readback_several);
    RUN(test_mode2_no_drift_and_coalesce);
    RUN(test_rate_cap);
    RUN(test_real_timer_service);
    return check_done();
}
