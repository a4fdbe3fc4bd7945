/* SPDX-License-Identifier: MIT */
/* Fuzz target: virtio-vsock with the guest's transmit packets (headers, lengths, ops, ports,
 * segmentation) and the host's Unix socket traffic taken from the input; also its seed writer. */

/*
 * The input is a script of steps, each an opcode byte (modulo STEP_COUNT) and its operands;
 * a short tail reads as zeros. At most MAX_STEPS steps run.
 *   TX     op, ports, len16, bits, credit: a packet from the guest's CID to the host. op is
 *          taken modulo 8 (0 is no op); ports picks src (bits 0-2) and dst (3-5) from a table of
 *          ports, bit 6 spoofs the source CID, bit 7 makes it a non-stream type. len bytes of
 *          payload (modulo 64 KiB + 1); bits 0-1 SHUTDOWN flags, bit 2 a header len larger than
 *          the payload, bits 3-6 payload descriptors. credit * 1 KiB is buf_alloc; fwd_cnt is
 *          what the guest received on that port pair so far.
 *   RAW    len8, bytes: one readable descriptor of raw bytes (short or garbage headers).
 *   CONNECT b: a host connection to uds writing "CONNECT <port>\n" (port from the table), or
 *          for b >= 0xf0 a raw line of b & 15 input bytes.
 *   WRITE  slot, n: the host writes n * 64 bytes (not blocking) on its connection slot.
 *   READ / CLOSE / SHUT slot: the host reads all it can / closes / shuts its send side.
 *   ACCEPT: the host accepts a guest-initiated connection at "<uds>_5000".
 *   DRAIN: the guest takes every packet the device sent and posts the buffers again.
 *   RXLEN b: the receive buffers posted from now on are b * 17 bytes (b = 0: full size).
 *   WAIT: the device runs until it is idle (on its thread: 1 ms).
 * Invariants: every packet the device sends is well formed (its CIDs, type, len matching the
 * used length, an op it may send); the device never asks for a reset (vdriver's rings are
 * valid, so nothing the packets say may break it); every transmit chain comes back (no hang,
 * once the guest drains its receive queue); and after the device is destroyed no descriptor
 * is left open. Most inputs run the device inline (fuzz_inline.h): it takes whatever is ready
 * after every step and while the guest waits, on the target's thread; one input in
 * FUZZ_THREADED_EVERY (by length) runs the device's real I/O thread.
 *
 * Built with -DFUZZ_VSOCK_GEN_CORPUS this file is instead `fuzz_gen_corpus_vsock OUTDIR`.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum step {
    STEP_TX,
    STEP_RAW,
    STEP_CONNECT,
    STEP_WRITE,
    STEP_READ,
    STEP_CLOSE,
    STEP_SHUT,
    STEP_ACCEPT,
    STEP_DRAIN,
    STEP_RXLEN,
    STEP_WAIT,
    STEP_COUNT,
};

#define MAX_STEPS 64u
#define CID 3u

#ifndef FUZZ_VSOCK_GEN_CORPUS

#include "../unit/virtio/vsock_guest.h"
#include "fuzz_inline.h"

#define SLOTS 8u
#define PAIRS 16u

static const uint32_t ports[8] = {
    1234, 5000, 40000, 40001, 1u << 30, (1u << 30) + 1, 7, 0xffffffffu,
};

struct cursor {
    const uint8_t *p;
    size_t n;
};

static uint8_t get8(struct cursor *c)
{
    if (!c->n)
        return 0;
    c->n--;
    return *c->p++;
}

static uint16_t get16(struct cursor *c)
{
    uint16_t lo = get8(c);
    return (uint16_t)(lo | get8(c) << 8);
}

static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_vsock: invariant broken: %s\n", what);
        abort();
    }
}

struct run {
    struct vsock_guest g;
    char uds[96], listener_path[112];
    int listener;
    int host[SLOTS];
    struct {
        uint32_t hport, gport, received;
    } pair[PAIRS];
    unsigned npairs;
};

static uint32_t *received(struct run *r, uint32_t hport, uint32_t gport)
{
    for (unsigned i = 0; i < r->npairs; i++)
        if (r->pair[i].hport == hport && r->pair[i].gport == gport)
            return &r->pair[i].received;
    unsigned i = r->npairs < PAIRS ? r->npairs++ : (hport ^ gport) % PAIRS;
    r->pair[i].hport = hport;
    r->pair[i].gport = gport;
    r->pair[i].received = 0;
    return &r->pair[i].received;
}

/* Take every packet sent so far (bounded: the device refills as fast as we post). */
static void drain(struct run *r)
{
    static uint8_t payload[VG_RX_BUF];
    if (ioloop_inline())
        fuzz_run_inline(); /* what its thread would have sent by now */
    for (unsigned i = 0; i < 4 * VG_QSIZE; i++) {
        struct vsock_hdr h;
        int n = vg_recv(&r->g, &h, payload, sizeof(payload), 0);
        if (n == -ETIMEDOUT)
            return;
        if (n == -EPROTO)
            continue; /* a buffer too small for a header comes back empty */
        require(n >= 0, "receive");
        require(h.src_cid == VSOCK_HOST_CID && h.dst_cid == CID, "CIDs of a packet to the guest");
        require(h.len == (uint32_t)n, "len matches the used length");
        require(h.op >= VSOCK_OP_REQUEST && h.op <= VSOCK_OP_CREDIT_UPDATE, "op");
        require(h.type == VSOCK_TYPE_STREAM || h.op == VSOCK_OP_RST, "stream type");
        require(h.op == VSOCK_OP_RW || n == 0, "payload only in RW");
        if (h.op == VSOCK_OP_RW)
            *received(r, h.src_port, h.dst_port) += (uint32_t)n;
    }
}

/* The chain sent last must come back; a guest that keeps its receive queue drained (with
 * buffers big enough for the RSTs it is owed) is never kept waiting for long. */
static void wait_tx(struct run *r)
{
    /* Inline, nothing else runs the device: once it is idle, waiting longer cannot help. */
    const bool inl = ioloop_inline();
    for (unsigned i = 0; i < 3000; i++) {
        if (inl)
            fuzz_run_inline();
        if (vg_wait_tx(&r->g, inl ? 0 : 1) == 0)
            return;
        if (i == 100)
            r->g.rx_len = VG_RX_BUF;
        drain(r);
    }
    require(0, "transmit chain returned (hang)");
}

static void step_tx(struct run *r, struct cursor *c)
{
    /* Payloads are windows of one pattern made once: with coverage on every comparison, a
     * byte loop over up to 64 KiB per packet was a fifth of an input's time. */
    static uint8_t pattern[VG_TX_MAX + 256];
    if (!pattern[1])
        for (uint32_t i = 0; i < sizeof(pattern); i++)
            pattern[i] = (uint8_t)(i * 7 + (i >> 9) + 1);
    uint8_t op = get8(c) % 8, sel = get8(c);
    uint32_t len = get16(c) % (VG_TX_MAX + 1);
    uint8_t bits = get8(c), credit = get8(c);
    struct vsock_hdr h = vg_hdr(&r->g, ports[sel & 7], ports[(sel >> 3) & 7], op);
    if (sel & 0x40)
        h.src_cid = CID + 1;
    if (sel & 0x80)
        h.type = 2;
    h.flags = bits & 3;
    h.len = (bits & 4) ? len + 1 + bits : len;
    h.buf_alloc = (uint32_t)credit * 1024;
    h.fwd_cnt = *received(r, h.dst_port, h.src_port);
    (void)vg_send(&r->g, &h, pattern + bits, len, 1 + ((bits >> 3) & 15), 0);
    wait_tx(r);
}

static void step_raw(struct run *r, struct cursor *c)
{
    uint8_t bytes[255];
    uint8_t len = get8(c);
    for (unsigned i = 0; i < len; i++)
        bytes[i] = get8(c);
    (void)vg_send_raw(&r->g, bytes, len, 0);
    wait_tx(r);
}

static int unix_socket(const char *path, bool do_listen)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || strlen(path) >= sizeof(a.sun_path))
        abort();
    memcpy(a.sun_path, path, strlen(path));
    int rc = do_listen ? bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 16)
                       : connect(fd, (struct sockaddr *)&a, sizeof(a));
    if (rc != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static unsigned free_slot(struct run *r)
{
    for (unsigned i = 0; i < SLOTS; i++)
        if (r->host[i] < 0)
            return i;
    close(r->host[0]);
    r->host[0] = -1;
    return 0;
}

static void step_connect(struct run *r, struct cursor *c)
{
    char line[32];
    size_t n;
    uint8_t b = get8(c);
    if (b >= 0xf0) {
        n = b & 15;
        for (size_t i = 0; i < n; i++)
            line[i] = (char)get8(c);
    } else {
        n = (size_t)snprintf(line, sizeof(line), "CONNECT %u\n", ports[b & 7]);
    }
    int fd = unix_socket(r->uds, false);
    if (fd < 0)
        return; /* backlog full: the device is not accepting fast enough, fine */
    (void)!write(fd, line, n);
    r->host[free_slot(r)] = fd;
}

static void step_host(struct run *r, enum step s, struct cursor *c)
{
    static uint8_t buf[16384];
    int *fd = &r->host[get8(c) % SLOTS];
    uint8_t n = s == STEP_WRITE ? get8(c) : 0;
    if (*fd < 0)
        return;
    switch (s) {
    case STEP_WRITE:
        memset(buf, 'h', (size_t)n * 64);
        (void)!send(*fd, buf, (size_t)n * 64, MSG_NOSIGNAL | MSG_DONTWAIT);
        break;
    case STEP_READ:
        while (read(*fd, buf, sizeof(buf)) > 0)
            ;
        break;
    case STEP_CLOSE:
        close(*fd);
        *fd = -1;
        break;
    default:
        (void)shutdown(*fd, SHUT_WR);
        break;
    }
}

static size_t count_fds(void)
{
    size_t n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static char dir[64];

static void remove_tmpdir(void)
{
    rmdir(dir); /* every run removes its sockets, so it is empty */
}

/* One directory per process for the sockets, removed at exit: on tmpfs where there is one,
 * since binding and removing two sockets per input on a disk file system was a fifth of an
 * input's time. */
static const char *tmpdir(void)
{
    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "%s/revirt-fuzz-vsock-XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(dir))
            abort();
        atexit(remove_tmpdir);
    }
    return dir;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run r;
    struct cursor c = {data, size};
    const char *tmp = tmpdir();
    fuzz_set_inline(!fuzz_threaded(size)); /* first: it may open the inline loops' epoll fd */
    size_t fds_before = count_fds();

    /* All but the guest, whose RAM is kept from one input to the next (vg_reinit zeroes it). */
    static bool have_ram;
    _Static_assert(offsetof(struct run, g) == 0, "the guest comes first in struct run");
    memset((char *)&r + sizeof(r.g), 0, sizeof(r) - sizeof(r.g));
    snprintf(r.uds, sizeof(r.uds), "%s/v.sock", tmp);
    snprintf(r.listener_path, sizeof(r.listener_path), "%s_5000", r.uds);
    for (unsigned i = 0; i < SLOTS; i++)
        r.host[i] = -1;
    char err[256];
    if ((have_ram ? vg_reinit : vg_init)(&r.g, r.uds, CID, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_vsock: %s\n", err);
        abort();
    }
    unlink(r.listener_path);
    r.listener = unix_socket(r.listener_path, true);
    require(r.listener >= 0, "listener");

    for (unsigned i = 0; i < MAX_STEPS && c.n; i++) {
        enum step s = (enum step)(get8(&c) % STEP_COUNT);
        switch (s) {
        case STEP_TX:
            step_tx(&r, &c);
            break;
        case STEP_RAW:
            step_raw(&r, &c);
            break;
        case STEP_CONNECT:
            step_connect(&r, &c);
            break;
        case STEP_ACCEPT: {
            int fd = accept4(r.listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd >= 0)
                r.host[free_slot(&r)] = fd;
            break;
        }
        case STEP_DRAIN:
            drain(&r);
            break;
        case STEP_RXLEN: {
            uint8_t b = get8(&c);
            r.g.rx_len = b && b * 17u < VG_RX_BUF ? b * 17u : VG_RX_BUF;
            break;
        }
        case STEP_WAIT:
            if (ioloop_inline())
                fuzz_run_inline();
            else
                usleep(1000);
            break;
        default:
            step_host(&r, s, &c);
            break;
        }
        /* Inline, the device takes one look at what is ready, as its thread would between
         * two steps. */
        (void)ioloop_poll_inline(0);
    }
    drain(&r);
    require(!(vdriver_status(&r.g.drv) & VIRTIO_STATUS_NEEDS_RESET), "no reset asked for");
    /* Destroyed with host connections still open: the stop path closes its ends. */
    vg_release(&r.g);
    have_ram = true;
    for (unsigned i = 0; i < SLOTS; i++)
        if (r.host[i] >= 0)
            close(r.host[i]);
    close(r.listener);
    unlink(r.listener_path);
    require(count_fds() == fds_before, "no descriptor leaked");
    return 0;
}

#else /* FUZZ_VSOCK_GEN_CORPUS: write the seeds */

/* Operand builders for the seeds, mirroring the parser above. */
struct seed {
    uint8_t b[512];
    size_t n;
};

static void put(struct seed *s, unsigned count, ...)
{
    va_list ap;
    va_start(ap, count);
    for (unsigned i = 0; i < count; i++)
        s->b[s->n++] = (uint8_t)va_arg(ap, int);
    va_end(ap);
}

/* Port table indices, as in ports[]. */
enum { P1234, P5000, P40000, P40001, PH0, PH1, P7, PMAX };

#define SEL(src, dst) ((src) | (dst) << 3)

static void tx(struct seed *s, unsigned op, unsigned sel, unsigned len, unsigned bits)
{
    put(s, 7, STEP_TX, op, sel, len & 0xff, len >> 8, bits, 64);
}

static void step(struct seed *s, unsigned st)
{
    put(s, 1, st);
}

static void save(const char *dir, const char *name, const struct seed *s)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s->b, 1, s->n, f) != s->n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        perror(dir);
        return 1;
    }
    struct seed s = {0};

    /* Host-initiated: CONNECT, the guest answers, data both ways, shutdown, RST. */
    put(&s, 2, STEP_CONNECT, P1234);
    step(&s, STEP_WAIT);
    step(&s, STEP_DRAIN);
    tx(&s, 2, SEL(P1234, PH0), 0, 0);
    put(&s, 3, STEP_WRITE, 0, 4);
    step(&s, STEP_WAIT);
    step(&s, STEP_DRAIN);
    tx(&s, 5, SEL(P1234, PH0), 300, 3 << 3);
    put(&s, 2, STEP_READ, 0);
    tx(&s, 7, SEL(P1234, PH0), 0, 0);
    step(&s, STEP_DRAIN);
    tx(&s, 4, SEL(P1234, PH0), 0, 3);
    step(&s, STEP_WAIT);
    step(&s, STEP_DRAIN);
    tx(&s, 3, SEL(P1234, PH0), 0, 0);
    save(dir, "host-initiated", &s);

    /* Guest-initiated to port 5000, the host half-closes, then everything closes. */
    s.n = 0;
    tx(&s, 1, SEL(P40000, P5000), 0, 0);
    step(&s, STEP_ACCEPT);
    step(&s, STEP_DRAIN);
    put(&s, 3, STEP_WRITE, 0, 2);
    step(&s, STEP_WAIT);
    step(&s, STEP_DRAIN);
    tx(&s, 5, SEL(P40000, P5000), 1000, 0);
    put(&s, 2, STEP_SHUT, 0);
    step(&s, STEP_WAIT);
    step(&s, STEP_DRAIN);
    tx(&s, 4, SEL(P40000, P5000), 0, 2);
    put(&s, 2, STEP_CLOSE, 0);
    step(&s, STEP_WAIT);
    step(&s, STEP_DRAIN);
    save(dir, "guest-initiated", &s);

    /* Hostile packets: unknown connections, other types, spoofed CIDs, lying lengths. */
    s.n = 0;
    tx(&s, 5, SEL(P40001, P7), 10, 0);
    tx(&s, 2, SEL(P40001, P7), 0, 0);
    tx(&s, 1, SEL(P40001, P7) | 0x80, 0, 0);
    tx(&s, 1, SEL(P40001, P5000) | 0x40, 0, 0);
    tx(&s, 5, SEL(P40001, P7), 10, 4);
    tx(&s, 0, SEL(P40001, P7), 0, 0);
    put(&s, 6, STEP_RAW, 4, 1, 2, 3, 4);
    step(&s, STEP_DRAIN);
    save(dir, "hostile", &s);

    /* Small receive buffers, and a guest overrunning its credit. */
    s.n = 0;
    put(&s, 2, STEP_RXLEN, 3);
    put(&s, 2, STEP_CONNECT, P40001);
    step(&s, STEP_WAIT);
    step(&s, STEP_DRAIN);
    tx(&s, 2, SEL(P40001, PH0), 0, 0);
    put(&s, 3, STEP_WRITE, 0, 200);
    step(&s, STEP_WAIT);
    step(&s, STEP_DRAIN);
    for (int i = 0; i < 6; i++)
        tx(&s, 5, SEL(P40001, PH0), 0xffff, 0);
    step(&s, STEP_DRAIN);
    save(dir, "overrun", &s);

    /* Bad CONNECT lines, and the host leaving before the guest answers. */
    s.n = 0;
    put(&s, 6, STEP_CONNECT, 0xf4, 'C', 'O', 'N', '\n');
    put(&s, 2, STEP_CONNECT, PMAX);
    step(&s, STEP_WAIT);
    put(&s, 2, STEP_CLOSE, 1);
    step(&s, STEP_WAIT);
    step(&s, STEP_DRAIN);
    save(dir, "connect-lines", &s);
    return 0;
}

#endif
