/* SPDX-License-Identifier: MIT */
/* I/O APIC model (Intel 82093AA datasheet): indirect registers, redirection table, edge and
 * level pins with remote IRR, messages delivered outside the lock. */
#include "ioapic.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "lib/le.h"

/* Direct registers (82093AA §3.1, plus the EOI register of version 0x20 parts). */
#define OFF_IOREGSEL 0x00
#define OFF_IOWIN 0x10
#define OFF_EOI 0x40

/* Indirect registers (§3.2). */
#define REG_ID 0x00
#define REG_VER 0x01
#define REG_ARB 0x02
#define REG_TABLE 0x10 /* entry n: low dword at 0x10 + 2n, high at 0x11 + 2n */
#define ID_SHIFT 24
#define ID_MASK 0x0fu

/* Redirection entry bits (§3.2.4). */
#define RTE_VECTOR 0xffull
#define RTE_DELMODE_SHIFT 8
#define RTE_DESTMODE (1ull << 11)
#define RTE_DELIVS (1ull << 12) /* read-only */
#define RTE_POLARITY (1ull << 13)
#define RTE_REMOTE_IRR (1ull << 14) /* read-only */
#define RTE_TRIGGER (1ull << 15)    /* 1: level */
#define RTE_MASK (1ull << 16)
#define RTE_DEST_SHIFT 56
/* Bits the guest may write: vector to mask, and the destination; 17-55 are reserved. */
#define RTE_WRITABLE (0xffull << RTE_DEST_SHIFT | 0x1afffull)

/* How deep deliver -> ioapic_eoi -> deliver may nest on one thread before a re-send is put
 * off to the next call from outside; see ioapic_eoi. */
#define MAX_NESTING 4

struct ioapic {
    struct bus *mmio;
    uint64_t base;
    struct ioapic_config cfg;
    pthread_mutex_t lock;
    uint8_t id, regsel;
    uint32_t pins;  /* asserted inputs */
    uint32_t retry; /* level pins whose re-send after EOI was put off */
    uint64_t rte[IOAPIC_PINS];
};

/* Messages collected under the lock and delivered after it is dropped: the local APIC that
 * receives one may take its own lock and broadcast an EOI straight back into ioapic_eoi, which
 * takes ours, and a vCPU doing an EOI while a device thread raises a pin would take the two
 * locks in the opposite order. Delivering unlocked removes both deadlocks; the only cost is
 * that messages of two threads racing may arrive in either order, as on a real APIC bus. */
struct batch {
    unsigned n;
    struct apic_msg m[2 * IOAPIC_PINS]; /* a retried pin may be re-sent by the EOI after */
};

static _Thread_local unsigned nesting;

/* Whether the entry's message is one the 82093AA would send (§3.2.4 delivery mode): modes 3
 * and 6 are reserved, and fixed or lowest-priority vectors below 0x10 are illegal on the local
 * APIC (SDM vol. 3A §11.5.3). Such entries send nothing rather than a malformed message. */
static bool sendable(uint64_t e)
{
    unsigned dm = (unsigned)(e >> RTE_DELMODE_SHIFT) & 7;
    if (dm == 3 || dm == 6)
        return false;
    return !(dm <= APIC_DM_LOWEST && (e & RTE_VECTOR) < 0x10);
}

/* Only fixed and lowest-priority interrupts are EOIed by the local APIC, so only they can use
 * remote IRR; SMI, NMI, INIT and ExtINT are edge-triggered whatever the trigger bit says
 * (§3.2.4, delivery mode), so they are sent as edges. */
static bool is_level(uint64_t e)
{
    return (e & RTE_TRIGGER) && ((e >> RTE_DELMODE_SHIFT) & 7) <= APIC_DM_LOWEST;
}

/* Queue pin's message if the entry lets it go: unmasked, and for level, no earlier one
 * still waiting for its EOI. */
static void send(struct ioapic *io, unsigned pin, struct batch *b)
{
    uint64_t e = io->rte[pin];
    if ((e & RTE_MASK) || !sendable(e) || b->n == sizeof(b->m) / sizeof(b->m[0]))
        return;
    bool level = is_level(e);
    if (level) {
        if (e & RTE_REMOTE_IRR)
            return;
        io->rte[pin] |= RTE_REMOTE_IRR;
    }
    b->m[b->n++] = (struct apic_msg){
        .vector = (uint8_t)(e & RTE_VECTOR),
        .delivery = (enum apic_delivery)((e >> RTE_DELMODE_SHIFT) & 7),
        .logical = e & RTE_DESTMODE,
        .level = level,
        .assert = true,
        .shorthand = APIC_SH_NONE,
        .dest = (uint32_t)(e >> RTE_DEST_SHIFT),
    };
}

/* Level pins still asserted after an EOI that was too deeply nested to re-send at once. */
static void send_retries(struct ioapic *io, struct batch *b)
{
    if (nesting)
        return;
    uint32_t r = io->retry & io->pins;
    io->retry = 0;
    for (unsigned pin = 0; pin < IOAPIC_PINS; pin++)
        if ((r >> pin) & 1)
            send(io, pin, b);
}

static void flush(struct ioapic *io, const struct batch *b)
{
    nesting++;
    for (unsigned i = 0; i < b->n; i++)
        io->cfg.deliver(io->cfg.opaque, &b->m[i]);
    nesting--;
}

static void write_rte(struct ioapic *io, unsigned pin, bool high, uint32_t v, struct batch *b)
{
    uint64_t old = io->rte[pin], e;
    if (high)
        e = (old & 0xffffffffull) | (uint64_t)v << 32;
    else
        e = (old & ~0xffffffffull) | v;
    /* Delivery status and remote IRR keep their value whatever is written. */
    e = (e & RTE_WRITABLE) | (old & (RTE_DELIVS | RTE_REMOTE_IRR));
    if (!(e & RTE_TRIGGER))
        e &= ~RTE_REMOTE_IRR; /* an edge entry has no EOI to wait for */
    io->rte[pin] = e;
    /* A level pin asserted while masked is sent when unmasked: the request is the level, so
     * it was never lost. An edge that came while masked was ignored (§3.2.4 mask bit). */
    if (!high && is_level(e) && ((io->pins >> pin) & 1))
        send(io, pin, b);
}

static uint32_t reg_read(const struct ioapic *io, uint8_t index)
{
    switch (index) {
    case REG_ID:
    case REG_ARB: /* the arbitration ID follows the ID (§3.2.3) */
        return (uint32_t)io->id << ID_SHIFT;
    case REG_VER:
        return IOAPIC_VERSION;
    default:
        if (index < REG_TABLE || index >= REG_TABLE + 2 * IOAPIC_PINS)
            return 0; /* reserved: reads 0, writes ignored */
        unsigned i = index - REG_TABLE;
        uint64_t e = io->rte[i / 2];
        return (uint32_t)((i & 1) ? e >> 32 : e);
    }
}

static void reg_write(struct ioapic *io, uint8_t index, uint32_t v, struct batch *b)
{
    if (index == REG_ID) {
        io->id = (uint8_t)((v >> ID_SHIFT) & ID_MASK);
    } else if (index >= REG_TABLE && index < REG_TABLE + 2 * IOAPIC_PINS) {
        unsigned i = index - REG_TABLE;
        write_rte(io, i / 2, i & 1, v, b);
    }
    /* version, arbitration and reserved indexes are read-only */
}

/* EOI of vector with the lock held: clear remote IRR of its level entries and queue a re-send
 * for those whose pin is still asserted (§3.2.4 remote IRR). */
static void eoi_locked(struct ioapic *io, uint8_t vector, struct batch *b)
{
    for (unsigned pin = 0; pin < IOAPIC_PINS; pin++) {
        uint64_t e = io->rte[pin];
        if ((e & RTE_VECTOR) != vector || !(e & RTE_REMOTE_IRR))
            continue;
        io->rte[pin] = e & ~RTE_REMOTE_IRR;
        if (!((io->pins >> pin) & 1))
            continue;
        /* A receiver that answers each message with an EOI at once (a guest with its local
         * APIC in a state that rejects the vector) would recurse through deliver without
         * end while the pin stays high: past MAX_NESTING the re-send waits for the next
         * call that does not come from within deliver. */
        if (nesting >= MAX_NESTING)
            io->retry |= 1u << pin;
        else
            send(io, pin, b);
    }
}

static void ioapic_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    struct ioapic *io = opaque;
    struct batch b = {0};
    if (!len)
        return;
    pthread_mutex_lock(&io->lock);
    send_retries(io, &b);
    if (offset == OFF_IOREGSEL) {
        /* Bits 7:0 select the register, 31:8 are reserved: any width that covers byte 0. */
        if (write) {
            io->regsel = data[0];
        } else {
            for (uint32_t i = 0; i < len; i++)
                data[i] = i == 0 ? io->regsel : 0;
        }
    } else if (offset == OFF_IOWIN && len == 4) {
        /* The data window is a dword register (§3.1); other widths are dropped or read 0. */
        if (write)
            reg_write(io, io->regsel, le_get32(data), &b);
        else
            le_put32(data, reg_read(io, io->regsel));
    } else if (offset == OFF_EOI && write) {
        eoi_locked(io, data[0], &b);
    } else if (!write) {
        for (uint32_t i = 0; i < len; i++)
            data[i] = 0;
    }
    pthread_mutex_unlock(&io->lock);
    flush(io, &b);
}

void ioapic_set_irq(struct ioapic *io, unsigned pin, bool level)
{
    if (pin >= IOAPIC_PINS)
        return;
    struct batch b = {0};
    pthread_mutex_lock(&io->lock);
    send_retries(io, &b);
    uint32_t m = 1u << pin;
    bool was = io->pins & m;
    if (level)
        io->pins |= m;
    else
        io->pins &= ~m;
    /* Edge: one message per rising edge. Level: a message whenever the pin is asserted and
     * remote IRR is clear; send checks remote IRR, so a repeated assert sends nothing. */
    if (level && (!was || is_level(io->rte[pin])))
        send(io, pin, &b);
    pthread_mutex_unlock(&io->lock);
    flush(io, &b);
}

void ioapic_eoi(struct ioapic *io, uint8_t vector)
{
    struct batch b = {0};
    pthread_mutex_lock(&io->lock);
    send_retries(io, &b);
    eoi_locked(io, vector, &b);
    pthread_mutex_unlock(&io->lock);
    flush(io, &b);
}

int ioapic_create(struct bus *mmio, uint64_t base, const struct ioapic_config *cfg,
                  struct ioapic **out)
{
    if (!mmio || !cfg || !cfg->deliver || !out)
        return -EINVAL;
    struct ioapic *io = calloc(1, sizeof(*io));
    if (!io)
        return -ENOMEM;
    io->mmio = mmio;
    io->base = base;
    io->cfg = *cfg;
    io->id = cfg->id & ID_MASK;
    pthread_mutex_init(&io->lock, NULL);
    for (unsigned i = 0; i < IOAPIC_PINS; i++)
        io->rte[i] = RTE_MASK;
    int ret = bus_register(mmio, base, IOAPIC_MMIO_SIZE, ioapic_access, io, "ioapic");
    if (ret) {
        pthread_mutex_destroy(&io->lock);
        free(io);
        return ret;
    }
    *out = io;
    return 0;
}

void ioapic_destroy(struct ioapic *io)
{
    if (!io)
        return;
    bus_unregister(io->mmio, io->base, io);
    pthread_mutex_destroy(&io->lock);
    free(io);
}
