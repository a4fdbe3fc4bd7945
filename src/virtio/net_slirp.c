/* SPDX-License-Identifier: MIT */
/* virtio-net's user-mode backend: a libslirp stack (QEMU's -net user addresses) in the
 * device's own thread. libslirp is not thread-safe, so that thread is the only one touching it
 * between start and stop: one poll() over slirp's sockets, both queue kicks and a stop
 * eventfd, with slirp's timers kept in a list and folded into the poll timeout. */
#include "net_backend.h"

#include "lib/iov.h"
#include "sys/ratelimit.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <slirp/libslirp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* Frames slirp sent while the guest had no receive buffers, kept as a NIC's ring would be;
 * beyond that they are dropped and TCP retransmits. */
#define RXQ_MAX 256u
#define TX_BUDGET 256u

struct slirp_timer {
    struct slirp_timer *next;
    SlirpTimerId id;
    void *cb_opaque;
    int64_t expire_ms; /* -1: not armed */
};

struct rx_frame {
    uint8_t *buf;
    size_t len;
};

struct net_slirp {
    struct virtio_net *n;
    Slirp *slirp;
    pthread_t thread;
    bool running;
    int stop_fd;
    struct pollfd *pfd;
    unsigned npfd, pfd_cap;
    struct slirp_timer *timers;
    struct rx_frame rxq[RXQ_MAX];
    unsigned rxq_head, rxq_len;
    bool rx_waiting; /* rxq waits for the driver's rx kick */
    uint8_t *txbuf;
    struct virtq_req tx_req;
};

/* ---------------------------------------------------------------- slirp callbacks */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t cb_clock_get_ns(void *opaque)
{
    (void)opaque;
    return now_ns();
}

static void cb_guest_error(const char *msg, void *opaque)
{
    (void)opaque;
    /* libslirp calls this for what the guest sends it: a hostile guest can send it at line rate. */
    static struct ratelimit rl = RATELIMIT_INIT;
    ratelimit_log(&rl, "revirter: virtio-net: user network: guest error: %s", msg);
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
    struct net_slirp *s = opaque;
    struct slirp_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->id = id;
    t->cb_opaque = cb_opaque;
    t->expire_ms = -1;
    t->next = s->timers;
    s->timers = t;
    return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
    struct net_slirp *s = opaque;
    for (struct slirp_timer **p = &s->timers; *p; p = &(*p)->next) {
        if (*p == timer) {
            *p = (*p)->next;
            free(timer);
            return;
        }
    }
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
    (void)opaque;
    if (timer)
        ((struct slirp_timer *)timer)->expire_ms = expire_ms;
}

static void cb_poll_fd(int fd, void *opaque)
{
    /* slirp's fds are collected afresh before every poll (slirp_pollfds_fill). */
    (void)fd, (void)opaque;
}

static void cb_notify(void *opaque)
{
    /* Only ever called from our own thread, which polls again right after. */
    (void)opaque;
}

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
    struct net_slirp *s = opaque;
    struct virtio_net *n = s->n;
    if (n->rx_broken)
        return (ssize_t)len;
    if (s->rxq_len == 0) {
        int r = net_rx_put(n, NULL, buf, len);
        if (r != 0)
            return (ssize_t)len; /* delivered, or dropped and counted */
    }
    uint8_t *copy = s->rxq_len < RXQ_MAX ? malloc(len ? len : 1) : NULL;
    if (!copy) {
        atomic_fetch_add_explicit(&n->rx_dropped, 1, memory_order_relaxed);
        return (ssize_t)len;
    }
    memcpy(copy, buf, len);
    s->rxq[(s->rxq_head + s->rxq_len++) % RXQ_MAX] = (struct rx_frame){copy, len};
    return (ssize_t)len;
}

static const SlirpCb slirp_callbacks = {
    .send_packet = cb_send_packet,
    .guest_error = cb_guest_error,
    .clock_get_ns = cb_clock_get_ns,
    .timer_free = cb_timer_free,
    .timer_mod = cb_timer_mod,
    .register_poll_fd = cb_poll_fd,
    .unregister_poll_fd = cb_poll_fd,
    .notify = cb_notify,
    .timer_new_opaque = cb_timer_new_opaque,
};

/* ---------------------------------------------------------------- the thread */

static void rxq_clear(struct net_slirp *s)
{
    while (s->rxq_len) {
        free(s->rxq[s->rxq_head].buf);
        s->rxq_head = (s->rxq_head + 1) % RXQ_MAX;
        s->rxq_len--;
    }
    s->rxq_head = 0;
}

/* Deliver queued frames until the guest runs out of buffers, then wait for its kick. */
static void rx_flush(struct net_slirp *s)
{
    struct virtio_net *n = s->n;
    while (s->rxq_len && !n->rx_broken && !s->rx_waiting) {
        struct rx_frame *f = &s->rxq[s->rxq_head];
        int r = net_rx_put(n, NULL, f->buf, f->len);
        if (r == 0) {
            if (net_rx_wait(n)) {
                net_rx_unwait(n);
                continue;
            }
            s->rx_waiting = true;
            break;
        }
        free(f->buf);
        s->rxq_head = (s->rxq_head + 1) % RXQ_MAX;
        s->rxq_len--;
    }
    if (n->rx_broken)
        rxq_clear(s);
}

static void tx_run(struct net_slirp *s)
{
    struct virtio_net *n = s->n;
    unsigned budget = TX_BUDGET;
    if (!net_tx_begin(n))
        return;
    do {
        while (budget && net_tx_pop(n, &s->tx_req) > 0) {
            budget--;
            /* slirp wants the frame in one piece, without the header. Checksum offload is
             * not offered in this mode, so the header carries nothing to act on. */
            size_t len = s->tx_req.out_len - VIRTIO_NET_HDR_LEN;
            iov_read(s->tx_req.iov, s->tx_req.n_out, VIRTIO_NET_HDR_LEN, s->txbuf, len);
            slirp_input(s->slirp, s->txbuf, (int)len);
            if (net_tx_complete(n, &s->tx_req, true) < 0)
                break;
        }
    } while (net_tx_more(n, budget));
    net_notify(n, NET_TXQ);
}

static int add_pollfd(int fd, int events, void *opaque)
{
    struct net_slirp *s = opaque;
    if (s->npfd == s->pfd_cap) {
        unsigned cap = s->pfd_cap ? 2 * s->pfd_cap : 16;
        struct pollfd *p = realloc(s->pfd, cap * sizeof(*p));
        if (!p)
            return -1; /* out of memory: that fd is not polled this round */
        s->pfd = p;
        s->pfd_cap = cap;
    }
    short ev = 0;
    if (events & SLIRP_POLL_IN)
        ev |= POLLIN;
    if (events & SLIRP_POLL_OUT)
        ev |= POLLOUT;
    if (events & SLIRP_POLL_PRI)
        ev |= POLLPRI;
    s->pfd[s->npfd] = (struct pollfd){.fd = fd, .events = ev};
    return (int)s->npfd++;
}

static int get_revents(int idx, void *opaque)
{
    struct net_slirp *s = opaque;
    if (idx < 0 || (unsigned)idx >= s->npfd)
        return 0;
    short re = s->pfd[idx].revents;
    int r = 0;
    if (re & POLLIN)
        r |= SLIRP_POLL_IN;
    if (re & POLLOUT)
        r |= SLIRP_POLL_OUT;
    if (re & POLLPRI)
        r |= SLIRP_POLL_PRI;
    if (re & (POLLERR | POLLNVAL))
        r |= SLIRP_POLL_ERR;
    if (re & POLLHUP)
        r |= SLIRP_POLL_HUP;
    return r;
}

/* Fire the timers that are due; returns ms until the next one (UINT32_MAX: none). */
static uint32_t run_timers(struct net_slirp *s)
{
    int64_t now = now_ns() / 1000000;
    uint32_t next = UINT32_MAX;
    bool fired;
    unsigned rounds = 0;
    do {
        fired = false;
        for (struct slirp_timer *t = s->timers; t; t = t->next) {
            if (t->expire_ms < 0)
                continue;
            if (t->expire_ms <= now) {
                t->expire_ms = -1;
                /* The handler may re-arm, add or free timers: rescan from the start. */
                slirp_handle_timer(s->slirp, t->id, t->cb_opaque);
                fired = true;
                break;
            }
        }
    } while (fired && ++rounds < 64); /* a timer re-armed in the past waits a round */
    for (struct slirp_timer *t = s->timers; t; t = t->next)
        if (t->expire_ms >= 0 && (uint64_t)(t->expire_ms - now) < next)
            next = (uint32_t)(t->expire_ms - now);
    return next;
}

static void *slirp_thread(void *opaque)
{
    struct net_slirp *s = opaque;
    struct virtio_net *n = s->n;
    int rx_kick = n->vdev.queues[NET_RXQ].kick_fd, tx_kick = n->vdev.queues[NET_TXQ].kick_fd;
    pthread_setname_np(pthread_self(), "virtio-net-user");

    for (;;) {
        s->npfd = 0;
        add_pollfd(s->stop_fd, SLIRP_POLL_IN, s);
        add_pollfd(tx_kick, SLIRP_POLL_IN, s);
        add_pollfd(rx_kick, SLIRP_POLL_IN, s);
        if (s->npfd < 3) { /* no memory for three entries: wait for a stop */
            struct pollfd p = {.fd = s->stop_fd, .events = POLLIN};
            (void)poll(&p, 1, 100);
            if (p.revents)
                break;
            continue;
        }
        uint32_t timeout = run_timers(s);
        slirp_pollfds_fill(s->slirp, &timeout, add_pollfd, s);
        int r = poll(s->pfd, s->npfd, timeout > INT_MAX ? -1 : (int)timeout);
        if (r < 0 && errno != EINTR)
            (void)poll(NULL, 0, 10); /* not expected; do not spin */
        if (r > 0 && s->pfd[0].revents)
            break;
        slirp_pollfds_poll(s->slirp, r < 0, get_revents, s);
        (void)run_timers(s);
        bool rx_kicked = r > 0 && s->pfd[2].revents;
        bool tx_kicked = r > 0 && s->pfd[1].revents;
        uint64_t v;
        if (rx_kicked) {
            /* Kicks are wanted only while frames wait for buffers; stop them either way. */
            (void)!read(rx_kick, &v, sizeof(v));
            s->rx_waiting = false;
            net_rx_unwait(n);
        }
        if (tx_kicked) {
            (void)!read(tx_kick, &v, sizeof(v));
            tx_run(s);
        }
        rx_flush(s);
        net_notify(n, NET_RXQ);
    }
    return NULL;
}

/* ---------------------------------------------------------------- backend ops */

static int slirp_start(struct virtio_net *n)
{
    struct net_slirp *s = n->be_state;
    s->rx_waiting = false;
    /* Like the ioloop threads: no signal may land here (vCPU threads are kicked with one). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&s->thread, NULL, slirp_thread, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r)
        return -r;
    s->running = true;
    return 0;
}

static void slirp_stop(struct virtio_net *n)
{
    struct net_slirp *s = n->be_state;
    if (!s->running)
        return;
    uint64_t one = 1, v;
    (void)!write(s->stop_fd, &one, sizeof(one));
    pthread_join(s->thread, NULL);
    (void)!read(s->stop_fd, &v, sizeof(v));
    s->running = false;
    /* Frames for rings that are going away; slirp's own state (connections, the ARP table)
     * lives on, as the network outside a NIC does across its reset. */
    rxq_clear(s);
}

static void slirp_destroy(struct virtio_net *n)
{
    struct net_slirp *s = n->be_state;
    if (s->slirp)
        slirp_cleanup(s->slirp);
    while (s->timers) { /* slirp_cleanup frees them; anything left is ours to free */
        struct slirp_timer *t = s->timers;
        s->timers = t->next;
        free(t);
    }
    if (s->stop_fd >= 0)
        close(s->stop_fd);
    free(s->pfd);
    free(s->txbuf);
    free(s);
}

static const struct net_backend_ops slirp_ops = {
    .name = "user",
    .start = slirp_start,
    .stop = slirp_stop,
    .destroy = slirp_destroy,
};

static struct in_addr ip4(uint32_t host_order)
{
    return (struct in_addr){.s_addr = htonl(host_order)};
}

int net_slirp_attach(struct virtio_net *n, const struct virtio_net_config *cfg, char *err,
                     size_t errlen)
{
    struct net_slirp *s = calloc(1, sizeof(*s));
    if (!s || !(s->txbuf = malloc(VIRTIO_NET_PKT_MAX))) {
        free(s);
        snprintf(err, errlen, "virtio-net: out of memory");
        return -ENOMEM;
    }
    s->n = n;
    n->be = &slirp_ops;
    n->be_state = s;
    s->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->stop_fd < 0) {
        int r = -errno;
        snprintf(err, errlen, "virtio-net: eventfd: %s", strerror(-r));
        slirp_destroy(n);
        return r;
    }

    /* QEMU's defaults, which guests and users know: 10.0.2.0/24 and fec0::/64. */
    SlirpConfig c = {
        .version = 4,
        .restricted = 0,
        .in_enabled = true,
        .vnetwork = ip4(0x0a000200),
        .vnetmask = ip4(0xffffff00),
        .vhost = ip4(0x0a000202),
        .vdhcp_start = ip4(0x0a00020f),
        .vnameserver = ip4(0x0a000203),
        .in6_enabled = true,
        .vprefix_len = 64,
    };
    inet_pton(AF_INET6, "fec0::", &c.vprefix_addr6);
    inet_pton(AF_INET6, "fec0::2", &c.vhost6);
    inet_pton(AF_INET6, "fec0::3", &c.vnameserver6);
    s->slirp = slirp_new(&c, &slirp_callbacks, s);
    if (!s->slirp) {
        snprintf(err, errlen, "virtio-net: user network: cannot start libslirp");
        slirp_destroy(n);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < cfg->nfwd && i < VIRTIO_NET_MAX_FWD; i++) {
        const struct virtio_net_fwd *f = &cfg->fwd[i];
        errno = 0;
        if (slirp_add_hostfwd(s->slirp, f->udp, ip4(f->host_addr), f->host_port,
                              ip4(f->guest_addr ? f->guest_addr : 0x0a00020f), f->guest_port) < 0) {
            int e = errno ? errno : EADDRINUSE;
            char host[INET_ADDRSTRLEN];
            struct in_addr ha = ip4(f->host_addr);
            inet_ntop(AF_INET, &ha, host, sizeof(host));
            snprintf(err, errlen,
                     "virtio-net: hostfwd %s %s:%u -> guest port %u: cannot listen: %s",
                     f->udp ? "udp" : "tcp", host, f->host_port, f->guest_port, strerror(e));
            slirp_destroy(n);
            return -e;
        }
    }
    return 0;
}
