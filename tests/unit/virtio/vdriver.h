/* SPDX-License-Identifier: MIT */
/* A tiny virtio driver for device tests and fuzzers: fake guest RAM, split rings laid out by
 * hand, feature negotiation through the core, and a fake transport that counts interrupts. */
#ifndef REVIRT_TESTS_VDRIVER_H
#define REVIRT_TESTS_VDRIVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio/virtio.h"

struct vdriver_queue {
    uint16_t size;
    uint64_t desc, avail, used; /* guest addresses */
    uint16_t avail_idx;         /* next avail->idx to publish */
    uint16_t used_seen;         /* used entries consumed so far */
    uint16_t next_desc;         /* descriptors are handed out round-robin */
};

struct vdriver {
    struct guest_mem mem;
    uint8_t *ram;
    uint64_t ram_size;
    uint64_t brk; /* bump allocator for buffers and rings */
    uint64_t top; /* the highest brk since vdriver_init or vdriver_wipe */
    struct virtio_device *v;
    struct vdriver_queue q[VIRTIO_MAX_QUEUES];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned irqs[VIRTIO_MAX_QUEUES];
    unsigned config_irqs;
};

/* A buffer of a chain: guest address, length, device-writable or not. */
struct vdriver_buf {
    uint64_t gpa;
    uint32_t len;
    bool write;
};

/* Guest RAM of ram_size bytes at GPA 0 (must be >= 1 MiB). */
int vdriver_init(struct vdriver *d, uint64_t ram_size);
void vdriver_free(struct vdriver *d);
/* Zero all of guest RAM again and start allocating afresh (after a reset: rings go too). */
void vdriver_wipe(struct vdriver *d);
/* Allocate len bytes of zeroed guest memory aligned to align; returns its GPA (aborts when
 * full: tests size their RAM). */
uint64_t vdriver_alloc(struct vdriver *d, uint64_t len, uint64_t align);
void *vdriver_ptr(struct vdriver *d, uint64_t gpa);

/* Bind to v (after virtio_device_init): reset, negotiate features (ours & the device's; with
 * VERSION_1 always), lay out every queue with qsize entries (0: the device's maximum), enable
 * them and set DRIVER_OK. Returns the device status read back. */
uint8_t vdriver_attach(struct vdriver *d, struct virtio_device *v, uint64_t features,
                       uint16_t qsize);
/* Reset the device (status 0), as a driver does before unloading. */
void vdriver_reset(struct vdriver *d);

/* Make a chain of n buffers available on queue qi and kick the device. Returns the head. */
uint16_t vdriver_add(struct vdriver *d, unsigned qi, const struct vdriver_buf *bufs, unsigned n,
                     bool kick);
/* Wait up to timeout_ms for the next used entry of queue qi: 0 with the head and length, or
 * -ETIMEDOUT. */
int vdriver_wait_used(struct vdriver *d, unsigned qi, uint16_t *head, uint32_t *len,
                      int timeout_ms);
/* Device status as the transport reports it, NEEDS_RESET included. */
uint8_t vdriver_status(struct vdriver *d);
/* Wait up to timeout_ms for the device to set NEEDS_RESET: whether it did. */
bool vdriver_wait_needs_reset(struct vdriver *d, int timeout_ms);

#endif
