/* SPDX-License-Identifier: MIT */
/* virtio-rng (virtio 1.2 §5.4): entropy from the host's getrandom(). */
#ifndef REVIRT_VIRTIO_RNG_H
#define REVIRT_VIRTIO_RNG_H

#include "virtio.h"

struct virtio_rng;

__attribute__((warn_unused_result)) int virtio_rng_create(const struct guest_mem *mem,
                                                          struct virtio_rng **out);
struct virtio_device *virtio_rng_device(struct virtio_rng *r);
void virtio_rng_destroy(struct virtio_rng *r);

#endif
