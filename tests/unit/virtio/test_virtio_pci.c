/* SPDX-License-Identifier: MIT */
/* The virtio PCI transport as a guest drives it: devices on a PCI host, their BAR 0 (common,
 * device configuration, ISR, MSI-X) reached through the MMIO bus, MSI through a fake router
 * whose binds can fail, and what a hostile guest can make the host log. */
#include "../check.h"
#include "../stderr_capture.h"
#include "vdriver.h"

#include "pci/msix.h"
#include "sys/ratelimit.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/net_backend.h"
#include "virtio/rng.h"
#include "virtio/vsock.h"
#include "virtio/virtio_pci.h"
#include "lib/le.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RAM (4ull << 20)

/* BAR 0 layout (virtio_pci.c) and common configuration offsets (§4.1.4.3). */
#define COMMON_DEVICE_FEATURE 0x04
#define COMMON_CONFIG_VECTOR 0x10
#define COMMON_NUM_QUEUES 0x12
#define COMMON_STATUS 0x14
#define COMMON_QUEUE_SELECT 0x16
#define COMMON_QUEUE_VECTOR 0x1a
#define COMMON_QUEUE_NOTIFY_OFF 0x1e
#define ISR_OFF 0x1000
#define DEVICE_OFF 0x2000
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

/* ---------------------------------------------------------------- configuration space */

static char dir[64];

/* A guest writes every byte of the device's configuration space, in every width, with values
 * unlike what it holds: none of it may read back changed, since these devices offer no feature
 * that makes a field driver-writable (virtio 1.2 §5.2.4 writeback needs CONFIG_WCE, §5.3.4
 * emerg_wr needs EMERG_WRITE; net and vsock have none). */
static void check_config_read_only(struct rig *r, struct virtio_device *v, const char *what)
{
    uint32_t size = v->config_size;
    uint8_t before[256];
    CHECK(size > 0 && size <= sizeof(before), "%s: config size %u", what, size);
    for (uint32_t i = 0; i < size; i++)
        before[i] = (uint8_t)rd(r, DEVICE_OFF + i, 1);
    for (uint32_t len = 1; len <= 8; len *= 2) {
        for (uint32_t off = 0; off + len <= size; off += len)
            wr(r, DEVICE_OFF + off, ~le_get(before + off, len), len);
    }
    unsigned changed = 0;
    for (uint32_t i = 0; i < size; i++)
        changed += (uint8_t)rd(r, DEVICE_OFF + i, 1) != before[i];
    CHECK(changed == 0, "%s: %u configuration bytes changed by the guest", what, changed);
    /* The read-only common fields too (§4.1.4.3). */
    uint64_t feat = rd(r, COMMON_DEVICE_FEATURE, 4), nq = rd(r, COMMON_NUM_QUEUES, 2);
    uint64_t notify = rd(r, COMMON_QUEUE_NOTIFY_OFF, 2);
    wr(r, COMMON_DEVICE_FEATURE, ~feat, 4);
    wr(r, COMMON_NUM_QUEUES, 0x1234, 2);
    wr(r, COMMON_QUEUE_NOTIFY_OFF, 0x77, 2);
    CHECK_EQ(rd(r, COMMON_DEVICE_FEATURE, 4), feat);
    CHECK_EQ(rd(r, COMMON_NUM_QUEUES, 2), nq);
    CHECK_EQ(rd(r, COMMON_QUEUE_NOTIFY_OFF, 2), notify);
}

static void test_blk_config_read_only(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/disk.img", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 1 << 20) == 0, "image %s", path);
    close(fd);
    struct rig r;
    rig_open(&r);
    struct virtio_blk_config cfg = {.path = path};
    struct virtio_blk *b;
    char err[128];
    CHECK_EQ(virtio_blk_create(&cfg, &r.d.mem, &b, err, sizeof(err)), 0);
    rig_add(&r, virtio_blk_device(b));
    CHECK_EQ(rd(&r, DEVICE_OFF + VIRTIO_BLK_CFG_CAPACITY, 8), 2048);
    wr(&r, DEVICE_OFF + VIRTIO_BLK_CFG_CAPACITY, 1ull << 40, 8);
    CHECK_EQ(rd(&r, DEVICE_OFF + VIRTIO_BLK_CFG_CAPACITY, 8), 2048); /* the disk did not grow */
    check_config_read_only(&r, virtio_blk_device(b), "virtio-blk");
    rig_close(&r);
    virtio_blk_destroy(b);
    unlink(path);
}

static void test_net_config_read_only(void)
{
    struct rig r;
    rig_open(&r);
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    struct virtio_net_config cfg = {.backend = VIRTIO_NET_TAP};
    struct virtio_net *n;
    char err[128];
    CHECK_EQ(virtio_net_create_fd(&cfg, sv[0], &r.d.mem, &n, err, sizeof(err)), 0);
    rig_add(&r, virtio_net_device(n));
    check_config_read_only(&r, virtio_net_device(n), "virtio-net");
    rig_close(&r);
    virtio_net_destroy(n);
    close(sv[1]);
}

static void test_console_config_read_only(void)
{
    struct rig r;
    rig_open(&r);
    struct virtio_console_config cfg = {0}; /* no sink: output is discarded */
    struct virtio_console *c;
    CHECK_EQ(virtio_console_create(&cfg, &r.d.mem, &c), 0);
    rig_add(&r, virtio_console_device(c));
    check_config_read_only(&r, virtio_console_device(c), "virtio-console");
    rig_close(&r);
    virtio_console_destroy(c);
}

static void test_vsock_config_read_only(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/vm.sock", dir);
    struct rig r;
    rig_open(&r);
    struct virtio_vsock_config cfg = {.guest_cid = 3, .uds = path};
    struct virtio_vsock *s;
    char err[128];
    CHECK_EQ(virtio_vsock_create(&cfg, &r.d.mem, &s, err, sizeof(err)), 0);
    rig_add(&r, virtio_vsock_device(s));
    CHECK_EQ(rd(&r, DEVICE_OFF, 8), 3);
    check_config_read_only(&r, virtio_vsock_device(s), "virtio-vsock");
    rig_close(&r);
    virtio_vsock_destroy(s);
}

/* A device with one driver-writable bit, as blk's writeback would be with CONFIG_WCE: that bit
 * is stored and reported, its neighbours are not. */
static unsigned fake_written;
static uint32_t fake_written_off;

static int fake_start(void *dev)
{
    (void)dev;
    return 0;
}

static void fake_stop(void *dev)
{
    (void)dev;
}

static void fake_config_written(void *dev, uint32_t off, uint32_t len)
{
    (void)dev, (void)len;
    fake_written++;
    fake_written_off = off;
}

static void test_config_writable_field(void)
{
    static const uint8_t wmask[8] = {[4] = 0x01};
    static const struct virtio_device_ops ops = {
        .name = "virtio-fake",
        .device_id = 42,
        .num_queues = 1,
        .queue_size = 16,
        .config_wmask = wmask,
        .config_written = fake_config_written,
        .start = fake_start,
        .stop = fake_stop,
    };
    uint8_t config[8] = {1, 2, 3, 4, 0x80, 6, 7, 8};
    struct rig r;
    rig_open(&r);
    struct virtio_device v;
    CHECK_EQ(virtio_device_init(&v, &ops, NULL, config, sizeof(config), &r.d.mem), 0);
    rig_add(&r, &v);
    fake_written = 0;
    wr(&r, DEVICE_OFF + 4, 0xff, 1);
    CHECK_EQ(rd(&r, DEVICE_OFF + 4, 1), 0x81);
    CHECK(fake_written == 1 && fake_written_off == 4, "config_written %u", fake_written);
    wr(&r, DEVICE_OFF + 4, 0, 4); /* a dword over the field: only its bit changes */
    CHECK_EQ(rd(&r, DEVICE_OFF, 8), 0x0807068004030201ull);
    CHECK_EQ(fake_written, 2);
    wr(&r, DEVICE_OFF, 0, 4); /* nothing writable there: not even a call */
    CHECK_EQ(rd(&r, DEVICE_OFF, 4), 0x04030201);
    CHECK_EQ(fake_written, 2);
    wr(&r, DEVICE_OFF + 6, 0, 4); /* past the end */
    CHECK_EQ(rd(&r, DEVICE_OFF + 4, 4), 0x08070680);
    rig_close(&r);
    virtio_device_cleanup(&v);
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
    snprintf(dir, sizeof(dir), "/tmp/revirt-vpci-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_blk_config_read_only);
    RUN(test_net_config_read_only);
    RUN(test_console_config_read_only);
    RUN(test_vsock_config_read_only);
    RUN(test_config_writable_field);
    RUN(test_msix_bind_failure);
    RUN(test_needs_reset_flood);
    rmdir(dir);
    return check_done();
}
