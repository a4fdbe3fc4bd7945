/* SPDX-License-Identifier: MIT */
/* IOAPIC tests: indirect registers, redirection entries, edge and level pins, remote IRR, EOI
 * by broadcast and by register, and a receiver that EOIs from inside deliver. */
#include "../check.h"

#include <pthread.h>

#include "dev/ioapic.h"
#include "lib/le.h"

#define MAX_MSGS 64

static struct bus mmio;
static struct ioapic *cur;
static struct apic_msg msgs[MAX_MSGS];
static unsigned nmsgs;
static bool eoi_at_once; /* the receiver EOIs level messages from inside deliver */

static void on_deliver(void *opaque, const struct apic_msg *m)
{
    (void)opaque;
    if (nmsgs < MAX_MSGS)
        msgs[nmsgs] = *m;
    nmsgs++;
    if (eoi_at_once && m->level)
        ioapic_eoi(cur, m->vector);
}

static void w32(uint64_t off, uint32_t v)
{
    uint8_t b[4];
    le_put32(b, v);
    CHECK(bus_dispatch(&mmio, IOAPIC_BASE + off, b, 4, true), "write %#llx",
          (unsigned long long)off);
}

static uint32_t r32(uint64_t off)
{
    uint8_t b[4] = {0};
    CHECK(bus_dispatch(&mmio, IOAPIC_BASE + off, b, 4, false), "read %#llx",
          (unsigned long long)off);
    return le_get32(b);
}

static uint32_t reg_read(uint8_t index)
{
    w32(0x00, index);
    return r32(0x10);
}

static void reg_write(uint8_t index, uint32_t v)
{
    w32(0x00, index);
    w32(0x10, v);
}

static void rte_write(unsigned pin, uint32_t lo, uint32_t hi)
{
    reg_write((uint8_t)(0x11 + 2 * pin), hi);
    reg_write((uint8_t)(0x10 + 2 * pin), lo);
}

static struct ioapic *make(uint8_t id)
{
    bus_init(&mmio, "mmio");
    nmsgs = 0;
    eoi_at_once = false;
    cur = NULL;
    struct ioapic_config cfg = {.id = id, .deliver = on_deliver};
    int ret = ioapic_create(&mmio, IOAPIC_BASE, &cfg, &cur);
    CHECK(ret == 0 && cur, "ioapic_create: %d", ret);
    return cur;
}

static void done(struct ioapic *io)
{
    ioapic_destroy(io);
    CHECK_EQ(mmio.count, 0);
    bus_free(&mmio);
}

static void test_id_version_arb(void)
{
    struct ioapic *io = make(2);
    CHECK_EQ(reg_read(0x00), 0x02000000);
    CHECK_EQ(reg_read(0x01), 0x00170020);
    CHECK_EQ(reg_read(0x02), 0x02000000);
    reg_write(0x00, 0xffffffff);
    CHECK_EQ(reg_read(0x00), 0x0f000000); /* 4 ID bits */
    reg_write(0x01, 0);
    CHECK_EQ(reg_read(0x01), 0x00170020); /* read-only */
    CHECK_EQ(r32(0x00), 0x01);            /* IOREGSEL reads back */
    done(io);
}

static void test_rte_read_write(void)
{
    struct ioapic *io = make(0);
    for (unsigned pin = 0; pin < IOAPIC_PINS; pin++) {
        CHECK_EQ(reg_read((uint8_t)(0x10 + 2 * pin)), 0x00010000); /* masked after reset */
        CHECK_EQ(reg_read((uint8_t)(0x11 + 2 * pin)), 0);
    }
    rte_write(5, 0xffffffff, 0xffffffff);
    /* Delivery status (12), remote IRR (14) and 17-31 stay 0; 32-55 are reserved. */
    CHECK_EQ(reg_read(0x1a), 0x0001afff);
    CHECK_EQ(reg_read(0x1b), 0xff000000);
    CHECK_EQ(reg_read(0x18), 0x00010000); /* the neighbours are untouched */
    CHECK_EQ(reg_read(0x1c), 0x00010000);
    CHECK_EQ(nmsgs, 0);
    done(io);
}

static void test_bad_indexes_and_widths(void)
{
    struct ioapic *io = make(1);
    rte_write(23, 0x00010055, 0x01000000);
    const uint8_t bad[] = {0x03, 0x0f, 0x40, 0x41, 0x80, 0xff};
    for (unsigned i = 0; i < sizeof(bad); i++) {
        reg_write(bad[i], 0xdeadbeef);
        CHECK_EQ(reg_read(bad[i]), 0);
    }
    CHECK_EQ(reg_read(0x3e), 0x00010055); /* the last entry, just below 0x40 */
    CHECK_EQ(reg_read(0x3f), 0x01000000);
    CHECK_EQ(reg_read(0x00), 0x01000000);
    /* IOREGSEL keeps only its low byte. */
    w32(0x00, 0x12345601);
    CHECK_EQ(r32(0x00), 0x01);
    CHECK_EQ(r32(0x10), 0x00170020);
    /* IOWIN is dword-only: narrower accesses read 0 and write nothing. */
    w32(0x00, 0x3e);
    uint8_t b[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK(bus_dispatch(&mmio, IOAPIC_BASE + 0x10, b, 2, true), "word write");
    CHECK(bus_dispatch(&mmio, IOAPIC_BASE + 0x10, b, 1, false), "byte read");
    CHECK_EQ(b[0], 0);
    CHECK_EQ(r32(0x10), 0x00010055);
    /* Elsewhere in the page: reads 0. */
    CHECK_EQ(r32(0x20), 0);
    CHECK_EQ(r32(0xffc), 0);
    w32(0x44, 0x55);
    CHECK_EQ(nmsgs, 0);
    done(io);
}

static void test_edge(void)
{
    struct ioapic *io = make(0);
    rte_write(4, 0x00000034, 0x01000000); /* fixed, physical, edge, vector 0x34, APIC 1 */
    ioapic_set_irq(io, 4, true);
    CHECK_EQ(nmsgs, 1);
    CHECK_EQ(msgs[0].vector, 0x34);
    CHECK_EQ(msgs[0].dest, 1);
    CHECK(msgs[0].delivery == APIC_DM_FIXED && !msgs[0].logical && !msgs[0].level &&
              msgs[0].assert &&msgs[0].shorthand == APIC_SH_NONE && !msgs[0].x2apic,
          "edge message");
    ioapic_set_irq(io, 4, true);
    CHECK_EQ(nmsgs, 1); /* no edge */
    ioapic_set_irq(io, 4, false);
    ioapic_set_irq(io, 4, true);
    CHECK_EQ(nmsgs, 2);
    CHECK_EQ(reg_read(0x18) & (1u << 14), 0); /* no remote IRR for edge */
    /* Masked: the edge is lost, unmasking does not bring it back. */
    rte_write(4, 0x00010034, 0x01000000);
    ioapic_set_irq(io, 4, false);
    ioapic_set_irq(io, 4, true);
    rte_write(4, 0x00000034, 0x01000000);
    CHECK_EQ(nmsgs, 2);
    /* Logical, lowest priority. */
    rte_write(7, 0x00000941, 0x0f000000);
    ioapic_set_irq(io, 7, true);
    CHECK_EQ(nmsgs, 3);
    CHECK(msgs[2].delivery == APIC_DM_LOWEST && msgs[2].logical && msgs[2].dest == 0x0f &&
              msgs[2].vector == 0x41,
          "logical lowest-priority");
    /* Illegal vectors and reserved delivery modes send nothing; NMI is sent whatever its
     * vector. */
    rte_write(8, 0x0000000f, 0);
    rte_write(9, 0x00000360, 0);
    rte_write(10, 0x00000400, 0);
    ioapic_set_irq(io, 8, true);
    ioapic_set_irq(io, 9, true);
    ioapic_set_irq(io, 10, true);
    CHECK_EQ(nmsgs, 4);
    CHECK(msgs[3].delivery == APIC_DM_NMI, "NMI");
    ioapic_set_irq(io, 24, true);
    ioapic_set_irq(io, ~0u, true);
    CHECK_EQ(nmsgs, 4);
    done(io);
}

static void test_level_remote_irr(void)
{
    struct ioapic *io = make(0);
    rte_write(10, 0x0000803a, 0x00000000); /* level, vector 0x3a */
    ioapic_set_irq(io, 10, true);
    CHECK_EQ(nmsgs, 1);
    CHECK(msgs[0].level && msgs[0].vector == 0x3a, "level message");
    CHECK_EQ(reg_read(0x24), 0x0000c03a); /* remote IRR set */
    ioapic_set_irq(io, 10, true);
    CHECK_EQ(nmsgs, 1); /* waits for the EOI */
    rte_write(10, 0x0000803a, 0x00000000);
    CHECK_EQ(reg_read(0x24), 0x0000c03a); /* remote IRR is read-only */
    ioapic_eoi(io, 0x3b);
    CHECK_EQ(nmsgs, 1); /* another vector */
    ioapic_eoi(io, 0x3a);
    CHECK_EQ(nmsgs, 2); /* still asserted: sent again */
    CHECK_EQ(reg_read(0x24), 0x0000c03a);
    ioapic_set_irq(io, 10, false);
    ioapic_eoi(io, 0x3a);
    CHECK_EQ(nmsgs, 2);
    CHECK_EQ(reg_read(0x24), 0x0000803a);
    /* Asserted while masked: sent on unmask. */
    rte_write(10, 0x0001803a, 0);
    ioapic_set_irq(io, 10, true);
    CHECK_EQ(nmsgs, 2);
    rte_write(10, 0x0000803a, 0);
    CHECK_EQ(nmsgs, 3);
    /* The EOI register does what the broadcast does. */
    w32(0x40, 0x3a);
    CHECK_EQ(nmsgs, 4);
    ioapic_set_irq(io, 10, false);
    w32(0x40, 0x3a);
    CHECK_EQ(nmsgs, 4);
    CHECK_EQ(reg_read(0x24), 0x0000803a);
    /* Turning an entry to edge drops its remote IRR. */
    ioapic_set_irq(io, 10, true);
    CHECK_EQ(reg_read(0x24), 0x0000c03a);
    rte_write(10, 0x0000003a, 0);
    CHECK_EQ(reg_read(0x24), 0x0000003a);
    /* Two level pins sharing a vector: one EOI serves both. */
    rte_write(16, 0x00008050, 0);
    rte_write(17, 0x00008050, 0);
    ioapic_set_irq(io, 16, true);
    ioapic_set_irq(io, 17, true);
    CHECK_EQ(nmsgs, 7);
    ioapic_eoi(io, 0x50);
    CHECK_EQ(nmsgs, 9);
    done(io);
}

static void test_eoi_from_deliver(void)
{
    struct ioapic *io = make(0);
    eoi_at_once = true;
    rte_write(3, 0x00008060, 0);
    ioapic_set_irq(io, 3, true);
    /* deliver -> EOI -> deliver ... is cut after a few rounds, without deadlock. */
    CHECK(nmsgs >= 2 && nmsgs <= 8, "nested rounds: %u", nmsgs);
    unsigned first = nmsgs;
    /* The put-off re-send goes out at the next call from outside. */
    eoi_at_once = false;
    ioapic_set_irq(io, 5, false);
    CHECK_EQ(nmsgs, first + 1);
    CHECK_EQ(reg_read(0x16) & (1u << 14), 1u << 14);
    done(io);
}

/* A device thread toggling a level pin, a vCPU thread EOIing, and a receiver that sometimes
 * EOIs from inside deliver: no deadlock between the three, and the state settles. */
static unsigned thr_msgs;

static void on_deliver_threaded(void *opaque, const struct apic_msg *m)
{
    (void)opaque;
    if (__atomic_fetch_add(&thr_msgs, 1, __ATOMIC_RELAXED) % 3 == 0)
        ioapic_eoi(cur, m->vector);
}

static void *pin_thread(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < 20000; i++)
        ioapic_set_irq(cur, 3, i & 1);
    return NULL;
}

static void *eoi_thread(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < 20000; i++)
        ioapic_eoi(cur, 0x60);
    return NULL;
}

static void test_threads(void)
{
    bus_init(&mmio, "mmio");
    struct ioapic_config cfg = {.deliver = on_deliver_threaded};
    cur = NULL;
    CHECK_EQ(ioapic_create(&mmio, IOAPIC_BASE, &cfg, &cur), 0);
    rte_write(3, 0x00008060, 0);
    pthread_t a, b;
    CHECK_EQ(pthread_create(&a, NULL, pin_thread, NULL), 0);
    CHECK_EQ(pthread_create(&b, NULL, eoi_thread, NULL), 0);
    for (unsigned i = 0; i < 2000; i++)
        rte_write(3, (i & 1) ? 0x00008060 : 0x00018060, 0); /* ends unmasked */
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    /* The pin ends asserted on an unmasked entry: sent then, or remote IRR from before. */
    CHECK(thr_msgs >= 1, "messages %u", thr_msgs);
    ioapic_set_irq(cur, 3, false);
    ioapic_eoi(cur, 0x60);
    CHECK_EQ(reg_read(0x16), 0x00008060); /* remote IRR clear */
    unsigned before = thr_msgs;
    ioapic_set_irq(cur, 3, true);
    /* Sent; and once more if the receiver EOIed that one at once (one in three). */
    CHECK_EQ(thr_msgs, before + (before % 3 == 0 ? 2 : 1));
    done(cur);
}

int main(void)
{
    RUN(test_id_version_arb);
    RUN(test_rte_read_write);
    RUN(test_bad_indexes_and_widths);
    RUN(test_edge);
    RUN(test_level_remote_irr);
    RUN(test_eoi_from_deliver);
    RUN(test_threads);
    return check_done();
}
