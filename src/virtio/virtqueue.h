/* SPDX-License-Identifier: MIT */
/* Device side of a virtio split virtqueue (virtio 1.2 §2.7): pops descriptor chains the guest
 * made available and returns them as used. The guest is hostile: every ring index, address,
 * length and chain is checked through the guest-memory accessor; a malformed ring marks the
 * queue broken instead of crashing, hanging or touching memory outside guest RAM. */
#ifndef REVIRT_VIRTIO_VIRTQUEUE_H
#define REVIRT_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/guest_mem.h"

#define VIRTQ_MAX_SIZE 1024u /* largest queue size a device may offer */
#define VIRTQ_MAX_CHAIN 256u /* longest chain accepted, indirect tables included */

/* Descriptor flags (§2.7.5) */
#define VIRTQ_DESC_F_NEXT 1u
#define VIRTQ_DESC_F_WRITE 2u
#define VIRTQ_DESC_F_INDIRECT 4u

/* Ring flags */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1u
#define VIRTQ_USED_F_NO_NOTIFY 1u

struct virtq {
    const struct guest_mem *mem;
    /* Set by virtq_setup from what the driver wrote to the transport. */
    uint16_t size; /* power of two, 1..VIRTQ_MAX_SIZE */
    uint64_t desc_gpa, avail_gpa, used_gpa;
    bool event_idx; /* VIRTIO_F_RING_EVENT_IDX negotiated */
    bool indirect;  /* VIRTIO_F_INDIRECT_DESC negotiated */
    bool ready;
    /* Device state. */
    uint16_t last_avail; /* next avail ring entry to pop */
    uint16_t used_idx;   /* our copy of used->idx */
    uint16_t signalled;  /* used_idx at the previous notify check (event_idx) */
    bool signalled_valid;
    bool broken;       /* a malformed ring was seen: nothing more is popped until reset */
    const char *error; /* why it broke (static string) */
};

/* A popped chain: readable (driver -> device) segments first, then writable ones, each a host
 * pointer already checked to lie in guest RAM. */
struct virtq_req {
    uint16_t head;
    unsigned n_out, n_in;
    uint64_t out_len, in_len; /* bytes in readable / writable segments */
    struct iovec iov[VIRTQ_MAX_CHAIN];
};

void virtq_init(struct virtq *q, const struct guest_mem *mem);
/* Validate and adopt ring addresses: size a power of two <= VIRTQ_MAX_SIZE, desc 16-aligned,
 * avail 2-aligned, used 4-aligned, and each ring (with the event fields when event_idx) wholly
 * in guest RAM. -EINVAL otherwise (the queue stays not ready). Resets the device state. */
__attribute__((warn_unused_result)) int virtq_setup(struct virtq *q, uint16_t size, uint64_t desc,
                                                    uint64_t avail, uint64_t used, bool event_idx,
                                                    bool indirect);
/* Back to the state after virtq_init (device reset). */
void virtq_reset(struct virtq *q);

/* Pop the next available chain into r: 1 when one was popped, 0 when the ring is empty (or the
 * queue is not ready), -EIO when the ring or chain is malformed (out-of-range head or next,
 * a loop, more than min(size, VIRTQ_MAX_CHAIN) descriptors, a readable descriptor after a
 * writable one, an address outside guest RAM, nested or misaligned indirect tables, an avail
 * index more than size ahead). After -EIO the queue is broken and q->error says why. */
__attribute__((warn_unused_result)) int virtq_pop(struct virtq *q, struct virtq_req *r);
/* Put chain head back as used with len bytes written. Publishes used->idx with release
 * ordering. Out-of-range head: the queue breaks (-EIO). */
__attribute__((warn_unused_result)) int virtq_push(struct virtq *q, uint16_t head, uint32_t len);
/* Whether the driver wants an interrupt for what was pushed since the last time this returned
 * true (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with event_idx, §2.7.7). */
bool virtq_should_notify(struct virtq *q);
/* Ask the driver to stop (false) or resume (true) notifying us of new buffers. Resuming
 * returns true when buffers arrived in between, so the caller must pop again (no lost kick). */
bool virtq_notifications(struct virtq *q, bool enable);
/* Available chains not yet popped (0 for a not-ready or broken queue). */
bool virtq_has_work(const struct virtq *q);

#endif
