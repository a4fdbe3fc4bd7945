/* SPDX-License-Identifier: MIT */
/* virtio-net (virtio 1.2 §5.1): the device (features, configuration space, start and stop)
 * and the queue work its backends share: a stash of receive chains that packets are read or
 * copied into (with VIRTIO_NET_F_MRG_RXBUF a packet spans several, §5.1.6.4), and checked
 * transmit chains. The backends (net_tap.c, net_vhost.c, net_slirp.c) move the packets. */
#include "net_backend.h"

#include "lib/iov.h"
#include "lib/le.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define NET_QUEUE_SIZE 256

/* ---------------------------------------------------------------- receive */

static void stat_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

void net_data_reset(struct virtio_net *n)
{
    n->mrg_rxbuf = virtio_has_feature(&n->vdev, VIRTIO_NET_F_MRG_RXBUF);
    n->guest_csum = virtio_has_feature(&n->vdev, VIRTIO_NET_F_GUEST_CSUM);
    /* A queue the driver did not enable is never touched. */
    n->rx_broken = !n->vdev.queues[NET_RXQ].enabled;
    n->tx_broken = !n->vdev.queues[NET_TXQ].enabled;
    n->rx_pushed = n->tx_pushed = false;
    n->rx.nchain = n->rx.niov = 0;
    n->rx.bytes = 0;
}

static void rx_fail(struct virtio_net *n, const char *why)
{
    n->rx_broken = true;
    n->rx.nchain = n->rx.niov = 0;
    n->rx.bytes = 0;
    virtio_set_needs_reset(&n->vdev, why);
}

static bool stash_full(const struct net_rx_stash *s)
{
    return s->nchain == VIRTQ_MAX_SIZE || s->niov + VIRTQ_MAX_CHAIN > NET_RX_IOV_MAX;
}

int net_rx_fill(struct virtio_net *n, uint64_t want)
{
    struct net_rx_stash *s = &n->rx;
    struct virtq *vq = &n->vdev.queues[NET_RXQ].vq;
    struct virtq_req *r = &n->req;

    if (n->rx_broken)
        return -EIO;
    while (n->mrg_rxbuf ? s->bytes < want : s->nchain == 0) {
        if (stash_full(s))
            return 0;
        int got = virtq_pop(vq, r);
        if (got == 0)
            return 0;
        if (got < 0) {
            rx_fail(n, vq->error);
            return -EIO;
        }
        /* §5.1.6.3.1: receive buffers are device-writable and hold at least the header
         * (with MRG_RXBUF each one must, since num_buffers lives in the first). */
        if (r->n_out || r->in_len < VIRTIO_NET_HDR_LEN) {
            rx_fail(n, "receive buffer is device-readable or shorter than the header");
            return -EIO;
        }
        /* No packet needs more than VIRTIO_NET_PKT_MAX: trim, so that lengths fit in 32 bits
         * and a readv over the stash never runs past what we account for. */
        struct net_rx_chain *c = &s->chain[s->nchain];
        uint64_t len = 0;
        unsigned k = 0;
        for (unsigned i = 0; i < r->n_in && len < VIRTIO_NET_PKT_MAX; i++) {
            struct iovec seg = r->iov[r->n_out + i];
            if (seg.iov_len > VIRTIO_NET_PKT_MAX - len)
                seg.iov_len = VIRTIO_NET_PKT_MAX - len;
            if (seg.iov_len == 0)
                continue;
            s->iov[s->niov + k++] = seg;
            len += seg.iov_len;
        }
        c->head = r->head;
        c->niov = (uint16_t)k;
        c->len = (uint32_t)len;
        s->niov += k;
        s->nchain++;
        s->bytes += len;
    }
    return 0;
}

uint64_t net_rx_room(const struct virtio_net *n)
{
    if (n->mrg_rxbuf)
        return n->rx.bytes;
    return n->rx.nchain ? n->rx.chain[0].len : 0;
}

unsigned net_rx_iovcnt(const struct virtio_net *n)
{
    if (n->mrg_rxbuf)
        return n->rx.niov;
    return n->rx.nchain ? n->rx.chain[0].niov : 0;
}

int net_rx_commit(struct virtio_net *n, uint32_t len)
{
    struct net_rx_stash *s = &n->rx;
    struct virtq *vq = &n->vdev.queues[NET_RXQ].vq;

    /* The chains the packet filled, in order; the header lies in the first (>= 12 bytes). */
    unsigned k = 0, niov = 0;
    for (uint32_t left = len; left && k < s->nchain; k++) {
        left -= left < s->chain[k].len ? left : s->chain[k].len;
        niov += s->chain[k].niov;
    }
    uint8_t le[2];
    le_put16(le, (uint16_t)k);
    iov_write(s->iov, s->niov, offsetof(struct virtio_net_hdr_v1, num_buffers), le, 2);
    /* §5.1.6.4: without GUEST_CSUM the device must leave flags zero (TAP may set DATA_VALID). */
    if (!n->guest_csum)
        iov_write(s->iov, s->niov, 0, "", 1);
    uint32_t left = len;
    for (unsigned i = 0; i < k; i++) {
        uint32_t used = left < s->chain[i].len ? left : s->chain[i].len;
        left -= used;
        if (virtq_push(vq, s->chain[i].head, used) < 0) {
            rx_fail(n, vq->error);
            return -EIO;
        }
    }
    n->rx_pushed = true;
    s->nchain -= k;
    s->niov -= niov;
    s->bytes = 0;
    memmove(s->chain, s->chain + k, s->nchain * sizeof(s->chain[0]));
    memmove(s->iov, s->iov + niov, s->niov * sizeof(s->iov[0]));
    for (unsigned i = 0; i < s->nchain; i++)
        s->bytes += s->chain[i].len;
    stat_add(&n->rx_packets, 1);
    stat_add(&n->rx_bytes, len - VIRTIO_NET_HDR_LEN);
    return 0;
}

int net_rx_put(struct virtio_net *n, const struct virtio_net_hdr_v1 *hdr, const void *frame,
               size_t len)
{
    static const struct virtio_net_hdr_v1 zero;
    if (len > VIRTIO_NET_PKT_MAX - VIRTIO_NET_HDR_LEN) {
        stat_add(&n->rx_dropped, 1);
        return -EMSGSIZE;
    }
    uint32_t total = (uint32_t)(VIRTIO_NET_HDR_LEN + len);
    if (net_rx_fill(n, total) < 0)
        return -EIO;
    if (net_rx_room(n) < total) {
        /* Without MRG_RXBUF the packet must fit the next buffer; with it, a stash that cannot
         * grow will never hold it. Either way a NIC would drop it. */
        if (n->rx.nchain && (!n->mrg_rxbuf || stash_full(&n->rx))) {
            stat_add(&n->rx_dropped, 1);
            return -EMSGSIZE;
        }
        return 0;
    }
    unsigned cnt = net_rx_iovcnt(n);
    iov_write(n->rx.iov, cnt, 0, hdr ? hdr : &zero, VIRTIO_NET_HDR_LEN);
    iov_write(n->rx.iov, cnt, VIRTIO_NET_HDR_LEN, frame, len);
    return net_rx_commit(n, total) < 0 ? -EIO : 1;
}

bool net_rx_wait(struct virtio_net *n)
{
    return !n->rx_broken && virtq_notifications(&n->vdev.queues[NET_RXQ].vq, true);
}

void net_rx_unwait(struct virtio_net *n)
{
    if (!n->rx_broken)
        (void)virtq_notifications(&n->vdev.queues[NET_RXQ].vq, false);
}

/* ---------------------------------------------------------------- transmit */

static void tx_fail(struct virtio_net *n, const char *why)
{
    n->tx_broken = true;
    virtio_set_needs_reset(&n->vdev, why);
}

int net_tx_pop(struct virtio_net *n, struct virtq_req *r)
{
    struct virtq *vq = &n->vdev.queues[NET_TXQ].vq;
    if (n->tx_broken)
        return -EIO;
    for (;;) {
        int got = virtq_pop(vq, r);
        if (got == 0)
            return 0;
        if (got < 0) {
            tx_fail(n, vq->error);
            return -EIO;
        }
        /* §5.1.6.2: a transmit chain is header then packet, all driver-written. */
        if (r->n_in || r->out_len < VIRTIO_NET_HDR_LEN) {
            tx_fail(n, "transmit chain has device-writable buffers or is shorter than the "
                       "header");
            return -EIO;
        }
        if (r->out_len <= VIRTIO_NET_PKT_MAX)
            return 1;
        if (net_tx_complete(n, r, false) < 0)
            return -EIO;
    }
}

int net_tx_complete(struct virtio_net *n, const struct virtq_req *r, bool sent)
{
    struct virtq *vq = &n->vdev.queues[NET_TXQ].vq;
    if (sent) {
        stat_add(&n->tx_packets, 1);
        stat_add(&n->tx_bytes, r->out_len - VIRTIO_NET_HDR_LEN);
    } else {
        stat_add(&n->tx_dropped, 1);
    }
    if (virtq_push(vq, r->head, 0) < 0) {
        tx_fail(n, vq->error);
        return -EIO;
    }
    n->tx_pushed = true;
    return 0;
}

bool net_tx_begin(struct virtio_net *n)
{
    if (n->tx_broken)
        return false;
    (void)virtq_notifications(&n->vdev.queues[NET_TXQ].vq, false);
    return true;
}

bool net_tx_more(struct virtio_net *n, unsigned budget)
{
    if (n->tx_broken)
        return false;
    if (!budget) {
        /* Let rx have a turn; a kick to ourselves brings us back. */
        uint64_t one = 1;
        (void)!write(n->vdev.queues[NET_TXQ].kick_fd, &one, sizeof(one));
        return false;
    }
    /* The ring looked empty: turn kicks back on, and go on if chains came meanwhile. */
    return virtq_notifications(&n->vdev.queues[NET_TXQ].vq, true);
}

void net_notify(struct virtio_net *n, unsigned q)
{
    bool *pushed = q == NET_RXQ ? &n->rx_pushed : &n->tx_pushed;
    if (*pushed) {
        *pushed = false;
        virtio_queue_notify(&n->vdev, q);
    }
}

/* ---------------------------------------------------------------- the device */

/* Every field is read-only (§5.1.4): a modern driver changes the MAC through the control
 * queue's MAC_ADDR_SET, which is not offered; only legacy drivers wrote mac here. */
static void config_fill(struct virtio_net *n)
{
    le_put16(n->config + VIRTIO_NET_CFG_STATUS, VIRTIO_NET_S_LINK_UP);
    le_put16(n->config + VIRTIO_NET_CFG_MAX_VQ_PAIRS, 1);
}

static int net_start(void *dev)
{
    struct virtio_net *n = dev;
    net_data_reset(n);
    return n->be->start(n);
}

static void net_stop(void *dev)
{
    struct virtio_net *n = dev;
    n->be->stop(n);
}

static int create(const struct virtio_net_config *cfg, int fd, const struct guest_mem *mem,
                  struct virtio_net **out, char *err, size_t errlen)
{
    static const struct virtio_net_config defaults = {.backend = VIRTIO_NET_TAP};
    if (!cfg)
        cfg = &defaults;
    struct virtio_net *n = calloc(1, sizeof(*n));
    if (!n) {
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "virtio-net: out of memory");
        return -ENOMEM;
    }
    n->ops = (struct virtio_device_ops){
        .name = "virtio-net",
        .device_id = VIRTIO_ID_NET,
        .num_queues = 2,
        .queue_size = NET_QUEUE_SIZE,
        .features = NET_BASE_FEATURES,
        .start = net_start,
        .stop = net_stop,
    };
    if (cfg->has_mac) {
        memcpy(n->config + VIRTIO_NET_CFG_MAC, cfg->mac, 6);
    } else {
        /* A random unicast, locally administered address (IEEE 802 U/L bit). */
        if (getrandom(n->config + VIRTIO_NET_CFG_MAC, 6, 0) != 6)
            memcpy(n->config + VIRTIO_NET_CFG_MAC, "\x52\x54\x00\x12\x34\x56", 6);
        n->config[VIRTIO_NET_CFG_MAC] = (uint8_t)((n->config[VIRTIO_NET_CFG_MAC] & 0xfc) | 0x02);
    }
    config_fill(n);

    int r;
    if (fd >= 0) {
        r = net_tap_attach(n, fd, false, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN, err,
                           errlen);
    } else if (cfg->backend == VIRTIO_NET_USER) {
        r = net_slirp_attach(n, cfg, err, errlen);
    } else if (cfg->backend == VIRTIO_NET_TAP) {
        unsigned offloads;
        r = net_tap_open(cfg->ifname, &fd, &offloads, err, errlen);
        if (r == 0)
            r = cfg->vhost ? net_vhost_attach(n, fd, offloads, err, errlen)
                           : net_tap_attach(n, fd, true, offloads, err, errlen);
    } else {
        snprintf(err, errlen, "virtio-net: unknown backend %d", (int)cfg->backend);
        r = -EINVAL;
    }
    if (r < 0) {
        free(n);
        return r;
    }
    r = virtio_device_init(&n->vdev, &n->ops, n, n->config, sizeof(n->config), mem);
    if (r < 0) {
        snprintf(err, errlen, "virtio-net: cannot set up the device: %s", strerror(-r));
        n->be->destroy(n);
        free(n);
        return r;
    }
    *out = n;
    return 0;
}

int virtio_net_create(const struct virtio_net_config *cfg, const struct guest_mem *mem,
                      struct virtio_net **out, char *err, size_t errlen)
{
    return create(cfg, -1, mem, out, err, errlen);
}

int virtio_net_create_fd(const struct virtio_net_config *cfg, int fd, const struct guest_mem *mem,
                         struct virtio_net **out, char *err, size_t errlen)
{
    if (fd < 0) {
        snprintf(err, errlen, "virtio-net: no backend fd");
        return -EBADF;
    }
    return create(cfg, fd, mem, out, err, errlen);
}

struct virtio_device *virtio_net_device(struct virtio_net *n)
{
    return &n->vdev;
}

void virtio_net_get_stats(struct virtio_net *n, struct virtio_net_stats *s)
{
    s->rx_packets = atomic_load_explicit(&n->rx_packets, memory_order_relaxed);
    s->rx_bytes = atomic_load_explicit(&n->rx_bytes, memory_order_relaxed);
    s->rx_dropped = atomic_load_explicit(&n->rx_dropped, memory_order_relaxed);
    s->tx_packets = atomic_load_explicit(&n->tx_packets, memory_order_relaxed);
    s->tx_bytes = atomic_load_explicit(&n->tx_bytes, memory_order_relaxed);
    s->tx_dropped = atomic_load_explicit(&n->tx_dropped, memory_order_relaxed);
}

void virtio_net_destroy(struct virtio_net *n)
{
    if (!n)
        return;
    virtio_device_cleanup(&n->vdev);
    n->be->destroy(n);
    free(n);
}
