/* SPDX-License-Identifier: MIT */
/* PCI host tests: configuration mechanism #1 through the port bus as Linux drives it, BARs,
 * decoding, capabilities and INTx. */
#include "../check.h"

#include <errno.h>
#include <pthread.h>

#include "dev/acpi_pm.h"
#include "pci/pci.h"
#include "lib/le.h"

#define CF8 0xcf8
#define CFC 0xcfc

static struct bus pio, mmio;

/* ---------------------------------------------------------------- fakes */

struct fake_irq {
    pthread_mutex_t lock;
    bool level[24];
    int calls;
};
static struct fake_irq irq = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void fake_irq_set(void *opaque, unsigned gsi, bool level)
{
    struct fake_irq *f = opaque;
    pthread_mutex_lock(&f->lock);
    if (gsi < 24)
        f->level[gsi] = level;
    f->calls++;
    pthread_mutex_unlock(&f->lock);
}

/* A device with a 4 KiB memory BAR 0, a 32-byte I/O BAR 1 and a 64 KiB memory BAR 2 that
 * counts accesses and remembers bar_mapped calls. */
struct fake_dev {
    struct pci_device pci;
    int accesses[PCI_NUM_BARS];
    uint64_t last_off;
    struct {
        unsigned bar;
        uint64_t addr;
    } mapped[64];
    unsigned nmapped;
    unsigned written;
};

struct bar_ctx {
    struct fake_dev *dev;
    unsigned bar;
};
static struct bar_ctx bar_ctx[4][PCI_NUM_BARS];

static void bar_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    struct bar_ctx *c = opaque;
    c->dev->accesses[c->bar]++;
    c->dev->last_off = offset;
    if (!write)
        memset(data, 0x5a, len);
}

static void on_bar_mapped(void *opaque, unsigned bar, uint64_t addr)
{
    struct fake_dev *f = opaque;
    if (f->nmapped < 64) {
        f->mapped[f->nmapped].bar = bar;
        f->mapped[f->nmapped].addr = addr;
    }
    f->nmapped++;
}

static void on_config_written(void *opaque, uint32_t off, uint32_t len)
{
    struct fake_dev *f = opaque;
    (void)off;
    (void)len;
    f->written++;
}

static const struct pci_device_ops fake_ops = {on_bar_mapped, on_config_written};

static void fake_init(struct fake_dev *f, unsigned idx, bool bars)
{
    memset(f, 0, sizeof(*f));
    pci_device_init(&f->pci, "fake", 0x1af4, 0x1044 + idx, 0x00ff00, 1, 0x1af4, 0x1100 + idx,
                    &fake_ops, f);
    if (!bars)
        return;
    const uint64_t sizes[3] = {4096, 32, 0x10000};
    for (unsigned i = 0; i < 3; i++) {
        bar_ctx[idx][i] = (struct bar_ctx){f, i};
        struct pci_bar_desc b = {sizes[i], i == 1, bar_access, &bar_ctx[idx][i]};
        CHECK_EQ(pci_device_set_bar(&f->pci, i, &b), 0);
    }
}

static struct pci_host *make(void)
{
    bus_init(&pio, "pio");
    bus_init(&mmio, "mmio");
    pthread_mutex_lock(&irq.lock);
    memset(irq.level, 0, sizeof(irq.level));
    irq.calls = 0;
    pthread_mutex_unlock(&irq.lock);
    struct pci_host_config cfg = {&pio, &mmio, fake_irq_set, &irq};
    struct pci_host *h = NULL;
    int ret = pci_host_create(&cfg, &h);
    CHECK(ret == 0 && h, "pci_host_create: %d", ret);
    return h;
}

static void done(struct pci_host *h)
{
    pci_host_destroy(h);
    CHECK_EQ(pio.count, 0);
    CHECK_EQ(mmio.count, 0);
    bus_free(&pio);
    bus_free(&mmio);
}

/* ---------------------------------------------------------------- port helpers */

static uint32_t in(uint16_t port, uint32_t len)
{
    uint8_t b[4] = {0};
    bus_dispatch(&pio, port, b, len, false);
    return (uint32_t)le_get(b, len);
}

static void out(uint16_t port, uint32_t v, uint32_t len)
{
    uint8_t b[4];
    le_put32(b, v);
    bus_dispatch(&pio, port, b, len, true);
}

static uint32_t addr_of(unsigned bus, unsigned slot, unsigned fn, unsigned off)
{
    return 0x80000000u | bus << 16 | slot << 11 | fn << 8 | (off & 0xfc);
}

/* Linux's pci_conf1_read/write: dword address, then the data port at off & 3. */
static uint32_t cfg_rd(unsigned slot, unsigned off, uint32_t len)
{
    out(CF8, addr_of(0, slot, 0, off), 4);
    return in((uint16_t)(CFC + (off & 3)), len);
}

static void cfg_wr(unsigned slot, unsigned off, uint32_t len, uint32_t v)
{
    out(CF8, addr_of(0, slot, 0, off), 4);
    out((uint16_t)(CFC + (off & 3)), v, len);
}

static bool mmio_hit(uint64_t addr)
{
    uint8_t b[4];
    return bus_dispatch(&mmio, addr, b, 4, false);
}

/* ---------------------------------------------------------------- tests */

static void test_pci_config_address(void)
{
    struct pci_host *h = make();
    /* Linux's pci_check_type1, verbatim in order. */
    out(0xcfb, 0x01, 1);
    uint32_t tmp = in(CF8, 4);
    out(CF8, 0x80000000u, 4);
    CHECK_EQ(in(CF8, 4), 0x80000000u);
    out(CF8, tmp, 4);
    CHECK_EQ(in(CF8, 4), tmp);
    /* Reserved bits 30:24 and 1:0 read 0; the rest is kept; narrower reads see its bytes. */
    out(CF8, 0xffffffffu, 4);
    CHECK_EQ(in(CF8, 4), 0x80fffffcu);
    CHECK_EQ(in(0xcf9, 1), 0xff);
    CHECK_EQ(in(0xcfa, 2), 0x80ff);
    /* Byte and word writes leave it alone (type-2 probing, or a stray reboot=pci write). */
    out(CF8, 0x80001234u & ~3u, 4);
    out(0xcf9, 0x06, 1);
    out(0xcfa, 0, 2);
    out(CF8, 0, 1);
    CHECK_EQ(in(CF8, 4), 0x80001234u & ~3u);
    done(h);
}

static void test_pci_host_bridge(void)
{
    struct pci_host *h = make();
    CHECK_EQ(cfg_rd(0, 0x00, 4), 0x0d578086u);
    CHECK_EQ(cfg_rd(0, 0x00, 2), 0x8086);
    CHECK_EQ(cfg_rd(0, 0x02, 2), 0x0d57);
    CHECK_EQ(cfg_rd(0, 0x08, 4) >> 8, 0x060000); /* host bridge */
    CHECK_EQ(cfg_rd(0, 0x0a, 2), 0x0600);        /* what pci_sanity_check compares */
    CHECK_EQ(cfg_rd(0, 0x0e, 1), 0x00);          /* type 0, single function */
    CHECK_EQ(cfg_rd(0, 0x3d, 1), 0);             /* no interrupt pin */
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        cfg_wr(0, PCI_BAR0 + 4 * i, 4, 0xffffffffu);
        CHECK_EQ(cfg_rd(0, PCI_BAR0 + 4 * i, 4), 0);
    }
    /* Read-only identity. */
    cfg_wr(0, 0x00, 4, 0x12345678u);
    CHECK_EQ(cfg_rd(0, 0x00, 4), 0x0d578086u);
    /* Public accessors agree with the ports. */
    CHECK_EQ(pci_host_cfg_read(h, 0, 0, 4), 0x0d578086u);
    CHECK_EQ(pci_host_cfg_read(h, 0, 2, 2), 0x0d57);
    CHECK_EQ(pci_host_cfg_read(h, 0, 1, 2), 0xffff); /* misaligned: refused */
    CHECK_EQ(pci_host_cfg_read(h, 0, 0, 3), 0xffffffffu);
    CHECK_EQ(pci_host_cfg_read(h, 0, 256, 4), 0xffffffffu);
    done(h);
}

static void test_pci_absent_functions(void)
{
    struct pci_host *h = make();
    struct fake_dev f;
    fake_init(&f, 0, false);
    CHECK_EQ(pci_host_add(h, &f.pci), 0);
    CHECK_EQ(f.pci.slot, 1);
    CHECK_EQ(cfg_rd(1, 0, 4), 0x10441af4u);
    for (unsigned slot = 2; slot < 32; slot++)
        CHECK_EQ(cfg_rd(slot, 0, 4), 0xffffffffu);
    CHECK_EQ(cfg_rd(7, 0x02, 2), 0xffff);
    CHECK_EQ(cfg_rd(7, 0x0b, 1), 0xff);
    /* Other functions and buses, and the enable bit clear. */
    out(CF8, addr_of(0, 1, 1, 0), 4);
    CHECK_EQ(in(CFC, 4), 0xffffffffu);
    out(CF8, addr_of(1, 0, 0, 0), 4);
    CHECK_EQ(in(CFC, 4), 0xffffffffu);
    out(CF8, addr_of(0, 0, 0, 0) & ~0x80000000u, 4);
    CHECK_EQ(in(CFC, 4), 0xffffffffu);
    out(CFC, 0, 4); /* dropped */
    CHECK_EQ(cfg_rd(0, 0, 4), 0x0d578086u);
    CHECK_EQ(pci_host_cfg_read(h, 9, 0, 4), 0xffffffffu);
    CHECK_EQ(pci_host_cfg_read(h, 1000, 0, 4), 0xffffffffu);
    pci_host_cfg_write(h, 1000, 4, 2, 0xffff);
    done(h);
}

static void test_pci_data_port_lanes(void)
{
    struct pci_host *h = make();
    out(CF8, addr_of(0, 0, 0, 0), 4);
    CHECK_EQ(in(CFC, 1), 0x86);
    CHECK_EQ(in(CFC + 1, 1), 0x80);
    CHECK_EQ(in(CFC + 2, 1), 0x57);
    CHECK_EQ(in(CFC + 3, 1), 0x0d);
    CHECK_EQ(in(CFC + 1, 2), 0x5780); /* unaligned inside the dword */
    CHECK_EQ(in(CFC + 2, 2), 0x0d57);
    /* A byte write to the interrupt line through lane 0 of dword 0x3c. */
    out(CF8, addr_of(0, 0, 0, PCI_INT_LINE), 4);
    out(CFC, 0x0b, 1);
    CHECK_EQ(pci_host_cfg_read(h, 0, PCI_INT_LINE, 1), 0x0b);
    done(h);
}

static void test_pci_bar_placement_and_sizing(void)
{
    struct pci_host *h = make();
    struct fake_dev f;
    fake_init(&f, 0, true);
    CHECK_EQ(pci_host_add(h, &f.pci), 0);
    /* Firmware did its job: decoding on, BARs naturally aligned in the windows. */
    CHECK_EQ(cfg_rd(1, PCI_COMMAND, 2) & 7,
             PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    CHECK_EQ(cfg_rd(1, PCI_BAR0, 4), PCI_MMIO_BASE);
    CHECK_EQ(cfg_rd(1, PCI_BAR0 + 4, 4), PCI_IO_BASE | 1);
    CHECK_EQ(cfg_rd(1, PCI_BAR0 + 8, 4), PCI_MMIO_BASE + 0x10000);
    CHECK_EQ(f.pci.bar_mapped_at[0], PCI_MMIO_BASE);
    CHECK_EQ(f.pci.bar_mapped_at[1], PCI_IO_BASE);
    CHECK_EQ(f.pci.bar_mapped_at[2], PCI_MMIO_BASE + 0x10000);
    CHECK_EQ(f.nmapped, 3);
    CHECK_EQ(cfg_rd(1, PCI_INT_PIN, 1), 1);
    CHECK_EQ(cfg_rd(1, PCI_INT_LINE, 1), PCI_INTX_GSI_BASE + 1);
    CHECK(mmio_hit(PCI_MMIO_BASE + 0x10) && f.accesses[0] == 1 && f.last_off == 0x10,
          "BAR 0 decodes");
    uint8_t b = 0;
    CHECK(bus_dispatch(&pio, PCI_IO_BASE + 31, &b, 1, false) && f.accesses[1] == 1,
          "BAR 1 decodes");

    /* Linux's __pci_read_base: save, write all ones, read the mask, restore. */
    const uint32_t masks[PCI_NUM_BARS] = {0xfffff000u, 0xffffffe1u, 0xffff0000u, 0, 0, 0};
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        uint32_t orig = cfg_rd(1, PCI_BAR0 + 4 * i, 4);
        cfg_wr(1, PCI_BAR0 + 4 * i, 4, 0xffffffffu);
        CHECK(cfg_rd(1, PCI_BAR0 + 4 * i, 4) == masks[i], "BAR %u mask %#x", i,
              cfg_rd(1, PCI_BAR0 + 4 * i, 4));
        cfg_wr(1, PCI_BAR0 + 4 * i, 4, orig);
        CHECK_EQ(cfg_rd(1, PCI_BAR0 + 4 * i, 4), orig);
    }
    /* With decoding left on, sizing took each BAR off the bus and put it back. */
    CHECK_EQ(f.nmapped, 3 + 6);
    CHECK_EQ(f.pci.bar_mapped_at[0], PCI_MMIO_BASE);
    CHECK(mmio_hit(PCI_MMIO_BASE), "BAR 0 back");
    /* No expansion ROM. */
    cfg_wr(1, 0x30, 4, 0xffffffffu);
    CHECK_EQ(cfg_rd(1, 0x30, 4), 0);

    /* A second device goes after the first. */
    struct fake_dev g;
    fake_init(&g, 1, true);
    CHECK_EQ(pci_host_add(h, &g.pci), 0);
    CHECK_EQ(g.pci.slot, 2);
    CHECK_EQ(cfg_rd(2, PCI_BAR0, 4), PCI_MMIO_BASE + 0x20000);
    CHECK_EQ(cfg_rd(2, PCI_BAR0 + 4, 4), (PCI_IO_BASE + 32) | 1);
    CHECK_EQ(cfg_rd(2, PCI_BAR0 + 8, 4), PCI_MMIO_BASE + 0x30000);
    CHECK_EQ(cfg_rd(2, PCI_INT_LINE, 1), PCI_INTX_GSI_BASE + 2);
    done(h);
    /* Destroy stopped every BAR. */
    CHECK_EQ(f.mapped[(f.nmapped - 1) % 64].addr, 0);
    CHECK_EQ(f.pci.bar_mapped_at[0] | f.pci.bar_mapped_at[1] | f.pci.bar_mapped_at[2], 0);
}

static void test_pci_bar_move(void)
{
    struct pci_host *h = make();
    struct fake_dev f;
    fake_init(&f, 0, true);
    CHECK_EQ(pci_host_add(h, &f.pci), 0);
    f.nmapped = 0;
    uint64_t to = PCI_MMIO_BASE + 0x100000;
    cfg_wr(1, PCI_BAR0, 4, (uint32_t)to);
    CHECK_EQ(f.pci.bar_mapped_at[0], to);
    CHECK_EQ(f.nmapped, 2); /* stop at the old address, start at the new */
    CHECK(f.mapped[0].bar == 0 && f.mapped[0].addr == 0, "stop first");
    CHECK(f.mapped[1].bar == 0 && f.mapped[1].addr == to, "then start");
    CHECK(!mmio_hit(PCI_MMIO_BASE), "old address free");
    CHECK(mmio_hit(to + 0xffc) && f.accesses[0] == 1 && f.last_off == 0xffc, "new address");
    CHECK(!mmio_hit(to + 0x1000), "only 4 KiB");
    /* Writing the same address again changes nothing. */
    cfg_wr(1, PCI_BAR0, 4, (uint32_t)to);
    CHECK_EQ(f.nmapped, 2);
    /* Word writes move it too (the two halves of the address). */
    cfg_wr(1, PCI_BAR0 + 2, 2, (uint32_t)((to + 0x200000) >> 16));
    CHECK_EQ(f.pci.bar_mapped_at[0], to + 0x200000);

    /* Outside the window, or at 0: off the bus. */
    f.nmapped = 0;
    cfg_wr(1, PCI_BAR0, 4, 0x1000);
    CHECK_EQ(f.pci.bar_mapped_at[0], 0);
    CHECK(f.nmapped == 1 && f.mapped[0].addr == 0, "stopped");
    CHECK(!mmio_hit(0x1000), "not below the window");
    cfg_wr(1, PCI_BAR0, 4, (uint32_t)(PCI_MMIO_BASE + PCI_MMIO_SIZE - 0x1000));
    CHECK_EQ(f.pci.bar_mapped_at[0], PCI_MMIO_BASE + PCI_MMIO_SIZE - 0x1000);
    cfg_wr(1, PCI_BAR0 + 8, 4, (uint32_t)(PCI_MMIO_BASE + PCI_MMIO_SIZE - 0x10000));
    CHECK_EQ(f.pci.bar_mapped_at[2], 0); /* would overlap BAR 0 */
    cfg_wr(1, PCI_BAR0, 4, (uint32_t)PCI_MMIO_BASE);
    CHECK_EQ(f.pci.bar_mapped_at[0], PCI_MMIO_BASE);
    CHECK_EQ(f.pci.bar_mapped_at[2], PCI_MMIO_BASE + PCI_MMIO_SIZE - 0x10000); /* retried */
    cfg_wr(1, PCI_BAR0 + 8, 4, (uint32_t)(PCI_MMIO_BASE + PCI_MMIO_SIZE));
    CHECK_EQ(f.pci.bar_mapped_at[2], 0);

    /* I/O BARs: anywhere in 64 KiB but the configuration ports and other devices' ports. */
    cfg_wr(1, PCI_BAR0 + 4, 4, 0x1000);
    CHECK_EQ(f.pci.bar_mapped_at[1], 0x1000);
    cfg_wr(1, PCI_BAR0 + 4, 4, 0xce0);
    CHECK_EQ(f.pci.bar_mapped_at[1], 0); /* 0xce0-0xcff covers 0xcf8 */
    cfg_wr(1, PCI_BAR0 + 4, 4, 0xffe0);
    CHECK_EQ(f.pci.bar_mapped_at[1], 0xffe0);
    cfg_wr(1, PCI_BAR0 + 4, 4, 0x10000);
    CHECK_EQ(f.pci.bar_mapped_at[1], 0);
    CHECK_EQ(cfg_rd(1, PCI_BAR0 + 4, 4), 0x10001);
    done(h);
}

static void test_pci_decode_enable(void)
{
    struct pci_host *h = make();
    struct fake_dev f;
    fake_init(&f, 0, true);
    CHECK_EQ(pci_host_add(h, &f.pci), 0);
    unsigned ranges = mmio.count;
    f.nmapped = 0;
    uint16_t cmd = (uint16_t)cfg_rd(1, PCI_COMMAND, 2);
    cfg_wr(1, PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MEMORY);
    CHECK_EQ(mmio.count, ranges - 2);
    CHECK(!mmio_hit(PCI_MMIO_BASE), "memory decode off");
    CHECK_EQ(f.pci.bar_mapped_at[0], 0);
    CHECK_EQ(f.pci.bar_mapped_at[1], PCI_IO_BASE); /* I/O untouched */
    CHECK_EQ(f.nmapped, 2);
    /* The BARs can be written while off; they come back where they were put. */
    cfg_wr(1, PCI_BAR0, 4, (uint32_t)PCI_MMIO_BASE + 0x40000);
    CHECK_EQ(f.pci.bar_mapped_at[0], 0);
    cfg_wr(1, PCI_COMMAND, 2, cmd);
    CHECK_EQ(f.pci.bar_mapped_at[0], PCI_MMIO_BASE + 0x40000);
    CHECK(mmio_hit(PCI_MMIO_BASE + 0x40000), "back on");
    CHECK_EQ(f.nmapped, 4);
    cfg_wr(1, PCI_COMMAND, 1, 0); /* byte write of the low half */
    CHECK_EQ(mmio.count, ranges - 2);
    CHECK_EQ(f.pci.bar_mapped_at[1], 0);
    CHECK(f.written >= 4, "config_written called");
    done(h);
}

static void test_pci_capabilities(void)
{
    struct pci_host *h = make();
    struct fake_dev f;
    fake_init(&f, 0, false);
    CHECK_EQ(cfg_rd(0, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
    uint8_t c1[6] = {PCI_CAP_ID_VNDR, 0xee, 6, 0x11, 0x22, 0x33};
    uint8_t w1[6] = {0xff, 0xff, 0, 0xff, 0, 0};
    uint8_t c2[17] = {PCI_CAP_ID_VNDR, 0, 17, 0x44};
    CHECK_EQ(pci_device_add_cap(&f.pci, c1, sizeof(c1), w1), 0x40);
    CHECK_EQ(pci_device_add_cap(&f.pci, c2, sizeof(c2), NULL), 0x48); /* dword aligned */
    CHECK_EQ(pci_device_add_cap(&f.pci, c2, 1, NULL), -EINVAL);
    CHECK_EQ(pci_host_add(h, &f.pci), 0);
    CHECK(cfg_rd(1, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, "STATUS.CAP_LIST");
    /* Walk it as Linux's pci_find_capability does. */
    unsigned p = cfg_rd(1, PCI_CAP_PTR, 1), n = 0, offs[4];
    while (p && n < 4) {
        CHECK_EQ(p & 3, 0);
        CHECK_EQ(cfg_rd(1, p, 1), PCI_CAP_ID_VNDR);
        offs[n++] = p;
        p = cfg_rd(1, p + 1, 1);
    }
    CHECK(n == 2 && offs[0] == 0x40 && offs[1] == 0x48, "two capabilities, %u", n);
    CHECK_EQ(cfg_rd(1, 0x4b, 1), 0x44);
    /* Only the bits the device allowed; never the ID or the link. */
    cfg_wr(1, 0x40, 4, 0xffffffffu);
    CHECK_EQ(cfg_rd(1, 0x40, 4), 0xff064809u);
    cfg_wr(1, 0x48, 4, 0);
    CHECK_EQ(cfg_rd(1, 0x48, 4), 0x44110009u);
    /* Space runs out. */
    uint8_t big[200] = {PCI_CAP_ID_VNDR};
    CHECK_EQ(pci_device_add_cap(&f.pci, big, 100, NULL), -EINVAL); /* added already */
    struct fake_dev g;
    fake_init(&g, 1, false);
    CHECK_EQ(pci_device_add_cap(&g.pci, big, 192, NULL), 0x40);
    CHECK_EQ(pci_device_add_cap(&g.pci, big, 2, NULL), -ENOSPC);
    struct fake_dev k;
    fake_init(&k, 2, false);
    CHECK_EQ(pci_device_add_cap(&k.pci, big, 200, NULL), -ENOSPC);
    done(h);
}

static void test_pci_intx(void)
{
    struct pci_host *h = make();
    struct fake_dev f[3];
    for (unsigned i = 0; i < 3; i++) {
        fake_init(&f[i], i, false);
        CHECK_EQ(pci_host_add(h, &f[i].pci), 0);
    }
    unsigned gsi = PCI_INTX_GSI_BASE + 2 % PCI_INTX_GSIS;
    CHECK_EQ(f[1].pci.intx.gsi, gsi);
    pci_device_set_intx(&f[1].pci, true);
    CHECK(irq.level[gsi], "INTA of slot 2 asserted");
    CHECK_EQ(cfg_rd(2, PCI_STATUS, 2) & PCI_STATUS_INTX, PCI_STATUS_INTX);
    CHECK_EQ(cfg_rd(1, PCI_STATUS, 2) & PCI_STATUS_INTX, 0);
    CHECK_EQ(cfg_rd(2, PCI_STATUS, 1) & PCI_STATUS_INTX, PCI_STATUS_INTX);
    int calls = irq.calls;
    pci_device_set_intx(&f[1].pci, true); /* no new edge for the same level */
    CHECK_EQ(irq.calls, calls);
    /* INTX_DISABLE: pin off, status still shows the request (PCI 3.0 §6.2.2-6.2.3). */
    uint16_t cmd = (uint16_t)cfg_rd(2, PCI_COMMAND, 2);
    cfg_wr(2, PCI_COMMAND, 2, cmd | PCI_COMMAND_INTX_DISABLE);
    CHECK(!irq.level[gsi], "masked by INTX_DISABLE");
    CHECK_EQ(cfg_rd(2, PCI_STATUS, 2) & PCI_STATUS_INTX, PCI_STATUS_INTX);
    pci_device_set_intx(&f[1].pci, false);
    pci_device_set_intx(&f[1].pci, true);
    CHECK(!irq.level[gsi], "still masked");
    cfg_wr(2, PCI_COMMAND + 1, 1, 0); /* high byte only */
    CHECK(irq.level[gsi], "re-asserted when INTX_DISABLE clears");
    pci_device_set_intx(&f[1].pci, false);
    CHECK(!irq.level[gsi], "deasserted");
    CHECK_EQ(cfg_rd(2, PCI_STATUS, 2) & PCI_STATUS_INTX, 0);
    /* STATUS.INTX is read-only; the RW1C error bits stay clear. */
    cfg_wr(2, PCI_STATUS, 2, 0xffff);
    CHECK_EQ(cfg_rd(2, PCI_STATUS, 2), 0);
    /* A level raised before the device is placed reaches its pin when it is. */
    struct fake_dev late;
    fake_init(&late, 3, false);
    pci_device_set_intx(&late.pci, true);
    CHECK_EQ(pci_host_add(h, &late.pci), 0);
    CHECK(irq.level[PCI_INTX_GSI_BASE + 4], "slot 4 asserted on add");
    done(h);
}

struct race {
    struct pci_device *d;
    int n;
};

static void *intx_toggler(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < r->n; i++)
        pci_device_set_intx(r->d, i & 1);
    pci_device_set_intx(r->d, true);
    return NULL;
}

/* The pin must end where the last inputs leave it, whatever the interleaving. */
static void test_pci_intx_threads(void)
{
    struct pci_host *h = make();
    struct fake_dev f;
    fake_init(&f, 0, false);
    CHECK_EQ(pci_host_add(h, &f.pci), 0);
    struct race r = {&f.pci, 20000};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, intx_toggler, &r), 0);
    for (int i = 0; i < 20000; i++)
        pci_host_cfg_write(h, 1, PCI_COMMAND, 2, (i & 1) ? PCI_COMMAND_INTX_DISABLE : 0);
    pci_host_cfg_write(h, 1, PCI_COMMAND, 2, 0);
    pthread_join(t, NULL);
    CHECK(irq.level[PCI_INTX_GSI_BASE + 1], "asserted at the end");
    pci_device_set_intx(&f.pci, false);
    CHECK(!irq.level[PCI_INTX_GSI_BASE + 1], "deasserted");
    done(h);
}

static void test_pci_add_errors(void)
{
    struct pci_host *h = make();
    struct fake_dev f;
    fake_init(&f, 0, false);
    struct pci_bar_desc b = {4096, false, bar_access, NULL};
    CHECK_EQ(pci_device_set_bar(&f.pci, 6, &b), -EINVAL);
    b.size = 2048;
    CHECK_EQ(pci_device_set_bar(&f.pci, 0, &b), -EINVAL); /* memory BARs have their own pages */
    b.size = 3 * 4096;
    CHECK_EQ(pci_device_set_bar(&f.pci, 0, &b), -EINVAL);
    b = (struct pci_bar_desc){512, true, bar_access, NULL};
    CHECK_EQ(pci_device_set_bar(&f.pci, 0, &b), -EINVAL);
    b.size = 2;
    CHECK_EQ(pci_device_set_bar(&f.pci, 0, &b), -EINVAL);
    b = (struct pci_bar_desc){PCI_MMIO_SIZE / 2, false, bar_access, NULL};
    CHECK_EQ(pci_device_set_bar(&f.pci, 0, &b), 0);
    CHECK_EQ(pci_device_set_bar(&f.pci, 0, &b), -EEXIST);
    CHECK_EQ(pci_device_set_bar(&f.pci, 1, &b), 0);
    CHECK_EQ(pci_host_add(h, &f.pci), 0); /* fills the window */
    CHECK_EQ(pci_host_add(h, &f.pci), -EINVAL);
    CHECK_EQ(pci_device_set_bar(&f.pci, 2, &b), -EINVAL);
    struct fake_dev g;
    fake_init(&g, 1, true);
    CHECK_EQ(pci_host_add(h, &g.pci), -ENOSPC);
    CHECK(g.pci.host == NULL && cfg_rd(2, 0, 4) == 0xffffffffu, "nothing left behind");
    done(h);

    /* Something else on the bus inside the window: -EBUSY, device untouched. */
    h = make();
    CHECK_EQ(bus_register(&mmio, PCI_MMIO_BASE + 0x10000, 0x1000, bar_access, NULL, "squat"), 0);
    fake_init(&g, 1, true);
    uint8_t before[PCI_CFG_SIZE];
    memcpy(before, g.pci.cfg, sizeof(before));
    CHECK_EQ(pci_host_add(h, &g.pci), -EBUSY);
    CHECK(memcmp(before, g.pci.cfg, sizeof(before)) == 0, "config space restored");
    CHECK_EQ(mmio.count, 1);
    CHECK_EQ(pio.count, 2);
    CHECK_EQ(bus_unregister(&mmio, PCI_MMIO_BASE + 0x10000, NULL), 0);
    CHECK_EQ(pci_host_add(h, &g.pci), 0);
    CHECK_EQ(g.pci.slot, 1);
    done(h);

    /* Every slot taken. */
    h = make();
    static struct fake_dev many[PCI_MAX_SLOTS];
    for (unsigned i = 0; i < PCI_MAX_SLOTS - 1; i++) {
        fake_init(&many[i], 0, false);
        CHECK_EQ(pci_host_add(h, &many[i].pci), 0);
    }
    fake_init(&many[PCI_MAX_SLOTS - 1], 0, false);
    CHECK_EQ(pci_host_add(h, &many[PCI_MAX_SLOTS - 1].pci), -ENOSPC);
    CHECK_EQ(cfg_rd(31, 0, 2), 0x1af4);
    done(h);

    struct pci_host_config cfg = {&pio, NULL, NULL, NULL};
    CHECK_EQ(pci_host_create(&cfg, &h), -EINVAL);
    pci_host_destroy(NULL);
}

/* The ACPI reset register moved off 0xCF9: acpi_pm with the defaults and the PCI host share one
 * port bus in either order, and 0xCF8-0xCFF belong to the host alone. */
static void test_pci_ports_vs_acpi_reset(void)
{
    struct acpi_ports ports = ACPI_PORTS_DEFAULT;
    CHECK(ports.reset < CF8 || ports.reset > CFC + 3, "reset register at %#x", ports.reset);
    for (int order = 0; order < 2; order++) {
        bus_init(&pio, "pio");
        bus_init(&mmio, "mmio");
        struct acpi_pm_config pc = {.ports = ports};
        struct pci_host_config hc = {&pio, &mmio, NULL, NULL};
        struct acpi_pm *pm = NULL;
        struct pci_host *h = NULL;
        if (order)
            CHECK_EQ(pci_host_create(&hc, &h), 0);
        CHECK_EQ(acpi_pm_create(&pio, &pc, &pm), 0);
        if (!order)
            CHECK_EQ(pci_host_create(&hc, &h), 0);
        for (uint16_t p = CF8; p < CFC + 4; p++)
            CHECK(bus_register(&pio, p, 1, bar_access, NULL, "x") == -EEXIST, "port %#x", p);
        CHECK(bus_register(&pio, 0xcf7, 1, bar_access, NULL, "x") == 0, "0xcf7 free");
        CHECK(bus_register(&pio, 0xd00, 1, bar_access, NULL, "x") == 0, "0xd00 free");
        CHECK_EQ(bus_unregister(&pio, 0xcf7, NULL), 0);
        CHECK_EQ(bus_unregister(&pio, 0xd00, NULL), 0);
        pci_host_destroy(h);
        acpi_pm_destroy(pm);
        CHECK_EQ(pio.count, 0);
        bus_free(&pio);
        bus_free(&mmio);
    }
}

static bool contains(const uint8_t *p, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(p + i, needle, m) == 0)
            return true;
    return false;
}

static void test_pci_aml(void)
{
    struct pci_host *h = make();
    uint8_t buf[2048];
    struct acpi_aml a;
    acpi_aml_init(&a, buf, sizeof(buf));
    pci_host_aml(h, &a);
    size_t len = 0;
    CHECK_EQ(acpi_aml_finish(&a, &len), 0);
    CHECK(len > 400 && len < 1024, "PCI0 is %zu bytes", len);
    CHECK(buf[0] == 0x5b && buf[1] == 0x82, "a Device");
    CHECK(contains(buf, len, "PCI0", 4), "named PCI0");
    static const uint8_t hid[] = {'_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03};
    CHECK(contains(buf, len, hid, sizeof(hid)), "EisaId (PNP0A03)");
    /* _PRT entry of slot 31: Package (4) { 0x001FFFFF, Zero, Zero, 23 }. */
    static const uint8_t e31[] = {0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff,
                                  0x1f, 0x00, 0x00, 0x00, 0x0a, 0x17};
    CHECK(contains(buf, len, e31, sizeof(e31)), "_PRT entry for slot 31");
    /* Memory window 0xC0000000-0xDFFFFFFF, length 0x20000000. */
    static const uint8_t mem[] = {0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0,    0,    0,
                                  0,    0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf};
    CHECK(contains(buf, len, mem, sizeof(mem)), "DWordMemory window");
    /* Too small a buffer is reported, not overrun. */
    acpi_aml_init(&a, buf, 100);
    pci_host_aml(h, &a);
    CHECK_EQ(acpi_aml_finish(&a, &len), -ENOSPC);
    done(h);
}

int main(void)
{
    RUN(test_pci_config_address);
    RUN(test_pci_host_bridge);
    RUN(test_pci_absent_functions);
    RUN(test_pci_data_port_lanes);
    RUN(test_pci_bar_placement_and_sizing);
    RUN(test_pci_bar_move);
    RUN(test_pci_decode_enable);
    RUN(test_pci_capabilities);
    RUN(test_pci_intx);
    RUN(test_pci_intx_threads);
    RUN(test_pci_add_errors);
    RUN(test_pci_ports_vs_acpi_reset);
    RUN(test_pci_aml);
    return check_done();
}
