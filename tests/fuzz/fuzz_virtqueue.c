/* SPDX-License-Identifier: MIT */
/* Fuzz target: split virtqueues over guest RAM made of the input bytes; also its seed writer. */

/*
 * Input layout (little-endian):
 *   [0]      queue size: 1 << (byte % 11), so 1..1024
 *   [1]      bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 keep ring addresses as given (else
 *            they are rounded down to their alignment, so most inputs get a working queue)
 *   [2..3]   the device's starting last_avail and used_idx (exercises the 16-bit wrap)
 *   [4..9]   descriptor table, avail ring and used ring offsets into RAM
 *   [10..15] reserved
 *   [16..]   guest RAM at RAM_GPA (page zero is a hole), an exact-size heap copy so that a
 *            sanitizer sees any stray access; a second, 4 KiB region sits at 4 GiB.
 * The target pops until the ring is empty or the queue breaks, reads every readable segment and
 * fills every writable one (which may overwrite the rings themselves, as a hostile driver
 * arranges), pushes every popped chain back, and checks the contract's invariants.
 *
 * Built with -DFUZZ_VQ_GEN_CORPUS this file is instead `fuzz_gen_corpus_virtqueue OUTDIR`,
 * which writes well-formed and broken seeds and runs each through the target to confirm it
 * does what its name says.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/virtqueue.h"
#include "lib/le.h"

#define HDR_SIZE 16u
#define RAM_GPA 0x1000ull
#define HI_GPA 0x100000000ull
#define HI_SIZE 0x1000ull

struct fuzz_result {
    int setup_rc;
    unsigned pops;
    bool broken;
};

/* A failed invariant is a bug: stop like a sanitizer would, so the driver keeps the input. */
static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_virtqueue: invariant broken: %s\n", what);
        abort();
    }
}

static bool inside(const struct iovec *v, const uint8_t *base, size_t size)
{
    const uint8_t *p = v->iov_base;
    return p >= base && (size_t)(p - base) <= size && v->iov_len <= size - (size_t)(p - base);
}

/* Pop everything, touch every segment, push it all back; q was set up on RAM ram[0, ram_size). */
static void exercise(struct virtq *q, uint8_t *ram, size_t ram_size, uint8_t *hi,
                     struct fuzz_result *res)
{
    static struct virtq_req req;
    static uint16_t heads[4 * VIRTQ_MAX_SIZE];
    const unsigned limit = q->size < VIRTQ_MAX_CHAIN ? q->size : VIRTQ_MAX_CHAIN;
    const uint16_t start = q->used_idx;
    volatile uint8_t sink = 0;
    unsigned n = 0;
    int rc = 0;

    (void)virtq_notifications(q, false);
    while (n < sizeof(heads) / sizeof(heads[0]) && (rc = virtq_pop(q, &req)) == 1) {
        require(req.head < q->size, "head in range");
        require(req.n_out + req.n_in >= 1 && req.n_out + req.n_in <= limit, "chain length");
        uint64_t out = 0, in = 0;
        for (unsigned i = 0; i < req.n_out + req.n_in; i++) {
            const struct iovec *v = &req.iov[i];
            require(inside(v, ram, ram_size) || inside(v, hi, HI_SIZE), "segment in guest RAM");
            if (i < req.n_out) {
                out += v->iov_len;
                for (size_t j = 0; j < v->iov_len; j++)
                    sink ^= ((const uint8_t *)v->iov_base)[j];
            } else {
                /* May land on the rings themselves: the next pop must cope. */
                in += v->iov_len;
                memset(v->iov_base, 0xa5, v->iov_len);
            }
        }
        require(out == req.out_len && in == req.in_len, "lengths add up");
        heads[n++] = req.head;
    }
    (void)sink;
    res->pops = n;
    res->broken = q->broken;
    if (q->broken) {
        require(rc == -EIO && q->error != NULL, "a broken queue says why");
        require(virtq_pop(q, &req) == -EIO && !virtq_has_work(q), "broken stays broken");
        require(!virtq_should_notify(q) && !virtq_notifications(q, true), "broken is quiet");
    }

    for (unsigned i = 0; i < n; i++) {
        rc = virtq_push(q, heads[i], 64);
        require(q->broken ? rc == -EIO : rc == 0, "push");
        if (rc == 0 && (i & 7) == 7)
            (void)virtq_should_notify(q);
    }
    if (!q->broken && n) {
        const uint8_t *u = guest_mem_ptr(q->mem, q->used_gpa, 4);
        require(u && le_get16(u + 2) == (uint16_t)(start + n), "used->idx published");
        (void)virtq_should_notify(q);
        (void)virtq_notifications(q, true);
        require(virtq_push(q, q->size, 0) == -EIO && q->broken, "push of a bad head breaks");
    }
}

static void run(const uint8_t *data, size_t size, struct fuzz_result *res)
{
    memset(res, 0, sizeof(*res));
    if (size <= HDR_SIZE)
        return;
    const uint16_t qsize = (uint16_t)(1u << (data[0] % 11));
    const bool event_idx = data[1] & 1, indirect = data[1] & 2, raw = data[1] & 4;
    uint64_t desc = RAM_GPA + le_get16(data + 4), avail = RAM_GPA + le_get16(data + 6),
             used = RAM_GPA + le_get16(data + 8);
    if (!raw) {
        desc &= ~15ull;
        avail &= ~1ull;
        used &= ~3ull;
    }

    const size_t ram_size = size - HDR_SIZE;
    uint8_t *ram = malloc(ram_size);
    uint8_t *hi = calloc(1, HI_SIZE);
    if (!ram || !hi)
        abort();
    memcpy(ram, data + HDR_SIZE, ram_size);
    struct guest_mem mem = {0};
    if (guest_mem_add(&mem, RAM_GPA, ram, ram_size) || guest_mem_add(&mem, HI_GPA, hi, HI_SIZE))
        abort();

    struct virtq q;
    virtq_init(&q, &mem);
    res->setup_rc = virtq_setup(&q, qsize, desc, avail, used, event_idx, indirect);
    if (res->setup_rc == 0) {
        q.last_avail = q.used_idx = le_get16(data + 2);
        exercise(&q, ram, ram_size, hi, res);
    } else {
        struct virtq_req *r = malloc(sizeof(*r));
        if (!r)
            abort();
        require(res->setup_rc == -EINVAL && !q.ready, "failed setup leaves the queue not ready");
        require(virtq_pop(&q, r) == 0 && !virtq_has_work(&q), "a not-ready queue is idle");
        free(r);
    }
    free(ram);
    free(hi);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_result res;
    run(data, size, &res);
    return 0;
}

#ifdef FUZZ_VQ_GEN_CORPUS
#include <sys/stat.h>
#include <sys/time.h>

/* A seed under construction: header plus RAM, rings at fixed offsets chosen per seed. */
struct seed {
    uint8_t buf[0x5000];
    size_t len;
    uint16_t size;
    uint16_t desc, avail, used; /* RAM offsets */
    uint16_t avail_idx;
};

static void put(struct seed *s, size_t off, uint64_t v, unsigned bytes)
{
    off += HDR_SIZE;
    if (off + bytes > sizeof(s->buf))
        abort();
    le_put(s->buf + off, bytes, v);
    if (off + bytes > s->len)
        s->len = off + bytes;
}

static void seed_init(struct seed *s, unsigned log2, uint8_t flags, uint16_t start, size_t ram)
{
    memset(s, 0, sizeof(*s));
    s->size = (uint16_t)(1u << log2);
    s->desc = 0;
    s->avail = (uint16_t)(16u * s->size);
    s->used = (uint16_t)((s->avail + 6u + 2u * s->size + 3u) & ~3u);
    s->avail_idx = start;
    s->buf[0] = (uint8_t)log2;
    s->buf[1] = flags;
    le_put16(s->buf + 2, start);
    le_put16(s->buf + 4, s->desc);
    le_put16(s->buf + 6, s->avail);
    le_put16(s->buf + 8, s->used);
    s->len = HDR_SIZE;
    put(s, ram - 1, 0, 1); /* RAM size */
    put(s, s->used + 2, start, 2);
}

/* Descriptor i of the table at RAM offset table; addr is a RAM offset unless far. */
static void seed_desc(struct seed *s, size_t table, unsigned i, uint64_t addr, uint32_t len,
                      uint16_t flags, uint16_t next)
{
    put(s, table + 16 * i, addr < HI_GPA ? RAM_GPA + addr : addr, 8);
    put(s, table + 16 * i + 8, len, 4);
    put(s, table + 16 * i + 12, flags, 2);
    put(s, table + 16 * i + 14, next, 2);
}

static void seed_offer(struct seed *s, uint16_t head)
{
    put(s, s->avail + 4 + 2u * (s->avail_idx % s->size), head, 2);
    s->avail_idx++;
    put(s, s->avail + 2, s->avail_idx, 2);
}

static const char *outdir;

static int write_seed(const struct seed *s, const char *name, unsigned pops, bool broken)
{
    struct fuzz_result res;
    char path[4096];

    run(s->buf, s->len, &res);
    if (res.setup_rc != 0 || res.pops != pops || res.broken != broken) {
        fprintf(stderr, "fuzz_gen_corpus_virtqueue: seed %s: setup %d, %u pops, broken %d\n", name,
                res.setup_rc, res.pops, res.broken);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/%s.bin", outdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s->buf, 1, s->len, f) != s->len || fclose(f) != 0) {
        fprintf(stderr, "fuzz_gen_corpus_virtqueue: %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct seed s;
    const uint16_t N = VIRTQ_DESC_F_NEXT, W = VIRTQ_DESC_F_WRITE, I = VIRTQ_DESC_F_INDIRECT;
    int bad = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_gen_corpus_virtqueue OUTDIR\n");
        return 2;
    }
    outdir = argv[1];
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "fuzz_gen_corpus_virtqueue: %s: %s\n", outdir, strerror(errno));
        return 1;
    }

    /* Size 4, plain: a request (readable header, writable status) and a single buffer. */
    seed_init(&s, 2, 0, 0, 0x400);
    seed_desc(&s, s.desc, 0, 0x200, 16, N, 1);
    seed_desc(&s, s.desc, 1, 0x210, 1, W, 0);
    seed_desc(&s, s.desc, 2, HI_GPA + 0x10, 32, W, 0);
    seed_offer(&s, 0);
    seed_offer(&s, 2);
    bad |= write_seed(&s, "plain", 2, false);

    /* Size 8 with both features: direct, indirect, and direct followed by indirect. */
    seed_init(&s, 3, 3, 0, 0x600);
    seed_desc(&s, s.desc, 0, 0x300, 64, 0, 0);
    seed_desc(&s, s.desc, 1, 0x400, 48, I, 0);
    seed_desc(&s, 0x400, 0, 0x500, 8, N, 1);
    seed_desc(&s, 0x400, 1, 0x508, 8, N | W, 2);
    seed_desc(&s, 0x400, 2, 0x510, 8, W, 0);
    seed_desc(&s, s.desc, 2, 0x520, 4, N, 3);
    seed_desc(&s, s.desc, 3, 0x440, 16, I, 0);
    seed_desc(&s, 0x440, 0, HI_GPA, 100, W, 0);
    seed_offer(&s, 0);
    seed_offer(&s, 1);
    seed_offer(&s, 2);
    put(&s, s.avail + 4 + 2u * s.size, 1, 2); /* used_event */
    bad |= write_seed(&s, "features", 3, false);

    /* Size 16 starting just before the 16-bit wrap, event_idx on. */
    seed_init(&s, 4, 1, 0xfffd, 0x800);
    for (unsigned i = 0; i < 6; i++) {
        seed_desc(&s, s.desc, i, 0x600 + 16 * i, 16, i % 2 ? W : 0, 0);
        seed_offer(&s, (uint16_t)i);
    }
    bad |= write_seed(&s, "wrap", 6, false);

    /* Size 1. */
    seed_init(&s, 0, 0, 7, 0x100);
    seed_desc(&s, s.desc, 0, 0x80, 0x80, W, 0);
    seed_offer(&s, 0);
    bad |= write_seed(&s, "size1", 1, false);

    /* Size 256, one indirect chain at the cap and one direct chain of 8. */
    seed_init(&s, 8, 2, 0, 0x3900);
    seed_desc(&s, s.desc, 0, 0x2000, 16 * 256, I, 0);
    for (unsigned i = 0; i < 256; i++)
        seed_desc(&s, 0x2000, i, 0x3000 + 8 * i, 8, i < 255 ? N : 0, (uint16_t)(i + 1));
    for (unsigned i = 1; i <= 8; i++)
        seed_desc(&s, s.desc, i, 0x3800 + 8 * i, 8, (uint16_t)((i < 8 ? N : 0) | W),
                  (uint16_t)(i + 1));
    seed_offer(&s, 0);
    seed_offer(&s, 1);
    bad |= write_seed(&s, "long", 2, false);

    /* Broken: a loop, after one good chain. */
    seed_init(&s, 3, 0, 0, 0x300);
    seed_desc(&s, s.desc, 0, 0x200, 8, 0, 0);
    seed_desc(&s, s.desc, 1, 0x200, 8, N, 2);
    seed_desc(&s, s.desc, 2, 0x208, 8, N, 1);
    seed_offer(&s, 0);
    seed_offer(&s, 1);
    bad |= write_seed(&s, "loop", 1, true);

    /* Rewriting files does not change the directory's time; touch it for the build tool. */
    if (!bad && utimes(outdir, NULL) != 0) {
        fprintf(stderr, "fuzz_gen_corpus_virtqueue: %s: %s\n", outdir, strerror(errno));
        bad = 1;
    }
    return bad ? 1 : 0;
}
#endif
