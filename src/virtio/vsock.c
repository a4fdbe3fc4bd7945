/* SPDX-License-Identifier: MIT */
/* virtio-vsock (virtio 1.2 §5.10): the device, its listening Unix socket, and the guest's
 * packets. Connections and their flow control are in vsock_conn.c; everything runs on one
 * ioloop thread between start and stop. */
#include "vsock.h"
#include "vsock_conn.h"

#include "sys/ioloop.h"
#include "lib/le.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * What the guest sends is checked before it is believed (§5.10.6): a transmit chain with fewer
 * readable bytes than a header is dropped; a packet from another CID than the guest's, or to
 * another than the host's, is dropped; an unsupported type is answered with an RST. A header
 * whose len is larger than the payload its chain carries makes the packet malformed: it is
 * dropped and the connection it names (if any) reset, since its stream can no longer be
 * trusted. We choose this over NEEDS_RESET of the whole device: one bad packet costs one
 * connection, never the others. Receive chains too small for a header are returned empty.
 * Only a broken ring (virtq_pop's -EIO) stops the device until the driver resets it.
 */

#define RXQ 0
#define TXQ 1
/* Queue 2, the event queue, only keeps the driver's buffers: no event is ever sent. */

/* Chains handled per callback before yielding to the loop (the queue size), so that a guest
 * feeding the queues without pause cannot keep the thread from its other fds or from stopping. */
#define VSOCK_BUDGET 256u

#define VSOCK_F_STREAM 0

struct virtio_vsock {
    struct virtio_device vdev;
    struct vsock_dev d;
    uint8_t config[8]; /* §5.10.4: le64 guest_cid */
    char *uds;
    dev_t uds_dev;
    ino_t uds_ino;
    bool broken;     /* a ring is malformed: nothing more until reset */
    bool tx_blocked; /* the transmit queue waits for room in the RST queue */
    struct virtq_req rx;
    bool rx_held; /* rx is popped and not yet used */
    struct virtq_req tx;
};

static struct virtio_vsock *from_dev(struct vsock_dev *d)
{
    return (struct virtio_vsock *)((char *)d - offsetof(struct virtio_vsock, d));
}

static void broken(struct virtio_vsock *s, struct virtq *vq)
{
    s->broken = true;
    virtio_set_needs_reset(&s->vdev, vq->error);
}

/* Come back to a queue from the loop rather than now. */
static void self_kick(struct virtio_vsock *s, unsigned q)
{
    uint64_t one = 1;
    (void)!write(s->vdev.queues[q].kick_fd, &one, sizeof(one));
}

/* ---------------------------------------------------------------- receive queue */

/* Send what connections owe the guest, and RSTs, while it has receive buffers. */
static void service_rx(struct virtio_vsock *s)
{
    struct vsock_dev *d = &s->d;
    struct virtq *vq = &s->vdev.queues[RXQ].vq;
    bool pushed = false;
    for (unsigned budget = VSOCK_BUDGET; !s->broken && (d->rst_count || d->ready_head);) {
        if (budget-- == 0) {
            self_kick(s, RXQ);
            break;
        }
        if (!s->rx_held) {
            int got = virtq_pop(vq, &s->rx);
            if (got == 0 && virtq_notifications(vq, true))
                continue; /* buffers came as we asked to be told */
            if (got == 0)
                break; /* the guest's next receive buffers kick us */
            if (got < 0) {
                broken(s, vq);
                break;
            }
            if (s->rx.in_len < sizeof(struct vsock_hdr)) {
                /* No room for even a header: return it unused. */
                if (virtq_push(vq, s->rx.head, 0) < 0)
                    broken(s, vq);
                pushed = true;
                continue;
            }
            s->rx_held = true;
        }
        const struct iovec *iov = s->rx.iov + s->rx.n_out;
        size_t cap = s->rx.in_len < sizeof(struct vsock_hdr) + VSOCK_MAX_PKT
                         ? (size_t)s->rx.in_len
                         : sizeof(struct vsock_hdr) + VSOCK_MAX_PKT;
        size_t len;
        if (d->rst_count) {
            const struct vsock_rst *r = &d->rstq[d->rst_head];
            struct vsock_hdr h;
            vsock_hdr_fill(d, &h, r->local_port, r->peer_port, VSOCK_OP_RST);
            h.type = r->type;
            len = vsock_hdr_put(&h, iov, s->rx.n_in);
            d->rst_head = (d->rst_head + 1) % VSOCK_RSTQ;
            d->rst_count--;
        } else {
            /* Off the list while it sends: vsock_conn_update puts it at the back if it owes
             * more, so connections take turns. */
            struct vsock_conn *c = vsock_conn_ready_pop(d);
            len = vsock_conn_next_packet(d, c, iov, s->rx.n_in, cap);
            vsock_conn_update(d, c);
            if (len == 0)
                continue;
        }
        if (virtq_push(vq, s->rx.head, (uint32_t)len) < 0)
            broken(s, vq);
        s->rx_held = false;
        pushed = true;
    }
    if (pushed)
        virtio_queue_notify(&s->vdev, RXQ);
}

/* ---------------------------------------------------------------- transmit queue */

static void rst_reply(struct vsock_dev *d, const struct vsock_hdr *h)
{
    if (h->op == VSOCK_OP_RST || d->rst_count == VSOCK_RSTQ)
        return; /* never answer an RST; the queue has room (process_tx checks) */
    struct vsock_rst *r = &d->rstq[(d->rst_head + d->rst_count) % VSOCK_RSTQ];
    *r = (struct vsock_rst){.local_port = h->dst_port, .peer_port = h->src_port, .type = h->type};
    d->rst_count++;
}

/* The guest connects to host port P: connect to the listener at "<uds>_<P>". */
static void guest_connect(struct vsock_dev *d, const struct vsock_hdr *h)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int n = snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", d->uds, h->dst_port);
    if (n < 0 || (size_t)n >= sizeof(a.sun_path) || d->nconns >= VSOCK_MAX_CONNS) {
        rst_reply(d, h);
        return;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rst_reply(d, h);
        return;
    }
    /* A Unix connect completes or fails at once (a full backlog is EAGAIN): no waiting. */
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        rst_reply(d, h);
        return;
    }
    struct vsock_conn *c = vsock_conn_new(d, fd, CONN_OPEN);
    if (!c) {
        rst_reply(d, h);
        return;
    }
    c->local_port = h->dst_port;
    c->peer_port = h->src_port;
    vsock_conn_peer_credit(c, h);
    c->ctl |= CTL_RESPONSE;
    vsock_conn_update(d, c);
}

static void handle_packet(struct virtio_vsock *s, const struct virtq_req *r)
{
    struct vsock_dev *d = &s->d;
    struct vsock_hdr h;
    if (!vsock_hdr_get(&h, r->iov, r->n_out))
        return; /* shorter than a header */
    if (h.src_cid != d->guest_cid || h.dst_cid != VSOCK_HOST_CID)
        return; /* not from the guest to us: nobody to answer */
    struct vsock_conn *c = vsock_conn_find(d, h.dst_port, h.src_port);
    if (h.len > r->out_len - sizeof(h)) {
        if (c) {
            vsock_conn_reset(d, c);
            vsock_conn_update(d, c);
        }
        return;
    }
    if (h.type != VSOCK_TYPE_STREAM) {
        rst_reply(d, &h);
        return;
    }
    if (!c) {
        if (h.op == VSOCK_OP_REQUEST)
            guest_connect(d, &h);
        else
            rst_reply(d, &h);
        return;
    }
    if (c->state == CONN_RESET) {
        /* Our RST is on its way; only the guest's own RST changes anything. */
        if (h.op == VSOCK_OP_RST)
            vsock_conn_free(d, c);
        return;
    }
    vsock_conn_peer_credit(c, &h);
    switch (h.op) {
    case VSOCK_OP_RESPONSE:
        if (c->state == CONN_CONNECTING && !(c->ctl & CTL_REQUEST))
            vsock_conn_established(d, c);
        else
            vsock_conn_reset(d, c);
        break;
    case VSOCK_OP_RST:
        vsock_conn_free(d, c);
        return;
    case VSOCK_OP_SHUTDOWN:
        if (c->state == CONN_OPEN)
            vsock_conn_shutdown(d, c, h.flags);
        else
            vsock_conn_reset(d, c);
        break;
    case VSOCK_OP_RW:
        vsock_conn_data(d, c, r->iov, r->n_out, sizeof(h), h.len);
        break;
    case VSOCK_OP_CREDIT_UPDATE:
        break; /* the figures were adopted above */
    case VSOCK_OP_CREDIT_REQUEST:
        if (c->state == CONN_OPEN)
            c->ctl |= CTL_CREDIT;
        break;
    default:
        /* A REQUEST for a live connection, or an unknown op: the guest lost track of it. */
        vsock_conn_reset(d, c);
        break;
    }
    vsock_conn_update(d, c);
}

static void process_tx(struct virtio_vsock *s)
{
    struct virtq *vq = &s->vdev.queues[TXQ].vq;
    bool pushed = false;
    s->tx_blocked = false;
    for (unsigned budget = VSOCK_BUDGET; !s->broken;) {
        if (s->d.rst_count == VSOCK_RSTQ) {
            /* Each packet may need an RST answer: wait until the guest took some. */
            s->tx_blocked = true;
            break;
        }
        if (budget-- == 0) {
            self_kick(s, TXQ);
            break;
        }
        int got = virtq_pop(vq, &s->tx);
        if (got == 0 && virtq_notifications(vq, true))
            continue;
        if (got == 0)
            break;
        if (got < 0) {
            broken(s, vq);
            break;
        }
        handle_packet(s, &s->tx);
        if (virtq_push(vq, s->tx.head, 0) < 0)
            broken(s, vq);
        pushed = true;
    }
    if (pushed)
        virtio_queue_notify(&s->vdev, TXQ);
}

void vsock_dev_run(struct vsock_dev *d)
{
    struct virtio_vsock *s = from_dev(d);
    for (unsigned round = 0;; round++) {
        service_rx(s);
        /* The RST queue drained: transmit work held back for it can go on. */
        if (!s->tx_blocked || d->rst_count == VSOCK_RSTQ || s->broken)
            return;
        if (round == 8) {
            self_kick(s, TXQ); /* the loop's other fds get a turn */
            return;
        }
        process_tx(s);
    }
}

/* ---------------------------------------------------------------- loop callbacks */

static void drain_kick(struct virtio_vsock *s, unsigned q)
{
    uint64_t n;
    (void)!read(s->vdev.queues[q].kick_fd, &n, sizeof(n));
}

static void on_tx_kick(void *opaque, uint32_t events)
{
    (void)events;
    struct virtio_vsock *s = opaque;
    drain_kick(s, TXQ);
    process_tx(s);
    vsock_dev_run(&s->d);
}

static void on_rx_kick(void *opaque, uint32_t events)
{
    (void)events;
    struct virtio_vsock *s = opaque;
    drain_kick(s, RXQ);
    vsock_dev_run(&s->d);
}

/* A host process connected to uds: it owes us its CONNECT line. */
static void on_listen(void *opaque, uint32_t events)
{
    (void)events;
    struct virtio_vsock *s = opaque;
    for (unsigned i = 0; i < 16; i++) {
        int fd = accept4(s->d.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The connection stays queued and the socket readable: stop watching it
                 * until a connection closes, rather than spin. */
                if (ioloop_modify(s->d.loop, s->d.listen_fd, 0) == 0)
                    s->d.listen_paused = true;
            }
            break;
        }
        /* NULL when full: the host sees its connection closed. */
        (void)vsock_conn_new(&s->d, fd, CONN_LINE);
    }
}

/* ---------------------------------------------------------------- start and stop */

static int vsock_start(void *dev)
{
    struct virtio_vsock *s = dev;
    struct vsock_dev *d = &s->d;
    s->broken = s->tx_blocked = s->rx_held = false;
    d->next_port = VSOCK_EPHEMERAL_BASE;
    d->listen_paused = false;
    const struct ioloop_watch w[] = {
        {s->vdev.queues[RXQ].kick_fd, EPOLLIN, on_rx_kick, s},
        {s->vdev.queues[TXQ].kick_fd, EPOLLIN, on_tx_kick, s},
        {d->listen_fd, EPOLLIN, on_listen, s},
    };
    return ioloop_launch("virtio-vsock", w, 3, &d->loop);
}

static void vsock_stop(void *dev)
{
    struct virtio_vsock *s = dev;
    struct vsock_dev *d = &s->d;
    ioloop_stop(d->loop);
    /* The guest forgot its connections: close the host ends, which would be stale. */
    vsock_conn_free_all(d);
    d->rst_head = d->rst_count = 0;
    ioloop_destroy(d->loop);
    d->loop = NULL;
    s->rx_held = false;
}

static void config_fill(struct virtio_vsock *s)
{
    le_put64(s->config, s->d.guest_cid);
}

static const struct virtio_device_ops vsock_ops = {
    .name = "virtio-vsock",
    .device_id = VIRTIO_ID_VSOCK,
    .num_queues = 3,
    .queue_size = 256,
    .features = VIRTIO_BIT(VSOCK_F_STREAM),
    .start = vsock_start,
    .stop = vsock_stop,
};

/* Bind the listening socket at path: a stale socket file (nobody accepting) is replaced,
 * anything else there is refused. */
static int listen_uds(struct virtio_vsock *s, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (!path || !*path || strlen(path) >= sizeof(a.sun_path)) {
        snprintf(err, errlen, "uds path must be 1 to %zu characters", sizeof(a.sun_path) - 1);
        return -EINVAL;
    }
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int r = -errno;
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return r;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket", path);
            close(fd);
            return -EEXIST;
        }
        /* A socket someone still accepts on belongs to a live process: leave it alone. */
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EAGAIN) {
            snprintf(err, errlen, "%s is in use by another process", path);
            close(fd);
            return -EADDRINUSE;
        }
        close(fd);
        if (unlink(path) < 0 && errno != ENOENT) {
            int r = -errno;
            snprintf(err, errlen, "cannot replace stale socket %s: %s", path, strerror(errno));
            return r;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            int r = -errno;
            snprintf(err, errlen, "socket: %s", strerror(errno));
            return r;
        }
    }
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0 ||
        lstat(path, &st) < 0) {
        int r = -errno;
        snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
        close(fd);
        return r;
    }
    s->uds_dev = st.st_dev;
    s->uds_ino = st.st_ino;
    s->d.listen_fd = fd;
    return 0;
}

int virtio_vsock_create(const struct virtio_vsock_config *cfg, const struct guest_mem *mem,
                        struct virtio_vsock **out, char *err, size_t errlen)
{
    if (!cfg || !out || cfg->guest_cid < 3 || cfg->guest_cid == UINT32_MAX) {
        snprintf(err, errlen, "guest cid must be at least 3 (and not %u)", UINT32_MAX);
        return -EINVAL;
    }
    struct virtio_vsock *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->d.guest_cid = cfg->guest_cid;
    s->d.listen_fd = -1;
    int r = -ENOMEM;
    if (!cfg->uds || !(s->uds = strdup(cfg->uds))) {
        snprintf(err, errlen, cfg->uds ? "out of memory" : "no uds path");
        r = cfg->uds ? -ENOMEM : -EINVAL;
        goto fail;
    }
    s->d.uds = s->uds;
    if ((r = listen_uds(s, s->uds, err, errlen)) < 0)
        goto fail;
    config_fill(s);
    if ((r = virtio_device_init(&s->vdev, &vsock_ops, s, s->config, sizeof(s->config), mem)) < 0) {
        snprintf(err, errlen, "%s", strerror(-r));
        goto fail;
    }
    *out = s;
    return 0;
fail:
    if (s->d.listen_fd >= 0) {
        close(s->d.listen_fd);
        unlink(s->uds);
    }
    free(s->uds);
    free(s);
    return r;
}

struct virtio_device *virtio_vsock_device(struct virtio_vsock *s)
{
    return &s->vdev;
}

void virtio_vsock_destroy(struct virtio_vsock *s)
{
    if (!s)
        return;
    virtio_device_cleanup(&s->vdev);
    close(s->d.listen_fd);
    /* Remove our socket file, unless something else took the name since. */
    struct stat st;
    if (lstat(s->uds, &st) == 0 && st.st_dev == s->uds_dev && st.st_ino == s->uds_ino)
        unlink(s->uds);
    free(s->uds);
    free(s);
}
