/* SPDX-License-Identifier: MIT */
/* virtio-net driven by vdriver: the TAP data path over a socketpair standing in for the TAP
 * (headers passed through, receive with and without mergeable buffers, waiting for buffers
 * without spinning or losing packets, oversized and malformed chains), a real TAP where this
 * host allows one, vhost-net's refusal without /dev/vhost-net, and user-mode networking (ARP,
 * DHCP, a host forward reaching the guest, a forward on a busy port). */
#include "../check.h"
#include "vdriver.h"

#include "virtio/net_backend.h"
#include "lib/le.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RAM (16ull << 20)
#define WAIT_MS 5000
#define HDR VIRTIO_NET_HDR_LEN
#define MRG VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF)
#define GUEST_CSUM VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM)

static const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

struct fix {
    struct vdriver d;
    struct virtio_net *n;
    int peer;              /* the far end of the socketpair backend (-1 for others) */
    uint64_t rx_gpa[1024]; /* receive buffer of each head */
};

/* ---------------------------------------------------------------- helpers */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    put_be16(p, (uint16_t)(v >> 16));
    put_be16(p + 2, (uint16_t)v);
}

static uint8_t pat(size_t i, unsigned seed)
{
    return (uint8_t)((i * 131 + seed * 7 + (i >> 8)) & 0xff);
}

static bool wait_status(struct fix *f, uint8_t bit, int ms)
{
    int64_t end = now_ms() + ms;
    while (!(vdriver_status(&f->d) & bit)) {
        if (now_ms() > end)
            return false;
        sleep_ms(2);
    }
    return true;
}

static void attach(struct fix *f, uint64_t features)
{
    uint8_t st = vdriver_attach(&f->d, virtio_net_device(f->n), features, 0);
    CHECK(st & VIRTIO_STATUS_DRIVER_OK, "status %#x", st);
    CHECK(!(st & VIRTIO_STATUS_NEEDS_RESET), "status %#x", st);
}

/* A device over a SOCK_SEQPACKET socketpair (one datagram per packet, like a TAP). */
static bool fix_open_buf(struct fix *f, uint64_t features, int sndbuf)
{
    memset(f, 0, sizeof(*f));
    f->peer = -1;
    if (vdriver_init(&f->d, RAM) != 0)
        return false;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return false;
    if (sndbuf)
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    struct virtio_net_config cfg = {.backend = VIRTIO_NET_TAP, .has_mac = true};
    memcpy(cfg.mac, guest_mac, 6);
    char err[256] = "";
    int r = virtio_net_create_fd(&cfg, sv[0], &f->d.mem, &f->n, err, sizeof(err));
    CHECK(r == 0, "create: %d %s", r, err);
    if (r != 0) {
        close(sv[1]);
        vdriver_free(&f->d);
        return false;
    }
    f->peer = sv[1];
    attach(f, features);
    return true;
}

static bool fix_open(struct fix *f, uint64_t features)
{
    return fix_open_buf(f, features, 0);
}

static void fix_close(struct fix *f)
{
    virtio_net_destroy(f->n);
    if (f->peer >= 0)
        close(f->peer);
    vdriver_free(&f->d);
}

static struct virtio_net_stats stats(struct fix *f)
{
    struct virtio_net_stats s;
    virtio_net_get_stats(f->n, &s);
    return s;
}

/* The backend sends hdr + frame towards the guest. */
static void peer_send(struct fix *f, const struct virtio_net_hdr_v1 *hdr, const void *frame,
                      size_t len)
{
    static const struct virtio_net_hdr_v1 zero;
    struct iovec iov[2] = {{(void *)(hdr ? hdr : &zero), HDR}, {(void *)frame, len}};
    ssize_t w = writev(f->peer, iov, 2);
    CHECK(w == (ssize_t)(HDR + len), "peer writev: %zd %s", w, strerror(errno));
}

/* What reached the backend, header included; -1 on timeout. */
static ssize_t peer_recv(struct fix *f, void *buf, size_t cap, int ms)
{
    struct pollfd p = {.fd = f->peer, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return -1;
    return recv(f->peer, buf, cap, MSG_DONTWAIT);
}

/* Post one receive buffer of len bytes. */
static uint16_t post_rx(struct fix *f, uint32_t len, bool kick)
{
    uint64_t gpa = vdriver_alloc(&f->d, len, 16);
    struct vdriver_buf b = {gpa, len, true};
    uint16_t head = vdriver_add(&f->d, NET_RXQ, &b, 1, kick);
    f->rx_gpa[head] = gpa;
    return head;
}

/* Send header + frame from the guest, cut into pieces of at most piece bytes (0: one). */
static uint16_t guest_send(struct fix *f, const struct virtio_net_hdr_v1 *hdr, const void *frame,
                           size_t len, size_t piece)
{
    static const struct virtio_net_hdr_v1 zero;
    size_t total = HDR + len;
    uint64_t gpa = vdriver_alloc(&f->d, total, 16);
    uint8_t *p = vdriver_ptr(&f->d, gpa);
    memcpy(p, hdr ? hdr : &zero, HDR);
    memcpy(p + HDR, frame, len);
    struct vdriver_buf bufs[64];
    unsigned n = 0;
    if (!piece)
        piece = total;
    CHECK((total + piece - 1) / piece <= 64, "at most 64 pieces");
    for (size_t off = 0; off < total && n < 64; off += piece, n++)
        bufs[n] = (struct vdriver_buf){
            gpa + off, (uint32_t)(total - off < piece ? total - off : piece), false};
    return vdriver_add(&f->d, NET_TXQ, bufs, n, true);
}

static void make_frame(uint8_t *fr, size_t len, uint16_t ethertype, unsigned seed)
{
    memset(fr, 0xff, 6);
    memcpy(fr + 6, "\x02\x00\x00\x00\x00\x01", 6);
    put_be16(fr + 12, ethertype);
    for (size_t i = 14; i < len; i++)
        fr[i] = pat(i, seed);
}

/* ---------------------------------------------------------------- device basics */

static void test_features_config(void)
{
    struct fix f;
    if (!fix_open(&f, ~0ull))
        return;
    struct virtio_device *v = virtio_net_device(f.n);
    uint64_t host = (uint64_t)virtio_host_features(v, 1) << 32 | virtio_host_features(v, 0);
    static const unsigned want[] = {VIRTIO_NET_F_MAC,        VIRTIO_NET_F_STATUS,
                                    VIRTIO_NET_F_MRG_RXBUF,  VIRTIO_NET_F_CSUM,
                                    VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_HOST_TSO4,
                                    VIRTIO_NET_F_HOST_TSO6,  VIRTIO_NET_F_GUEST_TSO4,
                                    VIRTIO_NET_F_GUEST_TSO6, VIRTIO_F_VERSION_1};
    for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        CHECK(host & VIRTIO_BIT(want[i]), "feature %u offered", want[i]);
    CHECK_EQ(v->ops->num_queues, 2);
    CHECK(!memcmp(v->config + VIRTIO_NET_CFG_MAC, guest_mac, 6), "mac");
    CHECK_EQ(le_get16(v->config + VIRTIO_NET_CFG_STATUS), VIRTIO_NET_S_LINK_UP);
    /* The driver cannot clobber status or mac. */
    static const uint8_t zero[8];
    pthread_mutex_lock(&v->lock);
    virtio_config_write(v, VIRTIO_NET_CFG_STATUS, zero, 2);
    virtio_config_write(v, VIRTIO_NET_CFG_MAC, zero, 6);
    pthread_mutex_unlock(&v->lock);
    CHECK_EQ(le_get16(v->config + VIRTIO_NET_CFG_STATUS), VIRTIO_NET_S_LINK_UP);
    CHECK(!memcmp(v->config + VIRTIO_NET_CFG_MAC, guest_mac, 6), "mac kept");
    fix_close(&f);

    /* No MAC given: a locally administered unicast one. */
    struct vdriver d;
    CHECK_EQ(vdriver_init(&d, RAM), 0);
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    struct virtio_net *n;
    char err[128];
    CHECK_EQ(virtio_net_create_fd(NULL, sv[0], &d.mem, &n, err, sizeof(err)), 0);
    uint8_t b0 = virtio_net_device(n)->config[VIRTIO_NET_CFG_MAC];
    CHECK((b0 & 3) == 2, "mac byte 0 %#x: unicast, locally administered", b0);
    virtio_net_destroy(n);
    close(sv[1]);
    vdriver_free(&d);
}

/* ---------------------------------------------------------------- transmit */

static void test_tx_passes_header(void)
{
    struct fix f;
    if (!fix_open(&f, ~0ull))
        return;
    uint8_t frame[100];
    make_frame(frame, sizeof(frame), 0x0800, 1);
    struct virtio_net_hdr_v1 hdr = {
        .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 34, .csum_offset = 16};
    uint16_t head = guest_send(&f, &hdr, frame, sizeof(frame), 40);
    uint8_t got[256];
    ssize_t n = peer_recv(&f, got, sizeof(got), WAIT_MS);
    CHECK_EQ(n, HDR + sizeof(frame));
    CHECK(n > 0 && !memcmp(got, &hdr, HDR), "vnet header passed to the TAP as is");
    CHECK(n > 0 && !memcmp(got + HDR, frame, sizeof(frame)), "frame");
    uint16_t h;
    uint32_t len;
    CHECK_EQ(vdriver_wait_used(&f.d, NET_TXQ, &h, &len, WAIT_MS), 0);
    CHECK_EQ(h, head);
    CHECK_EQ(len, 0);
    CHECK_EQ(stats(&f).tx_packets, 1);
    CHECK_EQ(stats(&f).tx_bytes, sizeof(frame));

    /* A burst, each cut differently, arrives whole and in order. */
    for (unsigned i = 0; i < 40; i++) {
        uint8_t fr[1514];
        size_t l = 60 + i * 29;
        make_frame(fr, l, 0x0800, i);
        guest_send(&f, NULL, fr, l, 16 + i * 7);
    }
    for (unsigned i = 0; i < 40; i++) {
        uint8_t fr[1514], buf[2048];
        size_t l = 60 + i * 29;
        make_frame(fr, l, 0x0800, i);
        ssize_t k = peer_recv(&f, buf, sizeof(buf), WAIT_MS);
        CHECK(k == (ssize_t)(HDR + l) && !memcmp(buf + HDR, fr, l), "burst packet %u: %zd", i, k);
    }
    fix_close(&f);
}

/* The backend stops taking packets (its socket buffer is full): chains wait, none is lost. */
static void test_tx_backpressure(void)
{
    struct fix f;
    /* A small send buffer on the device's end: a few packets fill it. */
    if (!fix_open_buf(&f, ~0ull, 16384))
        return;
    enum { N = 200, L = 1500 };
    for (unsigned i = 0; i < N; i++) {
        uint8_t fr[L];
        make_frame(fr, L, 0x0800, i);
        guest_send(&f, NULL, fr, L, 0);
    }
    sleep_ms(100);
    unsigned got = 0;
    for (unsigned i = 0; i < N; i++) {
        uint8_t fr[L], buf[2048];
        make_frame(fr, L, 0x0800, i);
        ssize_t k = peer_recv(&f, buf, sizeof(buf), WAIT_MS);
        if (k == HDR + L && !memcmp(buf + HDR, fr, L))
            got++;
        else
            CHECK(0, "packet %u: %zd", i, k);
    }
    CHECK_EQ(got, N);
    CHECK_EQ(stats(&f).tx_dropped, 0);
    fix_close(&f);
}

static void test_tx_oversized_dropped(void)
{
    struct fix f;
    if (!fix_open(&f, ~0ull))
        return;
    size_t big = VIRTIO_NET_PKT_MAX - HDR + 1; /* one byte over, header included */
    uint8_t *fr = calloc(1, big);
    uint16_t head = guest_send(&f, NULL, fr, big, 4096);
    uint16_t h;
    uint32_t len;
    CHECK_EQ(vdriver_wait_used(&f.d, NET_TXQ, &h, &len, WAIT_MS), 0);
    CHECK_EQ(h, head);
    CHECK_EQ(stats(&f).tx_dropped, 1);
    uint8_t buf[256];
    CHECK(peer_recv(&f, buf, sizeof(buf), 50) < 0, "nothing reached the backend");
    /* The device carries on. */
    make_frame(fr, 64, 0x0800, 3);
    guest_send(&f, NULL, fr, 64, 0);
    CHECK_EQ(peer_recv(&f, buf, sizeof(buf), WAIT_MS), HDR + 64);
    CHECK(!(vdriver_status(&f.d) & VIRTIO_STATUS_NEEDS_RESET), "no reset needed");
    free(fr);
    fix_close(&f);
}

static void test_tx_malformed(void)
{
    struct fix f;
    if (!fix_open(&f, ~0ull))
        return;
    /* A writable descriptor in a transmit chain. */
    uint64_t gpa = vdriver_alloc(&f.d, 256, 16);
    struct vdriver_buf bad[2] = {{gpa, 100, false}, {gpa + 128, 100, true}};
    vdriver_add(&f.d, NET_TXQ, bad, 2, true);
    CHECK(wait_status(&f, VIRTIO_STATUS_NEEDS_RESET, WAIT_MS), "writable tx -> NEEDS_RESET");
    uint8_t buf[256];
    CHECK(peer_recv(&f, buf, sizeof(buf), 20) < 0, "nothing sent");

    /* After a reset the device works again; then a chain shorter than the header. */
    attach(&f, ~0ull);
    uint8_t fr[60];
    make_frame(fr, sizeof(fr), 0x0800, 9);
    guest_send(&f, NULL, fr, sizeof(fr), 0);
    CHECK_EQ(peer_recv(&f, buf, sizeof(buf), WAIT_MS), HDR + sizeof(fr));
    struct vdriver_buf tiny = {gpa, 8, false};
    vdriver_add(&f.d, NET_TXQ, &tiny, 1, true);
    CHECK(wait_status(&f, VIRTIO_STATUS_NEEDS_RESET, WAIT_MS), "short tx -> NEEDS_RESET");

    /* A descriptor outside guest RAM. */
    attach(&f, ~0ull);
    struct vdriver_buf out = {RAM - 8, 64, false};
    vdriver_add(&f.d, NET_TXQ, &out, 1, true);
    CHECK(wait_status(&f, VIRTIO_STATUS_NEEDS_RESET, WAIT_MS), "tx outside RAM -> NEEDS_RESET");
    fix_close(&f);
}

/* ---------------------------------------------------------------- receive */

/* Wait for one used receive chain; returns its buffer and length. */
static uint8_t *rx_used(struct fix *f, uint16_t *head, uint32_t *len, int ms)
{
    if (vdriver_wait_used(&f->d, NET_RXQ, head, len, ms) != 0)
        return NULL;
    return vdriver_ptr(&f->d, f->rx_gpa[*head]);
}

static void test_rx_single(void)
{
    for (int csum = 0; csum < 2; csum++) {
        struct fix f;
        if (!fix_open(&f, ~MRG & (csum ? ~0ull : ~GUEST_CSUM)))
            return;
        uint16_t h0 = post_rx(&f, 2048, true);
        post_rx(&f, 2048, true);
        uint8_t fr[200];
        make_frame(fr, sizeof(fr), 0x0800, 5);
        struct virtio_net_hdr_v1 hdr = {.flags = VIRTIO_NET_HDR_F_DATA_VALID, .num_buffers = 77};
        peer_send(&f, &hdr, fr, sizeof(fr));
        uint16_t h;
        uint32_t len;
        uint8_t *b = rx_used(&f, &h, &len, WAIT_MS);
        CHECK(b != NULL, "delivered");
        if (b) {
            CHECK_EQ(h, h0);
            CHECK_EQ(len, HDR + sizeof(fr));
            CHECK_EQ(le_get16(b + 10), 1); /* num_buffers */
            /* §5.1.6.4: flags stay zero unless GUEST_CSUM was negotiated. */
            CHECK_EQ(b[0], csum ? VIRTIO_NET_HDR_F_DATA_VALID : 0);
            CHECK(!memcmp(b + HDR, fr, sizeof(fr)), "frame");
        }
        CHECK_EQ(stats(&f).rx_packets, 1);
        fix_close(&f);
    }
}

/* Mergeable buffers with plenty posted: read straight into them, spanning chains. */
static void test_rx_mrg_direct(void)
{
    struct fix f;
    if (!fix_open(&f, ~0ull))
        return;
    uint16_t heads[20];
    for (unsigned i = 0; i < 20; i++)
        heads[i] = post_rx(&f, 4096, i == 19);
    static uint8_t fr[10000];
    make_frame(fr, sizeof(fr), 0x86dd, 7);
    peer_send(&f, NULL, fr, sizeof(fr));
    static uint8_t got[HDR + sizeof(fr)];
    size_t off = 0;
    unsigned nbuf = 0;
    for (unsigned i = 0; i < 3; i++) {
        uint16_t h;
        uint32_t len;
        uint8_t *b = rx_used(&f, &h, &len, WAIT_MS);
        CHECK(b != NULL, "chain %u used", i);
        if (!b)
            break;
        CHECK_EQ(h, heads[i]);
        CHECK_EQ(len, i < 2 ? 4096 : HDR + sizeof(fr) - 8192);
        if (i == 0)
            nbuf = le_get16(b + 10);
        memcpy(got + off, b, len);
        off += len;
    }
    CHECK_EQ(nbuf, 3);
    CHECK_EQ(off, sizeof(got));
    CHECK(!memcmp(got + HDR, fr, sizeof(fr)), "frame reassembled");
    /* The next packet starts in the next chain. */
    peer_send(&f, NULL, fr, 100);
    uint16_t h;
    uint32_t len;
    uint8_t *b = rx_used(&f, &h, &len, WAIT_MS);
    CHECK(b && h == heads[3] && len == HDR + 100 && le_get16(b + 10) == 1, "second packet");

    /* More than any packet may be, though the buffers could take it: dropped. */
    for (unsigned i = 0; i < 10; i++)
        post_rx(&f, 4096, i == 9);
    static uint8_t huge[VIRTIO_NET_PKT_MAX];
    peer_send(&f, NULL, huge, sizeof(huge));
    peer_send(&f, NULL, fr, 200);
    b = rx_used(&f, &h, &len, WAIT_MS);
    CHECK(b && h == heads[4] && len == HDR + 200, "packet after the oversized one");
    CHECK_EQ(stats(&f).rx_dropped, 1);
    fix_close(&f);
}

/* Mergeable buffers too few for a 64 KiB packet: through the bounce buffer, and a packet
 * larger than what is posted waits for more buffers instead of being dropped. */
static void test_rx_mrg_bounce(void)
{
    struct fix f;
    if (!fix_open(&f, ~0ull))
        return;
    uint16_t heads[40];
    for (unsigned i = 0; i < 10; i++)
        heads[i] = post_rx(&f, 512, true);
    static uint8_t fr[8000];
    make_frame(fr, 3000, 0x0800, 11);
    peer_send(&f, NULL, fr, 3000);
    size_t off = 0;
    static uint8_t got[HDR + sizeof(fr)];
    for (unsigned i = 0; i < 6; i++) {
        uint16_t h;
        uint32_t len;
        uint8_t *b = rx_used(&f, &h, &len, WAIT_MS);
        CHECK(b != NULL, "chain %u", i);
        if (!b)
            break;
        CHECK_EQ(h, heads[i]);
        if (i == 0)
            CHECK_EQ(le_get16(b + 10), 6);
        memcpy(got + off, b, len);
        off += len;
    }
    CHECK_EQ(off, HDR + 3000);
    CHECK(!memcmp(got + HDR, fr, 3000), "3000-byte frame over six 512-byte buffers");

    /* 8000 bytes do not fit the four buffers left: it waits. */
    make_frame(fr, sizeof(fr), 0x0800, 12);
    peer_send(&f, NULL, fr, sizeof(fr));
    uint16_t h;
    uint32_t len;
    CHECK(rx_used(&f, &h, &len, 200) == NULL, "nothing delivered yet");
    for (unsigned i = 10; i < 40; i++)
        heads[i] = post_rx(&f, 512, true);
    off = 0;
    unsigned want = (HDR + sizeof(fr) + 511) / 512;
    for (unsigned i = 0; i < want; i++) {
        uint8_t *b = rx_used(&f, &h, &len, WAIT_MS);
        CHECK(b != NULL, "chain %u", i);
        if (!b)
            break;
        CHECK_EQ(h, heads[6 + i]);
        if (i == 0)
            CHECK_EQ(le_get16(b + 10), want);
        memcpy(got + off, b, len);
        off += len;
    }
    CHECK_EQ(off, HDR + sizeof(fr));
    CHECK(!memcmp(got + HDR, fr, sizeof(fr)), "8000-byte frame after more buffers came");
    CHECK_EQ(stats(&f).rx_dropped, 0);
    fix_close(&f);
}

/* No receive buffers: packets wait in the backend, the thread sleeps (no busy loop), and all
 * of them arrive in order once the driver posts buffers and kicks. */
static void test_rx_waits_for_buffers(void)
{
    for (int mrg = 0; mrg < 2; mrg++) {
        struct fix f;
        if (!fix_open(&f, mrg ? ~0ull : ~MRG))
            return;
        uint8_t fr[3][300];
        for (unsigned i = 0; i < 3; i++) {
            make_frame(fr[i], sizeof(fr[i]), 0x0800, 20 + i);
            peer_send(&f, NULL, fr[i], sizeof(fr[i]));
        }
        struct timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        sleep_ms(300);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        long cpu_ms = (c1.tv_sec - c0.tv_sec) * 1000 + (c1.tv_nsec - c0.tv_nsec) / 1000000;
        CHECK(cpu_ms < 60, "mrg=%d: %ld ms of CPU while waiting 300 ms for buffers", mrg, cpu_ms);
        /* A buffer posted without a kick is not noticed... until the kick. */
        uint16_t heads[3];
        heads[0] = post_rx(&f, 2048, false);
        heads[1] = post_rx(&f, 2048, false);
        heads[2] = post_rx(&f, 2048, true);
        for (unsigned i = 0; i < 3; i++) {
            uint16_t h;
            uint32_t len;
            uint8_t *b = rx_used(&f, &h, &len, WAIT_MS);
            CHECK(b && h == heads[i] && len == HDR + sizeof(fr[i]) &&
                      !memcmp(b + HDR, fr[i], sizeof(fr[i])),
                  "mrg=%d: packet %u after the kick", mrg, i);
        }
        CHECK_EQ(stats(&f).rx_dropped, 0);
        fix_close(&f);
    }
}

/* Without mergeable buffers a packet larger than the buffer is dropped (counted), and the
 * buffer takes the next packet. */
static void test_rx_oversized_dropped(void)
{
    struct fix f;
    if (!fix_open(&f, ~MRG))
        return;
    uint16_t head = post_rx(&f, 256, true);
    uint8_t fr[1000];
    make_frame(fr, sizeof(fr), 0x0800, 30);
    peer_send(&f, NULL, fr, sizeof(fr));
    make_frame(fr, 100, 0x0800, 31);
    peer_send(&f, NULL, fr, 100);
    uint16_t h;
    uint32_t len;
    uint8_t *b = rx_used(&f, &h, &len, WAIT_MS);
    CHECK(b && h == head && len == HDR + 100 && !memcmp(b + HDR, fr, 100), "small one delivered");
    CHECK_EQ(stats(&f).rx_dropped, 1);
    CHECK(!(vdriver_status(&f.d) & VIRTIO_STATUS_NEEDS_RESET), "no reset needed");
    fix_close(&f);
}

static void test_rx_malformed(void)
{
    struct fix f;
    if (!fix_open(&f, ~0ull))
        return;
    /* A device-readable receive buffer. */
    uint64_t gpa = vdriver_alloc(&f.d, 2048, 16);
    struct vdriver_buf ro = {gpa, 2048, false};
    vdriver_add(&f.d, NET_RXQ, &ro, 1, true);
    uint8_t fr[64];
    make_frame(fr, sizeof(fr), 0x0800, 40);
    peer_send(&f, NULL, fr, sizeof(fr));
    CHECK(wait_status(&f, VIRTIO_STATUS_NEEDS_RESET, WAIT_MS), "readable rx -> NEEDS_RESET");
    /* The device does not spin on the unread packet while it waits for the reset. */
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    sleep_ms(200);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    long cpu_ms = (c1.tv_sec - c0.tv_sec) * 1000 + (c1.tv_nsec - c0.tv_nsec) / 1000000;
    CHECK(cpu_ms < 50, "%ld ms of CPU while broken", cpu_ms);

    /* A buffer shorter than the header. */
    attach(&f, ~0ull);
    struct vdriver_buf tiny = {gpa, 8, true};
    vdriver_add(&f.d, NET_RXQ, &tiny, 1, true);
    peer_send(&f, NULL, fr, sizeof(fr));
    CHECK(wait_status(&f, VIRTIO_STATUS_NEEDS_RESET, WAIT_MS), "short rx -> NEEDS_RESET");
    fix_close(&f);
}

/* Traffic both ways at once, across a reset. */
static void test_duplex_and_reset(void)
{
    struct fix f;
    if (!fix_open(&f, ~0ull))
        return;
    for (int round = 0; round < 2; round++) {
        if (round)
            attach(&f, ~0ull);
        for (unsigned i = 0; i < 64; i++)
            post_rx(&f, 2048, i == 63);
        uint8_t fr[1000];
        for (unsigned i = 0; i < 32; i++) {
            make_frame(fr, sizeof(fr), 0x0800, i);
            guest_send(&f, NULL, fr, sizeof(fr), 0);
            peer_send(&f, NULL, fr, sizeof(fr));
        }
        unsigned rx = 0, tx = 0;
        for (unsigned i = 0; i < 32; i++) {
            uint8_t buf[2048];
            uint16_t h;
            uint32_t len;
            make_frame(fr, sizeof(fr), 0x0800, i);
            ssize_t k = peer_recv(&f, buf, sizeof(buf), WAIT_MS);
            tx += k == HDR + sizeof(fr) && !memcmp(buf + HDR, fr, sizeof(fr));
            uint8_t *b = rx_used(&f, &h, &len, WAIT_MS);
            rx += b && len == HDR + sizeof(fr) && !memcmp(b + HDR, fr, sizeof(fr));
        }
        CHECK_EQ(rx, 32);
        CHECK_EQ(tx, 32);
        vdriver_reset(&f.d);
    }
    fix_close(&f);
}

/* ---------------------------------------------------------------- a real TAP */

static int tap_if_up(const char *name)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    int r = s < 0 ? -1 : ioctl(s, SIOCGIFFLAGS, &ifr);
    if (r == 0) {
        ifr.ifr_flags |= IFF_UP;
        r = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    if (s >= 0)
        close(s);
    return r;
}

static void test_real_tap(void)
{
    char name[IFNAMSIZ];
    snprintf(name, sizeof(name), "rvnet%d", (int)(getpid() % 100000));
    struct fix f = {.peer = -1};
    CHECK_EQ(vdriver_init(&f.d, RAM), 0);
    struct virtio_net_config cfg = {.backend = VIRTIO_NET_TAP, .ifname = name, .has_mac = true};
    memcpy(cfg.mac, guest_mac, 6);
    char err[256] = "";
    int r = virtio_net_create(&cfg, &f.d.mem, &f.n, err, sizeof(err));
    if (r == -EPERM || r == -EACCES || r == -ENOENT || r == -ENODEV) {
        CHECK_SKIP("no TAP here: %s", err);
        vdriver_free(&f.d);
        return;
    }
    CHECK(r == 0, "create: %s", err);
    if (r != 0) {
        vdriver_free(&f.d);
        return;
    }
    attach(&f, ~0ull); /* every offload: TUNSETOFFLOAD must take them */
    CHECK_EQ(tap_if_up(name), 0);
    int ps = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    struct sockaddr_ll sll = {.sll_family = AF_PACKET,
                              .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = (int)if_nametoindex(name)};
    CHECK(ps >= 0 && bind(ps, (struct sockaddr *)&sll, sizeof(sll)) == 0, "packet socket: %s",
          strerror(errno));

    /* Guest -> TAP: the frame shows up on the interface. */
    uint8_t fr[300];
    make_frame(fr, sizeof(fr), 0x88b5, 50);
    memcpy(fr + 6, guest_mac, 6);
    guest_send(&f, NULL, fr, sizeof(fr), 100);
    bool seen = false;
    for (int64_t end = now_ms() + WAIT_MS; !seen && now_ms() < end;) {
        uint8_t buf[2048];
        struct pollfd p = {.fd = ps, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t k = recv(ps, buf, sizeof(buf), 0);
        seen = k == sizeof(fr) && !memcmp(buf, fr, sizeof(fr));
    }
    CHECK(seen, "guest frame on %s", name);

    /* Interface -> guest. */
    for (unsigned i = 0; i < 32; i++)
        post_rx(&f, 2048, i == 31);
    make_frame(fr, sizeof(fr), 0x88b5, 51);
    memcpy(fr, guest_mac, 6);
    CHECK(send(ps, fr, sizeof(fr), 0) == sizeof(fr), "inject: %s", strerror(errno));
    seen = false;
    for (unsigned i = 0; i < 32 && !seen; i++) {
        uint16_t h;
        uint32_t len;
        uint8_t *b = rx_used(&f, &h, &len, WAIT_MS);
        if (!b)
            break;
        seen = len == HDR + sizeof(fr) && !memcmp(b + HDR, fr, sizeof(fr));
    }
    CHECK(seen, "frame from %s reached the guest", name);

    /* Without mergeable buffers, a TAP packet larger than the buffer is dropped (a TAP read
     * reports the whole length) and the buffer takes the next one. */
    attach(&f, ~MRG);
    for (unsigned i = 0; i < 16; i++)
        post_rx(&f, 256, i == 15);
    uint8_t big[1000];
    make_frame(big, sizeof(big), 0x88b5, 52);
    memcpy(big, guest_mac, 6);
    CHECK(send(ps, big, sizeof(big), 0) == sizeof(big), "inject: %s", strerror(errno));
    make_frame(fr, 100, 0x88b5, 53);
    memcpy(fr, guest_mac, 6);
    CHECK(send(ps, fr, 100, 0) == 100, "inject: %s", strerror(errno));
    seen = false;
    for (unsigned i = 0; i < 16 && !seen; i++) { /* the kernel's IPv6 chatter may come too */
        uint16_t h;
        uint32_t len;
        uint8_t *b = rx_used(&f, &h, &len, WAIT_MS);
        if (!b)
            break;
        CHECK(len <= 256, "used length %u fits the buffer", len);
        CHECK(!(len > HDR + 14 && be16(b + HDR + 12) == 0x88b5 && b[HDR + 14] == big[14]),
              "no part of the big frame delivered");
        seen = len == HDR + 100 && !memcmp(b + HDR, fr, 100);
    }
    CHECK(seen, "small frame delivered after the big one");
    CHECK(stats(&f).rx_dropped >= 1, "big one dropped");
    if (ps >= 0)
        close(ps);
    fix_close(&f);
}

static void test_vhost(void)
{
    struct vdriver d;
    CHECK_EQ(vdriver_init(&d, RAM), 0);
    char name[IFNAMSIZ];
    snprintf(name, sizeof(name), "rvvh%d", (int)(getpid() % 100000));
    struct virtio_net_config cfg = {.backend = VIRTIO_NET_TAP, .ifname = name, .vhost = true};
    struct virtio_net *n = NULL;
    char err[256] = "";
    int r = virtio_net_create(&cfg, &d.mem, &n, err, sizeof(err));
    if (access("/dev/vhost-net", F_OK) != 0 && access("/dev/net/tun", R_OK | W_OK) == 0 &&
        r != -EPERM) {
        CHECK(r < 0, "vhost without /dev/vhost-net must fail");
        CHECK(strstr(err, "/dev/vhost-net") != NULL && !strchr(err, '\n'), "reason: %s", err);
    } else if (r == 0) {
        /* vhost-net is here: the device starts and stops cleanly. */
        uint8_t st = vdriver_attach(&d, virtio_net_device(n), ~0ull, 0);
        CHECK(st & VIRTIO_STATUS_DRIVER_OK, "status %#x", st);
        CHECK(!(st & VIRTIO_STATUS_NEEDS_RESET), "status %#x", st);
        vdriver_reset(&d);
    } else {
        CHECK_SKIP("vhost-net: %s", err);
    }
    virtio_net_destroy(n);
    vdriver_free(&d);
}

/* ---------------------------------------------------------------- user-mode networking */

static const uint8_t slirp_mac[6] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};

static bool user_open(struct fix *f, const struct virtio_net_config *extra)
{
    memset(f, 0, sizeof(*f));
    f->peer = -1;
    if (vdriver_init(&f->d, RAM) != 0)
        return false;
    struct virtio_net_config cfg = {.backend = VIRTIO_NET_USER, .has_mac = true};
    if (extra)
        cfg = *extra;
    memcpy(cfg.mac, guest_mac, 6);
    char err[256] = "";
    int r = virtio_net_create(&cfg, &f->d.mem, &f->n, err, sizeof(err));
    CHECK(r == 0, "create: %d %s", r, err);
    if (r != 0) {
        vdriver_free(&f->d);
        return false;
    }
    attach(f, ~0ull);
    for (unsigned i = 0; i < 64; i++)
        post_rx(f, 2048, i == 63);
    return true;
}

static uint16_t ip_csum(const uint8_t *p, size_t len)
{
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        s += be16(p + i);
    if (len & 1)
        s += (uint32_t)p[len - 1] << 8;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

/* An IPv4 + UDP packet in an Ethernet frame; returns the frame length. */
static size_t udp_frame(uint8_t *fr, const uint8_t *dst_mac, uint32_t src, uint32_t dst,
                        uint16_t sport, uint16_t dport, const uint8_t *payload, size_t plen)
{
    memcpy(fr, dst_mac, 6);
    memcpy(fr + 6, guest_mac, 6);
    put_be16(fr + 12, 0x0800);
    uint8_t *ip = fr + 14;
    memset(ip, 0, 28);
    ip[0] = 0x45;
    put_be16(ip + 2, (uint16_t)(28 + plen));
    ip[8] = 64;
    ip[9] = 17;
    put_be32(ip + 12, src);
    put_be32(ip + 16, dst);
    put_be16(ip + 10, ip_csum(ip, 20));
    put_be16(ip + 20, sport);
    put_be16(ip + 22, dport);
    put_be16(ip + 24, (uint16_t)(8 + plen));
    memcpy(ip + 28, payload, plen);
    return 14 + 28 + plen;
}

static size_t arp_frame(uint8_t *fr, uint16_t op, const uint8_t *tha, uint32_t spa, uint32_t tpa)
{
    memset(fr, 0, 60);
    memcpy(fr, op == 1 ? (const uint8_t *)"\xff\xff\xff\xff\xff\xff" : tha, 6);
    memcpy(fr + 6, guest_mac, 6);
    put_be16(fr + 12, 0x0806);
    put_be16(fr + 14, 1);
    put_be16(fr + 16, 0x0800);
    fr[18] = 6;
    fr[19] = 4;
    put_be16(fr + 20, op);
    memcpy(fr + 22, guest_mac, 6);
    put_be32(fr + 28, spa);
    if (op == 2)
        memcpy(fr + 32, tha, 6);
    put_be32(fr + 38, tpa);
    return 60;
}

typedef bool (*frame_pred)(const uint8_t *fr, size_t len, void *ctx);

/* Wait for a frame the predicate accepts, answering slirp's ARP requests for the guest and
 * giving every buffer back. */
static bool user_wait(struct fix *f, frame_pred pred, void *ctx, int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end) {
        uint16_t h;
        uint32_t len;
        uint8_t *b = rx_used(f, &h, &len, 50);
        if (!b)
            continue;
        const uint8_t *fr = b + HDR;
        size_t flen = len - HDR;
        bool ok = pred(fr, flen, ctx);
        if (!ok && flen >= 42 && be16(fr + 12) == 0x0806 && be16(fr + 20) == 1 &&
            !memcmp(fr + 38, "\x0a\x00\x02\x0f", 4)) {
            uint8_t reply[60];
            arp_frame(reply, 2, fr + 22, 0x0a00020f, 0x0a000202);
            guest_send(f, NULL, reply, sizeof(reply), 0);
        }
        post_rx(f, 2048, true);
        if (ok)
            return true;
    }
    return false;
}

static bool is_arp_reply(const uint8_t *fr, size_t len, void *ctx)
{
    (void)ctx;
    return len >= 42 && be16(fr + 12) == 0x0806 && be16(fr + 20) == 2 &&
           !memcmp(fr + 22, slirp_mac, 6) && !memcmp(fr + 28, "\x0a\x00\x02\x02", 4) &&
           !memcmp(fr + 32, guest_mac, 6) && !memcmp(fr, guest_mac, 6);
}

static void test_user_arp(void)
{
    struct fix f;
    if (!user_open(&f, NULL))
        return;
    uint8_t fr[60];
    arp_frame(fr, 1, NULL, 0x0a00020f, 0x0a000202);
    guest_send(&f, NULL, fr, sizeof(fr), 0);
    CHECK(user_wait(&f, is_arp_reply, NULL, WAIT_MS), "ARP reply from 10.0.2.2");
    CHECK(!(vdriver_status(&f.d) & VIRTIO_STATUS_NEEDS_RESET), "no reset");
    fix_close(&f);
}

static bool is_dhcp_offer(const uint8_t *fr, size_t len, void *ctx)
{
    uint32_t xid = *(uint32_t *)ctx;
    if (len < 14 + 28 + 240 || be16(fr + 12) != 0x0800 || fr[23] != 17)
        return false;
    const uint8_t *udp = fr + 14 + (fr[14] & 15) * 4, *bp = udp + 8;
    if (be16(udp + 2) != 68 || bp[0] != 2 || memcmp(bp + 4, &xid, 4) ||
        memcmp(bp + 16, "\x0a\x00\x02\x0f", 4) || memcmp(bp + 236, "\x63\x82\x53\x63", 4))
        return false;
    for (const uint8_t *o = bp + 240; o + 2 < fr + len && *o != 255;) {
        if (*o == 0) {
            o++;
            continue;
        }
        if (o[0] == 53)
            return o[2] == 2; /* DHCPOFFER */
        o += 2 + o[1];
    }
    return false;
}

static void test_user_dhcp(void)
{
    struct fix f;
    if (!user_open(&f, NULL))
        return;
    uint8_t bootp[548] = {1, 1, 6, 0};
    uint32_t xid = 0x5eed1234;
    memcpy(bootp + 4, &xid, 4);
    memcpy(bootp + 28, guest_mac, 6);
    static const uint8_t opts[] = {0x63, 0x82, 0x53, 0x63, 53, 1, 1, 255};
    memcpy(bootp + 236, opts, sizeof(opts));
    uint8_t fr[14 + 28 + sizeof(bootp)];
    size_t len = udp_frame(fr, (const uint8_t *)"\xff\xff\xff\xff\xff\xff", 0, 0xffffffff, 68, 67,
                           bootp, sizeof(bootp));
    guest_send(&f, NULL, fr, len, 200);
    CHECK(user_wait(&f, is_dhcp_offer, &xid, WAIT_MS), "DHCPOFFER of 10.0.2.15");
    fix_close(&f);
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    int port = -1;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return port;
}

static bool is_syn_to_22(const uint8_t *fr, size_t len, void *ctx)
{
    (void)ctx;
    if (len < 14 + 40 || be16(fr + 12) != 0x0800 || fr[23] != 6)
        return false;
    const uint8_t *tcp = fr + 14 + (fr[14] & 15) * 4;
    return !memcmp(fr + 30, "\x0a\x00\x02\x0f", 4) && be16(tcp + 2) == 22 &&
           (tcp[13] & 0x12) == 0x02; /* SYN, not ACK */
}

static void test_user_hostfwd(void)
{
    int port = free_port();
    CHECK(port > 0, "a free port");
    struct virtio_net_config cfg = {.backend = VIRTIO_NET_USER, .has_mac = true, .nfwd = 1};
    cfg.fwd[0] = (struct virtio_net_fwd){
        .host_addr = INADDR_LOOPBACK, .host_port = (uint16_t)port, .guest_port = 22};
    struct fix f;
    if (!user_open(&f, &cfg))
        return;
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int r = connect(c, (struct sockaddr *)&a, sizeof(a));
    CHECK(r == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
    CHECK(user_wait(&f, is_syn_to_22, NULL, WAIT_MS), "SYN to 10.0.2.15:22 on the guest's rx");
    close(c);
    fix_close(&f);

    /* A forward on a port something else listens on fails at create, saying why. */
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    a.sin_port = 0;
    socklen_t al = sizeof(a);
    CHECK(l >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 1) == 0 &&
              getsockname(l, (struct sockaddr *)&a, &al) == 0,
          "listener");
    cfg.fwd[0].host_port = ntohs(a.sin_port);
    struct vdriver d;
    CHECK_EQ(vdriver_init(&d, RAM), 0);
    struct virtio_net *n = NULL;
    char err[256] = "";
    r = virtio_net_create(&cfg, &d.mem, &n, err, sizeof(err));
    CHECK(r < 0, "busy port refused");
    char port_s[16];
    snprintf(port_s, sizeof(port_s), "%u", cfg.fwd[0].host_port);
    CHECK(strstr(err, "hostfwd") && strstr(err, port_s) && !strchr(err, '\n'), "reason: %s", err);
    if (r == 0)
        virtio_net_destroy(n);
    vdriver_free(&d);
    close(l);
}

/* slirp's frames wait in the device while the guest has no buffers, and flow after a kick. */
static void test_user_waits_for_buffers(void)
{
    struct fix f;
    memset(&f, 0, sizeof(f));
    CHECK_EQ(vdriver_init(&f.d, RAM), 0);
    struct virtio_net_config cfg = {.backend = VIRTIO_NET_USER, .has_mac = true};
    memcpy(cfg.mac, guest_mac, 6);
    char err[256];
    CHECK_EQ(virtio_net_create(&cfg, &f.d.mem, &f.n, err, sizeof(err)), 0);
    attach(&f, ~0ull);
    uint8_t fr[60];
    arp_frame(fr, 1, NULL, 0x0a00020f, 0x0a000202);
    guest_send(&f, NULL, fr, sizeof(fr), 0);
    uint16_t h;
    uint32_t len;
    CHECK(vdriver_wait_used(&f.d, NET_TXQ, &h, &len, WAIT_MS) == 0, "sent");
    sleep_ms(100);
    for (unsigned i = 0; i < 8; i++)
        post_rx(&f, 2048, i == 7);
    CHECK(user_wait(&f, is_arp_reply, NULL, WAIT_MS), "queued ARP reply delivered after kick");
    fix_close(&f);
}

int main(void)
{
    RUN(test_features_config);
    RUN(test_tx_passes_header);
    RUN(test_tx_backpressure);
    RUN(test_tx_oversized_dropped);
    RUN(test_tx_malformed);
    RUN(test_rx_single);
    RUN(test_rx_mrg_direct);
    RUN(test_rx_mrg_bounce);
    RUN(test_rx_waits_for_buffers);
    RUN(test_rx_oversized_dropped);
    RUN(test_rx_malformed);
    RUN(test_duplex_and_reset);
    RUN(test_real_tap);
    RUN(test_vhost);
    RUN(test_user_arp);
    RUN(test_user_dhcp);
    RUN(test_user_hostfwd);
    RUN(test_user_waits_for_buffers);
    return check_done();
}
