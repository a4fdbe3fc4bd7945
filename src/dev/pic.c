/* SPDX-License-Identifier: MIT */
/* 8259A PIC pair model (Intel 8259A datasheet) with the PIIX/ICH ELCR edge/level registers. */
#include "pic.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

/* Port A0 = 0 commands (8259A datasheet, "Initialization Command Words" and "Operation Command
 * Words"): bit 4 marks ICW1, else bit 3 tells OCW3 from OCW2. */
#define ICW1 0x10
#define ICW1_IC4 0x01  /* ICW4 follows */
#define ICW1_SNGL 0x02 /* single: no ICW3 */
#define OCW3_SEL 0x08
#define OCW3_RIS 0x01 /* with RR: read ISR instead of IRR */
#define OCW3_RR 0x02
#define OCW3_P 0x04 /* poll command */
#define OCW3_SMM 0x20
#define OCW3_ESMM 0x40
#define ICW4_AEOI 0x02
#define ICW4_SFNM 0x10

/* ELCR1/ELCR2 (PIIX4 and ICH datasheets): IRQ 0, 1, 2 on the master and 8, 13 on the slave
 * are hard-wired edge (timer, keyboard, cascade, RTC, FPU error), so those bits read 0. */
#define ELCR_MASTER_MASK 0xf8
#define ELCR_SLAVE_MASK 0xde

enum init_step { INIT_DONE, INIT_ICW2, INIT_ICW3, INIT_ICW4 };

struct i8259 {
    uint8_t irr_edge; /* requests latched on rising edges */
    uint8_t lines;    /* current input levels */
    uint8_t isr, imr, elcr, elcr_mask;
    uint8_t base;   /* ICW2 & 0xf8: vector of IR0 */
    uint8_t lowest; /* level with the lowest priority (7 after ICW1): rotation state */
    uint8_t icw3;   /* kept, not used: the board wires the slave to IR2 */
    enum init_step step;
    bool icw4_needed, single;
    bool read_isr, poll, smm, aeoi, rotate_aeoi, sfnm;
};

struct pic {
    struct bus *pio;
    struct pic_config cfg;
    pthread_mutex_t lock;
    struct i8259 chip[2]; /* master, slave */
    bool int_out;         /* written under lock, read atomically by pic_intr */
};

/* The IRR as the priority resolver sees it: an edge input stays requested once latched; a
 * level input (ELCR) is requested exactly while its line is high, so a request whose line
 * dropped before INTA has vanished ("Edge and level triggered modes": the IR input must stay
 * high until the first INTA, else a default IR7 is returned). */
static uint8_t irr(const struct i8259 *c)
{
    return (uint8_t)((c->irr_edge & ~c->elcr) | (c->lines & c->elcr));
}

/* Priority of the highest pending bit in mask, 0 (highest) to 7, or 8 if mask is empty.
 * Priorities rotate: the level after `lowest` is the highest ("Rotation" in the datasheet). */
static unsigned top_priority(const struct i8259 *c, uint8_t mask)
{
    for (unsigned prio = 0; prio < 8; prio++)
        if (mask & (1u << ((c->lowest + 1 + prio) & 7)))
            return prio;
    return 8;
}

static unsigned level_of(const struct i8259 *c, unsigned prio)
{
    return (c->lowest + 1 + prio) & 7;
}

/* The level that would interrupt now, or -1: the highest unmasked request, if it outranks
 * everything in service. In special mask mode a masked in-service level no longer blocks
 * lower ones (OCW3 SMM). In special fully nested mode the master does not let the cascade's
 * in-service bit block further slave requests (ICW4 SFNM), since they are prioritised on the
 * slave itself. */
static int pending(const struct i8259 *c, bool master)
{
    unsigned req = top_priority(c, irr(c) & (uint8_t)~c->imr);
    if (req == 8)
        return -1;
    uint8_t busy = c->isr;
    if (c->smm)
        busy &= (uint8_t)~c->imr;
    if (master && c->sfnm)
        busy &= (uint8_t) ~(1u << PIC_CASCADE_IRQ);
    return req < top_priority(c, busy) ? (int)level_of(c, req) : -1;
}

static void set_line(struct i8259 *c, unsigned bit, bool level)
{
    uint8_t m = (uint8_t)(1u << bit);
    if (level && !(c->lines & m) && !(c->elcr & m))
        c->irr_edge |= m;
    if (level)
        c->lines |= m;
    else
        c->lines &= (uint8_t)~m;
}

/* Recompute the cascade and the INT output. The slave's INT is wired to master IR2, which the
 * ELCR keeps edge-triggered; only the master's INT reaches the CPU. */
static void update(struct pic *p)
{
    set_line(&p->chip[0], PIC_CASCADE_IRQ, pending(&p->chip[1], false) >= 0);
    bool out = pending(&p->chip[0], true) >= 0;
    if (out != p->int_out) {
        __atomic_store_n(&p->int_out, out, __ATOMIC_RELEASE);
        if (p->cfg.intr)
            p->cfg.intr(p->cfg.opaque, out);
    }
}

/* The INTA pulses for level l: IRR to ISR (or not, with auto-EOI, which may rotate:
 * OCW2 "rotate in automatic EOI mode"). */
static void accept(struct i8259 *c, unsigned l)
{
    uint8_t m = (uint8_t)(1u << l);
    c->irr_edge &= (uint8_t)~m;
    if (!c->aeoi)
        c->isr |= m;
    else if (c->rotate_aeoi)
        c->lowest = (uint8_t)l;
}

static void eoi_level(struct i8259 *c, unsigned l, bool rotate)
{
    c->isr &= (uint8_t) ~(1u << l);
    if (rotate)
        c->lowest = (uint8_t)l;
}

static void write_icw1(struct i8259 *c, uint8_t v)
{
    /* "Initialization Command Word 1": the edge sense is reset (an input already high needs a
     * fresh rising edge), IMR cleared, IR7 lowest, special mask mode off, status read is IRR,
     * and ICW4 functions default to 0 if IC4 is 0. LTIM (bit 3) is superseded by the ELCR on
     * PIIX/ICH chipsets and ignored here; so is ADI (8080 mode only). */
    c->irr_edge = 0;
    c->isr = 0;
    c->imr = 0;
    c->lowest = 7;
    c->smm = c->read_isr = c->poll = false;
    c->aeoi = c->rotate_aeoi = c->sfnm = false;
    c->icw4_needed = v & ICW1_IC4;
    c->single = v & ICW1_SNGL;
    c->step = INIT_ICW2;
}

static void write_ocw2(struct i8259 *c, uint8_t v)
{
    unsigned l = v & 7;
    int top;
    switch (v >> 5) {
    case 1: /* non-specific EOI: the highest-priority level in service */
    case 5: /* rotate on non-specific EOI */
        top = (int)top_priority(c, c->isr);
        if (top < 8)
            eoi_level(c, level_of(c, (unsigned)top), v >> 5 == 5);
        break;
    case 3: /* specific EOI */
    case 7: /* rotate on specific EOI */
        eoi_level(c, l, v >> 5 == 7);
        break;
    case 4:
        c->rotate_aeoi = true;
        break;
    case 0:
        c->rotate_aeoi = false;
        break;
    case 6: /* set priority: l becomes the lowest */
        c->lowest = (uint8_t)l;
        break;
    default: /* 2: no operation */
        break;
    }
}

static void write_ocw3(struct i8259 *c, uint8_t v)
{
    if (v & OCW3_ESMM)
        c->smm = v & OCW3_SMM;
    if (v & OCW3_RR)
        c->read_isr = v & OCW3_RIS;
    c->poll = v & OCW3_P;
}

static void chip_write(struct i8259 *c, unsigned a0, uint8_t v)
{
    if (!a0) {
        if (v & ICW1)
            write_icw1(c, v);
        else if (v & OCW3_SEL)
            write_ocw3(c, v);
        else
            write_ocw2(c, v);
        return;
    }
    switch (c->step) {
    case INIT_ICW2:
        c->base = v & 0xf8; /* 8086 mode: T7-T3; the low 3 bits are the level */
        c->step = c->single ? (c->icw4_needed ? INIT_ICW4 : INIT_DONE) : INIT_ICW3;
        break;
    case INIT_ICW3:
        c->icw3 = v;
        c->step = c->icw4_needed ? INIT_ICW4 : INIT_DONE;
        break;
    case INIT_ICW4:
        /* uPM (8080 mode) and buffered mode change nothing a guest could see on a PC. */
        c->aeoi = v & ICW4_AEOI;
        c->sfnm = v & ICW4_SFNM;
        c->step = INIT_DONE;
        break;
    default:
        c->imr = v; /* OCW1 */
        break;
    }
}

/* Poll command (OCW3 P): the next read of A0 = 0 is an INTA in all but name: it returns
 * 0x80 | level and sets the ISR bit, or 0 with no request. */
static uint8_t poll_read(struct pic *p, unsigned idx)
{
    struct i8259 *c = &p->chip[idx];
    c->poll = false;
    int l = pending(c, idx == 0);
    if (l < 0)
        return 0;
    accept(c, (unsigned)l);
    return (uint8_t)(0x80 | l);
}

static uint8_t chip_read(struct pic *p, unsigned idx, unsigned a0)
{
    struct i8259 *c = &p->chip[idx];
    if (a0)
        return c->imr;
    if (c->poll)
        return poll_read(p, idx);
    return c->read_isr ? c->isr : irr(c);
}

static void pic_access(struct pic *p, unsigned idx, uint64_t offset, uint8_t *data, uint32_t len,
                       bool write)
{
    pthread_mutex_lock(&p->lock);
    /* Byte registers; a wider access touches the next port, as on the ISA bus. */
    for (uint32_t n = 0; n < len; n++) {
        unsigned a0 = (unsigned)(offset + n) & 1;
        if (write)
            chip_write(&p->chip[idx], a0, data[n]);
        else
            data[n] = chip_read(p, idx, a0);
    }
    update(p);
    pthread_mutex_unlock(&p->lock);
}

static void master_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    pic_access(opaque, 0, offset, data, len, write);
}

static void slave_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    pic_access(opaque, 1, offset, data, len, write);
}

static void elcr_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    struct pic *p = opaque;
    pthread_mutex_lock(&p->lock);
    for (uint32_t n = 0; n < len; n++) {
        struct i8259 *c = &p->chip[(offset + n) & 1];
        if (write) {
            /* A level input's request is its line; drop any edge latched before. */
            c->elcr = data[n] & c->elcr_mask;
            c->irr_edge &= (uint8_t)~c->elcr;
        } else {
            data[n] = c->elcr;
        }
    }
    update(p);
    pthread_mutex_unlock(&p->lock);
}

void pic_set_irq(struct pic *p, unsigned irq, bool level)
{
    if (irq >= PIC_IRQS || irq == PIC_CASCADE_IRQ)
        return;
    pthread_mutex_lock(&p->lock);
    set_line(&p->chip[irq >> 3], irq & 7, level);
    update(p);
    pthread_mutex_unlock(&p->lock);
}

int pic_ack(struct pic *p)
{
    pthread_mutex_lock(&p->lock);
    struct i8259 *m = &p->chip[0], *s = &p->chip[1];
    int vector;
    int l = pending(m, true);
    if (l < 0) {
        vector = m->base | 7; /* spurious IRQ 7, no ISR bit set */
    } else {
        accept(m, (unsigned)l);
        if (l != PIC_CASCADE_IRQ) {
            vector = m->base | l;
        } else {
            /* The slave answers the second INTA. If its request is gone the master has
             * already put IR2 in service: the guest EOIs the master for spurious IRQ 15. */
            int sl = pending(s, false);
            if (sl >= 0)
                accept(s, (unsigned)sl);
            vector = s->base | (sl >= 0 ? sl : 7);
        }
    }
    update(p);
    pthread_mutex_unlock(&p->lock);
    return vector;
}

bool pic_intr(const struct pic *p)
{
    return __atomic_load_n(&p->int_out, __ATOMIC_ACQUIRE);
}

int pic_create(struct bus *pio, const struct pic_config *cfg, struct pic **out)
{
    if (!pio || !cfg || !out)
        return -EINVAL;
    struct pic *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->pio = pio;
    p->cfg = *cfg;
    pthread_mutex_init(&p->lock, NULL);
    for (unsigned i = 0; i < 2; i++)
        p->chip[i].lowest = 7;
    p->chip[0].elcr_mask = ELCR_MASTER_MASK;
    p->chip[1].elcr_mask = ELCR_SLAVE_MASK;
    int ret = bus_register(pio, PIC_MASTER_PORT, 2, master_access, p, "pic-master");
    if (ret)
        goto err_master;
    ret = bus_register(pio, PIC_SLAVE_PORT, 2, slave_access, p, "pic-slave");
    if (ret)
        goto err_slave;
    ret = bus_register(pio, PIC_ELCR_PORT, 2, elcr_access, p, "pic-elcr");
    if (ret)
        goto err_elcr;
    *out = p;
    return 0;

err_elcr:
    bus_unregister(pio, PIC_SLAVE_PORT, p);
err_slave:
    bus_unregister(pio, PIC_MASTER_PORT, p);
err_master:
    pthread_mutex_destroy(&p->lock);
    free(p);
    return ret;
}

void pic_destroy(struct pic *p)
{
    if (!p)
        return;
    bus_unregister(p->pio, PIC_ELCR_PORT, p);
    bus_unregister(p->pio, PIC_SLAVE_PORT, p);
    bus_unregister(p->pio, PIC_MASTER_PORT, p);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
