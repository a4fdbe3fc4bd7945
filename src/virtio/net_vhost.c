/* SPDX-License-Identifier: MIT */
/* virtio-net's vhost-net backend: the kernel walks both rings and moves packets between them
 * and the TAP itself; we hand it the guest's memory map, the rings, the kick eventfds and the
 * interrupt eventfds at start, and take them back at stop. */
#include "net_backend.h"

#include "sys/ioloop.h"
#include "sys/ratelimit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/vhost.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct vhost_call {
    struct virtio_net *n;
    unsigned q;
    int fd; /* our own interrupt eventfd when the transport has none (-1 otherwise) */
};

struct net_vhost {
    struct virtio_net *n;
    int tap_fd, vhost_fd;
    uint64_t vhost_features;
    struct vhost_call call[2];
    struct ioloop *loop; /* forwards our own interrupt eventfds */
    bool ring_set[2];
};

/* vhost signalled q's eventfd: it has already applied the driver's interrupt suppression
 * (NO_INTERRUPT or used_event, §2.7.10) to rings our virtq copy never saw, so raise the
 * interrupt as is rather than through virtio_queue_notify. */
static void on_call(void *opaque, uint32_t events)
{
    (void)events;
    struct vhost_call *c = opaque;
    struct virtio_device *v = &c->n->vdev;
    uint64_t cnt;
    if (read(c->fd, &cnt, sizeof(cnt)) != sizeof(cnt))
        return;
    virtio_queue_interrupt(v, c->q);
}

static int vioctl(struct net_vhost *h, unsigned long req, void *arg, const char *what)
{
    if (ioctl(h->vhost_fd, req, arg) == 0)
        return 0;
    int r = -errno;
    /* Start and stop follow the guest's status writes, which it may repeat in a loop. */
    static struct ratelimit rl = RATELIMIT_INIT;
    ratelimit_log(&rl, "revirter: virtio-net: vhost-net %s: %s", what, strerror(-r));
    return r;
}

static void vhost_stop(struct virtio_net *n)
{
    struct net_vhost *h = n->be_state;
    for (unsigned q = 0; q < 2; q++) {
        if (!h->ring_set[q])
            continue;
        struct vhost_vring_file off = {.index = q, .fd = -1};
        (void)ioctl(h->vhost_fd, VHOST_NET_SET_BACKEND, &off);
        struct vhost_vring_state st = {.index = q};
        /* Where the kernel got to in the avail ring: the device state a resume would need. */
        if (ioctl(h->vhost_fd, VHOST_GET_VRING_BASE, &st) == 0)
            n->vdev.queues[q].vq.last_avail = (uint16_t)st.num;
        (void)ioctl(h->vhost_fd, VHOST_SET_VRING_KICK, &off);
        (void)ioctl(h->vhost_fd, VHOST_SET_VRING_CALL, &off);
        h->ring_set[q] = false;
    }
    ioloop_destroy(h->loop);
    h->loop = NULL;
    for (unsigned q = 0; q < 2; q++) {
        if (h->call[q].fd >= 0)
            close(h->call[q].fd);
        h->call[q].fd = -1;
    }
}

static int set_mem_table(struct net_vhost *h, const struct guest_mem *mem)
{
    struct vhost_memory *m =
        calloc(1, sizeof(*m) + mem->count * sizeof(struct vhost_memory_region));
    if (!m)
        return -ENOMEM;
    m->nregions = mem->count;
    for (unsigned i = 0; i < mem->count; i++) {
        m->regions[i].guest_phys_addr = mem->regions[i].gpa;
        m->regions[i].memory_size = mem->regions[i].size;
        m->regions[i].userspace_addr = (uint64_t)(uintptr_t)mem->regions[i].host;
    }
    int r = vioctl(h, VHOST_SET_MEM_TABLE, m, "SET_MEM_TABLE");
    free(m);
    return r;
}

static int ring_start(struct net_vhost *h, unsigned q)
{
    struct virtio_net *n = h->n;
    struct virtio_queue *vq = &n->vdev.queues[q];
    const struct guest_mem *mem = n->vdev.mem;
    uint16_t size = vq->vq.size;
    /* Host addresses of the rings virtq_setup already checked to lie in guest RAM. */
    void *desc = guest_mem_ptr(mem, vq->vq.desc_gpa, 16ull * size);
    void *avail = guest_mem_ptr(mem, vq->vq.avail_gpa, 6 + 2ull * size);
    void *used = guest_mem_ptr(mem, vq->vq.used_gpa, 6 + 8ull * size);
    if (!desc || !avail || !used)
        return -EINVAL;

    struct vhost_vring_state num = {.index = q, .num = size};
    struct vhost_vring_state base = {.index = q, .num = vq->vq.last_avail};
    struct vhost_vring_addr addr = {
        .index = q,
        .desc_user_addr = (uint64_t)(uintptr_t)desc,
        .avail_user_addr = (uint64_t)(uintptr_t)avail,
        .used_user_addr = (uint64_t)(uintptr_t)used,
    };
    struct vhost_vring_file kick = {.index = q, .fd = vq->kick_fd};
    int irq = -1;
    if (n->vdev.transport && n->vdev.transport->queue_irq_fd)
        irq = n->vdev.transport->queue_irq_fd(n->vdev.transport_opaque, q);
    if (irq < 0) {
        /* No direct interrupt path: vhost signals our eventfd and a thread forwards it. */
        h->call[q].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (h->call[q].fd < 0)
            return -errno;
        if (!h->loop) {
            int r = ioloop_create("virtio-net-irq", &h->loop);
            if (r < 0)
                return r;
        }
        int r = ioloop_add(h->loop, h->call[q].fd, EPOLLIN, on_call, &h->call[q]);
        if (r < 0)
            return r;
        irq = h->call[q].fd;
    }
    struct vhost_vring_file call = {.index = q, .fd = irq};
    struct vhost_vring_file backend = {.index = q, .fd = h->tap_fd};
    int r;
    h->ring_set[q] = true; /* from here on, stop undoes whatever was set */
    if ((r = vioctl(h, VHOST_SET_VRING_NUM, &num, "SET_VRING_NUM")) < 0 ||
        (r = vioctl(h, VHOST_SET_VRING_BASE, &base, "SET_VRING_BASE")) < 0 ||
        (r = vioctl(h, VHOST_SET_VRING_ADDR, &addr, "SET_VRING_ADDR")) < 0 ||
        (r = vioctl(h, VHOST_SET_VRING_KICK, &kick, "SET_VRING_KICK")) < 0 ||
        (r = vioctl(h, VHOST_SET_VRING_CALL, &call, "SET_VRING_CALL")) < 0)
        return r;
    return vioctl(h, VHOST_NET_SET_BACKEND, &backend, "NET_SET_BACKEND");
}

static int vhost_start(struct virtio_net *n)
{
    struct net_vhost *h = n->be_state;
    /* vhost takes only the ring and transport bits it reported; the offloads are the TAP's. */
    uint64_t features = n->vdev.driver_features & h->vhost_features;
    int r = vioctl(h, VHOST_SET_FEATURES, &features, "SET_FEATURES");
    if (r == 0)
        r = set_mem_table(h, n->vdev.mem);
    if (r == 0 && ioctl(h->tap_fd, TUNSETOFFLOAD, net_tap_offloads_for(&n->vdev)) < 0) {
        r = -errno;
        static struct ratelimit rl = RATELIMIT_INIT; /* at every DRIVER_OK, as above */
        ratelimit_log(&rl, "revirter: virtio-net: TUNSETOFFLOAD: %s", strerror(-r));
    }
    for (unsigned q = 0; r == 0 && q < 2; q++)
        if (n->vdev.queues[q].enabled)
            r = ring_start(h, q);
    if (r == 0 && h->loop)
        r = ioloop_start(h->loop);
    if (r < 0)
        vhost_stop(n);
    return r;
}

static void vhost_destroy(struct virtio_net *n)
{
    struct net_vhost *h = n->be_state;
    close(h->vhost_fd);
    close(h->tap_fd);
    free(h);
}

static const struct net_backend_ops vhost_ops = {
    .name = "vhost",
    .start = vhost_start,
    .stop = vhost_stop,
    .destroy = vhost_destroy,
};

int net_vhost_attach(struct virtio_net *n, int fd, unsigned offloads, char *err, size_t errlen)
{
    struct net_vhost *h = calloc(1, sizeof(*h));
    if (!h) {
        close(fd);
        snprintf(err, errlen, "virtio-net: out of memory");
        return -ENOMEM;
    }
    h->n = n;
    h->tap_fd = fd;
    for (unsigned q = 0; q < 2; q++)
        h->call[q] = (struct vhost_call){.n = n, .q = q, .fd = -1};
    int r;
    h->vhost_fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
    if (h->vhost_fd < 0) {
        r = -errno;
        snprintf(err, errlen, "vhost=on: cannot open /dev/vhost-net: %s%s", strerror(-r),
                 r == -ENOENT ? " (load the vhost_net module, or use vhost=off)" : "");
        goto fail;
    }
    /* The owner is this process: the kernel's worker then works in our address space. */
    if (ioctl(h->vhost_fd, VHOST_SET_OWNER) < 0 ||
        ioctl(h->vhost_fd, VHOST_GET_FEATURES, &h->vhost_features) < 0) {
        r = -errno;
        snprintf(err, errlen, "vhost=on: /dev/vhost-net: %s", strerror(-r));
        goto fail;
    }
    /* The core always offers these; a vhost-net without them cannot serve the device. */
    uint64_t need = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |
                    VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
    if ((h->vhost_features & need) != need) {
        r = -ENOTSUP;
        snprintf(err, errlen,
                 "vhost=on: this kernel's vhost-net lacks VERSION_1, EVENT_IDX or "
                 "INDIRECT_DESC (features %#llx); use vhost=off",
                 (unsigned long long)h->vhost_features);
        goto fail;
    }
    n->be = &vhost_ops;
    n->be_state = h;
    n->ops.features |= net_tap_features(offloads);
    if (!(h->vhost_features & VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF)))
        n->ops.features &= ~VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF);
    return 0;
fail:
    if (h->vhost_fd >= 0)
        close(h->vhost_fd);
    close(fd);
    free(h);
    return r;
}
