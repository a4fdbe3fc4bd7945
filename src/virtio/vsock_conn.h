/* SPDX-License-Identifier: MIT */
/* virtio-vsock internals shared by the device (vsock.c: queues and the guest's packets) and its
 * connections (vsock_conn.c: the Unix socket side of each stream and its flow control). Both run
 * on the device's one ioloop thread, so nothing here is locked. */
#ifndef REVIRT_VIRTIO_VSOCK_CONN_H
#define REVIRT_VIRTIO_VSOCK_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "virtqueue.h"
#include "vsock.h"

/* §5.10.6: the packet header, little endian, 44 bytes, in front of every payload. */
struct vsock_hdr {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port;
    uint32_t len;
    uint16_t type, op;
    uint32_t flags;
    uint32_t buf_alloc, fwd_cnt;
} __attribute__((packed));
_Static_assert(sizeof(struct vsock_hdr) == 44, "virtio_vsock_hdr is 44 bytes");

#define VSOCK_HOST_CID 2u
#define VSOCK_TYPE_STREAM 1u

enum vsock_op {
    VSOCK_OP_REQUEST = 1,
    VSOCK_OP_RESPONSE = 2,
    VSOCK_OP_RST = 3,
    VSOCK_OP_SHUTDOWN = 4,
    VSOCK_OP_RW = 5,
    VSOCK_OP_CREDIT_UPDATE = 6,
    VSOCK_OP_CREDIT_REQUEST = 7,
};

/* SHUTDOWN flags, from the sender's point of view: it will receive / send no more. */
#define VSOCK_SHUTDOWN_RCV 1u
#define VSOCK_SHUTDOWN_SEND 2u
#define VSOCK_SHUTDOWN_BOTH 3u

/* What we advertise as buf_alloc: guest bytes a connection buffers before the Unix socket takes
 * them. The guest may not send more than this ahead of our fwd_cnt. */
#define VSOCK_BUF_ALLOC (256u * 1024)
/* Largest payload we put in one packet (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). */
#define VSOCK_MAX_PKT (64u * 1024)
/* Tell the guest about freed buffer space once its view of it drops below this. */
#define VSOCK_CREDIT_LOW (64u * 1024)
/* Live connections at most; more are refused (host side closed, guest side RST). */
#define VSOCK_MAX_CONNS 256u
/* Host-initiated connections get local ports from here up. */
#define VSOCK_EPHEMERAL_BASE (1u << 30)
/* "CONNECT 4294967295\n" is 19 bytes. */
#define VSOCK_LINE_MAX 24u

enum vsock_conn_state {
    CONN_LINE,       /* host-initiated: reading "CONNECT <port>\n" */
    CONN_CONNECTING, /* host-initiated: REQUEST queued or sent, waiting for the RESPONSE */
    CONN_OPEN,       /* established, data may flow */
    CONN_RESET,      /* Unix socket closed; an RST to the guest is pending, then it is freed */
};

/* Control packets a connection owes the guest, sent before any more data. */
#define CTL_REQUEST 1u
#define CTL_RESPONSE 2u
#define CTL_SHUTDOWN 4u
#define CTL_CREDIT 8u
#define CTL_RST 16u

struct vsock_conn {
    struct vsock_dev *dev;
    struct vsock_conn *prev, *next;   /* all connections */
    struct vsock_conn *rprev, *rnext; /* the ready list: owes the guest a packet */
    bool ready;                       /* on the ready list */
    int fd;                           /* the Unix socket, -1 once closed */
    uint32_t events;                  /* epoll interest now, when registered */
    bool registered;                  /* fd is in the loop */
    enum vsock_conn_state state;
    uint32_t local_port, peer_port; /* host side, guest side */
    unsigned ctl;                   /* CTL_* owed */
    /* Unix socket side. */
    bool readable;     /* a read will not block (EPOLLIN or a hang-up seen) */
    bool hup;          /* the peer closed or both sides are shut */
    bool rd_eof;       /* read returned 0: nothing more to the guest */
    bool wr_done;      /* nothing more goes to the Unix socket */
    uint8_t peer_shut; /* VSOCK_SHUTDOWN_* the guest sent */
    char line[VSOCK_LINE_MAX];
    unsigned line_len;
    /* Guest -> host: bytes the Unix socket has not taken yet, [head, tail) of buf. */
    uint8_t *buf;
    size_t head, tail, cap;
    uint32_t rx_cnt, fwd_cnt, fwd_cnt_sent; /* received, forwarded, last fwd_cnt advertised */
    /* Host -> guest: the guest's credit (§5.10.6.3). */
    uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt;
};

struct ioloop;
struct vsock_rst {
    uint32_t local_port, peer_port;
    uint16_t type;
};
#define VSOCK_RSTQ 64u

/* The device, with what vsock_conn.c needs of it. */
struct vsock_dev {
    uint64_t guest_cid;
    const char *uds;
    int listen_fd;
    bool listen_paused; /* accept ran out of descriptors: wait for a connection to close */
    struct ioloop *loop;
    struct vsock_conn *conns; /* all, newest first */
    unsigned nconns;
    struct vsock_conn *ready_head, *ready_tail;
    uint32_t next_port;
    /* RSTs for packets that match no connection, answered in order. When full, the transmit
     * queue is left alone until the guest takes some (backpressure, never loss). */
    struct vsock_rst rstq[VSOCK_RSTQ];
    unsigned rst_head, rst_count;
};

/* Send what is owed to the guest and take up held-back transmit work (vsock.c). Connection
 * events call it after their own work. */
void vsock_dev_run(struct vsock_dev *d);

/* Header to / from the start of a chain's segments, converting from / to little endian.
 * vsock_hdr_put returns the bytes written; vsock_hdr_get false when the segments are short. */
size_t vsock_hdr_put(const struct vsock_hdr *h, const struct iovec *iov, unsigned n);
bool vsock_hdr_get(struct vsock_hdr *h, const struct iovec *iov, unsigned n);

/* ---- connection table (vsock_conn.c) */

/* New connection on fd (taken over; closed on failure) in state, registered with the loop
 * (whose thread this runs on, or before the loop starts). NULL when out of memory or slots. */
struct vsock_conn *vsock_conn_new(struct vsock_dev *d, int fd, enum vsock_conn_state state);
struct vsock_conn *vsock_conn_find(struct vsock_dev *d, uint32_t local_port, uint32_t peer_port);
/* Close and free at once, owing the guest nothing (it reset the connection, or never knew it). */
void vsock_conn_free(struct vsock_dev *d, struct vsock_conn *c);
/* Close the Unix side and owe the guest an RST (none if it never heard of the connection);
 * vsock_conn_update frees it once nothing is owed. */
void vsock_conn_reset(struct vsock_dev *d, struct vsock_conn *c);
/* Free every connection (device stop). */
void vsock_conn_free_all(struct vsock_dev *d);
/* A free local port for a host-initiated connection, or 0 when none. */
uint32_t vsock_conn_alloc_port(struct vsock_dev *d);

/* ---- what the guest sent, for an existing connection (vsock_conn.c) */

/* Adopt the guest's credit figures from any packet of the connection. */
void vsock_conn_peer_credit(struct vsock_conn *c, const struct vsock_hdr *h);
/* The guest's RESPONSE to our REQUEST: tell the Unix side "OK <port>". */
void vsock_conn_established(struct vsock_dev *d, struct vsock_conn *c);
/* RW payload: len bytes at byte offset skip of iov[0..n) (n <= VIRTQ_MAX_CHAIN). Resets on a
 * credit violation. */
void vsock_conn_data(struct vsock_dev *d, struct vsock_conn *c, const struct iovec *iov, unsigned n,
                     size_t skip, uint32_t len);
void vsock_conn_shutdown(struct vsock_dev *d, struct vsock_conn *c, uint32_t flags);
/* After any change: epoll interest, the ready list, and closing once both directions are done.
 * May free c: call it last. */
void vsock_conn_update(struct vsock_dev *d, struct vsock_conn *c);

/* ---- what the guest receives (vsock_conn.c) */

/* The connection first in line to send, taken off the ready list; NULL when none is. */
struct vsock_conn *vsock_conn_ready_pop(struct vsock_dev *d);
/* Whether c owes the guest a packet (control, or data it has credit for). */
bool vsock_conn_wants_rx(const struct vsock_conn *c);
/* Build c's next packet into the writable segments iov[0..n) (capacity bytes, >= the header):
 * returns the bytes written (header + payload), 0 when c had nothing after all. The caller
 * takes c off the ready list before and calls vsock_conn_update after (which may free it). */
size_t vsock_conn_next_packet(struct vsock_dev *d, struct vsock_conn *c, const struct iovec *iov,
                              unsigned n, size_t capacity);
/* A header from us (the host) to the guest. */
void vsock_hdr_fill(const struct vsock_dev *d, struct vsock_hdr *h, uint32_t local_port,
                    uint32_t peer_port, uint16_t op);

#endif
