/* SPDX-License-Identifier: MIT */
/* virtio-net's TAP backend: the TAP speaks the guest's own header (IFF_VNET_HDR, 12 bytes), so
 * a transmit chain is one writev and a packet is read straight into the receive buffers; an
 * I/O thread (ioloop) watches the TAP and both queue kicks. */
#include "net_backend.h"

#include "sys/ioloop.h"
#include "sys/ratelimit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* Packets handled per wake-up before the other direction gets a turn. */
#define RX_BUDGET 64u
#define TX_BUDGET 256u

struct net_tap {
    struct virtio_net *n;
    int fd;
    bool is_tap;       /* a real TAP (else a packet socket: the test hook) */
    unsigned offloads; /* TUN_F_* the TAP accepts */
    struct ioloop *loop;
    uint32_t events; /* what the loop watches on fd */
    bool rx_waiting; /* no receive buffers: fd not read until the driver kicks rx */
    bool tx_held;    /* tx_req could not be sent yet: waiting for EPOLLOUT */
    bool fd_dead;    /* the backend hung up or failed: packets are dropped */
    size_t pending;  /* a packet read into bounce, waiting for buffers (0: none) */
    uint8_t *bounce;
    struct virtq_req tx_req;
};

/* ---------------------------------------------------------------- offloads */

uint64_t net_tap_features(unsigned offloads)
{
    /* Whatever the guest sends with a vnet header, the TAP takes (partial checksums, GSO). */
    uint64_t f = VIRTIO_BIT(VIRTIO_NET_F_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) |
                 VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6) | VIRTIO_BIT(VIRTIO_NET_F_HOST_ECN);
    /* What it may hand the guest is what TUNSETOFFLOAD accepts (§5.1.3.1: the TSO features
     * depend on GUEST_CSUM, ECN on TSO). */
    if (offloads & TUN_F_CSUM) {
        f |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM);
        if (offloads & TUN_F_TSO4)
            f |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4);
        if (offloads & TUN_F_TSO6)
            f |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6);
        if ((offloads & TUN_F_TSO_ECN) && (offloads & (TUN_F_TSO4 | TUN_F_TSO6)))
            f |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN);
    }
    return f;
}

unsigned net_tap_offloads_for(const struct virtio_device *v)
{
    unsigned o = 0;
    if (!virtio_has_feature(v, VIRTIO_NET_F_GUEST_CSUM))
        return 0;
    o |= TUN_F_CSUM;
    if (virtio_has_feature(v, VIRTIO_NET_F_GUEST_TSO4))
        o |= TUN_F_TSO4;
    if (virtio_has_feature(v, VIRTIO_NET_F_GUEST_TSO6))
        o |= TUN_F_TSO6;
    if (virtio_has_feature(v, VIRTIO_NET_F_GUEST_ECN) && (o & (TUN_F_TSO4 | TUN_F_TSO6)))
        o |= TUN_F_TSO_ECN;
    return o;
}

int net_tap_open(const char *ifname, int *fd_out, unsigned *offloads, char *err, size_t errlen)
{
    const char *name = ifname && *ifname ? ifname : "(new)";
    if (ifname && strlen(ifname) >= IFNAMSIZ) {
        snprintf(err, errlen, "tap %s: interface name longer than %d characters", ifname,
                 IFNAMSIZ - 1);
        return -EINVAL;
    }
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int r = -errno;
        snprintf(err, errlen, "tap %s: cannot open /dev/net/tun: %s", name, strerror(-r));
        return r;
    }
    struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
    if (ifname)
        memcpy(ifr.ifr_name, ifname, strlen(ifname));
    int r = 0;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        r = -errno;
        snprintf(err, errlen, "tap %s: %s%s", name, strerror(-r),
                 r == -EPERM   ? " (creating a TAP needs CAP_NET_ADMIN; or make a persistent one "
                                 "for this user with 'ip tuntap add NAME mode tap user USER')"
                 : r == -EBUSY ? " (in use by another process, or not a vnet_hdr TAP)"
                               : "");
        goto fail;
    }
    int hdr = VIRTIO_NET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
        r = -errno;
        snprintf(err, errlen, "tap %s: cannot set a 12-byte vnet header: %s", ifr.ifr_name,
                 strerror(-r));
        goto fail;
    }
    /* VERSION_1 headers are little-endian; a no-op on little-endian hosts, where kernels
     * without cross-endian support refuse it harmlessly. */
    int le = 1;
    (void)ioctl(fd, TUNSETVNETLE, &le);
    /* What the TAP may hand us is probed now; the guest's choice is applied at start. */
    static const unsigned tries[] = {TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN,
                                     TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, TUN_F_CSUM};
    *offloads = 0;
    for (unsigned i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        if (ioctl(fd, TUNSETOFFLOAD, tries[i]) == 0) {
            *offloads = tries[i];
            break;
        }
    }
    if (ioctl(fd, TUNSETOFFLOAD, 0) < 0 && *offloads) {
        r = -errno;
        snprintf(err, errlen, "tap %s: TUNSETOFFLOAD: %s", ifr.ifr_name, strerror(-r));
        goto fail;
    }
    *fd_out = fd;
    return 0;
fail:
    close(fd);
    return r;
}

/* ---------------------------------------------------------------- data path */

static void set_events(struct net_tap *t)
{
    if (t->fd_dead)
        return;
    uint32_t ev = (t->rx_waiting || t->n->rx_broken ? 0 : EPOLLIN) | (t->tx_held ? EPOLLOUT : 0);
    if (ev != t->events && ioloop_modify(t->loop, t->fd, ev) == 0)
        t->events = ev;
}

/* The backend failed for good (a TAP whose interface went away, a closed socket): stop
 * watching it, drop what the guest sends from now on. */
static void backend_gone(struct net_tap *t, const char *why)
{
    if (t->fd_dead)
        return;
    /* At most once per device, but limited like every other line guest traffic can lead to. */
    static struct ratelimit rl = RATELIMIT_INIT;
    ratelimit_log(&rl, "revirter: virtio-net: backend %s; packets are dropped from now on", why);
    (void)ioloop_remove(t->loop, t->fd);
    t->fd_dead = true;
    t->pending = 0;
}

/* Read one packet into iov[0..cnt), where iov[cnt - 1] is a one-byte sentinel: a result
 * that reaches into it means the packet was truncated. -errno on failure. */
static ssize_t fd_recv(struct net_tap *t, struct iovec *iov, unsigned cnt)
{
    for (;;) {
        ssize_t r = readv(t->fd, iov, (int)cnt);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -errno;
    }
}

/* Send one transmit chain, header and all. A socket (the test hook) must not raise SIGPIPE
 * when its peer is gone. */
static ssize_t fd_send(struct net_tap *t, struct virtq_req *r)
{
    ssize_t w;
    do {
        if (t->is_tap) {
            w = writev(t->fd, r->iov, (int)r->n_out);
        } else {
            struct msghdr m = {.msg_iov = r->iov, .msg_iovlen = r->n_out};
            w = sendmsg(t->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
    } while (w < 0 && errno == EINTR);
    return w;
}

/* No room in the guest: leave packets queued in the TAP (as a NIC with an empty ring would)
 * and wait for the driver's rx kick. true when buffers came meanwhile: go on. */
static bool rx_sleep(struct net_tap *t)
{
    if (!t->rx_waiting) {
        t->rx_waiting = true;
        set_events(t);
    }
    if (!net_rx_wait(t->n))
        return false;
    t->rx_waiting = false;
    net_rx_unwait(t->n);
    set_events(t);
    return true;
}

static void rx_run(struct net_tap *t)
{
    struct virtio_net *n = t->n;
    unsigned budget = RX_BUDGET;

    while (!n->rx_broken && !t->fd_dead && !t->rx_waiting) {
        /* A packet already read goes first, budget or not: nothing else would bring it. */
        if (t->pending) {
            int r = net_rx_put(n, (const struct virtio_net_hdr_v1 *)t->bounce,
                               t->bounce + VIRTIO_NET_HDR_LEN, t->pending - VIRTIO_NET_HDR_LEN);
            if (r == 0) {
                if (rx_sleep(t))
                    continue;
                break;
            }
            t->pending = 0;
            continue;
        }
        if (!budget)
            break; /* the TAP is level-triggered: the rest comes on the next round */
        /* Read straight into the guest's buffers when they can take any packet (always one
         * buffer without MRG_RXBUF: a larger packet is dropped, as a NIC would). With
         * MRG_RXBUF and less room, read into the bounce buffer, where a packet waits for
         * more buffers instead of being lost. */
        if (net_rx_fill(n, VIRTIO_NET_PKT_MAX) < 0)
            break;
        uint64_t room = net_rx_room(n);
        if (room == 0) {
            if (rx_sleep(t))
                continue;
            break;
        }
        bool direct = !n->mrg_rxbuf || room >= VIRTIO_NET_PKT_MAX;
        uint8_t sentinel;
        ssize_t len;
        if (direct) {
            unsigned cnt = net_rx_iovcnt(n);
            n->rx.iov[cnt] = (struct iovec){&sentinel, 1};
            len = fd_recv(t, n->rx.iov, cnt + 1);
        } else {
            room = VIRTIO_NET_PKT_MAX;
            struct iovec b = {t->bounce, VIRTIO_NET_PKT_MAX + 1};
            len = fd_recv(t, &b, 1);
        }
        if (len == -EAGAIN || len == -EWOULDBLOCK)
            break;
        if (len < 0 || (len == 0 && !t->is_tap)) {
            char why[64];
            snprintf(why, sizeof(why), "read failed: %s", len ? strerror((int)-len) : "EOF");
            backend_gone(t, why);
            break;
        }
        budget--;
        if ((size_t)len < VIRTIO_NET_HDR_LEN || (uint64_t)len > room ||
            (size_t)len > VIRTIO_NET_PKT_MAX) {
            /* Truncated (too large for the buffers without MRG_RXBUF), or larger than any
             * packet may be (the stash can hold more than that). */
            atomic_fetch_add_explicit(&n->rx_dropped, 1, memory_order_relaxed);
            continue;
        }
        if (!direct)
            t->pending = (size_t)len;
        else if (net_rx_commit(n, (uint32_t)len) < 0)
            break;
    }
    if (n->rx_broken)
        set_events(t);
    net_notify(n, NET_RXQ);
}

static void tx_run(struct net_tap *t)
{
    struct virtio_net *n = t->n;
    unsigned budget = TX_BUDGET;

    if (!net_tx_begin(n))
        return;
    do {
        while (budget) {
            if (!t->tx_held && net_tx_pop(n, &t->tx_req) <= 0)
                break;
            ssize_t w = t->fd_dead ? 0 : fd_send(t, &t->tx_req);
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                t->tx_held = true; /* the backend is full: resume on EPOLLOUT */
                set_events(t);
                net_notify(n, NET_TXQ);
                return;
            }
            t->tx_held = false;
            budget--;
            if (net_tx_complete(n, &t->tx_req, !t->fd_dead && w >= 0) < 0)
                break;
        }
    } while (net_tx_more(n, budget));
    net_notify(n, NET_TXQ);
}

static void drain(int fd)
{
    uint64_t v;
    (void)!read(fd, &v, sizeof(v));
}

static void on_rx_kick(void *opaque, uint32_t events)
{
    (void)events;
    struct net_tap *t = opaque;
    drain(t->n->vdev.queues[NET_RXQ].kick_fd);
    /* Kicks are wanted only while we wait for buffers; stop them either way. */
    net_rx_unwait(t->n);
    if (t->rx_waiting) {
        t->rx_waiting = false;
        set_events(t);
    }
    rx_run(t);
}

static void on_tx_kick(void *opaque, uint32_t events)
{
    (void)events;
    struct net_tap *t = opaque;
    drain(t->n->vdev.queues[NET_TXQ].kick_fd);
    if (!t->tx_held) /* else EPOLLOUT resumes */
        tx_run(t);
}

static void on_fd(void *opaque, uint32_t events)
{
    struct net_tap *t = opaque;
    if (events & (EPOLLERR | EPOLLHUP)) {
        backend_gone(t, events & EPOLLERR ? "failed" : "hung up");
        if (t->tx_held) {
            t->tx_held = false;
            /* Complete the rest as dropped, so that the guest does not stall. */
            if (net_tx_complete(t->n, &t->tx_req, false) == 0)
                tx_run(t);
        }
        return;
    }
    if ((events & EPOLLOUT) && t->tx_held) {
        tx_run(t);
        if (!t->tx_held)
            set_events(t);
    }
    if (events & EPOLLIN)
        rx_run(t);
}

/* ---------------------------------------------------------------- backend ops */

static int tap_start(struct virtio_net *n)
{
    struct net_tap *t = n->be_state;
    t->rx_waiting = t->tx_held = false;
    t->pending = 0;
    if (t->is_tap && ioctl(t->fd, TUNSETOFFLOAD, net_tap_offloads_for(&n->vdev)) < 0) {
        int r = -errno;
        /* At every DRIVER_OK: a guest can reset and restart the device in a loop. */
        static struct ratelimit rl = RATELIMIT_INIT;
        ratelimit_log(&rl, "revirter: virtio-net: TUNSETOFFLOAD: %s", strerror(-r));
        return r;
    }
    t->events = n->rx_broken ? 0 : EPOLLIN;
    const struct ioloop_watch w[] = {
        {n->vdev.queues[NET_RXQ].kick_fd, EPOLLIN, on_rx_kick, t},
        {n->vdev.queues[NET_TXQ].kick_fd, EPOLLIN, on_tx_kick, t},
        {t->fd_dead ? -1 : t->fd, t->events, on_fd, t},
    };
    return ioloop_launch("virtio-net", w, 3, &t->loop);
}

static void tap_stop(struct virtio_net *n)
{
    struct net_tap *t = n->be_state;
    ioloop_destroy(t->loop);
    t->loop = NULL;
    t->pending = 0;
    t->tx_held = false;
}

static void tap_destroy(struct virtio_net *n)
{
    struct net_tap *t = n->be_state;
    close(t->fd);
    free(t->bounce);
    free(t);
}

static const struct net_backend_ops tap_ops = {
    .name = "tap",
    .start = tap_start,
    .stop = tap_stop,
    .destroy = tap_destroy,
};

int net_tap_attach(struct virtio_net *n, int fd, bool is_tap, unsigned offloads, char *err,
                   size_t errlen)
{
    struct net_tap *t = calloc(1, sizeof(*t));
    uint8_t *bounce = malloc(VIRTIO_NET_PKT_MAX + 1); /* + the sentinel */
    if (!t || !bounce) {
        free(t);
        free(bounce);
        close(fd);
        snprintf(err, errlen, "virtio-net: out of memory");
        return -ENOMEM;
    }
    /* Non-blocking whatever the caller gave us: the I/O thread must never sleep in a read. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    t->n = n;
    t->fd = fd;
    t->is_tap = is_tap;
    t->offloads = offloads;
    t->bounce = bounce;
    n->be = &tap_ops;
    n->be_state = t;
    n->ops.features |= net_tap_features(offloads);
    return 0;
}
