/* SPDX-License-Identifier: MIT */
/* The virtio PCI transport as a guest drives it: devices on a PCI host, their BAR 0 (common,
 * device configuration, ISR, MSI-X) reached through the MMIO bus, MSI through a fake router
 * whose binds can fail, and what a hostile guest can make the host log. */
#include "../check.h"
#include "../stderr_capture.h"
#include "vdriver.h"

#include "pci/msix.h"
#include "sys/ratelimit.h"
#include "virtio/rng.h"
#include "virtio/virtio_pci.h"
#include "vmm/le.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define RAM (4ull << 20)

/* BAR 0 layout (virtio_pci.c) and common configuration offsets (§4.1.4.3). */
#define COMMON_CONFIG_VECTOR 0x10
#define COMMON_STATUS 0x14
#define COMMON_QUEUE_SELECT 0x16
#define COMMON_QUEUE_VECTOR 0x1a
#define ISR_OFF 0x1000
#define MSIX_ENABLE 0x8000u
#define MSIX_FMASK 0x4000u

/* ---------------------------------------------------------------- fakes */

struct fake_msi {
    int fail_bind; /* fail the next n binds */
    int nbound, nunbound;
};

static int fake_bind(void *opaque, int fd)
{
    struct fake_msi *f = opaque;
    (void)fd;
    if (f->fail_bind > 0) {
        f->fail_bind--;
        return -ENOSPC;
    }
    return f->nbound++;
}

static int fake_route(void *opaque, int handle, uint64_t address, uint32_t data)
{
    (void)opaque, (void)handle, (void)address, (void)data;
    return 0;
}

static void fake_unbind(void *opaque, int handle, int fd)
{
    struct fake_msi *f = opaque;
    (void)handle, (void)fd;
    f->nunbound++;
}

static bool intx_level;

static void fake_set_irq(void *opaque, unsigned gsi, bool level)
{
    (void)opaque, (void)gsi;
    intx_level = level;
}

/* ---------------------------------------------------------------- the rig */

/* One device on slot 1 of a fresh PCI host. */
struct rig {
    struct bus pio, mmio;
    struct pci_host *host;
    struct fake_msi msi;
    struct msi_ops msi_ops;
    struct vdriver d; /* guest memory only */
    struct virtio_pci *p;
    uint64_t bar;
};

static void rig_open(struct rig *r)
{
    memset(r, 0, sizeof(*r));
    intx_level = false;
    bus_init(&r->pio, "pio");
    bus_init(&r->mmio, "mmio");
    struct pci_host_config hc = {&r->pio, &r->mmio, fake_set_irq, NULL};
    CHECK_EQ(pci_host_create(&hc, &r->host), 0);
    r->msi_ops = (struct msi_ops){&r->msi, fake_bind, fake_route, fake_unbind};
    CHECK_EQ(vdriver_init(&r->d, RAM), 0);
}

/* Put v on the bus; BAR 0 is placed and decoding, as firmware leaves it. */
static void rig_add(struct rig *r, struct virtio_device *v)
{
    CHECK_EQ(virtio_pci_create(r->host, v, &r->msi_ops, NULL, &r->p), 0);
    r->bar = pci_host_cfg_read(r->host, 1, PCI_BAR0, 4) & ~0xfull;
    CHECK(r->bar, "BAR 0 placed");
}

/* Tear down the transport (before the device, after the host). */
static void rig_close(struct rig *r)
{
    pci_host_destroy(r->host);
    virtio_pci_destroy(r->p);
    bus_free(&r->pio);
    bus_free(&r->mmio);
    vdriver_free(&r->d);
}

static uint64_t rd(struct rig *r, uint64_t off, uint32_t len)
{
    uint8_t b[8] = {0};
    CHECK(bus_dispatch(&r->mmio, r->bar + off, b, len, false), "read at %#llx",
          (unsigned long long)off);
    return le_get(b, len);
}

static void wr(struct rig *r, uint64_t off, uint64_t v, uint32_t len)
{
    uint8_t b[8];
    le_put64(b, v);
    CHECK(bus_dispatch(&r->mmio, r->bar + off, b, len, true), "write at %#llx",
          (unsigned long long)off);
}

/* Offset of the MSI-X capability in slot 1's configuration space. */
static uint32_t msix_cap(struct rig *r)
{
    uint32_t c = pci_host_cfg_read(r->host, 1, PCI_CAP_PTR, 1);
    for (unsigned n = 0; c && n < 48; n++) {
        if (pci_host_cfg_read(r->host, 1, c, 1) == PCI_CAP_ID_MSIX)
            return c;
        c = pci_host_cfg_read(r->host, 1, c + 1, 1);
    }
    CHECK(0, "no MSI-X capability");
    return 0;
}

/* ---------------------------------------------------------------- MSI-X failure */

static void enable_msix(void *arg)
{
    struct rig *r = arg;
    /* Linux's msix_capability_init: enable with the function masked. */
    pci_host_cfg_write(r->host, 1, msix_cap(r) + 2, 2, MSIX_ENABLE | MSIX_FMASK);
}

/* The VMM cannot bind a vector: the driver must learn it from the vector read-back, as Linux's
 * virtio_pci does, and then get its interrupts through INTx instead of losing them. */
static void test_msix_bind_failure(void)
{
    struct rig r;
    rig_open(&r);
    struct virtio_rng *rng;
    CHECK_EQ(virtio_rng_create(&r.d.mem, &rng), 0);
    struct virtio_device *v = virtio_rng_device(rng);
    rig_add(&r, v);
    uint32_t cap = msix_cap(&r);
    r.msi.fail_bind = 1;
    CHECK_EQ(stderr_capture(enable_msix, &r, NULL, 0), 1);
    CHECK(!(pci_host_cfg_read(r.host, 1, cap + 2, 2) & MSIX_ENABLE), "Enable reads back 0");
    /* Every mapping the driver tries reads back NO_VECTOR (§4.1.5.1.2). */
    wr(&r, COMMON_CONFIG_VECTOR, 0, 2);
    CHECK_EQ(rd(&r, COMMON_CONFIG_VECTOR, 2), MSIX_NO_VECTOR);
    wr(&r, COMMON_QUEUE_SELECT, 0, 2);
    wr(&r, COMMON_QUEUE_VECTOR, 1, 2);
    CHECK_EQ(rd(&r, COMMON_QUEUE_VECTOR, 2), MSIX_NO_VECTOR);
    /* The driver gives MSI-X up; an interrupt now raises INTx, and the ISR read lowers it. */
    pci_host_cfg_write(r.host, 1, cap + 2, 2, 0);
    virtio_config_changed(v);
    CHECK(intx_level, "INTx raised");
    CHECK_EQ(rd(&r, ISR_OFF, 1), VIRTIO_ISR_CONFIG);
    CHECK(!intx_level, "INTx lowered");
    /* A later enable binds what is left, and the mappings stick. */
    enable_msix(&r);
    CHECK(pci_host_cfg_read(r.host, 1, cap + 2, 2) & MSIX_ENABLE, "enabled");
    wr(&r, COMMON_CONFIG_VECTOR, 0, 2);
    CHECK_EQ(rd(&r, COMMON_CONFIG_VECTOR, 2), 0);
    CHECK_EQ(rd(&r, COMMON_QUEUE_VECTOR, 2), 1);
    rig_close(&r);
    virtio_rng_destroy(rng);
    CHECK_EQ(r.msi.nunbound, r.msi.nbound);
}

/* ---------------------------------------------------------------- log flooding */

/* A guest that sets DRIVER_OK without FEATURES_OK breaks its device (NEEDS_RESET, one log
 * line), resets it and does it again, as fast as it can. */
static void break_and_reset(void *arg)
{
    struct rig *r = arg;
    for (unsigned i = 0; i < 10000; i++) {
        wr(r, COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
        wr(r, COMMON_STATUS, VIRTIO_STATUS_DRIVER_OK, 1);
        if (i == 0)
            CHECK(rd(r, COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET, "broken");
        wr(r, COMMON_STATUS, 0, 1);
    }
}

static void test_needs_reset_flood(void)
{
    struct rig r;
    rig_open(&r);
    struct virtio_rng *rng;
    CHECK_EQ(virtio_rng_create(&r.d.mem, &rng), 0);
    rig_add(&r, virtio_rng_device(rng));
    char last[256];
    unsigned lines = stderr_capture(break_and_reset, &r, last, sizeof(last));
    /* 10,000 events in well under a window; a slow machine may see a second one. */
    CHECK(lines >= 1 && lines <= 2 * RATELIMIT_BURST, "%u lines for 10000 resets", lines);
    CHECK(strstr(last, "virtio-rng") != NULL, "last line: %s", last);
    rig_close(&r);
    virtio_rng_destroy(rng);
}

int main(void)
{
    RUN(test_msix_bind_failure);
    RUN(test_needs_reset_flood);
    return check_done();
}
