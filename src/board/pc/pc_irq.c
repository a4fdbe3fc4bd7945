/* SPDX-License-Identifier: MIT */
/* Interrupt plumbing of the PC board: ISA/PCI lines, MSI vectors (on the backend's irqchip: GSIs
 * from 24 up with irq notifiers; on revirter's own: pc_platform) and queue notifiers, behind the
 * callback tables devices see. */
#include "pc_internal.h"

#include <errno.h>
#include <stdlib.h>

#include "board/pc/pc_platform.h"
#include "sys/ratelimit.h"

void pc_set_irq(void *opaque, unsigned gsi, bool level)
{
    struct pc *pc = opaque;
    /* Devices are made before the backend is opened; every line starts low, so a device that
     * sets its line while being made changes nothing the VM could see. */
    if (!pc->hvm)
        return;
    if (pc->platform)
        pc_platform_set_irq(pc->platform, gsi, level);
    else if (hav_vm_irq_line(pc->hvm, gsi, level) < 0)
        pc_error("interrupt line %u: %s", gsi, hav_last_error());
}

/* These run when the guest enables or programs MSI-X or moves a BAR, as often as it likes, so
 * their failures share one rate-limited log (they are not start-up errors). */
static struct ratelimit plumbing_log = RATELIMIT_INIT;

static int msi_bind(void *opaque, int fd)
{
    struct pc *pc = opaque;
    if (pc->platform)
        return pc_platform_msi_bind(pc->platform, fd);
    int gsi = -ENOSPC;
    pthread_mutex_lock(&pc->gsi_lock);
    for (unsigned g = 24; g < HAV_MAX_GSI; g++) {
        if (!(pc->gsi_used[g / 64] & (1ull << (g % 64)))) {
            pc->gsi_used[g / 64] |= 1ull << (g % 64);
            gsi = (int)g;
            break;
        }
    }
    pthread_mutex_unlock(&pc->gsi_lock);
    if (gsi < 0)
        return gsi;
    /* A route must exist before the notifier fires; until the guest programs the vector it
     * points nowhere useful, and the device does not signal a vector MSI-X left masked. */
    int r = hav_vm_set_msi_route(pc->hvm, (unsigned)gsi, 0xfee00000u, 0);
    if (r == 0 && (r = hav_vm_irq_notifier(pc->hvm, fd, (unsigned)gsi)) < 0 &&
        hav_vm_clear_msi_route(pc->hvm, (unsigned)gsi) < 0)
        ratelimit_log(&plumbing_log, "revirter: MSI route %d: %s", gsi, hav_last_error());
    if (r < 0) {
        /* Not logged here: MSI-X refuses the enable and says so in one line. */
        pthread_mutex_lock(&pc->gsi_lock);
        pc->gsi_used[gsi / 64] &= ~(1ull << (gsi % 64));
        pthread_mutex_unlock(&pc->gsi_lock);
        return r;
    }
    return gsi;
}

static int msi_route(void *opaque, int gsi, uint64_t address, uint32_t data)
{
    struct pc *pc = opaque;
    if (pc->platform)
        return pc_platform_msi_route(pc->platform, gsi, address, data);
    int r = hav_vm_set_msi_route(pc->hvm, (unsigned)gsi, address, data);
    if (r < 0)
        ratelimit_log(&plumbing_log, "revirter: MSI route %d: %s", gsi, hav_last_error());
    return r;
}

static void msi_unbind(void *opaque, int gsi, int fd)
{
    struct pc *pc = opaque;
    if (pc->platform) {
        pc_platform_msi_unbind(pc->platform, gsi, fd);
        return;
    }
    if (hav_vm_remove_irq_notifier(pc->hvm, fd, (unsigned)gsi) < 0)
        ratelimit_log(&plumbing_log, "revirter: MSI vector %d: %s", gsi, hav_last_error());
    if (hav_vm_clear_msi_route(pc->hvm, (unsigned)gsi) < 0)
        ratelimit_log(&plumbing_log, "revirter: MSI route %d: %s", gsi, hav_last_error());
    pthread_mutex_lock(&pc->gsi_lock);
    pc->gsi_used[gsi / 64] &= ~(1ull << (gsi % 64));
    pthread_mutex_unlock(&pc->gsi_lock);
}

static int ioevent_add(void *opaque, uint64_t addr, uint32_t len, int fd)
{
    struct pc *pc = opaque;
    struct hav_io_notifier n = {.space = HAV_IO_MMIO, .addr = addr, .len = len, .fd = fd};
    if (!pc->hvm) {
        struct hav_io_notifier *a =
            realloc(pc->early_ioevents, (pc->nearly_ioevents + 1) * sizeof(*pc->early_ioevents));
        if (!a)
            return -ENOMEM;
        pc->early_ioevents = a;
        a[pc->nearly_ioevents++] = n;
        return 0;
    }
    int r = hav_vm_io_notifier(pc->hvm, &n);
    if (r < 0)
        ratelimit_log(&plumbing_log, "revirter: queue notifier at 0x%llx: %s",
                      (unsigned long long)addr, hav_last_error());
    return r;
}

static int ioevent_del(void *opaque, uint64_t addr, uint32_t len, int fd)
{
    struct pc *pc = opaque;
    struct hav_io_notifier n = {.space = HAV_IO_MMIO, .addr = addr, .len = len, .fd = fd};
    if (!pc->hvm) {
        for (unsigned i = 0; i < pc->nearly_ioevents; i++) {
            struct hav_io_notifier *e = &pc->early_ioevents[i];
            if (e->addr == addr && e->len == len && e->fd == fd) {
                *e = pc->early_ioevents[--pc->nearly_ioevents];
                return 0;
            }
        }
        return -ENOENT;
    }
    return hav_vm_remove_io_notifier(pc->hvm, &n);
}

void pc_plumbing_init(struct pc *pc)
{
    pc->msi =
        (struct msi_ops){.opaque = pc, .bind = msi_bind, .route = msi_route, .unbind = msi_unbind};
    pc->ioevent = (struct ioevent_ops){.opaque = pc, .add = ioevent_add, .del = ioevent_del};
}
