/* SPDX-License-Identifier: MIT */
/* Fuzz target: the PIC, PIT and IOAPIC wired as on a PC, driven by an arbitrary access sequence. */

/*
 * The input is a list of 8-byte records {op, a, b, c, v[4]} (a short tail is zero-padded): port
 * accesses to the PIC, ELCR, PIT and port 0x61, MMIO accesses anywhere in the IOAPIC's page with
 * any width, shortcuts for the IOAPIC's indirect registers and redirection entries, pin level
 * changes on both controllers, INTA cycles, EOIs, and advances of a fake clock (from a
 * nanosecond to seconds) that fire the PIT's timer. The PIT's channel 0 drives PIC IRQ 0 and
 * IOAPIC pin 2, as on the board. The local APIC stand-in may EOI level messages from inside
 * deliver. Invariants: the INTA vector is a byte, the PIC's INT callback agrees with pic_intr,
 * the IOAPIC sends only well-formed messages and its reserved and read-only bits stay 0, a
 * clock advance fires the PIT's timer at most once (missed ticks are coalesced), and every
 * model leaves its bus empty.
 *
 * Built with -DFUZZ_IRQCHIP_GEN_CORPUS this file is instead `fuzz_gen_corpus_irqchip OUTDIR`,
 * which writes seeds (Linux's PIC set-up and periodic timer, TSC calibration on channel 2, IOAPIC
 * level interrupts with EOIs, a receiver that EOIs at once, a spurious IRQ 7) and runs each
 * through the target to confirm it reaches what its name says.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/dev/fake_timer.h"
#include "dev/ioapic.h"
#include "dev/pic.h"
#include "dev/pit.h"
#include "lib/le.h"

#define REC 8u
#define MAX_RECORDS 4096u

enum {
    OP_PIC_IO,   /* PIC/ELCR port a % 6, value b, write if c & 1, two bytes if c & 2 */
    OP_PIC_IRQ,  /* pic_set_irq(a % 17, b & 1) */
    OP_PIC_ACK,  /* pic_ack */
    OP_PIT_IO,   /* port 0x40 + a % 4 (0x61 if a & 4), value b, write if c & 1 */
    OP_ADVANCE,  /* the clock moves by v ns, times 1000 if c & 1 */
    OP_MMIO,     /* IOAPIC at 0x00/0x10/0x40 (a % 3) or v % 0x1000 (c & 0x80), width b & 3 */
    OP_IO_REG,   /* IOREGSEL = a, then IOWIN = v (write if c & 1) */
    OP_RTE,      /* entry a % 24: high = b << 24, low = v */
    OP_IO_PIN,   /* ioapic_set_irq(a % 26, b & 1) */
    OP_IO_EOI,   /* ioapic_eoi(a) */
    OP_RECEIVER, /* the local APIC stand-in EOIs level messages at once if a & 1 */
    OP_COUNT
};

struct fuzz_result {
    unsigned acks, msgs, level_msgs, max_depth, pulses;
    bool vec_seen[256];
    bool out2_seen, remote_irr_seen;
};

static struct {
    struct bus pio, mmio;
    struct fake_timer ft;
    struct pic *pic;
    struct ioapic *io;
    bool intr_level, eoi_at_once;
    unsigned depth;
    struct fuzz_result *res;
} w;

static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_irqchip: invariant broken: %s\n", what);
        abort();
    }
}

static void on_intr(void *opaque, bool level)
{
    (void)opaque;
    require(level != w.intr_level, "INT callback only on changes");
    w.intr_level = level;
}

/* The board's IRQ 0: both controllers see the PIT. */
static void on_irq0(void *opaque, unsigned gsi, bool level)
{
    (void)opaque;
    (void)gsi;
    if (level)
        w.res->pulses++;
    pic_set_irq(w.pic, 0, level);
    ioapic_set_irq(w.io, 2, level);
}

static void on_deliver(void *opaque, const struct apic_msg *m)
{
    (void)opaque;
    require(m->delivery != 3 && m->delivery != 6, "no reserved delivery mode");
    require(m->delivery > APIC_DM_LOWEST || m->vector >= 0x10, "no illegal vector");
    require(!m->level || m->delivery <= APIC_DM_LOWEST, "only fixed/lowest are level");
    require(m->assert && m->shorthand == APIC_SH_NONE && !m->x2apic && m->dest < 256,
            "message fields");
    w.res->msgs++;
    if (m->level)
        w.res->level_msgs++;
    w.depth++;
    require(w.depth < 64, "deliver nesting bounded");
    if (w.depth > w.res->max_depth)
        w.res->max_depth = w.depth;
    if (w.eoi_at_once && m->level)
        ioapic_eoi(w.io, m->vector);
    w.depth--;
}

static void poke(struct bus *bus, uint64_t addr, uint32_t len, bool write, uint32_t v)
{
    uint8_t buf[8];
    le_put32(buf, v);
    le_put32(buf + 4, ~v);
    bus_dispatch(bus, addr, buf, len, write);
}

static uint32_t io_reg(uint8_t index)
{
    uint8_t buf[4];
    poke(&w.mmio, IOAPIC_BASE, 4, true, index);
    bus_dispatch(&w.mmio, IOAPIC_BASE + 0x10, buf, 4, false);
    return le_get32(buf);
}

static void run(const uint8_t *data, size_t size, struct fuzz_result *res)
{
    static const uint16_t pic_ports[] = {0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1};
    static const uint32_t widths[] = {1, 2, 4, 8};
    static const uint32_t io_offs[] = {0x00, 0x10, 0x40};
    memset(res, 0, sizeof(*res));
    memset(&w, 0, sizeof(w));
    w.res = res;
    bus_init(&w.pio, "pio");
    bus_init(&w.mmio, "mmio");
    fake_timer_init(&w.ft, 1000000000ull * 7 + 17);
    struct pic_config pc = {.intr = on_intr};
    struct ioapic_config ic = {.id = 0, .deliver = on_deliver};
    struct pit_config tc = {.timer = &w.ft.ops, .irq0 = {.set = on_irq0, .gsi = 0}};
    struct pit *pit = NULL;
    require(pic_create(&w.pio, &pc, &w.pic) == 0, "pic_create");
    require(ioapic_create(&w.mmio, IOAPIC_BASE, &ic, &w.io) == 0, "ioapic_create");
    require(pit_create(&w.pio, &tc, &pit) == 0, "pit_create");

    size_t nrec = (size + REC - 1) / REC;
    if (nrec > MAX_RECORDS)
        nrec = MAX_RECORDS;
    for (size_t r = 0; r < nrec; r++) {
        uint8_t rec[REC] = {0};
        size_t off = r * REC, n = size - off < REC ? size - off : REC;
        memcpy(rec, data + off, n);
        uint8_t a = rec[1], b = rec[2], c = rec[3];
        uint32_t v = le_get32(rec + 4);
        switch (rec[0] % OP_COUNT) {
        case OP_PIC_IO:
            poke(&w.pio, pic_ports[a % 6], (c & 2) ? 2 : 1, c & 1, b);
            break;
        case OP_PIC_IRQ:
            pic_set_irq(w.pic, a % 17u, b & 1);
            break;
        case OP_PIC_ACK: {
            int vec = pic_ack(w.pic);
            require(vec >= 0 && vec < 256, "INTA vector is a byte");
            res->vec_seen[vec] = true;
            res->acks++;
            break;
        }
        case OP_PIT_IO: {
            uint16_t port = (a & 4) ? PIT_NMI_SC_PORT : (uint16_t)(PIT_PORT + a % 4u);
            uint8_t buf[1] = {b};
            bus_dispatch(&w.pio, port, buf, 1, c & 1);
            if (port == PIT_NMI_SC_PORT && !(c & 1) && (buf[0] & 0x20))
                res->out2_seen = true;
            break;
        }
        case OP_ADVANCE: {
            unsigned before = w.ft.fires;
            fake_timer_advance(&w.ft, (c & 1) ? (uint64_t)v * 1000 : v);
            require(w.ft.fires - before <= 1, "missed PIT ticks are coalesced");
            break;
        }
        case OP_MMIO: {
            uint64_t o = (c & 0x80) ? v % IOAPIC_MMIO_SIZE : io_offs[a % 3];
            uint32_t len = widths[b & 3];
            if (o + len > IOAPIC_MMIO_SIZE)
                o = IOAPIC_MMIO_SIZE - len;
            poke(&w.mmio, IOAPIC_BASE + o, len, c & 1, v);
            break;
        }
        case OP_IO_REG:
            poke(&w.mmio, IOAPIC_BASE, 4, true, a);
            poke(&w.mmio, IOAPIC_BASE + 0x10, 4, c & 1, v);
            break;
        case OP_RTE:
            poke(&w.mmio, IOAPIC_BASE, 4, true, 0x11u + 2u * (a % 24u));
            poke(&w.mmio, IOAPIC_BASE + 0x10, 4, true, (uint32_t)b << 24);
            poke(&w.mmio, IOAPIC_BASE, 4, true, 0x10u + 2u * (a % 24u));
            poke(&w.mmio, IOAPIC_BASE + 0x10, 4, true, v);
            break;
        case OP_IO_PIN:
            ioapic_set_irq(w.io, a % 26u, b & 1);
            break;
        case OP_IO_EOI:
            ioapic_eoi(w.io, a);
            break;
        case OP_RECEIVER:
            w.eoi_at_once = a & 1;
            break;
        }
        require(pic_intr(w.pic) == w.intr_level, "pic_intr agrees with the INT callback");
        require(w.depth == 0, "deliver returned");
    }

    for (unsigned pin = 0; pin < IOAPIC_PINS; pin++) {
        uint32_t lo = io_reg((uint8_t)(0x10 + 2 * pin)), hi = io_reg((uint8_t)(0x11 + 2 * pin));
        require(!(lo & 0xfffe1000u) && !(hi & 0x00ffffffu), "reserved RTE bits stay 0");
        require(!(lo & (1u << 14)) || (lo & (1u << 15)), "remote IRR only on level entries");
        if (lo & (1u << 14))
            res->remote_irr_seen = true;
    }
    require(io_reg(0x01) == IOAPIC_VERSION, "version is read-only");
    pit_destroy(pit);
    ioapic_destroy(w.io);
    pic_destroy(w.pic);
    require(!w.ft.t[0].used && w.ft.overruns == 0, "timer destroyed, never spun");
    require(w.pio.count == 0 && w.mmio.count == 0, "both buses empty");
    bus_free(&w.pio);
    bus_free(&w.mmio);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_result res;
    run(data, size, &res);
    return 0;
}

#ifdef FUZZ_IRQCHIP_GEN_CORPUS
#include <sys/stat.h>

struct seed {
    uint8_t buf[REC * 512];
    size_t len;
};

static void rec(struct seed *s, uint8_t op, uint8_t a, uint8_t b, uint8_t c, uint32_t v)
{
    if (s->len + REC > sizeof(s->buf))
        abort();
    uint8_t *p = s->buf + s->len;
    p[0] = op;
    p[1] = a;
    p[2] = b;
    p[3] = c;
    le_put32(p + 4, v);
    s->len += REC;
}

static void pic_out(struct seed *s, uint8_t port_index, uint8_t v)
{
    rec(s, OP_PIC_IO, port_index, v, 1, 0);
}

/* init_8259A: vectors 0x30 and 0x38, cascade on IR2, normal EOI, all unmasked. */
static void linux_pic_init(struct seed *s)
{
    const uint8_t seq[][2] = {{1, 0xff}, {3, 0xff}, {0, 0x11}, {1, 0x30}, {1, 0x04}, {1, 0x01},
                              {2, 0x11}, {3, 0x38}, {3, 0x02}, {3, 0x01}, {1, 0x00}, {3, 0x00}};
    for (unsigned i = 0; i < sizeof(seq) / sizeof(seq[0]); i++)
        pic_out(s, seq[i][0], seq[i][1]);
}

static void seed_pic_timer(struct seed *s)
{
    linux_pic_init(s);
    rec(s, OP_PIT_IO, 3, 0x34, 1, 0); /* channel 0, mode 2, count 1193 */
    rec(s, OP_PIT_IO, 0, 0xa9, 1, 0);
    rec(s, OP_PIT_IO, 0, 0x04, 1, 0);
    for (unsigned i = 0; i < 5; i++) {
        rec(s, OP_ADVANCE, 0, 0, 1, 1000); /* 1 ms */
        rec(s, OP_PIC_ACK, 0, 0, 0, 0);
        pic_out(s, 0, 0x20);
    }
    rec(s, OP_PIC_IRQ, 12, 1, 0, 0); /* a slave IRQ through the cascade */
    rec(s, OP_PIC_ACK, 0, 0, 0, 0);
    pic_out(s, 2, 0x20);
    pic_out(s, 0, 0x20);
}

static void seed_tsc_calibrate(struct seed *s)
{
    rec(s, OP_PIT_IO, 4, 0x01, 1, 0); /* gate 2 high, speaker off */
    rec(s, OP_PIT_IO, 3, 0xb0, 1, 0); /* channel 2, mode 0 */
    rec(s, OP_PIT_IO, 2, 0x9b, 1, 0); /* count 11931: 10 ms */
    rec(s, OP_PIT_IO, 2, 0x2e, 1, 0);
    for (unsigned i = 0; i < 12; i++) {
        rec(s, OP_ADVANCE, 0, 0, 1, 1000);
        rec(s, OP_PIT_IO, 2, 0, 0, 0);
        rec(s, OP_PIT_IO, 2, 0, 0, 0);
        rec(s, OP_PIT_IO, 4, 0, 0, 0);
    }
    rec(s, OP_PIT_IO, 3, 0xc8, 1, 0); /* read-back of channel 2 */
    rec(s, OP_PIT_IO, 2, 0, 0, 0);
}

static void seed_ioapic_level(struct seed *s)
{
    rec(s, OP_RTE, 2, 0, 0, 0x30);        /* timer pin, edge */
    rec(s, OP_RTE, 10, 1, 0, 0x0000803a); /* level, vector 0x3a, APIC 1 */
    rec(s, OP_RTE, 11, 3, 0, 0x00018941); /* masked, logical lowest-priority */
    rec(s, OP_IO_PIN, 10, 1, 0, 0);
    rec(s, OP_IO_PIN, 11, 1, 0, 0);
    rec(s, OP_IO_EOI, 0x3a, 0, 0, 0);
    rec(s, OP_MMIO, 2, 2, 1, 0x3a); /* the EOI register */
    rec(s, OP_RTE, 11, 3, 0, 0x00008941);
    rec(s, OP_PIT_IO, 3, 0x34, 1, 0);
    rec(s, OP_PIT_IO, 0, 0x00, 1, 0);
    rec(s, OP_PIT_IO, 0, 0x10, 1, 0);
    rec(s, OP_ADVANCE, 0, 0, 1, 5000);
    rec(s, OP_IO_REG, 0x01, 0, 0, 0);
    rec(s, OP_IO_REG, 0x40, 0, 1, 0xdeadbeef);
}

static void seed_eoi_storm(struct seed *s)
{
    rec(s, OP_RECEIVER, 1, 0, 0, 0);
    rec(s, OP_RTE, 5, 0, 0, 0x00008050);
    rec(s, OP_IO_PIN, 5, 1, 0, 0);
    rec(s, OP_IO_EOI, 0x50, 0, 0, 0);
    rec(s, OP_RECEIVER, 0, 0, 0, 0);
    rec(s, OP_IO_PIN, 6, 0, 0, 0);
}

static void seed_spurious(struct seed *s)
{
    linux_pic_init(s);
    pic_out(s, 4, 0x20); /* IRQ 5 level */
    rec(s, OP_PIC_IRQ, 5, 1, 0, 0);
    rec(s, OP_PIC_IRQ, 5, 0, 0, 0);
    rec(s, OP_PIC_ACK, 0, 0, 0, 0);
    pic_out(s, 0, 0x0c); /* poll */
    rec(s, OP_PIC_IO, 0, 0, 0, 0);
}

static void write_seed(const char *dir, const char *name, const struct seed *s)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s->buf, 1, s->len, f) != s->len || fclose(f) != 0) {
        fprintf(stderr, "fuzz_gen_corpus_irqchip: %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_gen_corpus_irqchip OUTDIR\n");
        return 2;
    }
    if (mkdir(argv[1], 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "fuzz_gen_corpus_irqchip: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    struct fuzz_result res;
    static struct seed s;

    memset(&s, 0, sizeof(s));
    seed_pic_timer(&s);
    run(s.buf, s.len, &res);
    require(res.pulses == 5 && res.vec_seen[0x30] && res.vec_seen[0x3c] && res.acks == 6,
            "pic-timer seed: five timer interrupts and a cascaded one");
    write_seed(argv[1], "pic-timer", &s);

    memset(&s, 0, sizeof(s));
    seed_tsc_calibrate(&s);
    run(s.buf, s.len, &res);
    require(res.out2_seen && res.pulses == 0, "tsc-calibrate seed: OUT 2 seen through 0x61");
    write_seed(argv[1], "tsc-calibrate", &s);

    memset(&s, 0, sizeof(s));
    seed_ioapic_level(&s);
    run(s.buf, s.len, &res);
    require(res.level_msgs >= 4 && res.remote_irr_seen && res.msgs > res.level_msgs,
            "ioapic-level seed: level re-sent after EOIs, timer edges");
    write_seed(argv[1], "ioapic-level", &s);

    memset(&s, 0, sizeof(s));
    seed_eoi_storm(&s);
    run(s.buf, s.len, &res);
    require(res.max_depth >= 2 && res.level_msgs >= 3, "eoi-storm seed: nested, bounded");
    write_seed(argv[1], "eoi-storm", &s);

    memset(&s, 0, sizeof(s));
    seed_spurious(&s);
    run(s.buf, s.len, &res);
    require(res.vec_seen[0x37] && res.acks == 1, "spurious seed: IRQ 7");
    write_seed(argv[1], "spurious", &s);
    return 0;
}
#endif
