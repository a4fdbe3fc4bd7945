/* SPDX-License-Identifier: MIT */
/* The vsock guest of the tests: packets in and out through vdriver's rings. */
#include "vsock_guest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* vg_init's part after the RAM: on failure the RAM is all that is left. */
static int setup(struct vsock_guest *g, const char *uds, uint32_t cid, char *err, size_t errlen)
{
    struct virtio_vsock_config cfg = {.guest_cid = cid, .uds = uds};
    int r = virtio_vsock_create(&cfg, &g->drv.mem, &g->dev, err, errlen);
    if (r < 0)
        return r;
    g->cid = cid;
    g->rx_len = VG_RX_BUF;
    g->rx_pool = vdriver_alloc(&g->drv, (uint64_t)VG_QSIZE * VG_RX_BUF, 8);
    g->tx_gpa = vdriver_alloc(&g->drv, VG_TX_MAX + 64, 8);
    uint8_t st = vdriver_attach(&g->drv, virtio_vsock_device(g->dev), VIRTIO_BIT(0), VG_QSIZE);
    if (!(st & VIRTIO_STATUS_DRIVER_OK) || (st & VIRTIO_STATUS_NEEDS_RESET)) {
        snprintf(err, errlen, "attach: status %#x", st);
        vg_release(g);
        return -EIO;
    }
    for (unsigned i = 0; i < VG_QSIZE; i++) {
        struct vdriver_buf b = {g->rx_pool + (uint64_t)i * VG_RX_BUF, g->rx_len, true};
        uint16_t head = vdriver_add(&g->drv, VG_RXQ, &b, 1, i + 1 == VG_QSIZE);
        g->rx_gpa[head] = b.gpa;
    }
    return 0;
}

int vg_init(struct vsock_guest *g, const char *uds, uint32_t cid, char *err, size_t errlen)
{
    memset(g, 0, sizeof(*g));
    int r = vdriver_init(&g->drv, 1u << 20);
    if (r < 0) {
        snprintf(err, errlen, "vdriver_init: %s", strerror(-r));
        return r;
    }
    r = setup(g, uds, cid, err, errlen);
    if (r < 0)
        vdriver_free(&g->drv);
    return r;
}

int vg_reinit(struct vsock_guest *g, const char *uds, uint32_t cid, char *err, size_t errlen)
{
    /* Every field but drv is set again by setup; drv keeps its RAM and lock. */
    vdriver_wipe(&g->drv);
    memset(g->rx_gpa, 0, sizeof(g->rx_gpa));
    return setup(g, uds, cid, err, errlen);
}

void vg_release(struct vsock_guest *g)
{
    virtio_vsock_destroy(g->dev);
    g->dev = NULL;
}

void vg_free(struct vsock_guest *g)
{
    vg_release(g);
    vdriver_free(&g->drv);
}

int vg_recv(struct vsock_guest *g, struct vsock_hdr *h, void *payload, size_t cap, int timeout_ms)
{
    uint16_t head;
    uint32_t len;
    int r = vdriver_wait_used(&g->drv, VG_RXQ, &head, &len, timeout_ms);
    if (r < 0)
        return r;
    uint64_t gpa = g->rx_gpa[head % VG_QSIZE];
    uint8_t *p = vdriver_ptr(&g->drv, gpa);
    struct iovec iov = {p, len};
    r = -EPROTO;
    if (len >= sizeof(*h) && vsock_hdr_get(h, &iov, 1)) {
        size_t n = len - sizeof(*h);
        if (payload && cap)
            memcpy(payload, p + sizeof(*h), n < cap ? n : cap);
        r = (int)n;
    }
    struct vdriver_buf b = {gpa, g->rx_len, true};
    uint16_t again = vdriver_add(&g->drv, VG_RXQ, &b, 1, true);
    g->rx_gpa[again] = gpa;
    return r;
}

int vg_wait_tx(struct vsock_guest *g, int timeout_ms)
{
    uint16_t head;
    uint32_t len;
    return vdriver_wait_used(&g->drv, VG_TXQ, &head, &len, timeout_ms);
}

int vg_send(struct vsock_guest *g, const struct vsock_hdr *h, const void *payload, uint32_t len,
            unsigned nsplit, int timeout_ms)
{
    struct vdriver_buf b[17];
    uint8_t *hp = vdriver_ptr(&g->drv, g->tx_gpa);
    struct iovec iov = {hp, sizeof(*h)};
    if (len > VG_TX_MAX)
        return -EINVAL;
    vsock_hdr_put(h, &iov, 1);
    b[0] = (struct vdriver_buf){g->tx_gpa, sizeof(*h), false};
    if (nsplit == 0)
        nsplit = 1;
    if (nsplit > 16)
        nsplit = 16;
    uint64_t data = g->tx_gpa + 64;
    if (len)
        memcpy(vdriver_ptr(&g->drv, data), payload, len);
    unsigned n = 1;
    uint32_t off = 0;
    for (unsigned i = 0; i < nsplit && off < len; i++) {
        uint32_t part = i + 1 == nsplit ? len - off : len / nsplit;
        if (part == 0)
            continue;
        b[n++] = (struct vdriver_buf){data + off, part, false};
        off += part;
    }
    vdriver_add(&g->drv, VG_TXQ, b, n, true);
    return timeout_ms ? vg_wait_tx(g, timeout_ms) : 0;
}

int vg_send_raw(struct vsock_guest *g, const void *bytes, uint32_t len, int timeout_ms)
{
    if (len > VG_TX_MAX)
        return -EINVAL;
    memcpy(vdriver_ptr(&g->drv, g->tx_gpa), bytes, len);
    struct vdriver_buf b = {g->tx_gpa, len, false};
    vdriver_add(&g->drv, VG_TXQ, &b, 1, true);
    return timeout_ms ? vg_wait_tx(g, timeout_ms) : 0;
}

struct vsock_hdr vg_hdr(const struct vsock_guest *g, uint32_t src_port, uint32_t dst_port,
                        uint16_t op)
{
    return (struct vsock_hdr){
        .src_cid = g->cid,
        .dst_cid = VSOCK_HOST_CID,
        .src_port = src_port,
        .dst_port = dst_port,
        .type = VSOCK_TYPE_STREAM,
        .op = op,
        .buf_alloc = 64u * 1024,
    };
}
