/* SPDX-License-Identifier: MIT */
/* virtio-net (virtio 1.2 §5.1) with a pluggable backend: a TAP device (optionally through
 * vhost-net) or user-mode networking with libslirp. */
#ifndef REVIRT_VIRTIO_NET_H
#define REVIRT_VIRTIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio.h"

#define VIRTIO_NET_MAX_FWD 16

enum virtio_net_backend { VIRTIO_NET_TAP, VIRTIO_NET_USER };

/* A user-mode host port forward: host_addr:host_port on the host reaches guest_port. */
struct virtio_net_fwd {
    bool udp;
    uint32_t host_addr; /* IPv4, host byte order; 0 = any */
    uint16_t host_port;
    uint32_t guest_addr; /* 0 = the address DHCP hands out */
    uint16_t guest_port;
};

struct virtio_net_config {
    enum virtio_net_backend backend;
    const char *ifname; /* TAP: an existing interface, or a new one if permitted */
    bool vhost;         /* TAP: move the data path into the kernel with vhost-net */
    bool has_mac;
    uint8_t mac[6]; /* else a locally administered one is made up */
    struct virtio_net_fwd fwd[VIRTIO_NET_MAX_FWD];
    unsigned nfwd;
};

struct virtio_net;

/* vhost needs the guest's RAM layout and the queue interrupt eventfds, which the device gets
 * from mem and its transport. Errors carry a one-line reason in err. */
__attribute__((warn_unused_result)) int virtio_net_create(const struct virtio_net_config *cfg,
                                                          const struct guest_mem *mem,
                                                          struct virtio_net **out, char *err,
                                                          size_t errlen);
struct virtio_device *virtio_net_device(struct virtio_net *n);
void virtio_net_destroy(struct virtio_net *n);

#endif
