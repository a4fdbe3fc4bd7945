/* SPDX-License-Identifier: MIT */
/* 8259A pair tests: the init sequence, priorities, EOIs, rotation, cascade, ELCR, poll mode. */
#include "../check.h"

#include <pthread.h>

#include "dev/pic.h"

static struct bus pio;
static unsigned intr_calls, intr_repeats;
static bool intr_level;

/* Runs under the PIC's lock, possibly on another thread: no CHECK here, done() looks. */
static void on_intr(void *opaque, bool level)
{
    (void)opaque;
    if (level == intr_level)
        intr_repeats++;
    intr_level = level;
    intr_calls++;
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

/* Linux's init_8259A: vectors 0x30 and 0x38, slave on IR2, 8086 mode, normal EOI. */
static void linux_init(uint8_t icw4_master)
{
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    outb(0x20, 0x11);
    outb(0x21, 0x30);
    outb(0x21, 0x04);
    outb(0x21, icw4_master);
    outb(0xa0, 0x11);
    outb(0xa1, 0x38);
    outb(0xa1, 0x02);
    outb(0xa1, 0x01);
    outb(0x21, 0x00);
    outb(0xa1, 0x00);
}

static struct pic *make(void)
{
    bus_init(&pio, "pio");
    intr_calls = intr_repeats = 0;
    intr_level = false;
    struct pic *p = NULL;
    struct pic_config cfg = {.intr = on_intr};
    int ret = pic_create(&pio, &cfg, &p);
    CHECK(ret == 0 && p, "pic_create: %d", ret);
    linux_init(0x01);
    return p;
}

static void done(struct pic *p)
{
    CHECK_EQ(intr_level, pic_intr(p));
    pic_destroy(p);
    CHECK_EQ(intr_repeats, 0); /* only changes are reported */
    CHECK_EQ(pio.count, 0);
    bus_free(&pio);
}

static uint8_t read_isr(uint16_t port)
{
    outb(port, 0x0b);
    uint8_t v = inb(port);
    outb(port, 0x0a);
    return v;
}

static void test_init_and_imr(void)
{
    struct pic *p = make();
    CHECK_EQ(inb(0x21), 0x00);
    outb(0x21, 0xb5);
    CHECK_EQ(inb(0x21), 0xb5);
    CHECK_EQ(inb(0xa1), 0x00);
    /* ICW1 clears the IMR and what is in service. */
    pic_set_irq(p, 4, true);
    outb(0x21, 0x00);
    CHECK_EQ(pic_ack(p), 0x34);
    CHECK_EQ(read_isr(0x20), 0x10);
    outb(0x21, 0xff);
    linux_init(0x01);
    CHECK_EQ(inb(0x21), 0x00);
    CHECK_EQ(read_isr(0x20), 0x00);
    CHECK(!pic_intr(p), "no request after ICW1");
    done(p);
}

static void test_edge_request_ack_eoi(void)
{
    struct pic *p = make();
    CHECK(!pic_intr(p), "idle");
    pic_set_irq(p, 1, true);
    pic_set_irq(p, 1, false); /* a pulse is latched */
    CHECK(pic_intr(p) && intr_level && intr_calls == 1, "INT raised once");
    CHECK_EQ(inb(0x20), 0x02); /* IRR after OCW3 read IRR */
    CHECK_EQ(pic_ack(p), 0x31);
    CHECK(!pic_intr(p) && intr_calls == 2, "INT drops after INTA");
    CHECK_EQ(inb(0x20), 0x00);
    CHECK_EQ(read_isr(0x20), 0x02);
    outb(0x20, 0x20);
    CHECK_EQ(read_isr(0x20), 0x00);
    /* A masked request waits in IRR. */
    outb(0x21, 0x08);
    pic_set_irq(p, 3, true);
    CHECK(!pic_intr(p), "masked");
    CHECK_EQ(inb(0x20), 0x08);
    outb(0x21, 0x00);
    CHECK(pic_intr(p), "unmasked");
    CHECK_EQ(pic_ack(p), 0x33);
    done(p);
}

static void test_priority_nested_eoi(void)
{
    struct pic *p = make();
    pic_set_irq(p, 3, true);
    CHECK_EQ(pic_ack(p), 0x33);
    pic_set_irq(p, 1, true); /* higher priority: interrupts IRQ 3's handler */
    CHECK(pic_intr(p), "IRQ 1 outranks 3");
    CHECK_EQ(pic_ack(p), 0x31);
    CHECK_EQ(read_isr(0x20), 0x0a);
    pic_set_irq(p, 4, true); /* lower: waits */
    CHECK(!pic_intr(p), "IRQ 4 blocked by 1 and 3");
    outb(0x20, 0x20); /* non-specific: the highest in service, 1 */
    CHECK_EQ(read_isr(0x20), 0x08);
    CHECK(!pic_intr(p), "IRQ 4 still blocked by 3");
    outb(0x20, 0x63); /* specific EOI of 3 */
    CHECK_EQ(read_isr(0x20), 0x00);
    CHECK(pic_intr(p), "IRQ 4 now");
    CHECK_EQ(pic_ack(p), 0x34);
    /* A specific EOI of a level not in service changes nothing. */
    outb(0x20, 0x65);
    CHECK_EQ(read_isr(0x20), 0x10);
    done(p);
}

static void test_rotation(void)
{
    struct pic *p = make();
    /* Set priority: IRQ 4 lowest, so 5 is the highest. */
    outb(0x20, 0xc4);
    pic_set_irq(p, 3, true);
    pic_set_irq(p, 5, true);
    CHECK_EQ(pic_ack(p), 0x35);
    /* Rotate on non-specific EOI: 5 becomes the lowest, 6 the highest, 3 still beats 5. */
    outb(0x20, 0xa0);
    CHECK_EQ(read_isr(0x20), 0x00);
    pic_set_irq(p, 5, false);
    pic_set_irq(p, 5, true);
    CHECK_EQ(pic_ack(p), 0x33);
    CHECK(!pic_intr(p), "5 is the lowest now: blocked by 3 in service");
    /* Rotate on specific EOI of 3: 3 becomes the lowest, 4 the highest. */
    outb(0x20, 0xe3);
    CHECK_EQ(read_isr(0x20), 0x00);
    CHECK_EQ(pic_ack(p), 0x35);
    pic_set_irq(p, 3, false);
    pic_set_irq(p, 3, true);
    pic_set_irq(p, 6, true);
    outb(0x20, 0x20);
    CHECK_EQ(pic_ack(p), 0x36); /* 6 before 3 */
    CHECK(!pic_intr(p), "3 is the lowest: blocked by 6");
    outb(0x20, 0x20);
    CHECK_EQ(pic_ack(p), 0x33);
    CHECK_EQ(read_isr(0x20), 0x08);
    done(p);
}

static void test_auto_eoi_rotate(void)
{
    struct pic *p = make();
    outb(0x21, 0xff);
    linux_init(0x03); /* master in auto-EOI */
    outb(0x20, 0x80); /* rotate in auto-EOI mode */
    pic_set_irq(p, 1, true);
    pic_set_irq(p, 3, true);
    CHECK_EQ(pic_ack(p), 0x31);
    CHECK_EQ(read_isr(0x20), 0x00); /* auto-EOI: never in service */
    pic_set_irq(p, 1, false);
    pic_set_irq(p, 1, true);
    /* 1 is now the lowest priority: 3 goes first even though 1 came back. */
    CHECK_EQ(pic_ack(p), 0x33);
    CHECK_EQ(pic_ack(p), 0x31);
    CHECK(!pic_intr(p), "all taken");
    /* Without rotation the order is fixed again: 0 beats 6 after 6 was last. */
    outb(0x20, 0x00);
    outb(0x20, 0xc7); /* back to IRQ 7 lowest */
    pic_set_irq(p, 6, true);
    pic_set_irq(p, 0, true);
    CHECK_EQ(pic_ack(p), 0x30);
    CHECK_EQ(pic_ack(p), 0x36);
    done(p);
}

static void test_spurious_irq7(void)
{
    struct pic *p = make();
    outb(0x4d0, 0x20); /* IRQ 5 level */
    pic_set_irq(p, 5, true);
    CHECK(pic_intr(p), "level request");
    pic_set_irq(p, 5, false); /* gone before INTA */
    CHECK(!pic_intr(p), "INT follows the level");
    CHECK_EQ(pic_ack(p), 0x37);
    CHECK_EQ(read_isr(0x20), 0x00); /* spurious: no ISR bit 7 */
    /* Spurious IRQ 15: the slave's request vanished after the master took IR2. */
    outb(0x4d1, 0x08); /* IRQ 11 level */
    pic_set_irq(p, 11, true);
    CHECK(pic_intr(p), "cascade request");
    pic_set_irq(p, 11, false);
    CHECK_EQ(pic_ack(p), 0x3f);
    CHECK_EQ(read_isr(0x20), 0x04);
    CHECK_EQ(read_isr(0xa0), 0x00);
    outb(0x20, 0x20);
    CHECK_EQ(read_isr(0x20), 0x00);
    done(p);
}

static void test_cascade_level_elcr(void)
{
    struct pic *p = make();
    outb(0x4d0, 0xff);
    outb(0x4d1, 0xff);
    CHECK_EQ(inb(0x4d0), 0xf8); /* IRQ 0, 1, 2 always edge */
    CHECK_EQ(inb(0x4d1), 0xde); /* IRQ 8, 13 always edge */
    outb(0x4d0, 0x00);
    outb(0x4d1, 0x04); /* IRQ 10 level */
    pic_set_irq(p, 10, true);
    CHECK(pic_intr(p), "slave request through IR2");
    CHECK_EQ(inb(0xa0), 0x04);
    CHECK_EQ(pic_ack(p), 0x3a);
    CHECK_EQ(read_isr(0x20), 0x04);
    CHECK_EQ(read_isr(0xa0), 0x04);
    CHECK(!pic_intr(p), "in service");
    outb(0xa0, 0x20);
    outb(0x20, 0x20);
    /* Still high after the EOIs: requested again. */
    CHECK(pic_intr(p), "level re-request");
    CHECK_EQ(pic_ack(p), 0x3a);
    pic_set_irq(p, 10, false);
    outb(0xa0, 0x20);
    outb(0x20, 0x20);
    CHECK(!pic_intr(p), "line low: nothing more");
    /* Edge on the slave: IRQ 8 pulse is delivered once. */
    pic_set_irq(p, 8, true);
    pic_set_irq(p, 8, false);
    CHECK_EQ(pic_ack(p), 0x38);
    outb(0xa0, 0x20);
    outb(0x20, 0x20);
    CHECK(!pic_intr(p), "edge: once");
    /* A slave IRQ masked in the master's IMR (IR2) waits. */
    outb(0x21, 0x04);
    pic_set_irq(p, 12, true);
    CHECK(!pic_intr(p), "cascade masked");
    outb(0x21, 0x00);
    CHECK_EQ(pic_ack(p), 0x3c);
    /* The cascade input and out-of-range IRQs cannot be driven from outside. */
    pic_set_irq(p, 2, true);
    pic_set_irq(p, 16, true);
    pic_set_irq(p, ~0u, true);
    outb(0xa0, 0x20);
    outb(0x20, 0x20);
    CHECK(!pic_intr(p), "IRQ 2 and 16 ignored");
    /* An edge latched while masked does not survive a switch to level and back. */
    outb(0x21, 0x20);
    pic_set_irq(p, 5, true);
    pic_set_irq(p, 5, false);
    CHECK_EQ(inb(0x20), 0x20);
    outb(0x4d0, 0x20);
    CHECK_EQ(inb(0x20), 0x00); /* level: the line is low */
    outb(0x4d0, 0x00);
    outb(0x21, 0x00);
    CHECK(!pic_intr(p), "no stale edge");
    done(p);
}

static void test_poll_and_smm(void)
{
    struct pic *p = make();
    outb(0x20, 0x0c); /* poll */
    CHECK_EQ(inb(0x20), 0x00);
    pic_set_irq(p, 6, true);
    outb(0x20, 0x0c);
    CHECK_EQ(inb(0x20), 0x86);
    CHECK_EQ(read_isr(0x20), 0x40); /* poll acts as INTA */
    CHECK_EQ(inb(0x20), 0x00);      /* back to reading IRR */
    outb(0x20, 0x20);
    /* Special mask mode: masking the level in service lets lower ones in. */
    pic_set_irq(p, 3, true);
    CHECK_EQ(pic_ack(p), 0x33);
    pic_set_irq(p, 5, true);
    CHECK(!pic_intr(p), "5 blocked by 3");
    outb(0x20, 0x68); /* set SMM */
    outb(0x21, 0x08);
    CHECK(pic_intr(p), "SMM: 5 passes masked 3");
    CHECK_EQ(pic_ack(p), 0x35);
    outb(0x20, 0x48); /* reset SMM */
    outb(0x20, 0x65);
    outb(0x20, 0x63);
    CHECK_EQ(read_isr(0x20), 0x00);
    /* Wider accesses go to consecutive ports: a word write sets OCW2 then IMR. */
    uint8_t w[2] = {0x20, 0x5a};
    CHECK(bus_dispatch(&pio, 0x20, w, 2, true), "word");
    CHECK_EQ(inb(0x21), 0x5a);
    done(p);
}

/* A device thread pulsing IRQs while a vCPU thread acks and EOIs: no deadlock, nothing lost
 * for good, nothing left in service. No CHECK runs on the device thread. */
static struct pic *thr_pic;

static void *device_thread(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < 20000; i++) {
        unsigned irq = (i & 1) ? 9 : 1;
        pic_set_irq(thr_pic, irq, true);
        pic_set_irq(thr_pic, irq, false);
    }
    return NULL;
}

static unsigned take_all(unsigned limit)
{
    unsigned n = 0;
    while (n < limit && pic_intr(thr_pic)) {
        int v = pic_ack(thr_pic);
        CHECK(v == 0x31 || v == 0x39, "vector %#x", v);
        if (v == 0x39)
            outb(0xa0, 0x20);
        outb(0x20, 0x20);
        n++;
    }
    return n;
}

static void test_threads(void)
{
    thr_pic = make();
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, device_thread, NULL), 0);
    unsigned acks = 0;
    for (unsigned i = 0; i < 200000 && acks < 20000; i++)
        acks += take_all(20000 - acks);
    pthread_join(t, NULL);
    acks += take_all(20000);
    CHECK(acks >= 2 && acks <= 20000, "acks %u", acks);
    CHECK(!pic_intr(thr_pic), "drained");
    CHECK_EQ(read_isr(0x20), 0);
    CHECK_EQ(read_isr(0xa0), 0);
    done(thr_pic);
}

int main(void)
{
    RUN(test_init_and_imr);
    RUN(test_edge_request_ack_eoi);
    RUN(test_priority_nested_eoi);
    RUN(test_rotation);
    RUN(test_auto_eoi_rotate);
    RUN(test_spurious_irq7);
    RUN(test_cascade_level_elcr);
    RUN(test_poll_and_smm);
    RUN(test_threads);
    return check_done();
}
