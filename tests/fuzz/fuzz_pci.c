/* SPDX-License-Identifier: MIT */
/* Fuzz target: a PCI host with one MSI-X function, driven by an arbitrary access sequence. */

/*
 * The input is a list of 8-byte records {op, a, b, c, v[4]} (a short tail is zero-padded):
 * CONFIG_ADDRESS/CONFIG_DATA port accesses of any width and offset, the public configuration
 * accessors with any slot/offset/length, MMIO and port accesses to wherever the guest has put
 * the BARs (MSI-X table, PBA and plain registers), direct table/PBA calls with offsets no BAR
 * could produce, msix_notify with any vector, and INTx changes. Shortcuts for the MSI-X
 * control word and table entries make the interesting states reachable without coverage
 * feedback, and binds can be made to fail (MSI-X must then refuse the enable). Every input runs on
 * a fresh host; afterwards nothing may stay on either bus, no MSI route may stay bound, and
 * bar_mapped must always have reported what the bus holds.
 *
 * Built with -DFUZZ_PCI_GEN_CORPUS this file is instead `fuzz_gen_corpus_pci OUTDIR`, which
 * writes seeds (Linux's probe and BAR sizing, MSI-X set-up and delivery, a refused MSI-X enable,
 * BAR moves and INTx)
 * and runs each through the target to confirm it reaches what its name says.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pci/msix.h"
#include "lib/le.h"

#define NVEC 8
#define BAR0_SIZE 0x4000u
#define TABLE_OFF 0x0000u
#define PBA_OFF 0x2000u
#define SCRATCH_OFF 0x3000u
#define BAR1_SIZE 32u
#define REC 8u
#define MAX_RECORDS 4096u

enum {
    OP_CF8,       /* dword v to CONFIG_ADDRESS */
    OP_SELECT,    /* CONFIG_ADDRESS for slot (mostly 0-2) and register b; c & 0x80: bus/fn */
    OP_DATA,      /* CONFIG_DATA + (a & 3), width b, write if c & 1 */
    OP_PIO,       /* any port near 0xCF8, width b, write if c & 1 */
    OP_CFG_API,   /* pci_host_cfg_read/write(slot a, off b, len c & 7), write if c & 0x80 */
    OP_MMIO,      /* BAR 0 at offset a | b << 8 (c & 0x40: inside the table), width c & 3 */
    OP_NOTIFY,    /* msix_notify(a), or v when c & 1 */
    OP_INTX,      /* pci_device_set_intx(a & 1) */
    OP_IO_BAR,    /* BAR 1 at offset a, width b, write if c & 1 */
    OP_DIRECT,    /* msix_table_access / msix_pba_access at offset v | b << 32, len a % 9 */
    OP_MSIX_CTRL, /* Message Control = v (enable, function mask) */
    OP_ENTRY,     /* table entry a word b = v through the BAR */
    OP_FAIL_BIND, /* the next a % 4 MSI binds fail (the VMM out of routes) */
    OP_COUNT
};

struct fuzz_result {
    unsigned delivered;  /* eventfd counts read back */
    unsigned bar_moves;  /* bar_mapped calls */
    unsigned bar_hits;   /* guest accesses that reached a BAR */
    unsigned max_bound;  /* MSI routes bound at once */
    bool pending_seen;   /* a PBA read returned a set bit */
    bool intx_asserted;  /* the INTx pin went high */
    bool refused_seen;   /* an MSI-X enable was refused (a bind failed) */
    uint32_t host_ident; /* vendor/device of 00:00.0 as last read through the ports */
};

/* A failed invariant is a bug: stop like a sanitizer would, so the driver keeps the input. */
static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_pci: invariant broken: %s\n", what);
        abort();
    }
}

/* ---------------------------------------------------------------- fakes */

struct fake_msi {
    uint64_t bound; /* handle bits */
    unsigned nbound;
    unsigned fail; /* binds still to fail */
    int fd[64];
};

static int fake_bind(void *opaque, int fd)
{
    struct fake_msi *f = opaque;
    if (f->fail) {
        f->fail--;
        return -ENOSPC;
    }
    for (int h = 0; h < 64; h++) {
        if (!(f->bound & (1ull << h))) {
            f->bound |= 1ull << h;
            f->fd[h] = fd;
            f->nbound++;
            return h;
        }
    }
    return -ENOSPC;
}

static int fake_route(void *opaque, int h, uint64_t address, uint32_t data)
{
    struct fake_msi *f = opaque;
    (void)address;
    (void)data;
    require(h >= 0 && h < 64 && (f->bound & (1ull << h)), "route of a bound handle");
    return 0;
}

static void fake_unbind(void *opaque, int h, int fd)
{
    struct fake_msi *f = opaque;
    require(h >= 0 && h < 64 && (f->bound & (1ull << h)) && f->fd[h] == fd, "unbind");
    f->bound &= ~(1ull << h);
    f->nbound--;
}

struct fake_dev {
    struct pci_device pci;
    struct msix *msix;
    uint64_t reported[PCI_NUM_BARS]; /* what bar_mapped said last */
    uint32_t scratch[4];
    struct fuzz_result *res;
};

static void bar0_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
    struct fake_dev *d = opaque;
    d->res->bar_hits++;
    require(off < BAR0_SIZE && len <= BAR0_SIZE - off, "BAR 0 access inside the BAR");
    if (off < PBA_OFF) {
        msix_table_access(d->msix, off - TABLE_OFF, data, len, write);
    } else if (off < SCRATCH_OFF) {
        msix_pba_access(d->msix, off - PBA_OFF, data, len, write);
        if (!write)
            for (uint32_t i = 0; i < len; i++)
                d->res->pending_seen |= data[i] != 0;
    } else if (!write) {
        memset(data, 0, len);
        if (len == 4 && off % 4 == 0 && off < SCRATCH_OFF + 16)
            memcpy(data, &d->scratch[(off - SCRATCH_OFF) / 4], 4);
    } else if (len == 4 && off % 4 == 0 && off < SCRATCH_OFF + 16) {
        memcpy(&d->scratch[(off - SCRATCH_OFF) / 4], data, 4);
    }
}

static void bar1_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
    struct fake_dev *d = opaque;
    d->res->bar_hits++;
    require(off < BAR1_SIZE && len <= BAR1_SIZE - off, "BAR 1 access inside the BAR");
    if (!write)
        memset(data, 0x5a, len);
}

static void on_bar_mapped(void *opaque, unsigned bar, uint64_t addr)
{
    struct fake_dev *d = opaque;
    require(bar < 2, "bar_mapped for a declared BAR");
    require(d->pci.bar_mapped_at[bar] == addr, "bar_mapped reports the bus state");
    /* A move is a stop then a start: never a start over a start. */
    require(!addr || !d->reported[bar], "start without stop");
    d->reported[bar] = addr;
    d->res->bar_moves++;
}

static void on_config_written(void *opaque, uint32_t off, uint32_t len)
{
    struct fake_dev *d = opaque;
    require(off < PCI_CFG_SIZE && len >= 1 && len <= 4 && off + len <= PCI_CFG_SIZE,
            "config_written range");
    msix_config_written(d->msix, off, len);
}

static const struct pci_device_ops fake_ops = {on_bar_mapped, on_config_written};

static struct fake_irq {
    bool level[32];
} irq;

static void fake_irq_set(void *opaque, unsigned gsi, bool level)
{
    struct fake_irq *f = opaque;
    require(gsi == PCI_INTX_GSI_BASE + 1, "INTx of slot 1 only");
    require(f->level[gsi % 32] != level, "edges only");
    f->level[gsi % 32] = level;
}

/* ---------------------------------------------------------------- the target */

static const uint32_t widths[4] = {1, 2, 4, 8};

static void poke(struct bus *bus, uint64_t addr, uint32_t len, bool write, uint32_t v)
{
    uint8_t b[8];
    le_put32(b, v);
    le_put32(b + 4, v);
    bus_dispatch(bus, addr, b, len, write);
}

static void run(const uint8_t *data, size_t size, struct fuzz_result *res)
{
    static struct fake_dev dev;
    static struct fake_msi msi;
    struct bus pio, mmio;
    memset(res, 0, sizeof(*res));
    memset(&msi, 0, sizeof(msi));
    memset(&irq, 0, sizeof(irq));
    bus_init(&pio, "pio");
    bus_init(&mmio, "mmio");
    struct pci_host_config hc = {&pio, &mmio, fake_irq_set, &irq};
    struct pci_host *h = NULL;
    require(pci_host_create(&hc, &h) == 0, "host");

    pci_device_init(&dev.pci, "fuzz", 0x1af4, 0x1041, 0x020000, 1, 0x1af4, 1, &fake_ops, &dev);
    memset(dev.reported, 0, sizeof(dev.reported));
    memset(dev.scratch, 0, sizeof(dev.scratch));
    dev.res = res;
    struct pci_bar_desc b0 = {BAR0_SIZE, false, bar0_access, &dev};
    struct pci_bar_desc b1 = {BAR1_SIZE, true, bar1_access, &dev};
    const struct msi_ops ops = {&msi, fake_bind, fake_route, fake_unbind};
    require(pci_device_set_bar(&dev.pci, 0, &b0) == 0 && pci_device_set_bar(&dev.pci, 1, &b1) == 0,
            "BARs");
    require(msix_create(&dev.pci, NVEC, 0, TABLE_OFF, PBA_OFF, &ops, &dev.msix) == 0, "msix");
    int cap = dev.pci.cfg[PCI_CAP_PTR];
    require(pci_host_add(h, &dev.pci) == 0 && dev.pci.slot == 1, "add");

    size_t n = (size + REC - 1) / REC;
    if (n > MAX_RECORDS)
        n = MAX_RECORDS;
    for (size_t r = 0; r < n; r++) {
        uint8_t rec[REC] = {0};
        size_t have = size - r * REC < REC ? size - r * REC : REC;
        memcpy(rec, data + r * REC, have);
        uint8_t a = rec[1], b = rec[2], c = rec[3];
        uint32_t v = le_get32(rec + 4);
        uint64_t bar0 = dev.pci.bar_mapped_at[0] ? dev.pci.bar_mapped_at[0] : PCI_MMIO_BASE;
        uint64_t bar1 = dev.pci.bar_mapped_at[1] ? dev.pci.bar_mapped_at[1] : PCI_IO_BASE;
        switch (rec[0] % OP_COUNT) {
        case OP_CF8:
            poke(&pio, 0xcf8, 4, true, v);
            break;
        case OP_SELECT: {
            uint32_t slot = a < 0xf0 ? a % 3u : a & 31u;
            uint32_t addr = 0x80000000u | slot << 11 | (b & 0xfcu);
            if (c & 0x80)
                addr |= (uint32_t)(c & 0x7f) << 8; /* function and low bus bits */
            poke(&pio, 0xcf8, 4, true, addr);
            break;
        }
        case OP_DATA: {
            uint32_t len = widths[b & 3], port = 0xcfc + (a & 3u);
            uint8_t buf[8] = {0};
            if (c & 1) {
                poke(&pio, port, len, true, v);
            } else {
                bus_dispatch(&pio, port, buf, len, false);
                if (port == 0xcfc && len == 4 && (le_get32(buf) & 0xffff) == 0x8086)
                    res->host_ident = le_get32(buf);
            }
            break;
        }
        case OP_PIO:
            poke(&pio, 0xcf6 + a % 12u, widths[b & 3], c & 1, v);
            break;
        case OP_CFG_API: {
            unsigned slot = a % 40u;
            if (c & 0x80) {
                pci_host_cfg_write(h, slot, b, c & 7u, v);
            } else {
                uint32_t got = pci_host_cfg_read(h, slot, b, c & 7u);
                if (slot == 1 && b == 0 && (c & 7u) == 2)
                    require(got == 0x1af4, "vendor ID is read-only");
            }
            break;
        }
        case OP_MMIO: {
            uint64_t off = (c & 0x40) ? (a & 0x7fu) : (a | (uint64_t)b << 8) % BAR0_SIZE;
            poke(&mmio, bar0 + off, widths[c & 3], c & 0x80, v);
            break;
        }
        case OP_NOTIFY:
            msix_notify(dev.msix, (c & 1) ? v : a);
            break;
        case OP_INTX:
            pci_device_set_intx(&dev.pci, a & 1);
            res->intx_asserted |= irq.level[PCI_INTX_GSI_BASE + 1];
            break;
        case OP_IO_BAR:
            poke(&pio, bar1 + a % 40u, widths[b & 3], c & 1, v);
            break;
        case OP_DIRECT: {
            uint64_t off = v | (uint64_t)b << 32;
            uint8_t buf[8] = {0};
            uint32_t len = a % 9u;
            if (!len)
                break;
            if (c & 2)
                msix_pba_access(dev.msix, off, buf, len, c & 1);
            else
                msix_table_access(dev.msix, off, buf, len, c & 1);
            break;
        }
        case OP_MSIX_CTRL:
            pci_host_cfg_write(h, 1, (uint32_t)cap + 2, 2, v);
            break;
        case OP_ENTRY:
            poke(&mmio, bar0 + TABLE_OFF + (a % NVEC) * MSIX_ENTRY_SIZE + (b & 3u) * 4, 4, true, v);
            break;
        case OP_FAIL_BIND:
            msi.fail = a % 4u;
            break;
        }
        /* Enable as the guest reads it is what the function does; a refused enable reads 0. */
        bool enable_bit = dev.pci.cfg[cap + 3] & 0x80;
        require(enable_bit == msix_enabled(dev.msix), "Enable reads back what is in force");
        require(!(msix_refused(dev.msix) && enable_bit), "a refused enable reads back 0");
        res->refused_seen |= msix_refused(dev.msix);
        if (msi.nbound > res->max_bound)
            res->max_bound = msi.nbound;
    }

    /* What the bus holds is what bar_mapped said, and it reaches the device. */
    for (unsigned i = 0; i < 2; i++) {
        require(dev.reported[i] == dev.pci.bar_mapped_at[i], "reported == mapped");
        if (!dev.pci.bar_mapped_at[i])
            continue;
        unsigned hits = res->bar_hits;
        uint8_t buf[4];
        require(bus_dispatch(i ? &pio : &mmio, dev.pci.bar_mapped_at[i], buf, 4, false) &&
                    res->bar_hits == hits + 1,
                "a mapped BAR decodes");
    }
    uint8_t pba[8];
    msix_pba_access(dev.msix, 0, pba, 8, false);
    require(pba[1] == 0 && le_get32(pba + 4) == 0, "no pending bit past the last vector");
    for (unsigned v = 0; v < NVEC; v++) {
        int fd = msix_vector_fd(dev.msix, v);
        require((fd >= 0) == msix_enabled(dev.msix), "vector fds while enabled");
        uint64_t count = 0;
        if (fd >= 0 && read(fd, &count, sizeof(count)) == sizeof(count))
            res->delivered += (unsigned)count;
    }

    pci_host_destroy(h);
    require(dev.reported[0] == 0 && dev.reported[1] == 0, "destroy stops the BARs");
    msix_destroy(dev.msix);
    require(msi.nbound == 0 && msi.bound == 0, "every route unbound");
    require(pio.count == 0 && mmio.count == 0, "both buses empty");
    bus_free(&pio);
    bus_free(&mmio);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_result res;
    run(data, size, &res);
    return 0;
}

#ifdef FUZZ_PCI_GEN_CORPUS
#include <sys/stat.h>

struct seed {
    uint8_t buf[REC * 256];
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

/* Configuration dword of slot 1 (or 0), through the ports as Linux does. */
static void cfg_write(struct seed *s, uint8_t slot, uint8_t reg, uint32_t v)
{
    rec(s, OP_SELECT, slot, reg, 0, 0);
    rec(s, OP_DATA, 0, 2, 1, v);
}

static void cfg_read(struct seed *s, uint8_t slot, uint8_t reg)
{
    rec(s, OP_SELECT, slot, reg, 0, 0);
    rec(s, OP_DATA, 0, 2, 0, 0);
}

static void seed_probe(struct seed *s)
{
    /* pci_check_type1, then a scan of every slot, BAR sizing and the capability walk. */
    rec(s, OP_PIO, 5, 0, 1, 0x01); /* outb(0x01, 0xCFB) */
    rec(s, OP_PIO, 2, 2, 0, 0);
    rec(s, OP_CF8, 0, 0, 0, 0x80000000u);
    rec(s, OP_PIO, 2, 2, 0, 0);
    for (uint8_t slot = 0; slot < 3; slot++)
        cfg_read(s, slot, 0);
    for (uint8_t bar = 0; bar < 6; bar++) {
        cfg_read(s, 1, (uint8_t)(0x10 + 4 * bar));
        cfg_write(s, 1, (uint8_t)(0x10 + 4 * bar), 0xffffffffu);
        cfg_read(s, 1, (uint8_t)(0x10 + 4 * bar));
    }
    cfg_write(s, 1, 0x10, (uint32_t)PCI_MMIO_BASE);
    cfg_write(s, 1, 0x14, PCI_IO_BASE | 1u);
    cfg_read(s, 1, 0x34);
    cfg_read(s, 1, 0x40);
    rec(s, OP_MMIO, 0x10, 0x30, 2, 0);
    rec(s, OP_IO_BAR, 4, 2, 0, 0);
}

static void seed_msix(struct seed *s)
{
    /* msix_capability_init: enable with the function masked, program, unmask. */
    rec(s, OP_MSIX_CTRL, 0, 0, 0, 0xc000);
    for (uint8_t v = 0; v < NVEC; v++) {
        rec(s, OP_ENTRY, v, 0, 0, 0xfee00000u);
        rec(s, OP_ENTRY, v, 1, 0, 0);
        rec(s, OP_ENTRY, v, 2, 0, 0x40u + v);
        rec(s, OP_ENTRY, v, 3, 0, v == 1);
    }
    rec(s, OP_MSIX_CTRL, 0, 0, 0, 0x8000);
    for (uint8_t v = 0; v < NVEC; v++)
        rec(s, OP_NOTIFY, v, 0, 0, 0);
    rec(s, OP_MMIO, 0x00, 0x20, 2, 0); /* PBA: vector 1 pending */
    rec(s, OP_ENTRY, 1, 3, 0, 0);      /* unmask: sent */
    rec(s, OP_NOTIFY, 0xff, 0, 1, 0xffffffffu);
    rec(s, OP_DIRECT, 8, 0xff, 0, 0xfffffff8u);
    rec(s, OP_MMIO, 0x7c, 0, 0x42, 0);
}

static void seed_bind_failure(struct seed *s)
{
    /* Out of routes at the first enable: refused; the driver gives up and tries again. */
    rec(s, OP_FAIL_BIND, 2, 0, 0, 0);
    rec(s, OP_MSIX_CTRL, 0, 0, 0, 0xc000);
    rec(s, OP_NOTIFY, 0, 0, 0, 0);
    rec(s, OP_MSIX_CTRL, 0, 0, 0, 0);
    rec(s, OP_ENTRY, 0, 0, 0, 0xfee00000u);
    rec(s, OP_ENTRY, 0, 3, 0, 0);
    rec(s, OP_MSIX_CTRL, 0, 0, 0, 0x8000);
    rec(s, OP_NOTIFY, 0, 0, 0, 0);
}

static void seed_move(struct seed *s)
{
    rec(s, OP_INTX, 1, 0, 0, 0);
    cfg_write(s, 1, 0x04, 0x0400 | 7); /* INTX_DISABLE */
    cfg_write(s, 1, 0x04, 0);          /* decode off */
    cfg_write(s, 1, 0x10, (uint32_t)PCI_MMIO_BASE + 0x100000);
    cfg_write(s, 1, 0x14, 0x1001);
    cfg_write(s, 1, 0x04, 7);
    rec(s, OP_MMIO, 0x00, 0x30, 2, 0);
    rec(s, OP_IO_BAR, 0, 2, 1, 0x1234);
    cfg_write(s, 1, 0x10, 0xffffffffu);
    cfg_write(s, 1, 0x10, (uint32_t)PCI_MMIO_BASE + 0x200000);
    rec(s, OP_INTX, 0, 0, 0, 0);
}

static void write_seed(const char *dir, const char *name, const struct seed *s)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s->buf, 1, s->len, f) != s->len || fclose(f) != 0) {
        fprintf(stderr, "fuzz_gen_corpus_pci: %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_gen_corpus_pci OUTDIR\n");
        return 2;
    }
    if (mkdir(argv[1], 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "fuzz_gen_corpus_pci: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    struct fuzz_result res;
    static struct seed s;

    memset(&s, 0, sizeof(s));
    seed_probe(&s);
    run(s.buf, s.len, &res);
    require(res.host_ident == 0x0d578086u && res.bar_moves >= 6 && res.bar_hits >= 2,
            "probe seed: host bridge seen, BARs sized and decoding");
    write_seed(argv[1], "probe", &s);

    memset(&s, 0, sizeof(s));
    seed_msix(&s);
    run(s.buf, s.len, &res);
    require(res.max_bound == NVEC && res.delivered == NVEC && res.pending_seen,
            "msix seed: bound, delivered, one held back");
    write_seed(argv[1], "msix", &s);

    memset(&s, 0, sizeof(s));
    seed_bind_failure(&s);
    run(s.buf, s.len, &res);
    require(res.refused_seen && res.max_bound == NVEC && res.delivered == 2,
            "bind-failure seed: refused, then bound and delivered");
    write_seed(argv[1], "bind-failure", &s);

    memset(&s, 0, sizeof(s));
    seed_move(&s);
    run(s.buf, s.len, &res);
    require(res.intx_asserted && res.bar_moves >= 6 && res.bar_hits >= 2,
            "move seed: INTx raised, BARs moved and decoding");
    write_seed(argv[1], "move", &s);
    return 0;
}
#endif
