/* SPDX-License-Identifier: MIT */
/* virtio-blk (virtio 1.2 §5.2) on a raw image file, with asynchronous I/O off the vCPU threads. */
#ifndef REVIRT_VIRTIO_BLK_H
#define REVIRT_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>

#include "virtio.h"

#define VIRTIO_BLK_ID_BYTES 20 /* §5.2.6: GET_ID answers up to 20 bytes */

/* Feature bits (§5.2.3) */
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types, status values and the write-zeroes flag (§5.2.6) */
#define VIRTIO_BLK_T_IN 0u
#define VIRTIO_BLK_T_OUT 1u
#define VIRTIO_BLK_T_FLUSH 4u
#define VIRTIO_BLK_T_GET_ID 8u
#define VIRTIO_BLK_T_DISCARD 11u
#define VIRTIO_BLK_T_WRITE_ZEROES 13u
#define VIRTIO_BLK_S_OK 0u
#define VIRTIO_BLK_S_IOERR 1u
#define VIRTIO_BLK_S_UNSUPP 2u
#define VIRTIO_BLK_WZ_F_UNMAP 1u

/* Byte offsets in the configuration space (§5.2.4, little-endian). The device exposes the
 * structure up to and including write_zeroes_may_unmap. */
#define VIRTIO_BLK_CFG_CAPACITY 0    /* le64, in 512-byte sectors */
#define VIRTIO_BLK_CFG_SEG_MAX 12    /* le32 */
#define VIRTIO_BLK_CFG_BLK_SIZE 20   /* le32 */
#define VIRTIO_BLK_CFG_NUM_QUEUES 34 /* le16 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG 40
#define VIRTIO_BLK_CFG_DISCARD_ALIGNMENT 44
#define VIRTIO_BLK_CFG_MAX_WZ_SECTORS 48
#define VIRTIO_BLK_CFG_MAX_WZ_SEG 52
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP 56 /* u8 */
#define VIRTIO_BLK_CFG_SIZE 60

/* How requests are run (--disk ...,aio=). */
enum virtio_blk_aio {
    VIRTIO_BLK_AIO_AUTO = 0, /* io_uring, or worker threads where the kernel refuses it */
    VIRTIO_BLK_AIO_URING,    /* io_uring only: create fails without it */
    VIRTIO_BLK_AIO_THREADS,  /* worker threads, even where io_uring works */
};

struct virtio_blk_config {
    const char *path;
    bool readonly;
    const char *id; /* serial for GET_ID (<= 20 bytes); NULL: derived from the file */
    bool buffered;  /* direct=off: I/O through the host's page cache instead of O_DIRECT */
    enum virtio_blk_aio aio;
};

struct virtio_blk;

/* Open the image and describe it. A bad image (missing, a directory, not a regular file or
 * block device, empty, a size that is not a multiple of 512, no write permission without ro,
 * locked by another process) or an id longer than 20 bytes fails with a negative errno and a
 * one-line reason in err (without the path: the caller names the disk). The image is locked
 * (an OFD lock, shared when read-only) until virtio_blk_destroy.
 *
 * I/O goes through io_uring or a few worker threads, as cfg->aio says; with VIRTIO_BLK_AIO_AUTO
 * the threads take over when the kernel refuses io_uring (old kernel, seccomp), with
 * VIRTIO_BLK_AIO_URING that refusal fails the create. */
__attribute__((warn_unused_result)) int virtio_blk_create(const struct virtio_blk_config *cfg,
                                                          const struct guest_mem *mem,
                                                          struct virtio_blk **out, char *err,
                                                          size_t errlen);
struct virtio_device *virtio_blk_device(struct virtio_blk *b);
/* "io_uring" or "threads": how requests are run, for messages and tests. */
const char *virtio_blk_backend(const struct virtio_blk *b);
void virtio_blk_destroy(struct virtio_blk *b);

/* For tests only: take O_DIRECT's alignment to be align bytes, whatever the file system said,
 * so that it refuses some direct transfers and the device's run-time fallback to the page cache
 * runs on a real file. true while the device still has its O_DIRECT descriptor. */
void virtio_blk_test_dio_align(struct virtio_blk *b, unsigned align);
bool virtio_blk_test_direct(const struct virtio_blk *b);

#endif
