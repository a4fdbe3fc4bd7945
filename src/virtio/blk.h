/* SPDX-License-Identifier: MIT */
/* virtio-blk (virtio 1.2 §5.2) on a raw image file, with asynchronous I/O off the vCPU threads. */
#ifndef REVIRT_VIRTIO_BLK_H
#define REVIRT_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>

#include "virtio.h"

#define VIRTIO_BLK_ID_BYTES 20 /* §5.2.6: GET_ID answers up to 20 bytes */

struct virtio_blk_config {
    const char *path;
    bool readonly;
    const char *id; /* serial for GET_ID (<= 20 bytes); NULL: derived from the file */
};

struct virtio_blk;

/* Open the image and describe it. A bad image (missing, not a regular file or block device, a
 * size that is not a multiple of 512, no write permission without ro) fails with a negative
 * errno and a one-line reason in err. */
__attribute__((warn_unused_result)) int virtio_blk_create(const struct virtio_blk_config *cfg,
                                                          const struct guest_mem *mem,
                                                          struct virtio_blk **out, char *err,
                                                          size_t errlen);
struct virtio_device *virtio_blk_device(struct virtio_blk *b);
void virtio_blk_destroy(struct virtio_blk *b);

#endif
