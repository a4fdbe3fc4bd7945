/* SPDX-License-Identifier: MIT */
/* Fuzz target: virtio-net over a socketpair backend, driven by a hostile driver; also its seed
 * writer. */

/*
 * Input: a header byte, then operations until the input ends (at most MAX_OPS).
 *   [0]  bit 0 MRG_RXBUF, bit 1 GUEST_CSUM, bit 2 EVENT_IDX, bit 3 the TSO offloads,
 *        bits 4..6 queue size 4 << (n % 7), so 4..256
 * Each operation is a byte whose low 3 bits say what, the rest a small argument:
 *   0 TX    chain of 1 + arg % 8 segments, each [off16 len16 flags8]: a segment of the arena
 *           (flags bit 0: device-writable; bit 1: wild, off16 len16 taken as a raw GPA
 *           off16 << 12 | len16 anywhere, rings and outside RAM included), then a kick
 *   1 RX    the same, device-writable unless flags bit 0
 *   2 SEND  the backend sends [len16] bytes of the arena (len16 * 2, so up to 128 KiB: past
 *           the largest packet), vnet header first
 *   3 KICK  a kick on queue arg & 1 with nothing new
 *   4 DRAIN the backend reads what the device sent
 *   5 REAP  let the device run until it is idle (on threads: at most 100 us), then consume
 *           every used entry
 *   6 RESET the driver resets and attaches again with the features of [byte] (as [0])
 *   7 POKE  [off16 n8] then n bytes written into the arena at off16
 * Afterwards the target lets the device go quiet (on threads at most 500 us: no unanswered
 * transmit chain, and no packet it could still take), resets it, destroys it, and checks
 * that its counters are consistent with what was sent. Most inputs run the device inline
 * (fuzz_inline.h): it takes whatever is ready after every operation, on the target's thread.
 * One in FUZZ_THREADED_EVERY (by length) runs its real I/O thread, concurrently with the
 * driver writing rings and buffers, as with a real guest.
 *
 * Built with -DFUZZ_NET_GEN_CORPUS this file is instead `fuzz_gen_corpus_net OUTDIR`, which
 * writes seeds for the paths the unit tests cover (transmit, receive with and without
 * mergeable buffers, a packet waiting for buffers, malformed chains, a reset).
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../unit/virtio/vdriver.h"
#include "fuzz_inline.h"
#include "virtio/net_backend.h"
#include "lib/le.h"

#define RAM (4ull << 20)
#define ARENA (256u << 10)
#define MAX_OPS 64u
#define MAX_RESETS 8u

enum { OP_TX, OP_RX, OP_SEND, OP_KICK, OP_DRAIN, OP_REAP, OP_RESET, OP_POKE };

static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_net: invariant broken: %s\n", what);
        abort();
    }
}

struct input {
    const uint8_t *p;
    size_t left;
};

static unsigned take(struct input *in, unsigned bytes)
{
    unsigned v = 0;
    for (unsigned i = 0; i < bytes && in->left; i++, in->left--)
        v |= (unsigned)*in->p++ << (8 * i);
    return v;
}

static uint64_t features_of(unsigned b)
{
    uint64_t f = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_NET_F_MAC) |
                 VIRTIO_BIT(VIRTIO_NET_F_STATUS) | VIRTIO_BIT(VIRTIO_NET_F_CSUM);
    if (b & 1)
        f |= VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF);
    if (b & 2)
        f |= VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM);
    if (b & 4)
        f |= VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    if (b & 8)
        f |= VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) | VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6) |
             VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6);
    return f;
}

static uint16_t qsize_of(unsigned b)
{
    return (uint16_t)(4u << ((b >> 4) % 7));
}

static void drain(int fd)
{
    static uint8_t buf[VIRTIO_NET_PKT_MAX + 64];
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
        ;
}

/* The generator waits longer, so that its seeds reliably do what their names say. */
static unsigned reap_scale = 1;
static struct virtio_net_stats last_stats;

static uint16_t used_idx(struct vdriver *d, unsigned q)
{
    return __atomic_load_n((uint16_t *)vdriver_ptr(d, d->q[q].used + 2), __ATOMIC_ACQUIRE);
}

/* Whether the device has nothing left it could do now: it asked for a reset, or it answered
 * every transmit chain and either read every packet the backend sent or has no receive
 * buffers left. */
static bool device_idle(struct vdriver *d, int devfd)
{
    if (vdriver_status(d) & VIRTIO_STATUS_NEEDS_RESET)
        return true;
    if (used_idx(d, NET_TXQ) != d->q[NET_TXQ].avail_idx)
        return false;
    int pending = 0;
    return ioctl(devfd, FIONREAD, &pending) != 0 || pending == 0 ||
           used_idx(d, NET_RXQ) == d->q[NET_RXQ].avail_idx;
}

/* Give the device thread up to us microseconds, less once it is idle (a fixed sleep was most
 * of an input's time), then consume every used entry. */
static void reap(struct vdriver *d, int devfd, unsigned us)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t limit = (uint64_t)us * reap_scale * 1000;
    if (ioloop_inline())
        fuzz_run_inline();
    while (!ioloop_inline()) {
        if (device_idle(d, devfd))
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t ns = (uint64_t)(now.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)now.tv_nsec -
                      (uint64_t)t0.tv_nsec;
        if (ns >= limit)
            break;
        usleep(20);
    }
    for (unsigned q = 0; q < 2; q++) {
        uint16_t head;
        uint32_t len;
        while (vdriver_wait_used(d, q, &head, &len, 0) == 0)
            ;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Guest RAM is kept, and zeroed again, from one input to the next: mapping 4 MiB and
     * faulting the arena in per input cost more than the input. */
    static struct vdriver d;
    static bool have_ram;
    static uint8_t pattern[ARENA];
    struct input in = {data, size};
    fuzz_set_inline(!fuzz_threaded(size));
    if (!have_ram) {
        require(vdriver_init(&d, RAM) == 0, "vdriver_init");
        for (unsigned i = 0; i < ARENA; i++)
            pattern[i] = (uint8_t)(i * 7 + (i >> 9));
        have_ram = true;
    } else {
        vdriver_wipe(&d);
    }
    int sv[2];
    require(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0,
            "socketpair");
    struct virtio_net *n;
    char err[256];
    require(virtio_net_create_fd(NULL, sv[0], &d.mem, &n, err, sizeof(err)) == 0, "create");
    unsigned hdr = take(&in, 1);
    vdriver_attach(&d, virtio_net_device(n), features_of(hdr), qsize_of(hdr));
    uint64_t arena = vdriver_alloc(&d, ARENA, 4096);
    uint8_t *a = vdriver_ptr(&d, arena);
    memcpy(a, pattern, ARENA);

    unsigned sent_tx = 0, sent_rx = 0, resets = 0;
    for (unsigned op = 0; op < MAX_OPS && in.left; op++) {
        unsigned b = take(&in, 1), arg = b >> 3;
        switch (b & 7) {
        case OP_TX:
        case OP_RX: {
            struct vdriver_buf bufs[8];
            unsigned nseg = 1 + arg % 8;
            for (unsigned i = 0; i < nseg; i++) {
                unsigned off = take(&in, 2), len = take(&in, 2), fl = take(&in, 1);
                if (fl & 2) {
                    bufs[i].gpa = (uint64_t)off << 12 | len;
                    bufs[i].len = len * 17u;
                } else {
                    bufs[i].gpa = arena + off % ARENA;
                    bufs[i].len = len % (ARENA - off % ARENA + 1);
                }
                bufs[i].write = (b & 7) == OP_TX ? (fl & 1) : !(fl & 1);
            }
            unsigned q = (b & 7) == OP_TX ? NET_TXQ : NET_RXQ;
            vdriver_add(&d, q, bufs, nseg, true);
            sent_tx += q == NET_TXQ;
            break;
        }
        case OP_SEND: {
            size_t len = (size_t)take(&in, 2) * 2;
            if (len > ARENA)
                len = ARENA;
            if (send(sv[1], a, len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
                sent_rx++;
            break;
        }
        case OP_KICK: {
            uint64_t one = 1;
            (void)!write(virtio_net_device(n)->queues[arg & 1].kick_fd, &one, sizeof(one));
            break;
        }
        case OP_DRAIN:
            drain(sv[1]);
            break;
        case OP_REAP:
            reap(&d, sv[0], 100);
            break;
        case OP_RESET: {
            unsigned f = take(&in, 1);
            if (resets++ < MAX_RESETS)
                vdriver_attach(&d, virtio_net_device(n), features_of(f), qsize_of(f));
            break;
        }
        case OP_POKE: {
            unsigned off = take(&in, 2) % ARENA, cnt = take(&in, 1);
            for (unsigned i = 0; i < cnt && in.left; i++)
                a[(off + i) % ARENA] = (uint8_t)take(&in, 1);
            break;
        }
        }
        /* Inline, the device takes one look at what is ready, as its thread would between
         * two steps of the driver (REAP runs it until idle). */
        (void)ioloop_poll_inline(0);
    }
    drain(sv[1]);
    reap(&d, sv[0], 500);
    vdriver_reset(&d);

    struct virtio_net_stats st;
    virtio_net_get_stats(n, &st);
    require(st.tx_packets + st.tx_dropped <= sent_tx, "no more transmits than chains");
    require(st.rx_packets + st.rx_dropped <= sent_rx, "no more receives than packets");
    require(st.rx_bytes <= (uint64_t)st.rx_packets * VIRTIO_NET_PKT_MAX, "rx sizes");
    last_stats = st;
    virtio_net_destroy(n);
    close(sv[1]);
    return 0;
}

#ifdef FUZZ_NET_GEN_CORPUS
struct seed {
    uint8_t buf[4096];
    size_t len;
};

static void put(struct seed *s, unsigned v, unsigned bytes)
{
    if (bytes > sizeof(s->buf) - s->len)
        abort();
    le_put(s->buf + s->len, bytes, v);
    s->len += bytes;
}

/* One chain of nseg arena segments of len bytes each, at off, off + len, ... */
static void chain(struct seed *s, unsigned op, unsigned nseg, unsigned off, unsigned len,
                  unsigned flags)
{
    put(s, op | (nseg - 1) << 3, 1);
    for (unsigned i = 0; i < nseg; i++) {
        put(s, off + i * len, 2);
        put(s, len, 2);
        put(s, flags, 1);
    }
}

/* Write a seed and check that it does what its name says (retried: the device runs on its
 * own thread, and a loaded host may be slow). */
static void write_seed(const char *dir, const char *name, const struct seed *s,
                       const struct virtio_net_stats *want)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s->buf, 1, s->len, f) != s->len || fclose(f) != 0) {
        fprintf(stderr, "fuzz_gen_corpus_net: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    const struct virtio_net_stats *g = &last_stats;
    for (int attempt = 0; attempt < 3; attempt++) {
        reap_scale = 50u << attempt;
        LLVMFuzzerTestOneInput(s->buf, s->len);
        if (g->tx_packets == want->tx_packets && g->tx_dropped == want->tx_dropped &&
            g->rx_packets == want->rx_packets && g->rx_dropped == want->rx_dropped)
            return;
    }
    fprintf(stderr,
            "fuzz_gen_corpus_net: seed %s: tx %llu/%llu dropped, rx %llu/%llu dropped; "
            "expected tx %llu/%llu, rx %llu/%llu\n",
            name, (unsigned long long)g->tx_packets, (unsigned long long)g->tx_dropped,
            (unsigned long long)g->rx_packets, (unsigned long long)g->rx_dropped,
            (unsigned long long)want->tx_packets, (unsigned long long)want->tx_dropped,
            (unsigned long long)want->rx_packets, (unsigned long long)want->rx_dropped);
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_gen_corpus_net OUTDIR\n");
        return 2;
    }
    const char *dir = argv[1];
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
    if (system(cmd) != 0)
        return 1;
    struct seed s;

    /* Transmit: a header and a frame in two segments, three times, then the backend reads. */
    s = (struct seed){.len = 0};
    put(&s, 0x6f, 1); /* every feature, 256 entries */
    for (unsigned i = 0; i < 3; i++)
        chain(&s, OP_TX, 2, 0x1000 * i, 60, 0);
    put(&s, OP_DRAIN, 1);
    put(&s, OP_REAP, 1);
    write_seed(dir, "tx", &s, &(struct virtio_net_stats){.tx_packets = 3});

    /* Receive with mergeable buffers: many small ones, then packets of several sizes. */
    s = (struct seed){.len = 0};
    put(&s, 0x6f, 1);
    for (unsigned i = 0; i < 16; i++)
        chain(&s, OP_RX, 1, 0x8000 + 0x800 * i, 0x600, 0);
    put(&s, OP_SEND, 1);
    put(&s, 40, 2);
    put(&s, OP_SEND, 1);
    put(&s, 3000, 2);
    put(&s, OP_REAP, 1);
    write_seed(dir, "rx-mrg", &s, &(struct virtio_net_stats){.rx_packets = 2});

    /* Without mergeable buffers: an oversized packet (dropped), one that fits, one that waits
     * for the next buffer. */
    s = (struct seed){.len = 0};
    put(&s, 0x66, 1); /* GUEST_CSUM and EVENT_IDX, no MRG_RXBUF */
    chain(&s, OP_RX, 1, 0x10000, 0x800, 0);
    put(&s, OP_SEND, 1);
    put(&s, 1500, 2);
    put(&s, OP_SEND, 1);
    put(&s, 100, 2);
    put(&s, OP_SEND, 1);
    put(&s, 100, 2);
    put(&s, OP_REAP, 1);
    chain(&s, OP_RX, 1, 0x20000, 0x800, 0);
    put(&s, OP_REAP, 1);
    write_seed(dir, "rx-single", &s, &(struct virtio_net_stats){.rx_packets = 2, .rx_dropped = 1});

    /* Malformed: a writable transmit segment, a readable receive buffer, a wild address, a
     * reset and traffic again. */
    s = (struct seed){.len = 0};
    put(&s, 0x6d, 1);
    chain(&s, OP_TX, 2, 0x3000, 100, 1);
    put(&s, OP_RESET, 1);
    put(&s, 0x6d, 1);
    chain(&s, OP_RX, 1, 0x4000, 100, 1);
    put(&s, OP_SEND, 1);
    put(&s, 30, 2);
    put(&s, OP_RESET, 1);
    put(&s, 0x6f, 1);
    chain(&s, OP_TX, 1, 0xfff0, 0xffff, 2);
    put(&s, OP_RESET, 1);
    put(&s, 0x31, 1);
    put(&s, OP_POKE, 1);
    put(&s, 0x5000, 2);
    put(&s, 12, 1);
    put(&s, 0x0101, 2);
    for (unsigned i = 0; i < 10; i++)
        put(&s, 0x40 + i, 1);
    chain(&s, OP_TX, 1, 0x5000, 80, 0);
    put(&s, OP_KICK | 8, 1);
    put(&s, OP_REAP, 1);
    write_seed(dir, "malformed-reset", &s, &(struct virtio_net_stats){.tx_packets = 1});
    return 0;
}
#endif
