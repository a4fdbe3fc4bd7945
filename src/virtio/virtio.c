/* SPDX-License-Identifier: MIT */
/* The transport-independent part of a virtio device: feature negotiation, the status state
 * machine with reset (virtio 1.2 §2.1, §3.1), queues and their interrupts. */
#include "virtio.h"

#include "sys/ratelimit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NO_VECTOR 0xffffu

/* What every device gets: modern only, event index and indirect descriptors (§6). */
#define CORE_FEATURES                                                                              \
    (VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |                             \
     VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC))

static void queues_reset(struct virtio_device *v)
{
    for (unsigned i = 0; i < v->ops->num_queues; i++) {
        struct virtio_queue *q = &v->queues[i];
        virtq_reset(&q->vq);
        q->size = v->ops->queue_size;
        q->desc = q->avail = q->used = 0;
        q->msix_vector = NO_VECTOR;
        q->enabled = false;
        /* Drop kicks that arrived before the reset: they are for rings that no longer exist. */
        uint64_t n;
        while (read(q->kick_fd, &n, sizeof(n)) == sizeof(n))
            ;
    }
}

int virtio_device_init(struct virtio_device *v, const struct virtio_device_ops *ops, void *dev,
                       uint8_t *config, uint32_t config_size, const struct guest_mem *mem)
{
    if (!ops || !ops->start || !ops->stop || ops->num_queues == 0 ||
        ops->num_queues > VIRTIO_MAX_QUEUES || ops->queue_size == 0 ||
        ops->queue_size > VIRTQ_MAX_SIZE || (ops->queue_size & (ops->queue_size - 1)) ||
        (config_size && !config) || !mem)
        return -EINVAL;
    memset(v, 0, sizeof(*v));
    v->ops = ops;
    v->dev = dev;
    v->mem = mem;
    v->config = config;
    v->config_size = config_size;
    v->host_features = ops->features | CORE_FEATURES;
    v->config_msix_vector = NO_VECTOR;
    atomic_init(&v->isr, 0);
    atomic_init(&v->needs_reset, false);
    pthread_mutex_init(&v->lock, NULL);
    for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
        v->queues[i].kick_fd = -1;
    for (unsigned i = 0; i < ops->num_queues; i++) {
        virtq_init(&v->queues[i].vq, mem);
        v->queues[i].kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (v->queues[i].kick_fd < 0) {
            int r = -errno;
            virtio_device_cleanup(v);
            return r;
        }
    }
    queues_reset(v);
    return 0;
}

void virtio_device_cleanup(struct virtio_device *v)
{
    if (!v->ops)
        return;
    pthread_mutex_lock(&v->lock);
    if (v->started)
        v->ops->stop(v->dev);
    v->started = false;
    pthread_mutex_unlock(&v->lock);
    for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
        if (v->queues[i].kick_fd >= 0)
            close(v->queues[i].kick_fd);
    pthread_mutex_destroy(&v->lock);
    v->ops = NULL;
}

/* ---------------------------------------------------------------- device side */

static void raise_config(struct virtio_device *v)
{
    atomic_fetch_or(&v->isr, VIRTIO_ISR_CONFIG);
    if (v->transport && v->transport->notify_config)
        v->transport->notify_config(v->transport_opaque);
}

void virtio_queue_interrupt(struct virtio_device *v, unsigned q)
{
    if (q >= v->ops->num_queues)
        return;
    atomic_fetch_or(&v->isr, VIRTIO_ISR_QUEUE);
    if (v->transport && v->transport->notify_queue)
        v->transport->notify_queue(v->transport_opaque, q);
}

void virtio_queue_notify(struct virtio_device *v, unsigned q)
{
    if (q < v->ops->num_queues && virtq_should_notify(&v->queues[q].vq))
        virtio_queue_interrupt(v, q);
}

void virtio_config_changed(struct virtio_device *v)
{
    /* The generation is read by the driver around multi-byte config reads (§2.5.1). */
    __atomic_add_fetch(&v->config_generation, 1, __ATOMIC_SEQ_CST);
    raise_config(v);
}

void virtio_set_needs_reset(struct virtio_device *v, const char *why)
{
    /* A status bit the driver cannot clear but by reset; kept apart from v->status so that a
     * device thread never needs the lock a vCPU may hold while stopping that thread. */
    bool was = atomic_exchange(&v->needs_reset, true);
    if (was)
        return;
    /* Once per reset, but a guest can break and reset its devices in a loop. */
    static struct ratelimit rl = RATELIMIT_INIT;
    ratelimit_log(&rl, "revirter: %s: %s; the device needs a reset by the guest", v->ops->name,
                  why ? why : "malformed request");
    raise_config(v);
}

bool virtio_has_feature(const struct virtio_device *v, unsigned bit)
{
    return bit < 64 && (v->driver_features & VIRTIO_BIT(bit));
}

/* ---------------------------------------------------------------- transport side */

uint8_t virtio_status(const struct virtio_device *v)
{
    return v->status | (atomic_load(&v->needs_reset) ? VIRTIO_STATUS_NEEDS_RESET : 0);
}

uint32_t virtio_host_features(const struct virtio_device *v, uint32_t select)
{
    return select < 2 ? (uint32_t)(v->host_features >> (32 * select)) : 0;
}

void virtio_write_driver_features(struct virtio_device *v, uint32_t select, uint32_t value)
{
    /* Features are fixed once FEATURES_OK is set (§3.1.1 step 5). */
    if (select >= 2 || (v->status & VIRTIO_STATUS_FEATURES_OK))
        return;
    uint64_t mask = 0xffffffffull << (32 * select);
    v->driver_features = (v->driver_features & ~mask) | ((uint64_t)value << (32 * select));
}

void virtio_config_write(struct virtio_device *v, uint32_t off, const uint8_t *data, uint32_t len)
{
    const uint8_t *wmask = v->ops->config_wmask;
    if (!wmask || off >= v->config_size || len > v->config_size - off)
        return;
    bool any = false;
    for (uint32_t i = 0; i < len; i++) {
        uint8_t m = wmask[off + i];
        v->config[off + i] = (uint8_t)((v->config[off + i] & ~m) | (data[i] & m));
        any |= m != 0;
    }
    if (any && v->ops->config_written)
        v->ops->config_written(v->dev, off, len);
}

static void device_reset(struct virtio_device *v)
{
    if (v->started)
        v->ops->stop(v->dev);
    v->started = false;
    v->status = 0;
    v->driver_features = 0;
    v->config_msix_vector = NO_VECTOR;
    atomic_store(&v->isr, 0);
    atomic_store(&v->needs_reset, false);
    queues_reset(v);
}

static bool features_acceptable(const struct virtio_device *v)
{
    return !(v->driver_features & ~v->host_features) &&
           (v->driver_features & VIRTIO_BIT(VIRTIO_F_VERSION_1));
}

static int start(struct virtio_device *v)
{
    bool event_idx = virtio_has_feature(v, VIRTIO_F_EVENT_IDX);
    bool indirect = virtio_has_feature(v, VIRTIO_F_INDIRECT_DESC);
    for (unsigned i = 0; i < v->ops->num_queues; i++) {
        struct virtio_queue *q = &v->queues[i];
        if (!q->enabled)
            continue;
        if (virtq_setup(&q->vq, q->size, q->desc, q->avail, q->used, event_idx, indirect) < 0) {
            char why[96];
            snprintf(why, sizeof(why), "queue %u: size or ring addresses invalid", i);
            virtio_set_needs_reset(v, why);
            return -EINVAL;
        }
    }
    int r = v->ops->start(v->dev);
    if (r < 0) {
        char why[96];
        snprintf(why, sizeof(why), "cannot start: %s", strerror(-r));
        virtio_set_needs_reset(v, why);
        return r;
    }
    v->started = true;
    return 0;
}

void virtio_write_status(struct virtio_device *v, uint8_t status)
{
    if (status == 0) {
        device_reset(v);
        return;
    }
    uint8_t added = status & ~v->status;
    /* The driver only adds bits; clearing any goes through reset (§2.1.2). */
    status |= v->status;
    if ((added & VIRTIO_STATUS_FEATURES_OK) && !features_acceptable(v))
        status &= ~VIRTIO_STATUS_FEATURES_OK;
    if ((added & VIRTIO_STATUS_DRIVER_OK) &&
        (!(status & VIRTIO_STATUS_FEATURES_OK) || (status & VIRTIO_STATUS_FAILED))) {
        /* DRIVER_OK without agreed features: refuse to run rather than guess. */
        status &= ~VIRTIO_STATUS_DRIVER_OK;
        v->status = status;
        virtio_set_needs_reset(v, "driver set DRIVER_OK before FEATURES_OK");
        return;
    }
    v->status = status;
    if ((added & VIRTIO_STATUS_DRIVER_OK) && !v->started)
        (void)start(v);
}
