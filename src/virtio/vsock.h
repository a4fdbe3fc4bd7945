/* SPDX-License-Identifier: MIT */
/* virtio-vsock (virtio 1.2 §5.10) with the host side on Unix sockets, as Firecracker does: the
 * host connects to uds and writes "CONNECT <port>\n" (answered "OK <hostport>\n"); a guest
 * connection to host port P reaches the listener at "<uds>_<P>". */
#ifndef REVIRT_VIRTIO_VSOCK_H
#define REVIRT_VIRTIO_VSOCK_H

#include <stddef.h>
#include <stdint.h>

#include "virtio.h"

struct virtio_vsock_config {
    uint32_t guest_cid; /* >= 3 */
    const char *uds;    /* path of the listening socket revirter creates */
};

struct virtio_vsock;

/* Creates the listening socket at uds (a stale socket file is replaced; any other file is
 * refused). Errors carry a one-line reason in err. */
__attribute__((warn_unused_result)) int virtio_vsock_create(const struct virtio_vsock_config *cfg,
                                                            const struct guest_mem *mem,
                                                            struct virtio_vsock **out, char *err,
                                                            size_t errlen);
struct virtio_device *virtio_vsock_device(struct virtio_vsock *s);
void virtio_vsock_destroy(struct virtio_vsock *s);

#endif
