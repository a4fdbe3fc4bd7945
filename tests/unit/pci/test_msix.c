/* SPDX-License-Identifier: MIT */
/* MSI-X tests: the capability through configuration space, the table and PBA through the BAR
 * on the MMIO bus, delivery through the vectors' eventfds, and hostile accesses. */
#include "../check.h"
#include "../stderr_capture.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "pci/msix.h"
#include "lib/le.h"

#define NVEC 4
#define TABLE_OFF 0x000
#define PBA_OFF 0x800

static struct bus pio, mmio;

/* ---------------------------------------------------------------- fake MSI routing */

struct fake_msi {
    int fds[MSIX_MAX_VECTORS];
    int nbound, nunbound;
    int routes;
    uint64_t addr[MSIX_MAX_VECTORS];
    uint32_t data[MSIX_MAX_VECTORS];
    int fail_bind; /* fail the next n binds */
};
static struct fake_msi msi;

static int fake_bind(void *opaque, int fd)
{
    struct fake_msi *f = opaque;
    if (f->fail_bind > 0) {
        f->fail_bind--;
        return -ENOSPC;
    }
    CHECK(f->nbound < (int)MSIX_MAX_VECTORS, "too many binds");
    if (f->nbound >= (int)MSIX_MAX_VECTORS)
        return -ENOSPC;
    f->fds[f->nbound] = fd;
    return 100 + f->nbound++;
}

static int fake_route(void *opaque, int handle, uint64_t address, uint32_t data)
{
    struct fake_msi *f = opaque;
    int i = handle - 100;
    CHECK(i >= 0 && i < f->nbound, "route of unknown handle %d", handle);
    if (i < 0 || i >= f->nbound)
        return -EINVAL;
    f->addr[i] = address;
    f->data[i] = data;
    f->routes++;
    return 0;
}

static void fake_unbind(void *opaque, int handle, int fd)
{
    struct fake_msi *f = opaque;
    int i = handle - 100;
    CHECK(i >= 0 && i < f->nbound && f->fds[i] == fd, "unbind %d/%d", handle, fd);
    f->nunbound++;
}

static const struct msi_ops msi_ops = {&msi, fake_bind, fake_route, fake_unbind};

/* ---------------------------------------------------------------- device */

struct dev {
    struct pci_device pci;
    struct msix *msix;
};

static void dev_bar(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
    struct dev *d = opaque;
    if (off >= PBA_OFF)
        msix_pba_access(d->msix, off - PBA_OFF, data, len, write);
    else
        msix_table_access(d->msix, off - TABLE_OFF, data, len, write);
}

static void dev_config_written(void *opaque, uint32_t off, uint32_t len)
{
    struct dev *d = opaque;
    msix_config_written(d->msix, off, len);
}

static const struct pci_device_ops dev_ops = {NULL, dev_config_written};

static struct pci_host *host;
static struct dev dev;
static int cap; /* MSI-X capability offset */

static void make(void)
{
    memset(&msi, 0, sizeof(msi));
    bus_init(&pio, "pio");
    bus_init(&mmio, "mmio");
    struct pci_host_config cfg = {&pio, &mmio, NULL, NULL};
    CHECK_EQ(pci_host_create(&cfg, &host), 0);
    pci_device_init(&dev.pci, "msix-test", 0x1af4, 0x1042, 0x010000, 1, 0x1af4, 2, &dev_ops, &dev);
    struct pci_bar_desc b = {4096, false, dev_bar, &dev};
    CHECK_EQ(pci_device_set_bar(&dev.pci, 0, &b), 0);
    CHECK_EQ(msix_create(&dev.pci, NVEC, 0, TABLE_OFF, PBA_OFF, &msi_ops, &dev.msix), 0);
    CHECK_EQ(pci_host_add(host, &dev.pci), 0);
    cap = dev.pci.cfg[PCI_CAP_PTR];
}

static void done(void)
{
    pci_host_destroy(host);
    msix_destroy(dev.msix);
    CHECK_EQ(msi.nunbound, msi.nbound);
    bus_free(&pio);
    bus_free(&mmio);
}

static uint64_t bar(void)
{
    return dev.pci.bar_mapped_at[0];
}

static uint32_t rd(uint64_t off, uint32_t len)
{
    uint8_t b[8] = {0};
    CHECK(bus_dispatch(&mmio, bar() + off, b, len, false), "read at %#llx",
          (unsigned long long)off);
    return (uint32_t)le_get(b, len);
}

static void wr(uint64_t off, uint64_t v, uint32_t len)
{
    uint8_t b[8];
    le_put64(b, v);
    CHECK(bus_dispatch(&mmio, bar() + off, b, len, true), "write at %#llx",
          (unsigned long long)off);
}

static uint16_t ctrl(void)
{
    return (uint16_t)pci_host_cfg_read(host, 1, (uint32_t)cap + 2, 2);
}

static void set_ctrl(uint16_t v)
{
    pci_host_cfg_write(host, 1, (uint32_t)cap + 2, 2, v);
}

#define ENABLE 0x8000u
#define FMASK 0x4000u

static void program(unsigned v, uint64_t addr, uint32_t data, bool masked)
{
    wr(TABLE_OFF + 16 * v, addr, 8);
    wr(TABLE_OFF + 16 * v + 8, data, 4);
    wr(TABLE_OFF + 16 * v + 12, masked, 4);
}

/* Read an eventfd: its count, 0 if nothing was written. */
static uint64_t drain(int fd)
{
    uint64_t n = 0;
    return read(fd, &n, sizeof(n)) == sizeof(n) ? n : 0;
}

static uint64_t pba(void)
{
    return rd(PBA_OFF, 4) | (uint64_t)rd(PBA_OFF + 4, 4) << 32;
}

/* ---------------------------------------------------------------- tests */

static void test_msix_capability(void)
{
    make();
    CHECK(cap >= 0x40, "capability at %#x", cap);
    CHECK(pci_host_cfg_read(host, 1, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, "CAP_LIST");
    CHECK_EQ(pci_host_cfg_read(host, 1, (uint32_t)cap, 1), PCI_CAP_ID_MSIX);
    CHECK_EQ(ctrl(), NVEC - 1); /* table size N-1, disabled, unmasked */
    CHECK_EQ(pci_host_cfg_read(host, 1, (uint32_t)cap + 4, 4), TABLE_OFF | 0);
    CHECK_EQ(pci_host_cfg_read(host, 1, (uint32_t)cap + 8, 4), PBA_OFF | 0);
    /* Only enable and function mask are writable. */
    set_ctrl(0xffff);
    CHECK_EQ(ctrl(), ENABLE | FMASK | (NVEC - 1));
    CHECK(msix_enabled(dev.msix), "enabled");
    pci_host_cfg_write(host, 1, (uint32_t)cap + 4, 4, 0x1234);
    CHECK_EQ(pci_host_cfg_read(host, 1, (uint32_t)cap + 4, 4), TABLE_OFF | 0);
    set_ctrl(0);
    CHECK(!msix_enabled(dev.msix), "disabled");
    /* Entries start masked, with zero messages; the PBA is clear. */
    for (unsigned v = 0; v < NVEC; v++) {
        CHECK_EQ(rd(16 * v, 4), 0);
        CHECK_EQ(rd(16 * v + 12, 4), 1);
    }
    CHECK_EQ(pba(), 0);
    done();
}

static void test_msix_lazy_bind(void)
{
    make();
    CHECK_EQ(msi.nbound, 0);
    CHECK_EQ(msix_vector_fd(dev.msix, 0), -1);
    program(0, 0xfee00000u, 0x41, false);
    CHECK_EQ(msi.nbound, 0); /* programming alone binds nothing */
    /* Linux's msix_capability_init: enable with the function masked, then unmask. */
    set_ctrl(ENABLE | FMASK);
    CHECK_EQ(msi.nbound, NVEC);
    CHECK_EQ(msi.routes, 0); /* all masked */
    for (unsigned v = 0; v < NVEC; v++) {
        int fd = msix_vector_fd(dev.msix, v);
        CHECK(fd >= 0 && fd == msi.fds[v], "vector %u fd %d", v, fd);
        CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) && (fcntl(fd, F_GETFD) & FD_CLOEXEC),
              "vector %u fd flags", v);
    }
    set_ctrl(ENABLE);
    CHECK_EQ(msi.routes, 1); /* the one unmasked vector */
    CHECK_EQ(msi.addr[0], 0xfee00000u);
    CHECK_EQ(msi.data[0], 0x41);
    /* Disable and enable again: no second binding. */
    set_ctrl(0);
    set_ctrl(ENABLE);
    CHECK_EQ(msi.nbound, NVEC);
    CHECK_EQ(msi.routes, 1); /* nothing changed */
    CHECK_EQ(msix_vector_fd(dev.msix, NVEC), -1);
    done();
    CHECK_EQ(msi.nunbound, NVEC);
}

static void test_msix_deliver(void)
{
    make();
    set_ctrl(ENABLE | FMASK);
    for (unsigned v = 0; v < NVEC; v++)
        program(v, 0xfee00000u | v << 12, 0x40 + v, false);
    set_ctrl(ENABLE);
    CHECK_EQ(msi.routes, NVEC);
    for (unsigned v = 0; v < NVEC; v++) {
        CHECK(msi.addr[v] == (0xfee00000u | v << 12) && msi.data[v] == 0x40 + v, "route %u", v);
        CHECK(msix_notify(dev.msix, v), "notify %u", v);
        CHECK_EQ(drain(msi.fds[v]), 1);
        CHECK_EQ(drain(msi.fds[v]), 0);
    }
    /* Reprogramming a live vector (older kernels do it unmasked) reroutes it at once. */
    wr(TABLE_OFF + 16 + 8, 0x77, 4);
    CHECK_EQ(msi.data[1], 0x77);
    CHECK_EQ(msi.routes, NVEC + 1);
    /* A masked entry reroutes only when unmasked. */
    wr(TABLE_OFF + 16 + 12, 1, 4);
    wr(TABLE_OFF + 16, 0xfee01000u, 4);
    wr(TABLE_OFF + 16 + 8, 0x78, 4);
    CHECK_EQ(msi.routes, NVEC + 1);
    wr(TABLE_OFF + 16 + 12, 0, 4);
    CHECK_EQ(msi.routes, NVEC + 2);
    CHECK_EQ(msi.data[1], 0x78);
    /* The table reads back as written, 4 or 8 bytes at a time. */
    CHECK_EQ(rd(16 + 8, 4), 0x78);
    uint8_t q[8];
    CHECK(bus_dispatch(&mmio, bar() + 16, q, 8, false), "qword read");
    CHECK(q[0] == 0x00 && q[1] == 0x10 && q[3] == 0xfe && q[4] == 0, "address %02x%02x", q[3],
          q[1]);
    done();
}

static void test_msix_masking_and_pending(void)
{
    make();
    set_ctrl(ENABLE);
    program(1, 0xfee00000u, 0x51, true);
    program(2, 0xfee00000u, 0x52, false);
    /* Entry mask: held back, pending bit set, delivered on unmask. */
    CHECK(msix_notify(dev.msix, 1), "notify 1");
    CHECK_EQ(drain(msi.fds[1]), 0);
    CHECK_EQ(pba(), 1u << 1);
    CHECK_EQ(rd(PBA_OFF, 4), 1u << 1);
    wr(PBA_OFF, 0, 4); /* read-only */
    CHECK_EQ(pba(), 1u << 1);
    wr(TABLE_OFF + 16 + 12, 0, 4);
    CHECK_EQ(drain(msi.fds[1]), 1);
    CHECK_EQ(pba(), 0);
    CHECK_EQ(msi.data[1], 0x51); /* routed before it was sent */

    /* Function mask: everything held, sent on clearing it. */
    set_ctrl(ENABLE | FMASK);
    CHECK(msix_notify(dev.msix, 1) && msix_notify(dev.msix, 2), "notify");
    CHECK(msix_notify(dev.msix, 2), "twice: one pending bit");
    CHECK_EQ(pba(), 6);
    CHECK_EQ(drain(msi.fds[1]) + drain(msi.fds[2]), 0);
    set_ctrl(ENABLE);
    CHECK_EQ(drain(msi.fds[1]), 1);
    CHECK_EQ(drain(msi.fds[2]), 1);
    CHECK_EQ(pba(), 0);

    /* MSI-X disabled: pending, then sent when enabled. */
    set_ctrl(0);
    CHECK(msix_notify(dev.msix, 2), "notify while disabled");
    CHECK_EQ(pba(), 4);
    CHECK_EQ(drain(msi.fds[2]), 0);
    set_ctrl(ENABLE);
    CHECK_EQ(drain(msi.fds[2]), 1);

    /* Never enabled at all: pending, and sent at the first enable (after binding). */
    done();
    make();
    program(0, 0xfee00000u, 0x60, false);
    CHECK(msix_notify(dev.msix, 0), "notify before enable");
    CHECK_EQ(msi.nbound, 0);
    set_ctrl(ENABLE);
    CHECK_EQ(drain(msi.fds[0]), 1);
    CHECK_EQ(msi.data[0], 0x60);
    done();
}

static void test_msix_out_of_range(void)
{
    make();
    set_ctrl(ENABLE);
    CHECK(!msix_notify(dev.msix, NVEC), "vector N");
    CHECK(!msix_notify(dev.msix, MSIX_NO_VECTOR), "VIRTIO_MSI_NO_VECTOR");
    CHECK(!msix_notify(dev.msix, 0xffffffffu), "huge");
    CHECK_EQ(pba(), 0);
    CHECK_EQ(msix_vector_fd(dev.msix, 64), -1);
    done();
}

static void test_msix_hostile_accesses(void)
{
    make();
    set_ctrl(ENABLE);
    program(0, 0xfee00000u, 0x41, true);
    /* Byte and word accesses, and misaligned dwords: ignored, reads 0. */
    for (uint32_t len = 1; len <= 2; len++) {
        wr(TABLE_OFF + 8, 0xff, len);
        CHECK_EQ(rd(TABLE_OFF + 8, len), 0);
    }
    wr(TABLE_OFF + 10, 0xffffffffu, 4);
    CHECK_EQ(rd(TABLE_OFF + 10, 4), 0);
    wr(TABLE_OFF + 4, 0x1111111122222222ull, 8); /* misaligned qword */
    CHECK_EQ(rd(TABLE_OFF + 8, 4), 0x41);
    CHECK_EQ(rd(TABLE_OFF + 4, 4), 0);
    /* Reserved vector-control bits read 0. */
    wr(TABLE_OFF + 12, 0xfffffffeu, 4);
    CHECK_EQ(rd(TABLE_OFF + 12, 4), 0);
    wr(TABLE_OFF + 12, 1, 4);
    /* Past the last entry, inside the BAR. */
    wr(TABLE_OFF + 16 * NVEC, 0xffffffffu, 4);
    CHECK_EQ(rd(TABLE_OFF + 16 * NVEC, 4), 0);
    CHECK_EQ(rd(0x7fc, 4), 0);
    /* PBA: odd sizes and offsets read 0, beyond its QWORD too. */
    CHECK(msix_notify(dev.msix, 0), "pending");
    CHECK_EQ(rd(PBA_OFF, 4), 1);
    CHECK_EQ(rd(PBA_OFF, 1), 0);
    CHECK_EQ(rd(PBA_OFF + 2, 4), 0);
    CHECK_EQ(rd(PBA_OFF + 8, 4), 0);
    /* Direct calls with offsets no BAR could produce. */
    uint8_t b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const uint64_t offs[] = {UINT64_MAX - 3, UINT64_MAX - 7, 1ull << 63, 0xfffffff0u,
                             16 * NVEC - 4};
    for (unsigned i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        uint32_t len = i == 4 ? 8 : 4;
        msix_table_access(dev.msix, offs[i], b, len, true);
        memset(b, 0xaa, sizeof(b));
        msix_table_access(dev.msix, offs[i], b, len, false);
        CHECK(b[0] == 0 && b[len - 1] == 0, "offset %#llx", (unsigned long long)offs[i]);
        msix_pba_access(dev.msix, offs[i], b, len, false);
        CHECK(b[0] == 0, "PBA offset %#llx", (unsigned long long)offs[i]);
    }
    CHECK_EQ(rd(TABLE_OFF + 16 * (NVEC - 1), 4), 0);
    done();
}

static void enable(void *arg)
{
    (void)arg;
    set_ctrl(ENABLE);
}

/* A bind that fails refuses the enable: Enable reads back 0, so the function stays on INTx
 * and nothing is sent to a vector without a route; one line says why. The next enable binds
 * what is left and succeeds. */
static void test_msix_bind_failure(void)
{
    make();
    msi.fail_bind = 2;
    program(0, 0xfee00000u, 0x41, false);
    char line[256];
    CHECK_EQ(stderr_capture(enable, NULL, line, sizeof(line)), 1);
    CHECK(strstr(line, "msix-test") && strstr(line, "INTx"), "logged: %s", line);
    CHECK_EQ(msi.nbound, NVEC - 2);
    CHECK_EQ(ctrl(), NVEC - 1); /* Enable reads back 0 */
    CHECK(!msix_enabled(dev.msix), "refused");
    CHECK(msix_refused(dev.msix), "msix_refused");
    CHECK_EQ(msix_vector_fd(dev.msix, 0), -1);
    CHECK(msix_notify(dev.msix, 0), "notify a refused function");
    CHECK_EQ(pba(), 1); /* held, not lost */
    /* Bound at the next enable, which now succeeds and sends what was held. */
    set_ctrl(0);
    set_ctrl(ENABLE);
    CHECK_EQ(msi.nbound, NVEC);
    CHECK_EQ(ctrl(), ENABLE | (NVEC - 1));
    CHECK(msix_enabled(dev.msix) && !msix_refused(dev.msix), "enabled");
    CHECK_EQ(drain(msix_vector_fd(dev.msix, 0)), 1);
    CHECK_EQ(pba(), 0);
    done();
    CHECK_EQ(msi.nunbound, NVEC);
}

static void test_msix_create_errors(void)
{
    struct pci_device d;
    struct msix *m = NULL;
    pci_device_init(&d, "x", 1, 2, 0, 0, 0, 0, NULL, NULL);
    CHECK_EQ(msix_create(&d, 1, 0, 0, 0x800, &msi_ops, &m), -EINVAL); /* no BAR 0 */
    struct pci_bar_desc io = {32, true, dev_bar, NULL};
    CHECK_EQ(pci_device_set_bar(&d, 1, &io), 0);
    CHECK_EQ(msix_create(&d, 1, 1, 0, 16, &msi_ops, &m), -EINVAL); /* I/O BAR */
    struct pci_bar_desc mem = {4096, false, dev_bar, NULL};
    CHECK_EQ(pci_device_set_bar(&d, 0, &mem), 0);
    CHECK_EQ(msix_create(&d, 0, 0, 0, 0x800, &msi_ops, &m), -EINVAL);
    CHECK_EQ(msix_create(&d, 65, 0, 0, 0x800, &msi_ops, &m), -EINVAL);
    CHECK_EQ(msix_create(&d, 4, 0, 4, 0x800, &msi_ops, &m), -EINVAL);      /* unaligned */
    CHECK_EQ(msix_create(&d, 4, 0, 0, 0x30, &msi_ops, &m), -EINVAL);       /* overlap */
    CHECK_EQ(msix_create(&d, 64, 0, 0xc08, 0x800, &msi_ops, &m), -EINVAL); /* past the BAR */
    CHECK_EQ(msix_create(&d, 4, 0, 0, 0xffc, &msi_ops, &m), -EINVAL);
    CHECK_EQ(msix_create(&d, 4, 0, 0, 0xfffffff8u, &msi_ops, &m), -EINVAL);
    CHECK_EQ(msix_create(&d, 4, 6, 0, 0x800, &msi_ops, &m), -EINVAL);
    CHECK_EQ(msix_create(&d, 4, 0, 0, 0x800, NULL, &m), -EINVAL);
    CHECK(m == NULL, "no msix on failure");
    CHECK_EQ(msix_create(&d, 64, 0, 0xc00, 0x400, &msi_ops, &m), 0);
    msix_destroy(m);
    msix_destroy(NULL);
}

struct notifier {
    struct msix *m;
    unsigned vector;
    int n;
};

static void *notify_loop(void *arg)
{
    struct notifier *t = arg;
    for (int i = 0; i < t->n; i++)
        msix_notify(t->m, t->vector);
    return NULL;
}

/* Several device threads against the guest toggling the mask: every notification is either
 * counted on the eventfd or folded into the one pending bit, which the final unmask sends. */
static void test_msix_threads(void)
{
    make();
    set_ctrl(ENABLE);
    program(3, 0xfee00000u, 0x43, false);
    struct notifier t = {dev.msix, 3, 20000};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, notify_loop, &t), 0);
    for (int i = 0; i < 2000; i++)
        wr(TABLE_OFF + 16 * 3 + 12, i & 1, 4);
    wr(TABLE_OFF + 16 * 3 + 12, 0, 4);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    uint64_t got = drain(msi.fds[3]);
    CHECK(got > 0 && got <= 60000, "delivered %llu", (unsigned long long)got);
    CHECK_EQ(pba(), 0);
    done();
}

int main(void)
{
    RUN(test_msix_capability);
    RUN(test_msix_lazy_bind);
    RUN(test_msix_deliver);
    RUN(test_msix_masking_and_pending);
    RUN(test_msix_out_of_range);
    RUN(test_msix_hostile_accesses);
    RUN(test_msix_bind_failure);
    RUN(test_msix_create_errors);
    RUN(test_msix_threads);
    return check_done();
}
