/* SPDX-License-Identifier: MIT */
/* virtio-vsock through vdriver: host- and guest-initiated connections over Unix sockets, data
 * both ways under credit-based flow control, shutdown and reset, and hostile packets. */
#include "../check.h"
#include "vsock_guest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CID 42u
#define HOST_PORT0 (1u << 30)
#define GUEST_BUF (32u * 1024) /* the guest's buf_alloc: small, so credit runs out */
#define TIMEOUT 2000

static char dir[64], uds[128];

/* ---------------------------------------------------------------- host side helpers */

static int unix_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(a.sun_path)) {
        close(fd);
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path));
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int unix_listen(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(a.sun_path)) {
        close(fd);
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path));
    unlink(path);
    if (fd >= 0 && (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool readable(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms) > 0;
}

/* Read up to len bytes, stopping at EOF or after a quiet timeout. */
static ssize_t read_some(int fd, void *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    while (got < len && readable(fd, timeout_ms)) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* True when fd reads EOF (or an error) within the timeout. */
static bool host_sees_eof(int fd)
{
    char c;
    return readable(fd, TIMEOUT) && read(fd, &c, 1) <= 0;
}

static uint8_t pattern(uint64_t i, unsigned seed)
{
    return (uint8_t)((i * 2654435761u >> 7) ^ seed);
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

#define FNV0 0xcbf29ce484222325ull

struct host_io {
    int fd;
    size_t len;
    unsigned seed;
    useconds_t delay;
    uint64_t hash;
    size_t done;
};

static void *host_writer(void *arg)
{
    struct host_io *io = arg;
    static uint8_t chunk[8192];
    while (io->done < io->len) {
        size_t n = io->len - io->done < sizeof(chunk) ? io->len - io->done : sizeof(chunk);
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern(io->done + i, io->seed);
        ssize_t w = write(io->fd, chunk, n);
        if (w <= 0)
            break;
        io->done += (size_t)w;
    }
    return NULL;
}

static void *host_reader(void *arg)
{
    struct host_io *io = arg;
    static uint8_t chunk[8192];
    usleep(io->delay);
    io->hash = FNV0;
    for (;;) {
        ssize_t n = read(io->fd, chunk, sizeof(chunk));
        if (n <= 0)
            break;
        io->hash = fnv(io->hash, chunk, (size_t)n);
        io->done += (size_t)n;
    }
    return NULL;
}

/* ---------------------------------------------------------------- guest side helpers */

/* One connection as the guest sees it. */
struct gconn {
    uint32_t gport, hport;
    uint32_t rx_total, fwd;          /* bytes received, bytes "consumed" (our fwd_cnt) */
    uint32_t tx_total;               /* bytes sent */
    uint32_t dev_buf_alloc, dev_fwd; /* the device's credit figures */
    uint64_t rx_hash;
};

static struct vsock_hdr gc_hdr(struct vsock_guest *g, struct gconn *c, uint16_t op)
{
    struct vsock_hdr h = vg_hdr(g, c->gport, c->hport, op);
    h.buf_alloc = GUEST_BUF;
    h.fwd_cnt = c->fwd;
    return h;
}

static int gc_send(struct vsock_guest *g, struct gconn *c, uint16_t op, uint32_t flags)
{
    struct vsock_hdr h = gc_hdr(g, c, op);
    h.flags = flags;
    return vg_send(g, &h, NULL, 0, 1, TIMEOUT);
}

/* Receive a packet for c (any other is a failure); RW payload is hashed and checked against
 * the credit we gave. Returns the op, or -1. */
static int gc_recv(struct vsock_guest *g, struct gconn *c, struct vsock_hdr *out, int timeout_ms)
{
    static uint8_t payload[VG_RX_BUF];
    struct vsock_hdr h;
    int n = vg_recv(g, &h, payload, sizeof(payload), timeout_ms);
    if (n < 0)
        return -1;
    CHECK_EQ(h.src_cid, VSOCK_HOST_CID);
    CHECK_EQ(h.dst_cid, CID);
    CHECK_EQ(h.type, VSOCK_TYPE_STREAM);
    CHECK_EQ(h.src_port, c->hport);
    CHECK_EQ(h.dst_port, c->gport);
    CHECK_EQ(h.len, (uint32_t)n);
    c->dev_buf_alloc = h.buf_alloc;
    c->dev_fwd = h.fwd_cnt;
    if (h.op == VSOCK_OP_RW) {
        c->rx_total += (uint32_t)n;
        CHECK(c->rx_total - c->fwd <= GUEST_BUF, "device overran our credit: %u in flight",
              c->rx_total - c->fwd);
        c->rx_hash = fnv(c->rx_hash, payload, (size_t)n);
    } else {
        CHECK_EQ(n, 0);
    }
    if (out)
        *out = h;
    return h.op;
}

/* ---------------------------------------------------------------- fixture */

static void setup(struct vsock_guest *g)
{
    char err[256] = "";
    int r = vg_init(g, uds, CID, err, sizeof(err));
    CHECK(r == 0, "vg_init: %s", err);
    if (r)
        exit(1);
}

/* Connect from the host and complete the handshake as the guest. */
static int host_initiated(struct vsock_guest *g, struct gconn *c, uint32_t gport,
                          uint32_t expect_hport)
{
    int fd = unix_connect(uds);
    CHECK(fd >= 0, "connect %s", uds);
    char line[32];
    int n = snprintf(line, sizeof(line), "CONNECT %u\n", gport);
    CHECK_EQ(write(fd, line, (size_t)n), n);
    *c = (struct gconn){.gport = gport, .hport = expect_hport, .rx_hash = FNV0};
    struct vsock_hdr h;
    CHECK_EQ(gc_recv(g, c, &h, TIMEOUT), VSOCK_OP_REQUEST);
    CHECK_EQ(h.buf_alloc, VSOCK_BUF_ALLOC);
    CHECK_EQ(gc_send(g, c, VSOCK_OP_RESPONSE, 0), 0);
    char ok[32] = {0};
    n = snprintf(line, sizeof(line), "OK %u\n", expect_hport);
    CHECK_EQ(read_some(fd, ok, (size_t)n, TIMEOUT), n);
    CHECK(strcmp(ok, line) == 0, "got '%s'", ok);
    return fd;
}

/* ---------------------------------------------------------------- tests */

static void test_host_initiated_flow(void)
{
    struct vsock_guest g;
    setup(&g);
    struct gconn c;
    int fd = host_initiated(&g, &c, 1234, HOST_PORT0);

    /* Host -> guest, ten times the guest's buffer: the device stops at the credit, and goes
     * on after each CREDIT_UPDATE. */
    struct host_io w = {.fd = fd, .len = 10 * GUEST_BUF + 123, .seed = 1};
    pthread_t t;
    pthread_create(&t, NULL, host_writer, &w);
    while (c.rx_total < GUEST_BUF)
        if (gc_recv(&g, &c, NULL, TIMEOUT) != VSOCK_OP_RW)
            break;
    CHECK_EQ(c.rx_total, GUEST_BUF);
    CHECK_EQ(vg_recv(&g, &(struct vsock_hdr){0}, NULL, 0, 200), -ETIMEDOUT);
    while (c.rx_total < w.len) {
        if (c.rx_total - c.fwd >= GUEST_BUF / 2) {
            c.fwd = c.rx_total; /* the application read it */
            CHECK_EQ(gc_send(&g, &c, VSOCK_OP_CREDIT_UPDATE, 0), 0);
        }
        if (gc_recv(&g, &c, NULL, TIMEOUT) != VSOCK_OP_RW)
            break;
    }
    pthread_join(t, NULL);
    CHECK_EQ(c.rx_total, w.len);
    uint64_t want = FNV0;
    for (size_t i = 0; i < w.len; i++) {
        uint8_t b = pattern(i, 1);
        want = fnv(want, &b, 1);
    }
    CHECK(c.rx_hash == want, "host -> guest data differs");

    /* Guest -> host, more than the device's 256 KiB buffer while the host is slow to read:
     * the guest must wait for the device's CREDIT_UPDATE. */
    struct host_io r = {.fd = fd, .delay = 300000};
    pthread_create(&t, NULL, host_reader, &r);
    enum { TOTAL = 700 * 1024, CHUNK = 16 * 1024 };
    static uint8_t buf[CHUNK];
    uint64_t sent_hash = FNV0;
    unsigned waits = 0;
    while (c.tx_total < TOTAL) {
        uint32_t credit = c.dev_buf_alloc - (c.tx_total - c.dev_fwd);
        uint32_t n = TOTAL - c.tx_total < CHUNK ? TOTAL - c.tx_total : CHUNK;
        if (credit < n) {
            waits++;
            if (gc_recv(&g, &c, NULL, TIMEOUT) != VSOCK_OP_CREDIT_UPDATE)
                break;
            continue;
        }
        for (uint32_t i = 0; i < n; i++)
            buf[i] = pattern(c.tx_total + i, 2);
        struct vsock_hdr h = gc_hdr(&g, &c, VSOCK_OP_RW);
        h.len = n;
        CHECK_EQ(vg_send(&g, &h, buf, n, 1 + c.tx_total % 3, TIMEOUT), 0);
        sent_hash = fnv(sent_hash, buf, n);
        c.tx_total += n;
    }
    CHECK(waits > 0, "the guest never ran out of credit");
    CHECK_EQ(c.tx_total, TOTAL);

    /* The guest closes: data first, then EOF for the host, then the device's RST. */
    CHECK_EQ(gc_send(&g, &c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_BOTH), 0);
    pthread_join(t, NULL);
    CHECK_EQ(r.done, TOTAL);
    CHECK(r.hash == sent_hash, "guest -> host data differs");
    int op;
    while ((op = gc_recv(&g, &c, NULL, TIMEOUT)) == VSOCK_OP_CREDIT_UPDATE)
        ;
    CHECK_EQ(op, VSOCK_OP_RST);
    close(fd);
    CHECK(!(vdriver_status(&g.drv) & VIRTIO_STATUS_NEEDS_RESET), "device healthy");
    vg_free(&g);
}

static void test_guest_initiated(void)
{
    struct vsock_guest g;
    setup(&g);
    char path[160];
    snprintf(path, sizeof(path), "%s_5000", uds);
    int lfd = unix_listen(path);
    CHECK(lfd >= 0, "listen %s", path);

    struct gconn c = {.gport = 40000, .hport = 5000, .rx_hash = FNV0};
    CHECK_EQ(gc_send(&g, &c, VSOCK_OP_REQUEST, 0), 0);
    CHECK_EQ(gc_recv(&g, &c, NULL, TIMEOUT), VSOCK_OP_RESPONSE);
    CHECK(readable(lfd, TIMEOUT), "pending connection");
    int fd = accept(lfd, NULL, NULL);
    CHECK(fd >= 0, "accept");

    CHECK_EQ(write(fd, "ping", 4), 4);
    CHECK_EQ(gc_recv(&g, &c, NULL, TIMEOUT), VSOCK_OP_RW);
    CHECK_EQ(c.rx_total, 4);
    struct vsock_hdr h = gc_hdr(&g, &c, VSOCK_OP_RW);
    h.len = 4;
    CHECK_EQ(vg_send(&g, &h, "pong", 4, 2, TIMEOUT), 0);
    char buf[8] = {0};
    CHECK_EQ(read_some(fd, buf, 4, TIMEOUT), 4);
    CHECK(memcmp(buf, "pong", 4) == 0, "host got '%s'", buf);

    /* Host half-closes: the guest hears SHUTDOWN(SEND), can still send. */
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    struct vsock_hdr in;
    CHECK_EQ(gc_recv(&g, &c, &in, TIMEOUT), VSOCK_OP_SHUTDOWN);
    CHECK_EQ(in.flags, VSOCK_SHUTDOWN_SEND);
    h = gc_hdr(&g, &c, VSOCK_OP_RW);
    h.len = 3;
    CHECK_EQ(vg_send(&g, &h, "bye", 3, 1, TIMEOUT), 0);
    CHECK_EQ(read_some(fd, buf, 3, TIMEOUT), 3);
    /* The guest shuts its send side: the host reads EOF, and with both sides done the device
     * ends the connection with an RST. */
    CHECK_EQ(gc_send(&g, &c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND), 0);
    CHECK(host_sees_eof(fd), "EOF after the guest's SHUTDOWN");
    CHECK_EQ(gc_recv(&g, &c, NULL, TIMEOUT), VSOCK_OP_RST);
    close(fd);

    /* No listener for port 5001: RST. */
    struct gconn none = {.gport = 40001, .hport = 5001};
    CHECK_EQ(gc_send(&g, &none, VSOCK_OP_REQUEST, 0), 0);
    CHECK_EQ(gc_recv(&g, &none, NULL, TIMEOUT), VSOCK_OP_RST);

    /* The guest resets a live connection: the host sees EOF. */
    struct gconn c2 = {.gport = 40002, .hport = 5000};
    CHECK_EQ(gc_send(&g, &c2, VSOCK_OP_REQUEST, 0), 0);
    CHECK_EQ(gc_recv(&g, &c2, NULL, TIMEOUT), VSOCK_OP_RESPONSE);
    CHECK(readable(lfd, TIMEOUT), "pending connection");
    fd = accept(lfd, NULL, NULL);
    CHECK_EQ(gc_send(&g, &c2, VSOCK_OP_RST, 0), 0);
    CHECK(host_sees_eof(fd), "EOF after the guest's RST");
    close(fd);

    close(lfd);
    unlink(path);
    vg_free(&g);
}

/* The host closes: the guest gets what was written, the end of the stream, then an RST. A
 * device reset closes the host ends of live connections. */
static void test_host_close_and_reset(void)
{
    struct vsock_guest g;
    setup(&g);
    struct gconn c;
    int fd = host_initiated(&g, &c, 77, HOST_PORT0);
    CHECK_EQ(write(fd, "last words", 10), 10);
    close(fd);
    int op;
    while ((op = gc_recv(&g, &c, NULL, TIMEOUT)) == VSOCK_OP_RW)
        ;
    CHECK_EQ(c.rx_total, 10);
    if (op == VSOCK_OP_SHUTDOWN)
        op = gc_recv(&g, &c, NULL, TIMEOUT);
    CHECK_EQ(op, VSOCK_OP_RST);

    /* Ports are unique among live connections: the next one gets the next port. */
    int fd2 = host_initiated(&g, &c, 78, HOST_PORT0 + 1);
    vdriver_reset(&g.drv);
    CHECK(host_sees_eof(fd2), "EOF after a device reset");
    close(fd2);
    vg_free(&g);
}

static void expect_rst(struct vsock_guest *g, uint32_t gport, uint32_t hport, uint16_t type)
{
    struct vsock_hdr h;
    CHECK_EQ(vg_recv(g, &h, NULL, 0, TIMEOUT), 0);
    CHECK_EQ(h.op, VSOCK_OP_RST);
    CHECK_EQ(h.src_port, hport);
    CHECK_EQ(h.dst_port, gport);
    CHECK_EQ(h.type, type);
}

static void expect_nothing(struct vsock_guest *g)
{
    struct vsock_hdr h;
    int r = vg_recv(g, &h, NULL, 0, 100);
    CHECK(r == -ETIMEDOUT, "unexpected packet op %u (%d)", h.op, r);
}

static void test_hostile_packets(void)
{
    struct vsock_guest g;
    setup(&g);
    /* Unknown connection: RST, but never an RST for an RST. */
    struct vsock_hdr h = vg_hdr(&g, 41000, 777, VSOCK_OP_RW);
    h.len = 3;
    CHECK_EQ(vg_send(&g, &h, "abc", 3, 1, TIMEOUT), 0);
    expect_rst(&g, 41000, 777, VSOCK_TYPE_STREAM);
    h = vg_hdr(&g, 41000, 777, VSOCK_OP_RST);
    CHECK_EQ(vg_send(&g, &h, NULL, 0, 1, TIMEOUT), 0);
    expect_nothing(&g);
    h = vg_hdr(&g, 41000, 777, 99);
    CHECK_EQ(vg_send(&g, &h, NULL, 0, 1, TIMEOUT), 0);
    expect_rst(&g, 41000, 777, VSOCK_TYPE_STREAM);
    /* Not a stream: RST of that type. */
    h = vg_hdr(&g, 41000, 777, VSOCK_OP_REQUEST);
    h.type = 2;
    CHECK_EQ(vg_send(&g, &h, NULL, 0, 1, TIMEOUT), 0);
    expect_rst(&g, 41000, 777, 2);
    /* Spoofed source CID, or not for the host: dropped silently. */
    h = vg_hdr(&g, 41000, 777, VSOCK_OP_REQUEST);
    h.src_cid = CID + 1;
    CHECK_EQ(vg_send(&g, &h, NULL, 0, 1, TIMEOUT), 0);
    h = vg_hdr(&g, 41000, 777, VSOCK_OP_REQUEST);
    h.dst_cid = 7;
    CHECK_EQ(vg_send(&g, &h, NULL, 0, 1, TIMEOUT), 0);
    /* Shorter than a header, and an empty chain. */
    CHECK_EQ(vg_send_raw(&g, "short", 5, TIMEOUT), 0);
    CHECK_EQ(vg_send_raw(&g, "", 0, TIMEOUT), 0);
    /* len larger than the chain, for an unknown connection: dropped. */
    h = vg_hdr(&g, 41000, 777, VSOCK_OP_RW);
    h.len = 0xffffffffu;
    CHECK_EQ(vg_send(&g, &h, "abc", 3, 1, TIMEOUT), 0);
    expect_nothing(&g);

    /* len larger than the chain on a live connection: that connection is reset. */
    struct gconn c;
    int fd = host_initiated(&g, &c, 1234, HOST_PORT0);
    h = gc_hdr(&g, &c, VSOCK_OP_RW);
    h.len = 100;
    CHECK_EQ(vg_send(&g, &h, "abc", 3, 1, TIMEOUT), 0);
    CHECK_EQ(gc_recv(&g, &c, NULL, TIMEOUT), VSOCK_OP_RST);
    CHECK(host_sees_eof(fd), "EOF after a malformed packet");
    close(fd);

    /* Data beyond the credit we gave (the guest ignores every CREDIT_UPDATE): the Unix socket
     * takes a while, our buffer the rest, then the connection is reset. */
    fd = host_initiated(&g, &c, 1235, HOST_PORT0 + 1);
    static uint8_t big[VG_TX_MAX];
    h = gc_hdr(&g, &c, VSOCK_OP_RW);
    h.len = sizeof(big);
    for (int i = 0; i < 40; i++)
        CHECK_EQ(vg_send(&g, &h, big, sizeof(big), 1, TIMEOUT), 0);
    int op, rsts = 0;
    while ((op = gc_recv(&g, &c, NULL, 200)) >= 0)
        rsts += op == VSOCK_OP_RST;
    CHECK(rsts >= 1, "no RST for a credit overrun");
    close(fd);

    /* A RESPONSE nobody asked for, and a REQUEST for a live connection. */
    h = vg_hdr(&g, 41001, 5, VSOCK_OP_RESPONSE);
    CHECK_EQ(vg_send(&g, &h, NULL, 0, 1, TIMEOUT), 0);
    expect_rst(&g, 41001, 5, VSOCK_TYPE_STREAM);
    fd = host_initiated(&g, &c, 1236, HOST_PORT0 + 2);
    CHECK_EQ(gc_send(&g, &c, VSOCK_OP_REQUEST, 0), 0);
    CHECK_EQ(gc_recv(&g, &c, NULL, TIMEOUT), VSOCK_OP_RST);
    CHECK(host_sees_eof(fd), "EOF after a duplicate REQUEST");
    close(fd);

    CHECK(!(vdriver_status(&g.drv) & VIRTIO_STATUS_NEEDS_RESET), "device healthy");
    vg_free(&g);
}

/* The CONNECT line is parsed strictly; garbage closes the host's connection, and the guest
 * hears nothing. */
static void test_connect_line(void)
{
    struct vsock_guest g;
    setup(&g);
    static const char *const bad[] = {
        "CONNECT\n",
        "CONNECT \n",
        "CONNECT abc\n",
        "CONNECT 12a\n",
        "CONNECT 4294967296\n",
        "CONNECT -1\n",
        "connect 5\n",
        "CONNECT  5\n",
        "CONNECT 5 \n",
        "GARBAGEGARBAGEGARBAGEGARBAGEGARBAGE\n",
        "CONNECT 123456789012\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int fd = unix_connect(uds);
        CHECK(fd >= 0, "connect");
        CHECK_EQ(write(fd, bad[i], strlen(bad[i])), (ssize_t)strlen(bad[i]));
        CHECK(host_sees_eof(fd), "EOF for '%s'", bad[i]);
        close(fd);
    }
    /* Closing before the line ends, or after the line but before the guest answers. */
    int fd = unix_connect(uds);
    CHECK_EQ(write(fd, "CONN", 4), 4);
    close(fd);
    expect_nothing(&g);
    fd = unix_connect(uds);
    CHECK_EQ(write(fd, "CONNECT 9\n", 10), 10);
    struct gconn c = {.gport = 9, .hport = HOST_PORT0};
    CHECK_EQ(gc_recv(&g, &c, NULL, TIMEOUT), VSOCK_OP_REQUEST);
    close(fd);
    CHECK_EQ(gc_recv(&g, &c, NULL, TIMEOUT), VSOCK_OP_RST);
    /* The largest port is fine, and bytes right after the line are stream data. */
    fd = unix_connect(uds);
    CHECK_EQ(write(fd, "CONNECT 4294967295\nearly", 24), 24);
    c = (struct gconn){.gport = 4294967295u, .hport = HOST_PORT0 + 1};
    CHECK_EQ(gc_recv(&g, &c, NULL, TIMEOUT), VSOCK_OP_REQUEST);
    CHECK_EQ(gc_send(&g, &c, VSOCK_OP_RESPONSE, 0), 0);
    char ok[32] = {0};
    CHECK_EQ(read_some(fd, ok, 14, TIMEOUT), 14);
    CHECK(strcmp(ok, "OK 1073741825\n") == 0, "got '%s'", ok);
    CHECK_EQ(gc_recv(&g, &c, NULL, TIMEOUT), VSOCK_OP_RW);
    CHECK_EQ(c.rx_total, 5);
    close(fd);
    vg_free(&g);
}

/* uds: a stale socket file is replaced, a live one or any other file refused. */
static void test_uds_path(void)
{
    char path[160], err[256];
    struct guest_mem mem = {0};
    static uint8_t ram[4096];
    CHECK_EQ(guest_mem_add(&mem, 0, ram, sizeof(ram)), 0);
    struct virtio_vsock_config cfg = {.guest_cid = CID, .uds = path};
    struct virtio_vsock *s = NULL;

    snprintf(path, sizeof(path), "%s/file", dir);
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    close(fd);
    CHECK_EQ(virtio_vsock_create(&cfg, &mem, &s, err, sizeof(err)), -EEXIST);
    CHECK(strstr(err, "not a socket") != NULL, "err '%s'", err);
    unlink(path);

    snprintf(path, sizeof(path), "%s/stale", dir);
    fd = unix_listen(path);
    close(fd); /* the file stays, nobody listens */
    CHECK_EQ(virtio_vsock_create(&cfg, &mem, &s, err, sizeof(err)), 0);
    struct virtio_vsock *s2 = NULL;
    CHECK_EQ(virtio_vsock_create(&cfg, &mem, &s2, err, sizeof(err)), -EADDRINUSE);
    virtio_vsock_destroy(s);
    struct stat st;
    CHECK(lstat(path, &st) < 0, "socket file removed on destroy");

    cfg.guest_cid = 2;
    CHECK_EQ(virtio_vsock_create(&cfg, &mem, &s, err, sizeof(err)), -EINVAL);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/revirt-vsock-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(uds, sizeof(uds), "%s/v.sock", dir);
    RUN(test_host_initiated_flow);
    RUN(test_guest_initiated);
    RUN(test_host_close_and_reset);
    RUN(test_hostile_packets);
    RUN(test_connect_line);
    RUN(test_uds_path);
    rmdir(dir);
    return check_done();
}
