/* SPDX-License-Identifier: MIT */
/* Inside virtio-net: the device state shared by its backends (TAP, vhost-net, libslirp), the
 * receive-buffer stash and transmit-chain checks they all use, and each backend's entry point.
 * Not for use outside src/virtio/net*.c, except the test hook virtio_net_create_fd. */
#ifndef REVIRT_VIRTIO_NET_BACKEND_H
#define REVIRT_VIRTIO_NET_BACKEND_H

#include "net.h"

#include <stdatomic.h>
#include <sys/uio.h>

#define NET_RXQ 0u
#define NET_TXQ 1u

/* Features every backend offers; TAP adds the offloads it can pass through. */
#define NET_BASE_FEATURES                                                                          \
    (VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_STATUS) |                              \
     VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF))

/* Segments the stash may hold: one readv takes them all plus a sentinel (UIO_MAXIOV). */
#define NET_RX_IOV_MAX 1023u

struct virtio_net;

/* What a backend does on the device's start and stop (virtio_device_ops, same rules), and
 * when the device is destroyed (after the last stop). */
struct net_backend_ops {
    const char *name;
    int (*start)(struct virtio_net *n);
    void (*stop)(struct virtio_net *n);
    void (*destroy)(struct virtio_net *n);
};

/* One popped receive chain held in the stash; its writable segments are iov[first..+niov). */
struct net_rx_chain {
    uint16_t head;
    uint16_t niov;
    uint32_t len;
};

/* Receive chains popped ahead of the packets that will fill them, in ring order, so that a
 * packet can be read straight into guest memory (one readv over the whole stash) and a
 * packet too large for the buffers at hand waits instead of being lost. Used only by the
 * thread that delivers packets, between start and stop. */
struct net_rx_stash {
    struct net_rx_chain chain[VIRTQ_MAX_SIZE];
    unsigned nchain;
    /* One spare slot past the segments a packet may use: a reader puts a sentinel byte
     * there, so that a packet too large for the buffers shows as one byte too many (a TAP
     * read, like a datagram read, silently truncates). */
    struct iovec iov[NET_RX_IOV_MAX + 1];
    unsigned niov;
    uint64_t bytes; /* sum of chain[].len */
};

struct virtio_net {
    struct virtio_device vdev;
    struct virtio_device_ops ops; /* per device: the features depend on the backend */
    uint8_t config[VIRTIO_NET_CFG_SIZE];
    const struct net_backend_ops *be;
    void *be_state;
    /* Negotiated, cached at start for the data path. */
    bool mrg_rxbuf, guest_csum;
    /* A queue found malformed: it is left alone until reset (set only by the data thread). */
    bool rx_broken, tx_broken;
    /* Chains were pushed since the last net_notify of that queue. */
    bool rx_pushed, tx_pushed;
    struct net_rx_stash rx;
    struct virtq_req req; /* scratch for popping receive chains */
    _Atomic uint64_t rx_packets, rx_bytes, rx_dropped, tx_packets, tx_bytes, tx_dropped;
};

/* ---- shared data-path helpers (net.c), called from the backend's data thread */

/* Raise queue q's interrupt if chains were pushed on it since the last call (and the driver
 * wants one): once per batch rather than per packet. */
void net_notify(struct virtio_net *n, unsigned q);

/* Reset the per-start state: negotiated flags, empty stash, queues usable. */
void net_data_reset(struct virtio_net *n);

/* Pop receive chains into the stash until it holds at least want bytes (with MRG_RXBUF) or
 * one chain (without), the ring is empty, or the stash is full. 0, or -EIO when the ring or a
 * chain is malformed (readable segments, shorter than the header): the device then needs a
 * reset and rx_broken is set. */
__attribute__((warn_unused_result)) int net_rx_fill(struct virtio_net *n, uint64_t want);
/* Bytes a packet may use right now: the whole stash with MRG_RXBUF, else the first chain. */
uint64_t net_rx_room(const struct virtio_net *n);
/* Segments a packet may be read into (the stash, or the first chain's). */
unsigned net_rx_iovcnt(const struct virtio_net *n);
/* A packet of len bytes, header first, was written at the start of the stash: set
 * num_buffers, hand back the chains it filled and drop them from the stash. len must be
 * <= net_rx_room. Clears the header's flags when the driver did not take GUEST_CSUM. 0 or
 * -EIO (rx_broken set). */
__attribute__((warn_unused_result)) int net_rx_commit(struct virtio_net *n, uint32_t len);
/* Copy a packet (hdr then frame; hdr may be NULL for a zeroed header) into the guest's
 * buffers: 1 delivered, 0 no room yet (keep it and wait for a kick), -EMSGSIZE it can never
 * fit (the caller drops it), -EIO the queue broke. */
__attribute__((warn_unused_result)) int net_rx_put(struct virtio_net *n,
                                                   const struct virtio_net_hdr_v1 *hdr,
                                                   const void *frame, size_t len);
/* When the ring had no room: ask the driver for a kick. true when buffers arrived meanwhile,
 * so the caller tries again instead of sleeping. */
bool net_rx_wait(struct virtio_net *n);
/* Having room again: stop the driver's rx kicks. */
void net_rx_unwait(struct virtio_net *n);

/* Pop the next transmit chain into r: 1 with r holding a packet of r->out_len bytes (header
 * included, <= VIRTIO_NET_PKT_MAX), 0 ring empty, -EIO malformed ring or chain (writable
 * segments, shorter than the header): needs reset, tx_broken set. Oversized packets are
 * completed and counted as dropped here. */
__attribute__((warn_unused_result)) int net_tx_pop(struct virtio_net *n, struct virtq_req *r);
/* Complete a transmit chain (sent when sent is true, else counted as dropped). 0 or -EIO. */
__attribute__((warn_unused_result)) int net_tx_complete(struct virtio_net *n,
                                                        const struct virtq_req *r, bool sent);
/* A transmit run on the data thread: net_tx_begin, then batches of net_tx_pop, send and
 * net_tx_complete (each chain taking one from a budget) for as long as net_tx_more says, then
 * net_notify(n, NET_TXQ). net_tx_begin: false when the queue is broken (leave it alone); else
 * the driver's kicks are turned off while the ring is drained. */
bool net_tx_begin(struct virtio_net *n);
/* After a batch, with the budget left: false when the run should end (the queue broke; the
 * budget is spent, and a kick to ourselves brings us back after rx had a turn; or the ring is
 * empty and kicks are on again); true when chains came in meanwhile. */
bool net_tx_more(struct virtio_net *n, unsigned budget);

/* ---- backends; each sets n->be, n->be_state and adds to n->ops.features */

/* TAP with the data path in our I/O thread, over fd (a TAP with a 12-byte vnet header, or
 * any packet socket speaking the same framing: the test hook). Takes fd. is_tap: fd is a
 * TAP (offloads are set with TUNSETOFFLOAD); offloads: TUN_F_* the TAP accepts. */
__attribute__((warn_unused_result)) int net_tap_attach(struct virtio_net *n, int fd, bool is_tap,
                                                       unsigned offloads, char *err, size_t errlen);
/* Open (or create) TAP ifname with vnet headers, non-blocking: *fd and the TUN_F_* offloads it
 * accepts. */
__attribute__((warn_unused_result)) int net_tap_open(const char *ifname, int *fd,
                                                     unsigned *offloads, char *err, size_t errlen);
/* vhost-net over TAP fd (taken). */
__attribute__((warn_unused_result)) int
net_vhost_attach(struct virtio_net *n, int fd, unsigned offloads, char *err, size_t errlen);
/* libslirp user-mode networking with cfg's host forwards. */
__attribute__((warn_unused_result)) int net_slirp_attach(struct virtio_net *n,
                                                         const struct virtio_net_config *cfg,
                                                         char *err, size_t errlen);

/* Offloads for a TAP: the features for TUN_F_* offloads, and the TUN_F_* for a driver's
 * features (net_tap.c). */
uint64_t net_tap_features(unsigned offloads);
unsigned net_tap_offloads_for(const struct virtio_device *v);

/* ---- test hook: a TAP-mode device over fd (e.g. one end of an AF_UNIX SOCK_DGRAM or
 * SOCK_SEQPACKET socketpair: one datagram per packet, vnet header first). Offers every TAP
 * offload; fd is closed by virtio_net_destroy (and here on failure). cfg may be NULL. */
__attribute__((warn_unused_result)) int virtio_net_create_fd(const struct virtio_net_config *cfg,
                                                             int fd, const struct guest_mem *mem,
                                                             struct virtio_net **out, char *err,
                                                             size_t errlen);

#endif
