/* SPDX-License-Identifier: MIT */
/* The PCI host bridge: configuration mechanism #1, type-0 headers, BAR decoding, INTx, AML. */
#include "pci.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/le.h"

/* Configuration mechanism #1 (PCI Local Bus 3.0 §3.2.2.3.2). */
#define PCI_CONFIG_ADDRESS 0xcf8
#define PCI_CONFIG_DATA 0xcfc
#define CONFIG_ENABLE 0x80000000u
/* What CONFIG_ADDRESS keeps: enable, bus, device, function, dword register. Bits 30:24 are
 * reserved and bits 1:0 are read-only 0. */
#define CONFIG_ADDRESS_MASK 0x80fffffcu

#define HOST_VENDOR 0x8086 /* Intel */
#define HOST_DEVICE 0x0d57 /* the ID Cloud Hypervisor gives its virtual host bridge */
#define HOST_CLASS 0x060000u

#define PCI_CACHE_LINE_SIZE 0x0c
#define PCI_CAP_START 0x40 /* the type-0 header ends at 0x3f */

#define PCI_COMMAND_PARITY (1u << 6)
#define PCI_COMMAND_SERR (1u << 8)
/* STATUS bits 15:11 (parity, system, master/target aborts) and 8 (master data parity) are
 * RW1C (PCI Local Bus 3.0 §6.2.3). Nothing here sets them, but a guest clearing them must see
 * them stay clear. */
#define PCI_STATUS_W1C 0xf900u

#define BAR_IO_SPACE 0x1u
#define BAR_IO_MASK 0xfffffffcu
#define BAR_MEM_MASK 0xfffffff0u
#define IO_SPACE_END 0x10000u

struct pci_host {
    struct pci_host_config cfg;
    /* Serialises configuration accesses from all vCPUs, BAR (un)mapping and pci_host_add. */
    pthread_mutex_t lock;
    uint32_t config_address;
    struct pci_device bridge;
    struct pci_device *slots[PCI_MAX_SLOTS];
    uint64_t mmio_next; /* firmware-style placement cursors */
    uint32_t io_next;
};

static bool is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

static bool overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t size)
{
    return off < start + size && start < off + len;
}

/* ---------------------------------------------------------------- device header */

void pci_device_init(struct pci_device *d, const char *name, uint16_t vendor, uint16_t device,
                     uint32_t class_code, uint8_t revision, uint16_t subsys_vendor,
                     uint16_t subsys_id, const struct pci_device_ops *ops, void *opaque)
{
    memset(d, 0, sizeof(*d));
    le_put16(d->cfg + PCI_VENDOR_ID, vendor);
    le_put16(d->cfg + PCI_DEVICE_ID, device);
    d->cfg[PCI_REVISION] = revision;
    d->cfg[PCI_CLASS_PROG] = (uint8_t)class_code;
    le_put16(d->cfg + PCI_CLASS_PROG + 1, (uint16_t)(class_code >> 8));
    d->cfg[PCI_HEADER_TYPE] = 0x00; /* type 0, single function */
    le_put16(d->cfg + PCI_SUBSYS_VENDOR, subsys_vendor);
    le_put16(d->cfg + PCI_SUBSYS_ID, subsys_id);
    d->cfg[PCI_INT_PIN] = 1; /* INTA# */

    /* What QEMU and real functions let software write in the header; the rest is read-only
     * (PCI Local Bus 3.0 §6.2). BAR masks come with pci_device_set_bar; the expansion ROM BAR
     * stays read-only 0: no ROM. */
    le_put16(d->wmask + PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
                                         PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
                                         PCI_COMMAND_INTX_DISABLE);
    le_put16(d->w1c + PCI_STATUS, PCI_STATUS_W1C);
    d->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    d->wmask[PCI_INT_LINE] = 0xff;

    d->ops = ops;
    d->opaque = opaque;
    d->name = name ? name : "pci";
    d->cap_end = PCI_CAP_START;
    pthread_mutex_init(&d->intx_lock, NULL);
}

int pci_device_set_bar(struct pci_device *d, unsigned i, const struct pci_bar_desc *bar)
{
    if (!d || !bar || i >= PCI_NUM_BARS || !bar->access || !is_pow2(bar->size))
        return -EINVAL;
    if (bar->io ? bar->size < 4 || bar->size > 256 : bar->size < 4096 || bar->size > PCI_MMIO_SIZE)
        return -EINVAL;
    if (d->host)
        return -EINVAL; /* placed already */
    if (d->bars[i].size)
        return -EEXIST;
    d->bars[i] = *bar;
    uint32_t mask = (uint32_t) ~(bar->size - 1) & (bar->io ? BAR_IO_MASK : BAR_MEM_MASK);
    /* The low bits are the BAR's type: I/O space, or 32-bit non-prefetchable memory
     * (PCI Local Bus 3.0 §6.2.5.1). Writing all ones reads back the size mask with them. */
    le_put32(d->cfg + PCI_BAR0 + 4 * i, bar->io ? BAR_IO_SPACE : 0);
    le_put32(d->wmask + PCI_BAR0 + 4 * i, mask);
    return 0;
}

int pci_device_add_cap(struct pci_device *d, const void *body, uint8_t len, const void *wmask)
{
    if (!d || !body || len < 2 || d->host)
        return -EINVAL;
    /* Capabilities sit on dword boundaries: the low two bits of every pointer are reserved
     * (PCI Local Bus 3.0 §6.7). */
    uint32_t off = ((uint32_t)d->cap_end + 3) & ~3u;
    if (off + len > PCI_CFG_SIZE)
        return -ENOSPC;
    memcpy(d->cfg + off, body, len);
    d->cfg[off + 1] = 0; /* end of the list */
    if (wmask) {
        memcpy(d->wmask + off, wmask, len);
        d->wmask[off] = d->wmask[off + 1] = 0; /* ID and link stay the device's */
    }
    if (!d->cfg[PCI_CAP_PTR]) {
        d->cfg[PCI_CAP_PTR] = (uint8_t)off;
    } else {
        /* Only this code builds the list, so it is finite and in bounds; count anyway. */
        uint8_t p = d->cfg[PCI_CAP_PTR];
        for (unsigned n = 0; d->cfg[p + 1] && n < PCI_CFG_SIZE / 4; n++)
            p = d->cfg[p + 1];
        d->cfg[p + 1] = (uint8_t)off;
    }
    d->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
    /* A full space leaves cap_end at 0xff, which the next call rounds up to 0x100: -ENOSPC. */
    d->cap_end = off + len < PCI_CFG_SIZE ? (uint8_t)(off + len) : 0xff;
    return (int)off;
}

/* ---------------------------------------------------------------- INTx */

/* With intx_lock held: drive the pin when what the guest may see changed. The lock is held
 * across the callback so that two threads' edges reach the irqchip in the order they were
 * decided. */
static void intx_update_locked(struct pci_device *d)
{
    bool out = d->intx_level && !d->intx_disabled;
    if (out != d->intx_out) {
        d->intx_out = out;
        irq_line_set(&d->intx, out);
    }
}

void pci_device_set_intx(struct pci_device *d, bool level)
{
    pthread_mutex_lock(&d->intx_lock);
    d->intx_level = level;
    intx_update_locked(d);
    pthread_mutex_unlock(&d->intx_lock);
}

/* Under the configuration lock: COMMAND.INTX_DISABLE may have changed (PCI Local Bus 3.0
 * §6.2.2: setting it deasserts the pin; STATUS.INTX keeps showing the device's request). */
static void intx_command_changed(struct pci_device *d)
{
    bool disabled = le_get16(d->cfg + PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
    pthread_mutex_lock(&d->intx_lock);
    d->intx_disabled = disabled;
    intx_update_locked(d);
    pthread_mutex_unlock(&d->intx_lock);
}

/* ---------------------------------------------------------------- BAR decoding */

/* Where BAR i should decode now, 0 for nowhere: its space enabled in COMMAND and the address
 * wholly inside the host's windows (the ones _CRS describes). Anything else a guest writes,
 * such as all ones while sizing, leaves the BAR off the bus. */
static uint64_t bar_wanted(const struct pci_device *d, unsigned i)
{
    const struct pci_bar_desc *b = &d->bars[i];
    if (!b->size)
        return 0;
    uint16_t cmd = le_get16(d->cfg + PCI_COMMAND);
    uint32_t reg = le_get32(d->cfg + PCI_BAR0 + 4 * i);
    if (b->io) {
        uint64_t addr = reg & BAR_IO_MASK;
        if (!(cmd & PCI_COMMAND_IO) || !addr || addr + b->size > IO_SPACE_END ||
            overlaps((uint32_t)addr, (uint32_t)b->size, PCI_CONFIG_ADDRESS, 8))
            return 0;
        return addr;
    }
    uint64_t addr = reg & BAR_MEM_MASK;
    if (!(cmd & PCI_COMMAND_MEMORY) || addr < PCI_MMIO_BASE ||
        addr + b->size > PCI_MMIO_BASE + PCI_MMIO_SIZE)
        return 0;
    return addr;
}

static struct bus *bar_bus(const struct pci_host *h, const struct pci_device *d, unsigned i)
{
    return d->bars[i].io ? h->cfg.pio : h->cfg.mmio;
}

static void bar_unmap(struct pci_host *h, struct pci_device *d, unsigned i)
{
    if (!d->bar_mapped_at[i])
        return;
    bus_unregister(bar_bus(h, d, i), d->bar_mapped_at[i], d->bars[i].opaque);
    d->bar_mapped_at[i] = 0;
    if (d->ops && d->ops->bar_mapped)
        d->ops->bar_mapped(d->opaque, i, 0);
}

/*
 * Under the configuration lock: bring every BAR's bus mapping in line with its registers. All
 * unmappings come first, so that a BAR moved onto space another one has just left can be
 * registered in the same pass; a BAR the bus refuses (the guest made two overlap, or put an
 * I/O BAR on a platform port) stays off the bus and is tried again after the next change.
 */
static void bars_sync(struct pci_host *h)
{
    for (unsigned s = 0; s < PCI_MAX_SLOTS; s++) {
        struct pci_device *d = h->slots[s];
        for (unsigned i = 0; d && i < PCI_NUM_BARS; i++)
            if (d->bar_mapped_at[i] && d->bar_mapped_at[i] != bar_wanted(d, i))
                bar_unmap(h, d, i);
    }
    for (unsigned s = 0; s < PCI_MAX_SLOTS; s++) {
        struct pci_device *d = h->slots[s];
        for (unsigned i = 0; d && i < PCI_NUM_BARS; i++) {
            uint64_t want = bar_wanted(d, i);
            if (!want || d->bar_mapped_at[i])
                continue;
            const struct pci_bar_desc *b = &d->bars[i];
            if (bus_register(bar_bus(h, d, i), want, b->size, b->access, b->opaque, d->name))
                continue;
            d->bar_mapped_at[i] = want;
            if (d->ops && d->ops->bar_mapped)
                d->ops->bar_mapped(d->opaque, i, want);
        }
    }
}

/* ---------------------------------------------------------------- configuration space */

/* A byte range inside one dword, as CONFIG_DATA byte enables allow. */
static bool cfg_range_ok(uint32_t off, uint32_t len)
{
    return len >= 1 && len <= 4 && off < PCI_CFG_SIZE && (off & 3) + len <= 4;
}

static uint32_t cfg_read(struct pci_device *d, uint32_t off, uint32_t len)
{
    uint8_t b[4];
    memcpy(b, d->cfg + off, len);
    if (overlaps(off, len, PCI_STATUS, 1)) {
        pthread_mutex_lock(&d->intx_lock);
        bool level = d->intx_level;
        pthread_mutex_unlock(&d->intx_lock);
        b[PCI_STATUS - off] =
            (uint8_t)((b[PCI_STATUS - off] & ~PCI_STATUS_INTX) | (level ? PCI_STATUS_INTX : 0));
    }
    return (uint32_t)le_get(b, len);
}

static void cfg_write(struct pci_host *h, struct pci_device *d, uint32_t off, uint32_t len,
                      uint32_t value)
{
    for (uint32_t i = 0; i < len; i++) {
        uint32_t o = off + i;
        uint8_t v = (uint8_t)(value >> (8 * i));
        uint8_t n = (uint8_t)((d->cfg[o] & ~d->wmask[o]) | (v & d->wmask[o]));
        d->cfg[o] = (uint8_t)(n & ~(v & d->w1c[o]));
    }
    if (overlaps(off, len, PCI_COMMAND, 2))
        intx_command_changed(d);
    if (overlaps(off, len, PCI_COMMAND, 2) || overlaps(off, len, PCI_BAR0, 4 * PCI_NUM_BARS))
        bars_sync(h);
    if (d->ops && d->ops->config_written)
        d->ops->config_written(d->opaque, off, len);
}

static struct pci_device *slot_device(struct pci_host *h, unsigned slot)
{
    return slot < PCI_MAX_SLOTS ? h->slots[slot] : NULL;
}

/* What the public accessors take: 1, 2 or 4 bytes, naturally aligned. */
static bool cfg_access_ok(uint32_t off, uint32_t len)
{
    return (len == 1 || len == 2 || len == 4) && off < PCI_CFG_SIZE && !(off & (len - 1));
}

uint32_t pci_host_cfg_read(struct pci_host *h, unsigned slot, uint32_t off, uint32_t len)
{
    uint32_t ones = len == 1 ? 0xff : len == 2 ? 0xffff : 0xffffffffu;
    if (!cfg_access_ok(off, len))
        return ones;
    pthread_mutex_lock(&h->lock);
    struct pci_device *d = slot_device(h, slot);
    uint32_t v = d ? cfg_read(d, off, len) : ones;
    pthread_mutex_unlock(&h->lock);
    return v;
}

void pci_host_cfg_write(struct pci_host *h, unsigned slot, uint32_t off, uint32_t len,
                        uint32_t value)
{
    if (!cfg_access_ok(off, len))
        return;
    pthread_mutex_lock(&h->lock);
    struct pci_device *d = slot_device(h, slot);
    if (d)
        cfg_write(h, d, off, len, value);
    pthread_mutex_unlock(&h->lock);
}

/* CONFIG_ADDRESS: a plain 32-bit register. Only dword writes load it, as on PIIX/ICH and in
 * QEMU; that is also what keeps Linux's type-1 probe honest, which writes a byte to 0xCFB
 * before checking that a dword 0x80000000 reads back. Narrower reads see its bytes. */
static void addr_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    struct pci_host *h = opaque;
    pthread_mutex_lock(&h->lock);
    if (write) {
        if (offset == 0 && len == 4)
            h->config_address = le_get32(data) & CONFIG_ADDRESS_MASK;
    } else {
        uint8_t b[4];
        le_put32(b, h->config_address);
        memcpy(data, b + offset, len);
    }
    pthread_mutex_unlock(&h->lock);
}

/* CONFIG_DATA: the dword CONFIG_ADDRESS selects, any byte lanes of it. Only bus 0, function 0
 * exists; every other target reads all ones (a master abort) and drops writes. */
static void data_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    struct pci_host *h = opaque;
    pthread_mutex_lock(&h->lock);
    uint32_t a = h->config_address;
    struct pci_device *d = NULL;
    if ((a & CONFIG_ENABLE) && ((a >> 16) & 0xff) == 0 && ((a >> 8) & 7) == 0)
        d = slot_device(h, (a >> 11) & 0x1f);
    uint32_t off = (a & 0xfc) + (uint32_t)offset;
    if (write) {
        if (d && cfg_range_ok(off, len))
            cfg_write(h, d, off, len, (uint32_t)le_get(data, len));
    } else {
        uint32_t v = d && cfg_range_ok(off, len) ? cfg_read(d, off, len) : 0xffffffffu;
        le_put(data, len, v);
    }
    pthread_mutex_unlock(&h->lock);
}

/* ---------------------------------------------------------------- host */

int pci_host_create(const struct pci_host_config *cfg, struct pci_host **out)
{
    if (!cfg || !cfg->pio || !cfg->mmio || !out)
        return -EINVAL;
    struct pci_host *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->cfg = *cfg;
    h->mmio_next = PCI_MMIO_BASE;
    h->io_next = PCI_IO_BASE;
    pthread_mutex_init(&h->lock, NULL);
    pci_device_init(&h->bridge, "pci-host", HOST_VENDOR, HOST_DEVICE, HOST_CLASS, 0, 0, 0, NULL,
                    NULL);
    h->bridge.cfg[PCI_INT_PIN] = 0; /* no interrupt */
    h->bridge.host = h;
    h->slots[0] = &h->bridge;

    int ret = bus_register(cfg->pio, PCI_CONFIG_ADDRESS, 4, addr_access, h, "pci-config-address");
    if (ret)
        goto err_free;
    ret = bus_register(cfg->pio, PCI_CONFIG_DATA, 4, data_access, h, "pci-config-data");
    if (ret)
        goto err_addr;
    *out = h;
    return 0;

err_addr:
    bus_unregister(cfg->pio, PCI_CONFIG_ADDRESS, h);
err_free:
    pthread_mutex_destroy(&h->bridge.intx_lock);
    pthread_mutex_destroy(&h->lock);
    free(h);
    return ret;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

int pci_host_add(struct pci_host *h, struct pci_device *d)
{
    if (!h || !d || d->host)
        return -EINVAL;
    int ret = 0;
    pthread_mutex_lock(&h->lock);
    unsigned slot = 1;
    while (slot < PCI_MAX_SLOTS && h->slots[slot])
        slot++;
    if (slot == PCI_MAX_SLOTS) {
        ret = -ENOSPC;
        goto out;
    }
    /* Firmware-style placement: each BAR naturally aligned (a BAR's size is its alignment,
     * PCI Local Bus 3.0 §6.2.5.1) at the next free address of its window. Compute all first,
     * so that a device that does not fit leaves nothing behind. */
    uint64_t mmio = h->mmio_next, io = h->io_next, addr[PCI_NUM_BARS] = {0};
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        const struct pci_bar_desc *b = &d->bars[i];
        if (!b->size)
            continue;
        if (b->io) {
            addr[i] = align_up(io, b->size);
            io = addr[i] + b->size;
            if (io > IO_SPACE_END) {
                ret = -ENOSPC;
                goto out;
            }
        } else {
            addr[i] = align_up(mmio, b->size);
            mmio = addr[i] + b->size;
            if (mmio > PCI_MMIO_BASE + PCI_MMIO_SIZE) {
                ret = -ENOSPC;
                goto out;
            }
        }
    }
    uint8_t saved[PCI_CFG_SIZE];
    memcpy(saved, d->cfg, sizeof(saved));
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        if (d->bars[i].size) {
            uint32_t low =
                le_get32(d->cfg + PCI_BAR0 + 4 * i) & ~le_get32(d->wmask + PCI_BAR0 + 4 * i);
            le_put32(d->cfg + PCI_BAR0 + 4 * i, (uint32_t)addr[i] | low);
        }
    }
    le_put16(d->cfg + PCI_COMMAND, le_get16(d->cfg + PCI_COMMAND) | PCI_COMMAND_IO |
                                       PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    d->host = h;
    d->slot = slot;
    h->slots[slot] = d;
    bars_sync(h);
    for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
        if (d->bars[i].size && !d->bar_mapped_at[i]) {
            /* Something else on the bus owns part of the window: undo. */
            for (unsigned j = 0; j < PCI_NUM_BARS; j++)
                bar_unmap(h, d, j);
            memcpy(d->cfg, saved, sizeof(saved));
            h->slots[slot] = NULL;
            d->host = NULL;
            d->slot = 0;
            ret = -EBUSY;
            goto out;
        }
    }
    /* INTA of slot s on pin 16 + s % 8: the swizzle-free routing the _PRT announces. */
    pthread_mutex_lock(&d->intx_lock);
    d->intx = (struct irq_line){.set = h->cfg.set_irq,
                                .opaque = h->cfg.irq_opaque,
                                .gsi = PCI_INTX_GSI_BASE + slot % PCI_INTX_GSIS};
    d->intx_out = false;
    intx_update_locked(d); /* a level raised before the device was placed */
    pthread_mutex_unlock(&d->intx_lock);
    d->cfg[PCI_INT_LINE] = (uint8_t)d->intx.gsi; /* what firmware reports; Linux uses _PRT */
    h->mmio_next = mmio;
    h->io_next = (uint32_t)io;
out:
    pthread_mutex_unlock(&h->lock);
    return ret;
}

void pci_host_destroy(struct pci_host *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    for (unsigned s = 0; s < PCI_MAX_SLOTS; s++) {
        struct pci_device *d = h->slots[s];
        for (unsigned i = 0; d && i < PCI_NUM_BARS; i++)
            bar_unmap(h, d, i);
        if (d)
            d->host = NULL;
    }
    pthread_mutex_unlock(&h->lock);
    bus_unregister(h->cfg.pio, PCI_CONFIG_DATA, h);
    bus_unregister(h->cfg.pio, PCI_CONFIG_ADDRESS, h);
    pthread_mutex_destroy(&h->bridge.intx_lock);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ---------------------------------------------------------------- AML */

void pci_host_aml(const struct pci_host *h, struct acpi_aml *a)
{
    (void)h; /* the windows and routing are fixed; the slots need not be filled yet */
    acpi_aml_device_begin(a, "PCI0");
    /* PCI host bridge; no ECAM, so no PNP0A08 _CID. No _ADR either: a device has a _HID or an
     * _ADR, not both (ACPI 6.5 §6.1), and iasl warns when it finds both. */
    acpi_aml_name_eisaid(a, "_HID", "PNP0A03");
    acpi_aml_name_int(a, "_UID", 0);
    acpi_aml_name_int(a, "_SEG", 0);
    acpi_aml_name_int(a, "_BBN", 0);
    /* What the bridge decodes (_CRS, ACPI 6.5 §6.2.2): bus 0 only, the configuration ports it
     * consumes, and the windows it forwards: all I/O but those ports (legacy devices below
     * 0xCF8 are positively decoded and described on their own) and the 32-bit memory window
     * its BARs live in. */
    acpi_aml_crs_begin(a);
    acpi_aml_crs_word_bus(a, 0, 0);
    acpi_aml_crs_io(a, PCI_CONFIG_ADDRESS, 8);
    acpi_aml_crs_word_io(a, 0x0000, PCI_CONFIG_ADDRESS - 1);
    acpi_aml_crs_word_io(a, 0x0d00, 0xffff);
    acpi_aml_crs_dword_memory(a, (uint32_t)PCI_MMIO_BASE,
                              (uint32_t)(PCI_MMIO_BASE + PCI_MMIO_SIZE - 1));
    acpi_aml_end(a);
    /* _PRT (ACPI 6.5 §6.2.13): for every slot, all functions (0xFFFF), pin INTA (0), source 0,
     * so the last field is the GSI itself, taken as level-triggered, active-low and shared.
     * The polarity is the IOAPIC's business: the VMM drives an asserted pin as true. */
    uint64_t prt[(PCI_MAX_SLOTS - 1) * 4];
    for (unsigned s = 1; s < PCI_MAX_SLOTS; s++) {
        uint64_t *e = &prt[(s - 1) * 4];
        e[0] = (uint64_t)s << 16 | 0xffff;
        e[1] = 0;
        e[2] = 0;
        e[3] = PCI_INTX_GSI_BASE + s % PCI_INTX_GSIS;
    }
    acpi_aml_name_package_table(a, "_PRT", prt, PCI_MAX_SLOTS - 1, 4);
    acpi_aml_end(a);
}
