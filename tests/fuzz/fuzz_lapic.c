/* SPDX-License-Identifier: MIT */
/* Fuzz target: three local APICs on the APIC bus, driven by arbitrary accesses and events. */

/*
 * The input is a list of 12-byte records {op, a, b, c, v[8]} (a short tail is zero-padded),
 * each aimed at APIC a % 3: xAPIC page reads and writes at any offset (also past the page) and
 * of any length 0-8, aligned register writes, RDMSR/WRMSR of any index (or of the APIC ones:
 * 0x1b, 0x6e0, 0x800-0x8ff) with any value, APIC_BASE mode changes, messages of any shape
 * delivered through apic_bus_deliver (with or without a sender for the shorthand), the vCPU's
 * acks, EOIs, TPR writes, event takes (an INIT resets the APIC, as the board does), LINT pin
 * changes (bad pins included) and clock advances and stalls on a manual clock. The board's
 * callbacks route IPIs back through the bus and the fake IOAPIC re-delivers level vectors on
 * EOI, so a callback made under a lapic's lock would deadlock (the test's timeout catches it).
 * After every record: what next_irq offers is a legal vector above PPR's class.
 *
 * Built with -DFUZZ_LAPIC_GEN_CORPUS this file is instead `fuzz_gen_corpus_lapic OUTDIR`, which
 * writes seeds (Linux's xAPIC bring-up with the periodic timer and INIT/SIPI to the APs, x2APIC
 * with TSC deadline and cluster IPIs, ExtINT through LINT0 and level EOIs) and runs each to
 * confirm it reaches what its name says.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/dev/fake_clock_lapic.h"
#include "dev/apic_bus.h"
#include "dev/lapic.h"
#include "lib/le.h"

#define NCPU 3
#define REC 12u
#define MAX_RECORDS 4096u
#define MAX_FIRES 256u /* per clock advance */

enum {
    OP_MMIO_READ,  /* offset b | c << 8, length (v >> 56) % 9 */
    OP_MMIO_WRITE, /* same, data v */
    OP_REG,        /* aligned dword write of v to register (b << 4) & 0xff0 */
    OP_MSR_READ,   /* c & 0x80: MSR v >> 32, else 0x1b / 0x6e0 / 0x800 + b by c & 3 */
    OP_MSR_WRITE,  /* same, value v (c & 0x40: v >> 32 zero-extended, mostly legal) */
    OP_BASE,       /* IA32_APIC_BASE from a table of modes by b */
    OP_MSG,        /* a message built from b, c, v; c & 0x80... see below */
    OP_ACK,        /* take the vector next_irq offers (b & 1: ack vector b instead) */
    OP_EOI,        /* EOI through the page or the MSR */
    OP_TPR,        /* lapic_set_tpr(b) */
    OP_EVENTS,     /* take events; INIT resets */
    OP_LINT,       /* lapic_set_lint(pin b % 4 - 1 .. , level c & 1) */
    OP_CLOCK,      /* advance by v % 2^24 ns (c & 1: a stall without firing) */
    OP_ENABLE,     /* SVR = 0x1ff | b << 12, by MMIO or MSR */
    OP_RESET,      /* lapic_reset or lapic_hard_reset by b & 1 */
    OP_COUNT
};

struct fuzz_result {
    unsigned acks, ipis, eois, kicks, fires, gps;
    bool x2apic_seen, extint_seen, sipi_seen, deadline_seen;
};

static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_lapic: invariant broken: %s\n", what);
        abort();
    }
}

static struct board {
    struct lapic *cpu[NCPU];
    struct fuzz_result *res;
    uint8_t level_line[NCPU]; /* fake IOAPIC: a level vector re-sent on EOI, 0: none */
} board;

static void kick(void *opaque, unsigned cpu)
{
    struct board *bd = opaque;
    require(cpu < NCPU, "kick of a known cpu");
    bd->res->kicks++;
}

static void send_ipi(void *opaque, const struct lapic *from, const struct apic_msg *m)
{
    struct board *bd = opaque;
    bd->res->ipis++;
    require(m->shorthand <= APIC_SH_ALL_BUT_SELF, "shorthand");
    (void)lapic_ppr(from); /* the sender's lock must be free */
    apic_bus_deliver(bd->cpu, NCPU, from, m);
}

static void eoi_broadcast(void *opaque, uint8_t vector)
{
    struct board *bd = opaque;
    bd->res->eois++;
    require(vector >= 16, "level EOI of a legal vector");
    for (unsigned i = 0; i < NCPU; i++) {
        if (bd->level_line[i] == vector) {
            /* The line is still asserted: the IOAPIC sends it again, to the same APIC. */
            struct apic_msg m = {.vector = vector, .level = true, .assert = true};
            lapic_accept(bd->cpu[i], &m);
        }
    }
}

static const uint64_t base_modes[8] = {
    0xfee00800u, 0xfee00c00u, 0, 0xfee00400u, 0xfed00800u, 0xfee00a00u, 0xfee00900u, 0xfee00c01u,
};

static void check_irq(struct lapic *l)
{
    int v = lapic_next_irq(l);
    if (v < 0)
        return;
    require(v >= 16 && v <= 255, "next_irq offers a legal vector");
    require(((unsigned)v & 0xf0) > (lapic_ppr(l) & 0xf0u), "next_irq above PPR");
}

static void run(const uint8_t *data, size_t size, struct fuzz_result *res)
{
    static struct fake_clock clk;
    memset(res, 0, sizeof(*res));
    fake_clock_init(&clk, 1u << 20);
    board = (struct board){.res = res};
    for (unsigned i = 0; i < NCPU; i++) {
        struct lapic_config cfg = {
            .cpu = i,
            .apic_id = i == 2 ? 0x11 : i,
            .bsp = i == 0,
            .x2apic = true,
            .eoi_suppress = i != 1,
            .tsc_hz = i == 2 ? 0 : 2500000000ull,
            .timer = &clk.ops,
            .opaque = &board,
            .kick = kick,
            .send_ipi = send_ipi,
            .eoi_broadcast = eoi_broadcast,
        };
        require(lapic_create(&cfg, &board.cpu[i]) == 0, "create");
    }

    size_t n = (size + REC - 1) / REC;
    if (n > MAX_RECORDS)
        n = MAX_RECORDS;
    for (size_t r = 0; r < n; r++) {
        uint8_t rec[REC] = {0};
        size_t have = size - r * REC < REC ? size - r * REC : REC;
        memcpy(rec, data + r * REC, have);
        uint8_t a = rec[1], b = rec[2], c = rec[3];
        uint64_t v = le_get64(rec + 4);
        unsigned id = a % NCPU;
        struct lapic *l = board.cpu[id];
        uint8_t buf[8];
        switch (rec[0] % OP_COUNT) {
        case OP_MMIO_READ:
        case OP_MMIO_WRITE: {
            uint32_t len = (uint32_t)(v >> 56) % 9;
            le_put64(buf, v);
            lapic_mmio_access(l, (uint64_t)b | (uint64_t)c << 8, buf, len,
                              rec[0] % OP_COUNT == OP_MMIO_WRITE);
            break;
        }
        case OP_REG:
            le_put32(buf, (uint32_t)v);
            lapic_mmio_access(l, (b << 4) & 0xff0u, buf, 4, true);
            break;
        case OP_MSR_READ:
        case OP_MSR_WRITE: {
            static const uint32_t fixed_msrs[2] = {0x1b, 0x6e0};
            uint32_t msr = (c & 0x80)    ? (uint32_t)(v >> 32)
                           : (c & 3) < 2 ? fixed_msrs[c & 1]
                                         : 0x800u + b;
            uint64_t val = (c & 0x40) ? v >> 32 : v;
            int ret;
            if (rec[0] % OP_COUNT == OP_MSR_READ) {
                uint64_t got;
                ret = lapic_msr_read(l, msr, &got);
            } else {
                ret = lapic_msr_write(l, msr, val);
                res->deadline_seen |= ret == 0 && msr == 0x6e0 && val;
            }
            require(ret == 0 || ret == -1, "0 or #GP");
            res->gps += ret != 0;
            break;
        }
        case OP_BASE:
            res->gps += lapic_msr_write(l, 0x1b, base_modes[b & 7]) != 0;
            break;
        case OP_MSG: {
            struct apic_msg m = {
                .vector = b,
                .delivery = (enum apic_delivery)(c & 7),
                .logical = (c >> 3) & 1,
                .level = (c >> 4) & 1,
                .assert = !((c >> 5) & 1),
                .shorthand = (enum apic_shorthand)(c >> 6),
                .dest = (v & 0x100000000ull) ? (uint32_t)v : (uint8_t)v,
                .x2apic = (v >> 33) & 1,
            };
            if (m.level && m.delivery == APIC_DM_FIXED && (v >> 34) & 1)
                board.level_line[id] = m.vector;
            apic_bus_deliver(board.cpu, NCPU, (a & 0x80) ? l : NULL, &m);
            break;
        }
        case OP_ACK:
            if (b & 1) {
                lapic_ack_irq(l, b);
            } else {
                int vec = lapic_next_irq(l);
                if (vec >= 0) {
                    lapic_ack_irq(l, (uint8_t)vec);
                    res->acks++;
                    if (c & 1)
                        board.level_line[id] = 0; /* the device was serviced */
                }
            }
            break;
        case OP_EOI:
            if (b & 1) {
                res->gps += lapic_msr_write(l, 0x80b, c & 2) != 0;
            } else {
                le_put32(buf, c);
                lapic_mmio_access(l, 0xb0, buf, 4, true);
            }
            break;
        case OP_TPR:
            lapic_set_tpr(l, b);
            require(lapic_get_tpr(l) == (b & 0xf), "CR8 round trip");
            break;
        case OP_EVENTS: {
            uint8_t sv = 0;
            unsigned ev = lapic_take_events(l, &sv);
            require(!(ev & ~15u), "known events");
            res->extint_seen |= (ev & LAPIC_EV_EXTINT) != 0;
            res->sipi_seen |= (ev & LAPIC_EV_SIPI) != 0;
            if (ev & LAPIC_EV_INIT)
                lapic_reset(l, id == 0);
            break;
        }
        case OP_LINT:
            lapic_set_lint(l, (int)(b % 4) - 1, c & 1);
            break;
        case OP_CLOCK:
            if (c & 1)
                fake_clock_jump(&clk, v % (1u << 24));
            else
                fake_clock_advance_max(&clk, v % (1u << 24), MAX_FIRES);
            break;
        case OP_ENABLE: {
            uint32_t svr = 0x1ffu | (uint32_t)(b & 1) << 12;
            if (c & 1) {
                res->gps += lapic_msr_write(l, 0x80f, svr) != 0;
            } else {
                le_put32(buf, svr);
                lapic_mmio_access(l, 0xf0, buf, 4, true);
            }
            break;
        }
        case OP_RESET:
            if (b & 1)
                lapic_hard_reset(l, id == 0);
            else
                lapic_reset(l, id == 0);
            break;
        }
        for (unsigned i = 0; i < NCPU; i++) {
            check_irq(board.cpu[i]);
            res->x2apic_seen |= lapic_x2apic_mode(board.cpu[i]);
        }
    }
    res->fires = clk.fires;
    for (unsigned i = 0; i < NCPU; i++)
        lapic_destroy(board.cpu[i]);
    for (unsigned i = 0; i < FAKE_CLOCK_TIMERS; i++)
        require(!clk.t[i].used, "every timer destroyed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_result res;
    run(data, size, &res);
    return 0;
}

#ifdef FUZZ_LAPIC_GEN_CORPUS
#include <sys/stat.h>

struct seed {
    uint8_t buf[REC * 256];
    size_t len;
};

static void rec(struct seed *s, uint8_t op, uint8_t a, uint8_t b, uint8_t c, uint64_t v)
{
    if (s->len + REC > sizeof(s->buf))
        abort();
    uint8_t *p = s->buf + s->len;
    p[0] = op;
    p[1] = a;
    p[2] = b;
    p[3] = c;
    le_put64(p + 4, v);
    s->len += REC;
}

static void reg(struct seed *s, uint8_t cpu, uint32_t off, uint32_t v)
{
    rec(s, OP_REG, cpu, (uint8_t)(off >> 4), 0, v);
}

static void seed_xapic(struct seed *s)
{
    /* Linux's setup_local_APIC on the BSP, the timer calibrated and periodic, then the APs. */
    rec(s, OP_ENABLE, 0, 0, 0, 0);
    reg(s, 0, 0xe0, 0xffffffffu);
    reg(s, 0, 0xd0, 0x01000000u);
    reg(s, 0, 0x80, 0);
    reg(s, 0, 0x350, 0x700);
    reg(s, 0, 0x360, 0x400);
    reg(s, 0, 0x370, 0xfe);
    reg(s, 0, 0x3e0, 0xb);
    reg(s, 0, 0x320, 0x200ec);
    reg(s, 0, 0x380, 400000);
    rec(s, OP_CLOCK, 0, 0, 0, 1000000);
    rec(s, OP_ACK, 0, 0, 0, 0);
    rec(s, OP_EOI, 0, 0, 0, 0);
    for (uint8_t cpu = 1; cpu < 3; cpu++) {
        reg(s, 0, 0x310, (uint32_t)(cpu == 2 ? 0x11 : cpu) << 24);
        reg(s, 0, 0x300, 0xc500);
        reg(s, 0, 0x300, 0x8500);
        reg(s, 0, 0x300, 0x4608);
        rec(s, OP_EVENTS, cpu, 0, 0, 0);
        rec(s, OP_ENABLE, cpu, 0, 0, 0);
    }
    reg(s, 0, 0x300, 0xc40fd); /* an IPI to all but self */
    rec(s, OP_ACK, 1, 0, 0, 0);
    rec(s, OP_EOI, 1, 0, 0, 0);
    rec(s, OP_MMIO_READ, 0, 0x90, 0x03, 4ull << 56);
}

static void seed_x2apic(struct seed *s)
{
    for (uint8_t cpu = 0; cpu < 3; cpu++) {
        rec(s, OP_BASE, cpu, 1, 0, 0);
        rec(s, OP_ENABLE, cpu, 1, 1, 0);
    }
    rec(s, OP_MSR_WRITE, 0, 0x32, 2, 0x400ef); /* LVT timer: TSC deadline */
    rec(s, OP_MSR_WRITE, 0, 0, 1, 0x300000);   /* IA32_TSC_DEADLINE, 0.2 ms away */
    rec(s, OP_CLOCK, 0, 0, 0, 0x100000);
    rec(s, OP_ACK, 0, 0, 0, 0);
    rec(s, OP_EOI, 0, 1, 0, 0);
    rec(s, OP_MSR_WRITE, 0, 0x30, 2, 0x0001000200000841ull); /* cluster 1, member 1 */
    rec(s, OP_MSR_WRITE, 0, 0x3f, 2, 0x42);
    rec(s, OP_MSR_READ, 0, 0x0d, 2, 0);
    rec(s, OP_MSR_READ, 0, 0x09, 2, 0);
    rec(s, OP_BASE, 0, 0, 0, 0);
    rec(s, OP_BASE, 0, 2, 0, 0);
    rec(s, OP_BASE, 0, 0, 0, 0);
}

static void seed_extint(struct seed *s)
{
    rec(s, OP_ENABLE, 0, 0, 0, 0);
    reg(s, 0, 0x350, 0x700);
    rec(s, OP_LINT, 0, 1, 1, 0);
    rec(s, OP_EVENTS, 0, 0, 0, 0);
    rec(s, OP_LINT, 0, 1, 0, 0);
    /* A level interrupt from the IOAPIC, still asserted at the first EOI. */
    rec(s, OP_MSG, 0, 0x30, 0x10, 1ull << 34);
    rec(s, OP_ACK, 0, 0, 0, 0);
    rec(s, OP_EOI, 0, 0, 0, 0);
    rec(s, OP_ACK, 0, 0, 1, 0);
    rec(s, OP_EOI, 0, 0, 0, 0);
    rec(s, OP_MSG, 0x80, 0x40, 0x80, 0); /* fixed, all including self, from cpu 0 */
    rec(s, OP_MSG, 1, 0x50, 0x09, 0x07); /* lowest priority, logical */
}

static void write_seed(const char *dir, const char *name, const struct seed *s)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s->buf, 1, s->len, f) != s->len || fclose(f) != 0) {
        fprintf(stderr, "fuzz_gen_corpus_lapic: %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_gen_corpus_lapic OUTDIR\n");
        return 2;
    }
    if (mkdir(argv[1], 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "fuzz_gen_corpus_lapic: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    struct fuzz_result res;
    static struct seed s;

    memset(&s, 0, sizeof(s));
    seed_xapic(&s);
    run(s.buf, s.len, &res);
    require(res.fires >= 2 && res.acks >= 2 && res.ipis >= 7 && res.sipi_seen,
            "xapic seed: periodic timer taken, INIT/SIPI and an IPI sent");
    write_seed(argv[1], "xapic", &s);

    memset(&s, 0, sizeof(s));
    seed_x2apic(&s);
    run(s.buf, s.len, &res);
    require(res.x2apic_seen && res.deadline_seen && res.fires == 1 && res.acks == 1 &&
                res.ipis == 1 && res.gps >= 2,
            "x2apic seed: TSC deadline fired, cluster IPI, #GPs");
    write_seed(argv[1], "x2apic", &s);

    memset(&s, 0, sizeof(s));
    seed_extint(&s);
    run(s.buf, s.len, &res);
    require(res.extint_seen && res.eois == 2 && res.acks == 2, "extint seed: ExtINT, level EOIs");
    write_seed(argv[1], "extint", &s);
    return 0;
}
#endif
