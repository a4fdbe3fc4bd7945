/* SPDX-License-Identifier: MIT */
/* A vsock guest on top of vdriver, for the vsock unit test and fuzz target: keeps receive
 * buffers posted, reads packets off the receive queue and sends packets on the transmit queue. */
#ifndef REVIRT_TESTS_VSOCK_GUEST_H
#define REVIRT_TESTS_VSOCK_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "vdriver.h"
#include "virtio/vsock.h"
#include "virtio/vsock_conn.h"

#define VG_RXQ 0
#define VG_TXQ 1
#define VG_EVQ 2
#define VG_QSIZE 64u
/* Each receive buffer: a header and a page of payload, one descriptor (as Linux posts them). */
#define VG_RX_BUF (sizeof(struct vsock_hdr) + 4096)
#define VG_TX_MAX (64u * 1024)

struct vsock_guest {
    struct vdriver drv;
    struct virtio_vsock *dev;
    uint32_t cid;
    uint32_t rx_len;           /* size of the receive buffers posted from now on */
    uint64_t rx_gpa[VG_QSIZE]; /* by descriptor head */
    uint64_t rx_pool;          /* VG_QSIZE buffers of VG_RX_BUF bytes */
    uint64_t tx_gpa;           /* VG_TX_MAX + header bytes for the packet being sent */
};

/* Create the device listening on uds, attach, and post VG_QSIZE receive buffers of rx_len
 * bytes. 0 or -errno (err says why). */
int vg_init(struct vsock_guest *g, const char *uds, uint32_t cid, char *err, size_t errlen);
void vg_free(struct vsock_guest *g);
/* As vg_free, but the guest RAM stays mapped, for vg_reinit. */
void vg_release(struct vsock_guest *g);
/* As vg_init, on the RAM of a g that vg_release left, zeroed again: for a fuzz target, where
 * mapping RAM and faulting it in per input cost more than the device did. */
int vg_reinit(struct vsock_guest *g, const char *uds, uint32_t cid, char *err, size_t errlen);

/* Wait up to timeout_ms for the next packet on the receive queue: header into h, payload (up
 * to cap bytes) into payload; the buffer is posted again. Returns the payload length the used
 * length implies, -ETIMEDOUT, or -EPROTO when the used length is shorter than a header. */
int vg_recv(struct vsock_guest *g, struct vsock_hdr *h, void *payload, size_t cap, int timeout_ms);
/* Send a packet: the header (host byte order, encoded here) in one descriptor and len payload
 * bytes split into nsplit descriptors (1 when 0). h->len is sent as given. Waits until the
 * device returned the chain (0) or timeout_ms passed (-ETIMEDOUT); timeout_ms 0 does not wait
 * (then vg_wait_tx before the next send: one chain at a time). */
int vg_send(struct vsock_guest *g, const struct vsock_hdr *h, const void *payload, uint32_t len,
            unsigned nsplit, int timeout_ms);
/* Send raw chain bytes as-is (for malformed headers): one descriptor. Waits as vg_send. */
int vg_send_raw(struct vsock_guest *g, const void *bytes, uint32_t len, int timeout_ms);
/* Wait up to timeout_ms for the device to return the chain sent last: 0 or -ETIMEDOUT. */
int vg_wait_tx(struct vsock_guest *g, int timeout_ms);
/* A header from the guest (src_cid = its CID) to the host. */
struct vsock_hdr vg_hdr(const struct vsock_guest *g, uint32_t src_port, uint32_t dst_port,
                        uint16_t op);

#endif
