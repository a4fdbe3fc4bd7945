/* SPDX-License-Identifier: MIT */
/* A virtio device independent of its transport (virtio 1.2 §2-§3): feature negotiation, status
 * and reset, queues with their kick eventfds, and interrupts raised through the transport.
 * Devices (blk, net, rng, console, vsock) fill a virtio_device_ops; virtio_pci maps the
 * registers of §4.1 onto the calls below. */
#ifndef REVIRT_VIRTIO_VIRTIO_H
#define REVIRT_VIRTIO_VIRTIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtqueue.h"
#include "core/guest_mem.h"

#define VIRTIO_MAX_QUEUES 8u

/* Device status bits (§2.1) */
#define VIRTIO_STATUS_ACKNOWLEDGE 1u
#define VIRTIO_STATUS_DRIVER 2u
#define VIRTIO_STATUS_DRIVER_OK 4u
#define VIRTIO_STATUS_FEATURES_OK 8u
#define VIRTIO_STATUS_NEEDS_RESET 64u
#define VIRTIO_STATUS_FAILED 128u

/* Reserved feature bits (§6) */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_ACCESS_PLATFORM 33

/* Device IDs (§5) */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_VSOCK 19

#define VIRTIO_BIT(b) (1ull << (b))

/* ISR status bits (§4.1.4.5), used with INTx only */
#define VIRTIO_ISR_QUEUE 1u
#define VIRTIO_ISR_CONFIG 2u

struct virtio_device;

/* What a device provides. Queue and guest-memory access happen only between start and stop,
 * on threads the device owns; start and stop are called with the device lock held, from a vCPU
 * thread. */
struct virtio_device_ops {
    const char *name;    /* "virtio-blk", for messages */
    uint16_t device_id;  /* VIRTIO_ID_* */
    unsigned num_queues; /* 1..VIRTIO_MAX_QUEUES */
    uint16_t queue_size; /* largest queue size offered, power of two <= VIRTQ_MAX_SIZE */
    /* Device-specific features. The core adds VERSION_1, RING_EVENT_IDX and INDIRECT_DESC. */
    uint64_t features;
    /* Which bits of the device configuration space the driver may write: config_size bytes, a 1
     * bit writable; NULL (every device today) when none are. Most fields are read-only (§2.5);
     * a device lists only what its spec section lets the driver write and it offered (blk's
     * writeback with CONFIG_WCE §5.2.4, console's emerg_wr with EMERG_WRITE §5.3.4). */
    const uint8_t *config_wmask;
    /* After the driver wrote writable config bytes in [off, off + len) (already stored). May
     * be NULL. */
    void (*config_written)(void *dev, uint32_t off, uint32_t len);
    /* DRIVER_OK was set: the enabled queues are valid; start processing. A negative errno
     * fails the device (status FAILED is not set by the driver, so NEEDS_RESET is reported). */
    int (*start)(void *dev);
    /* Reset (or teardown): stop processing and, on return, touch no queue or guest memory.
     * Called only after a successful start. */
    void (*stop)(void *dev);
};

/* How the core reaches its transport: interrupts and, for vhost, the eventfd behind a queue's
 * interrupt. */
struct virtio_transport_ops {
    void (*notify_queue)(void *opaque, unsigned q);
    void (*notify_config)(void *opaque);
    /* eventfd whose write raises q's interrupt without the VMM (-1 if there is none). */
    int (*queue_irq_fd)(void *opaque, unsigned q);
};

struct virtio_queue {
    struct virtq vq;
    int kick_fd; /* eventfd the driver's notifications signal; valid for the device's life */
    /* Registers the driver programs before enabling the queue (§4.1.4.3). */
    uint16_t size;
    uint64_t desc, avail, used;
    uint16_t msix_vector;
    bool enabled;
};

struct virtio_device {
    const struct virtio_device_ops *ops;
    void *dev;
    const struct guest_mem *mem;
    uint8_t *config; /* device configuration space, owned by the device */
    uint32_t config_size;
    /* Serialises the driver's register accesses (several vCPUs) and config updates by the
     * device. Never held while the device's threads wait on the guest. */
    pthread_mutex_t lock;
    uint64_t host_features, driver_features;
    uint8_t status;
    uint8_t config_generation;
    uint16_t config_msix_vector;
    bool started;
    atomic_uint isr;
    atomic_bool needs_reset; /* DEVICE_NEEDS_RESET, kept apart from status (see virtio_status) */
    struct virtio_queue queues[VIRTIO_MAX_QUEUES];
    const struct virtio_transport_ops *transport;
    void *transport_opaque;
};

/* Set up v for device dev; config/config_size is the device's configuration space. Creates the
 * kick eventfds. -EINVAL for bad ops, -errno when eventfds cannot be made. */
__attribute__((warn_unused_result)) int
virtio_device_init(struct virtio_device *v, const struct virtio_device_ops *ops, void *dev,
                   uint8_t *config, uint32_t config_size, const struct guest_mem *mem);
/* Stop the device if started and release the eventfds. */
void virtio_device_cleanup(struct virtio_device *v);

/* ---- device side (any thread) */

/* Raise q's interrupt if the driver wants one for what was pushed (virtq_should_notify). */
void virtio_queue_notify(struct virtio_device *v, unsigned q);
/* Raise q's interrupt unconditionally: for a backend that already applied the driver's
 * suppression itself (vhost signals only when the driver wants an interrupt). */
void virtio_queue_interrupt(struct virtio_device *v, unsigned q);
/* The device changed its configuration (config generation bumps, config interrupt). Call
 * without holding v->lock. */
void virtio_config_changed(struct virtio_device *v);
/* A malformed request or queue: set DEVICE_NEEDS_RESET, raise the config interrupt, log why on
 * stderr once per reset. The device stops using its queues until the driver resets it. */
void virtio_set_needs_reset(struct virtio_device *v, const char *why);
bool virtio_has_feature(const struct virtio_device *v, unsigned bit);

/* ---- transport side (with v->lock held) */

/* The device status as the driver reads it: what it wrote, plus NEEDS_RESET when raised. */
uint8_t virtio_status(const struct virtio_device *v);

/* Write the device status (§2.1): 0 resets (stops the device, clears queues and features),
 * FEATURES_OK is refused (left clear) when the driver accepted features we did not offer or
 * omitted VERSION_1, DRIVER_OK validates and enables queues then starts the device. */
void virtio_write_status(struct virtio_device *v, uint8_t status);
/* The driver wrote data[0..len) at off of the device configuration space: only the bits in
 * ops->config_wmask are stored (then config_written runs); everything else, and anything
 * outside the space, is dropped, so what the device reports cannot be changed by the guest. */
void virtio_config_write(struct virtio_device *v, uint32_t off, const uint8_t *data, uint32_t len);
/* 32-bit windows onto the 64-bit feature words (§4.1.4.3 feature_select). */
uint32_t virtio_host_features(const struct virtio_device *v, uint32_t select);
void virtio_write_driver_features(struct virtio_device *v, uint32_t select, uint32_t value);

#endif
