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

/* Feature bits (§5.1.3) */
#define VIRTIO_NET_F_CSUM 0       /* the driver may leave checksums to the device */
#define VIRTIO_NET_F_GUEST_CSUM 1 /* the driver accepts packets with partial checksums */
#define VIRTIO_NET_F_MAC 5        /* config mac is valid */
#define VIRTIO_NET_F_GUEST_TSO4 7 /* the driver takes TCPv4 segmentation offload */
#define VIRTIO_NET_F_GUEST_TSO6 8 /* ... TCPv6 */
#define VIRTIO_NET_F_GUEST_ECN 9  /* ... with ECN */
#define VIRTIO_NET_F_HOST_TSO4 11 /* the device takes TCPv4 segmentation offload */
#define VIRTIO_NET_F_HOST_TSO6 12 /* ... TCPv6 */
#define VIRTIO_NET_F_HOST_ECN 13  /* ... with ECN */
#define VIRTIO_NET_F_MRG_RXBUF 15 /* a received packet may span several buffers */
#define VIRTIO_NET_F_STATUS 16    /* config status is valid */

/* Configuration space (§5.1.4): byte offsets, little-endian. */
#define VIRTIO_NET_CFG_MAC 0          /* u8[6] */
#define VIRTIO_NET_CFG_STATUS 6       /* le16 */
#define VIRTIO_NET_CFG_MAX_VQ_PAIRS 8 /* le16, always 1 */
#define VIRTIO_NET_CFG_SIZE 10
#define VIRTIO_NET_S_LINK_UP 1u

/* The header in front of every packet (§5.1.6): with VERSION_1 always the 12-byte form that
 * carries num_buffers. TAP's vnet header (TUNSETVNETHDRSZ 12) has the same layout. */
struct virtio_net_hdr_v1 {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
};
#define VIRTIO_NET_HDR_LEN 12u
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1u
#define VIRTIO_NET_HDR_F_DATA_VALID 2u
#define VIRTIO_NET_HDR_GSO_NONE 0u
#define VIRTIO_NET_HDR_GSO_TCPV4 1u
#define VIRTIO_NET_HDR_GSO_UDP 3u
#define VIRTIO_NET_HDR_GSO_TCPV6 4u
#define VIRTIO_NET_HDR_GSO_ECN 0x80u

/* The largest packet either way, header included: a 64 KiB GSO frame with an Ethernet and a
 * VLAN header (§5.1.6.3.1 asks drivers for 65562-byte buffers). Larger ones are dropped. */
#define VIRTIO_NET_PKT_MAX (VIRTIO_NET_HDR_LEN + 65536u + 18u)

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

/* Packet counters since create, updated by the device's thread (vhost: not counted). */
struct virtio_net_stats {
    uint64_t rx_packets, rx_bytes; /* host -> guest, delivered */
    uint64_t rx_dropped;           /* lost: too large for the guest's buffers, or queue full */
    uint64_t tx_packets, tx_bytes; /* guest -> host, handed to the backend */
    uint64_t tx_dropped;           /* oversized, or refused by the backend */
};

struct virtio_net;

/* Open the backend and build the device. TAP: the interface is opened (created if permitted)
 * with vnet headers; vhost additionally opens /dev/vhost-net and takes ownership of it. USER:
 * a libslirp stack (10.0.2.0/24, gateway 10.0.2.2, DNS 10.0.2.3, DHCP from 10.0.2.15) whose
 * host forwards are bound here, so a port in use fails now. vhost needs the guest's RAM
 * layout and the queue interrupt eventfds, which the device gets from mem and its transport.
 * Errors return a negative errno with a one-line reason in err. */
__attribute__((warn_unused_result)) int virtio_net_create(const struct virtio_net_config *cfg,
                                                          const struct guest_mem *mem,
                                                          struct virtio_net **out, char *err,
                                                          size_t errlen);
struct virtio_device *virtio_net_device(struct virtio_net *n);
void virtio_net_get_stats(struct virtio_net *n, struct virtio_net_stats *s);
/* Release the device (stopping it first) and its backend. NULL is fine. */
void virtio_net_destroy(struct virtio_net *n);

#endif
