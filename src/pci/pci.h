/* SPDX-License-Identifier: MIT */
/* Conventional PCI as the guest sees it: one host bridge on bus 0 with configuration mechanism #1
 * (ports 0xCF8/0xCFC), devices with type-0 headers, BARs placed in a window below 4 GiB,
 * capability lists, and INTx lines routed to IOAPIC pins through the ACPI _PRT. */
#ifndef REVIRT_PCI_PCI_H
#define REVIRT_PCI_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acpi/acpi.h"
#include "acpi/aml.h"
#include "core/bus.h"
#include "core/irq.h"
#include "core/msi.h"

#define PCI_CFG_SIZE 256u /* conventional configuration space (no ECAM) */
#define PCI_NUM_BARS 6u
#define PCI_MAX_SLOTS 32u /* bus 0, function 0 of each slot; slot 0 is the host bridge */

/* Type-0 header offsets (PCI Local Bus 3.0 §6.1). */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYS_VENDOR 0x2c
#define PCI_SUBSYS_ID 0x2e
#define PCI_CAP_PTR 0x34
#define PCI_INT_LINE 0x3c
#define PCI_INT_PIN 0x3d

#define PCI_COMMAND_IO (1u << 0)
#define PCI_COMMAND_MEMORY (1u << 1)
#define PCI_COMMAND_MASTER (1u << 2)
#define PCI_COMMAND_INTX_DISABLE (1u << 10)
#define PCI_STATUS_INTX (1u << 3)
#define PCI_STATUS_CAP_LIST (1u << 4)

#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VNDR 0x09

/* Where revirter puts PCI: 32-bit BARs in [PCI_MMIO_BASE, PCI_MMIO_BASE + PCI_MMIO_SIZE), which
 * lies in the hole between 3 GiB and the IOAPIC; I/O BARs in [PCI_IO_BASE, 0x10000). INTx of
 * slot s, pin INTA, goes to IOAPIC pin PCI_INTX_GSI_BASE + s % PCI_INTX_GSIS (level). */
#define PCI_MMIO_BASE 0xc0000000ull
#define PCI_MMIO_SIZE 0x20000000ull
#define PCI_IO_BASE 0xc000u
#define PCI_INTX_GSI_BASE 16u
#define PCI_INTX_GSIS 8u

struct pci_device;

/* A BAR as the device declares it. size is a power of two (memory: >= 4096 so each BAR has its
 * own pages; I/O: 4..256). access handles guest accesses at an offset inside the BAR, on the
 * vCPU thread that exited. */
struct pci_bar_desc {
    uint64_t size;
    bool io;
    bus_access_fn access;
    void *opaque;
};

struct pci_device_ops {
    /* BAR bar started (addr != 0) or stopped (addr == 0) decoding at addr: called after the
     * bus mapping changed, under the host's configuration lock. A move is reported as a stop
     * then a start. Lets a device move what it has registered elsewhere, e.g. ioevents on
     * notify addresses. May be NULL. */
    void (*bar_mapped)(void *opaque, unsigned bar, uint64_t addr);
    /* The guest wrote len bytes at off (after the generic handling stored what is writable);
     * under the host's configuration lock. For capability registers. May be NULL. */
    void (*config_written)(void *opaque, uint32_t off, uint32_t len);
};

/* Embed in the device's own struct; fill with pci_device_init and the calls below before
 * pci_host_add. The host owns the configuration lock; the device never takes it itself. */
struct pci_device {
    uint8_t cfg[PCI_CFG_SIZE];
    uint8_t wmask[PCI_CFG_SIZE]; /* bits the guest may write */
    uint8_t w1c[PCI_CFG_SIZE];   /* bits a guest write of 1 clears (status) */
    struct pci_bar_desc bars[PCI_NUM_BARS];
    uint64_t bar_mapped_at[PCI_NUM_BARS]; /* 0: not decoding */
    const struct pci_device_ops *ops;
    void *opaque;
    const char *name;
    struct pci_host *host; /* set by pci_host_add */
    unsigned slot;
    struct irq_line intx; /* set by pci_host_add */
    uint8_t cap_end;      /* next free byte for capabilities */
    /* INTx state, under intx_lock (taken inside the configuration lock, never around it):
     * what the device drives, COMMAND.INTX_DISABLE as last written, and the pin's level. */
    pthread_mutex_t intx_lock;
    bool intx_level, intx_disabled, intx_out;
};

/* Header for a type-0 function with INTA. class_code is the 24-bit class (base, sub, prog-if). */
void pci_device_init(struct pci_device *d, const char *name, uint16_t vendor, uint16_t device,
                     uint32_t class_code, uint8_t revision, uint16_t subsys_vendor,
                     uint16_t subsys_id, const struct pci_device_ops *ops, void *opaque);
/* Declare BAR i; -EINVAL for a bad size or index (or a device already added), -EEXIST if i is
 * taken. 64-bit BARs are not used: everything fits the 32-bit window. */
__attribute__((warn_unused_result)) int pci_device_set_bar(struct pci_device *d, unsigned i,
                                                           const struct pci_bar_desc *bar);
/* Append a capability: body is len bytes starting with the ID byte; its next pointer (byte 1) is
 * filled in. wmask (len bytes, NULL for read-only) says which bits the guest may write (never
 * the ID and next bytes). Returns its offset in configuration space (dword aligned, from 0x40),
 * -ENOSPC, or -EINVAL (len < 2, device already added). */
__attribute__((warn_unused_result)) int pci_device_add_cap(struct pci_device *d, const void *body,
                                                           uint8_t len, const void *wmask);
/* Assert or deassert INTA (level-triggered). Honours COMMAND.INTX_DISABLE and mirrors the level
 * in STATUS.INTX. Any thread. */
void pci_device_set_intx(struct pci_device *d, bool level);

struct pci_host_config {
    struct bus *pio, *mmio;
    irq_set_fn set_irq; /* for INTx: IOAPIC pins */
    void *irq_opaque;
};

struct pci_host;

/* Create the host bridge (00:00.0) and claim 0xCF8-0xCFB (CONFIG_ADDRESS) and 0xCFC-0xCFF
 * (CONFIG_DATA) on pio, so no other device may sit on 0xCF9 (ACPI_PORTS_DEFAULT puts the reset
 * register at 0x60C). -EINVAL without both buses, -EEXIST on a port clash, -ENOMEM. */
__attribute__((warn_unused_result)) int pci_host_create(const struct pci_host_config *cfg,
                                                        struct pci_host **out);
/* Put d in the next free slot, place its BARs in the windows and enable decoding, as firmware
 * would, so that a guest that keeps firmware assignments works unchanged. -ENOSPC when slots
 * or the window run out, -EBUSY when another device on the bus holds part of the window,
 * -EINVAL when d was added already; nothing changes on failure. */
__attribute__((warn_unused_result)) int pci_host_add(struct pci_host *h, struct pci_device *d);
/* Unmap every BAR (each still decoding gets bar_mapped(bar, 0)) and free the host; the devices
 * themselves are their owners', to be destroyed after the host. vCPUs must be stopped. NULL is
 * ignored. */
void pci_host_destroy(struct pci_host *h);

/* Append Device (PCI0) for the DSDT's \_SB scope: PNP0A03 with its bus, I/O and memory windows
 * in _CRS, and a _PRT that routes INTA of every slot to its IOAPIC pin. */
void pci_host_aml(const struct pci_host *h, struct acpi_aml *a);

/* Configuration-space access as through 0xCF8/0xCFC, for tests and the fuzzers: slot/off of
 * function 0 on bus 0; len 1, 2 or 4 and off aligned to len. An empty slot or any other access
 * reads all ones (len bytes of them) and drops writes. */
uint32_t pci_host_cfg_read(struct pci_host *h, unsigned slot, uint32_t off, uint32_t len);
void pci_host_cfg_write(struct pci_host *h, unsigned slot, uint32_t off, uint32_t len,
                        uint32_t value);

#endif
