/* SPDX-License-Identifier: MIT */
/* Fuzz target: virtio-blk driven by vdriver with requests whose types, sectors, lengths and
 * segmentation come from the input; also its seed writer. */

/*
 * Input layout:
 *   [0]  bit 0 the worker-thread back end (else io_uring), bits 1-2 the queue size (256, 64,
 *        16, 8), bit 3 leave FLUSH out (a write-through disk), bit 4 leave EVENT_IDX out
 *   then requests of 8 bytes each (a short tail is ignored):
 *   [0]  bits 0-3 type: IN OUT FLUSH GET_ID DISCARD WRITE_ZEROES IN OUT, then 8-15 raw types
 *        (the value itself, 8 being GET_ID); bit 4 end of batch: wait for every answer before
 *        the next request; bit 5 with bit 6 of [5]: no status byte (the device must ask for a
 *        reset); bit 6 the status byte shares the last data descriptor
 *   [1]  sector: below 0xf0 taken modulo capacity + 8, else one of a few wrapping values
 *   [2]  readable payload after the header, [3] writable data before the status: low 6 bits
 *        a count, bits 6-7 the unit (512 bytes, 16-byte discard segments, bytes, 512 + 1)
 *   [4]  bits 0-1 extra cuts in the readable part, bits 4-5 in the writable part
 *   [5]  bit 7: a header of only (byte & 15) bytes; bit 6: see [0] bit 5; bit 4: the data
 *        areas start on a page, as a guest's usually do, so the device can use O_DIRECT
 *   [6..7] a seed for cut positions and payload bytes
 * Requests in one batch run concurrently. Invariants: every request is answered with a valid
 * status and used length, unless the device asked for a reset (then the input ends); a lone
 * well-formed read or write in range succeeds and its data matches the image file, others get
 * the status the contract names; no write-back error is left on the image (direct and cached
 * I/O collided); nothing hangs or leaks. Each input starts on a zeroed image and guest RAM.
 * The device runs inline on the target's thread, or for one input in FUZZ_THREADED_EVERY (by
 * its length) on its real I/O thread and workers: see fuzz_inline.h.
 *
 * Built with -DFUZZ_BLK_GEN_CORPUS this file is instead `fuzz_gen_corpus_blk OUTDIR`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../unit/virtio/vdriver.h"
#include "fuzz_inline.h"
#include "virtio/blk.h"
#include "lib/le.h"

#define FUZZ_RAM (4ull << 20)
#define CAPACITY 128u /* sectors: a 64 KiB image */
#define MAX_BATCH 16u
#define MAX_REQUESTS 64u
#define REQ_BYTES 8u
#define MAX_CUTS 3u

#ifndef FUZZ_BLK_GEN_CORPUS

static const uint32_t type_table[8] = {
    VIRTIO_BLK_T_IN,      VIRTIO_BLK_T_OUT,          VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
    VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_T_IN,    VIRTIO_BLK_T_OUT,
};

/* A failed invariant is a bug: stop like a sanitizer would, so the driver keeps the input. */
static void require(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_blk: invariant broken: %s\n", what);
        abort();
    }
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static uint64_t length(uint8_t sel)
{
    uint64_t n = sel & 63u;
    switch (sel >> 6) {
    case 0:
        return n * 512;
    case 1:
        return n * 16;
    case 2:
        return n;
    default:
        return n * 512 + 1;
    }
}

#define PATTERN_SLACK 4096u /* window starts */

/* 32 KiB (the longest payload) plus the slack, of xorshift output, made once. */
static const uint8_t *payload_pattern(void)
{
    static uint8_t pattern[64 * 512 + PATTERN_SLACK];
    static bool made;
    if (!made) {
        uint64_t seed = 0x9e3779b97f4a7c15ull;
        for (size_t i = 0; i < sizeof(pattern); i += 8) {
            uint64_t x = xorshift(&seed);
            memcpy(pattern + i, &x, 8);
        }
        made = true;
    }
    return pattern;
}

struct disk {
    struct vdriver d;
    struct virtio_blk *b;
    char path[128];
    int fd;      /* our own read-only view of the image, for checking data */
    bool direct; /* the device had its O_DIRECT descriptor when created */
};

static struct disk disks[2][2]; /* [worker-thread back end][real threads] */
static char dirs[2][64];        /* [real threads]: where the images are */

static void close_disk(struct disk *k)
{
    virtio_blk_destroy(k->b);
    k->b = NULL;
    vdriver_free(&k->d);
    close(k->fd);
}

static void teardown(void)
{
    for (unsigned i = 0; i < 4; i++) {
        struct disk *k = &disks[i / 2][i % 2];
        if (!k->b)
            continue;
        close_disk(k);
        unlink(k->path);
    }
    for (unsigned i = 0; i < 2; i++)
        if (dirs[i][0])
            rmdir(dirs[i]);
}

/* The disk for this input, as good as new: a zeroed image and guest RAM, and a new device if
 * the last input made it give up O_DIRECT. Making everything per input would cost more than
 * most inputs do (threads, an io_uring, files), so the device is kept, but every input starts
 * from the same state whatever ran before it, and a finding replays on its own. */
static struct disk *disk(unsigned threads, bool real)
{
    struct disk *k = &disks[threads][real];
    if (k->b && k->direct && !virtio_blk_test_direct(k->b))
        close_disk(k);
    if (k->b) {
        vdriver_wipe(&k->d);
        require(ftruncate(k->fd, 0) == 0 && ftruncate(k->fd, CAPACITY * 512ull) == 0,
                "zero the image");
        return k;
    }
    char *dir = dirs[real];
    if (!dir[0]) {
        /* Inline inputs on tmpfs: on a disk, O_DIRECT writes wait for the disk, which was
         * half of an input's time. tmpfs takes O_DIRECT too (Linux 6.6 on; else the device
         * stays cached), but only a disk file system reports direct and cached I/O that
         * collided as a write-back error, so the inputs on real threads keep the disk. */
        const char *tmp = getenv("TMPDIR");
        if (!real && access("/dev/shm", W_OK) == 0)
            tmp = "/dev/shm";
        snprintf(dir, sizeof(dirs[0]), "%s/revirt-fuzz-blk-XXXXXX",
                 tmp && tmp[0] && strlen(tmp) < 32 ? tmp : "/tmp");
        require(mkdtemp(dir) != NULL, "mkdtemp");
        if (!dirs[!real][0])
            atexit(teardown);
    }
    snprintf(k->path, sizeof(k->path), "%s/%s%s.img", dir, threads ? "threads" : "uring",
             real ? "-real" : "");
    int fd = open(k->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    require(fd >= 0 && ftruncate(fd, CAPACITY * 512ull) == 0, "image");
    close(fd);
    require(vdriver_init(&k->d, FUZZ_RAM) == 0, "vdriver_init");
    struct virtio_blk_config cfg = {.path = k->path,
                                    .aio = threads ? VIRTIO_BLK_AIO_THREADS : VIRTIO_BLK_AIO_AUTO};
    char err[256];
    require(virtio_blk_create(&cfg, &k->d.mem, &k->b, err, sizeof(err)) == 0, err);
    k->direct = virtio_blk_test_direct(k->b);
    /* Read-write only to zero the image between inputs; the device has the lock. */
    k->fd = open(k->path, O_RDWR | O_CLOEXEC);
    require(k->fd >= 0, "open image");
    return k;
}

/* What a request looked like, to judge its answer. */
struct sent {
    uint16_t head;
    bool answered;
    uint32_t type;
    uint64_t sector;
    unsigned hdr_len;
    uint64_t out_len, in_len; /* payload after the header; writable bytes before the status */
    uint64_t out_gpa, in_gpa; /* contiguous areas the descriptors cut up */
    uint64_t status_gpa;
};

/* Cut [gpa, gpa + len) into 1 + cuts descriptors at positions from the seed. */
static unsigned cut(struct vdriver_buf *bufs, uint64_t gpa, uint64_t len, unsigned cuts, bool write,
                    uint64_t *seed)
{
    uint64_t pos[MAX_CUTS + 2] = {0};
    unsigned n = 1;
    for (unsigned i = 0; i < cuts; i++)
        pos[n++] = len ? xorshift(seed) % (len + 1) : 0;
    pos[n] = len;
    /* Sort the cut points (at most five). */
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i + 1; j < n; j++)
            if (pos[j] < pos[i]) {
                uint64_t t = pos[i];
                pos[i] = pos[j];
                pos[j] = t;
            }
    for (unsigned i = 0; i < n; i++)
        bufs[i] = (struct vdriver_buf){gpa + pos[i], (uint32_t)(pos[i + 1] - pos[i]), write};
    return n;
}

static bool in_range(uint64_t sector, uint64_t bytes)
{
    return bytes % 512 == 0 && sector <= CAPACITY && bytes / 512 <= CAPACITY - sector;
}

static void check_answer(struct disk *k, const struct sent *s, uint32_t used, bool alone)
{
    struct vdriver *d = &k->d;
    uint8_t st = *(uint8_t *)vdriver_ptr(d, s->status_gpa);
    require(st <= VIRTIO_BLK_S_UNSUPP, "status is OK, IOERR or UNSUPP");
    require(used >= 1 && used <= s->in_len + 1, "used length within the writable bytes");
    if (s->hdr_len < 16) {
        /* The payload completes a short header into something arbitrary. */
        if (s->hdr_len + s->out_len < 16)
            require(st == VIRTIO_BLK_S_IOERR, "short header: IOERR");
        return;
    }
    switch (s->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
        uint64_t len = s->type == VIRTIO_BLK_T_IN ? s->in_len : s->out_len;
        if (!in_range(s->sector, len)) {
            require(st == VIRTIO_BLK_S_IOERR, "out of range or torn sectors: IOERR");
            return;
        }
        require(st == VIRTIO_BLK_S_OK, "read or write in range: OK");
        require(used == (s->type == VIRTIO_BLK_T_IN ? len + 1 : 1), "used length");
        if (!alone || len == 0)
            return; /* concurrent requests may overlap */
        static uint8_t file[64 * 512];
        require(pread(k->fd, file, len, (off_t)(s->sector * 512)) == (ssize_t)len, "pread");
        uint64_t gpa = s->type == VIRTIO_BLK_T_IN ? s->in_gpa : s->out_gpa;
        require(memcmp(file, vdriver_ptr(d, gpa), len) == 0, "data matches the image");
        return;
    }
    case VIRTIO_BLK_T_FLUSH:
        require(st == VIRTIO_BLK_S_OK && used == 1, "flush: OK");
        return;
    case VIRTIO_BLK_T_GET_ID:
        require(st == VIRTIO_BLK_S_OK, "GET_ID: OK");
        require(used == (s->in_len < 20 ? s->in_len : 20) + 1, "GET_ID length");
        return;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        require(used == 1, "discard / write zeroes write only the status");
        if (s->out_len == 0 || s->out_len % 16)
            require(st == VIRTIO_BLK_S_IOERR, "torn segments: IOERR");
        return;
    default:
        require(st == VIRTIO_BLK_S_UNSUPP && used == 1, "unknown type: UNSUPP");
        return;
    }
}

/* Wait for every request of the batch: each chain is well formed, so the device never asks for
 * a reset here. */
/* Whether this input had data transfers in flight together, the only way direct and cached
 * I/O can collide. */
static bool overlapped;

static void wait_batch(struct disk *k, struct sent *batch, unsigned n)
{
    struct vdriver *d = &k->d;
    unsigned left = n, data = 0;
    for (unsigned i = 0; i < n; i++)
        data += batch[i].type == VIRTIO_BLK_T_IN || batch[i].type == VIRTIO_BLK_T_OUT;
    overlapped |= data > 1;
    for (unsigned spins = 0; left; spins++) {
        uint16_t head;
        uint32_t used;
        require(!(vdriver_status(d) & VIRTIO_STATUS_NEEDS_RESET), "no reset for a good chain");
        if (vdriver_wait_used(d, 0, &head, &used, 10) != 0) {
            require(spins < 1000, "a request was never answered");
            continue;
        }
        struct sent *s = NULL;
        for (unsigned i = 0; i < n && !s; i++)
            if (batch[i].head == head && !batch[i].answered)
                s = &batch[i];
        require(s != NULL, "the used head is one we sent");
        s->answered = true;
        check_answer(k, s, used, n == 1);
        left--;
    }
    require(!(vdriver_status(d) & VIRTIO_STATUS_NEEDS_RESET), "no reset for a good chain");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const uint16_t qsizes[4] = {256, 64, 16, 8};
    const bool real = fuzz_threaded(size);
    /* Before the disk: its worker pool is made inline or not, and its loop at each attach. */
    fuzz_set_inline(!real);
    struct disk *k = disk(data[0] & 1, real);
    overlapped = false;
    struct vdriver *d = &k->d;
    uint16_t qsize = qsizes[(data[0] >> 1) & 3];
    uint64_t features = ~0ull;
    if (data[0] & 8)
        features &= ~VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);
    if (data[0] & 16)
        features &= ~VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
    d->brk = 0x1000;
    uint8_t st = vdriver_attach(d, virtio_blk_device(k->b), features, qsize);
    require((st & VIRTIO_STATUS_DRIVER_OK) && !(st & VIRTIO_STATUS_NEEDS_RESET), "attach");
    uint64_t mark = d->brk;

    struct sent batch[MAX_BATCH];
    unsigned nb = 0, descs = 0;
    size_t nreq = (size - 1) / REQ_BYTES;
    if (nreq > MAX_REQUESTS)
        nreq = MAX_REQUESTS;
    for (size_t r = 0; r < nreq; r++) {
        const uint8_t *q = data + 1 + r * REQ_BYTES;
        bool no_status = (q[0] & 32) && (q[5] & 64);
        uint64_t in_len = no_status ? 0 : length(q[3]);
        bool shared_status = (q[0] & 64) && in_len;
        unsigned n = (q[4] & 3) + 1 + ((q[4] >> 4) & 3) + 1 + (no_status || shared_status ? 0 : 1);
        if (n > qsize)
            continue; /* a driver never makes a chain longer than the queue (§2.7.5.3.1) */
        if (nb && (descs + n > qsize || nb == qsize)) {
            wait_batch(k, batch, nb);
            nb = descs = 0;
            d->brk = mark;
        }

        struct sent *s = &batch[nb];
        memset(s, 0, sizeof(*s));
        uint64_t seed = (uint64_t)(q[6] | q[7] << 8) * 0x9e3779b97f4a7c15ull + r + 1;
        s->type = (q[0] & 15) < 8 ? type_table[q[0] & 15] : (q[0] & 15u);
        static const uint64_t far[8] = {CAPACITY,   CAPACITY - 1, UINT64_MAX,     UINT64_MAX >> 9,
                                        1ull << 55, 1ull << 54,   UINT64_MAX - 1, 1ull << 32};
        s->sector = q[1] < 0xf0 ? q[1] % (CAPACITY + 8) : far[q[1] & 7];
        s->out_len = length(q[2]);
        s->in_len = in_len;
        s->hdr_len = (q[5] & 128) ? q[5] & 15 : 16;

        /* The readable area: header then payload (discard segments mostly in range). */
        uint64_t out_area;
        if (q[5] & 16) {
            /* The payload after the header starts on a page (guest RAM is page-aligned). */
            uint64_t raw = vdriver_alloc(d, s->hdr_len + s->out_len + 1 + 4096, 8);
            out_area = ((raw + s->hdr_len + 4095) & ~4095ull) - s->hdr_len;
        } else {
            out_area = vdriver_alloc(d, s->hdr_len + s->out_len + 1, 8);
        }
        uint8_t *o = vdriver_ptr(d, out_area);
        uint8_t hdr[16];
        le_put32(hdr, s->type);
        le_put32(hdr + 4, 0);
        le_put64(hdr + 8, s->sector);
        memcpy(o, hdr, s->hdr_len);
        s->out_gpa = out_area + s->hdr_len;
        o += s->hdr_len;
        /* A window of a fixed random pattern chosen by the seed: with coverage on every
         * comparison, a generator loop over up to 32 KiB per request was most of an input's
         * time under libFuzzer, and one memcpy is not instrumented. */
        memcpy(o, payload_pattern() + xorshift(&seed) % PATTERN_SLACK, s->out_len);
        if (s->type == VIRTIO_BLK_T_DISCARD || s->type == VIRTIO_BLK_T_WRITE_ZEROES) {
            for (uint64_t i = 0; i + 16 <= s->out_len; i += 16) {
                uint64_t x = xorshift(&seed);
                le_put64(o + i, (x & 0xff) % (CAPACITY + 4));
                le_put32(o + i + 8, (uint32_t)((x >> 8) % 24));
                le_put32(o + i + 12, (uint32_t)((x >> 16) % 8 == 0 ? (x >> 24) : (x >> 24) % 2));
            }
        }
        /* The writable area: data then the status byte. */
        s->in_gpa = vdriver_alloc(d, s->in_len + 1, q[5] & 16 ? 4096 : 8);
        memset(vdriver_ptr(d, s->in_gpa), 0xa5, s->in_len + 1);
        s->status_gpa = s->in_gpa + s->in_len;

        struct vdriver_buf bufs[2 * (MAX_CUTS + 1) + 1];
        unsigned got = cut(bufs, out_area, s->hdr_len + s->out_len, q[4] & 3, false, &seed);
        got += cut(bufs + got, s->in_gpa, s->in_len, (q[4] >> 4) & 3, true, &seed);
        if (shared_status)
            bufs[got - 1].len++; /* the status byte ends the last data descriptor */
        else if (!no_status)
            bufs[got++] = (struct vdriver_buf){s->status_gpa, 1, true};
        require(got == n, "descriptor count");
        s->head = vdriver_add(d, 0, bufs, n, true);
        nb++;
        descs += n;
        if (no_status) {
            /* Unanswerable: the device must ask for a reset, and the input ends there. */
            require(vdriver_wait_needs_reset(d, 2000),
                    "a request without a status byte makes the device need a reset");
            nb = 0;
            break;
        }
        if ((q[0] & 16) || nb == MAX_BATCH) {
            wait_batch(k, batch, nb);
            nb = descs = 0;
            d->brk = mark;
        }
    }
    if (nb)
        wait_batch(k, batch, nb);
    vdriver_reset(d);
    /* A direct write that raced cached I/O leaves -EIO on the file for the next fsync (see the
     * gate in blk.c): catch it in the input that caused it, not in a later input's flush. Only
     * where transfers overlapped: an fdatasync per input would halve the runs per second. */
    if (overlapped)
        require(fdatasync(k->fd) == 0, "no write-back error on the image");
    return 0;
}

#else /* FUZZ_BLK_GEN_CORPUS */

#include <sys/stat.h>

struct seed {
    uint8_t buf[1 + MAX_REQUESTS * REQ_BYTES];
    size_t len;
};

static void begin(struct seed *s, uint8_t setup)
{
    memset(s, 0, sizeof(*s));
    s->buf[0] = setup;
    s->len = 1;
}

static void add(struct seed *s, uint8_t type, uint8_t sector, uint8_t out, uint8_t in, uint8_t cuts,
                uint8_t hdr, uint16_t seed)
{
    uint8_t *q = s->buf + s->len;
    q[0] = type;
    q[1] = sector;
    q[2] = out;
    q[3] = in;
    q[4] = cuts;
    q[5] = hdr;
    q[6] = (uint8_t)seed;
    q[7] = (uint8_t)(seed >> 8);
    s->len += REQ_BYTES;
}

static int save(const char *outdir, const char *name, const struct seed *s)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", outdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(s->buf, 1, s->len, f) != s->len || fclose(f) != 0) {
        fprintf(stderr, "fuzz_gen_corpus_blk: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

#define END 16u /* end of batch */

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    if (mkdir(argv[1], 0755) != 0 && errno != EEXIST) {
        perror(argv[1]);
        return 1;
    }
    struct seed s;
    int bad = 0;
    for (uint8_t backend = 0; backend < 2; backend++) {
        char name[64];
        /* Write 8 sectors then read them back, each alone. */
        begin(&s, backend);
        add(&s, 1 | END, 10, 8, 0, 0x00, 0, 1);
        add(&s, 0 | END, 10, 0, 8, 0x00, 0, 2);
        add(&s, 2 | END, 0, 0, 0, 0x00, 0, 3);
        snprintf(name, sizeof(name), "rw-%s", backend ? "threads" : "uring");
        bad |= save(argv[1], name, &s);
        /* The same on the real I/O thread and workers (an ignored tail sets the length). */
        while (!fuzz_threaded(s.len))
            s.buf[s.len++] = 0;
        snprintf(name, sizeof(name), "rw-%s-real", backend ? "threads" : "uring");
        bad |= save(argv[1], name, &s);
        /* The header and the data cut up; data and status in one descriptor. */
        begin(&s, backend | 2);
        add(&s, 1 | END, 3, 4, 0, 0x03, 0, 77);
        add(&s, 0 | 64 | END, 3, 0, 4, 0x33, 0, 78);
        snprintf(name, sizeof(name), "split-%s", backend ? "threads" : "uring");
        bad |= save(argv[1], name, &s);
        /* A batch of concurrent writes and reads. */
        begin(&s, backend);
        for (unsigned i = 0; i < 8; i++)
            add(&s, (uint8_t)(i % 2), (uint8_t)(i * 9), i % 2 ? 0 : 4, i % 2 ? 4 : 0, 0x11, 0,
                (uint16_t)i);
        s.buf[s.len - REQ_BYTES] |= END;
        add(&s, 0 | END, 0, 0, 16, 0x00, 0, 9);
        snprintf(name, sizeof(name), "batch-%s", backend ? "threads" : "uring");
        bad |= save(argv[1], name, &s);
        /* Writes O_DIRECT can take and writes it cannot, to the same sectors at once, then a
         * flush: the two kinds must not be in flight together. */
        begin(&s, backend);
        for (unsigned i = 0; i < 8; i++)
            add(&s, 1, (uint8_t)(i % 2 * 4), 8, 0, 0x00, i % 2 ? 0 : 16, (uint16_t)i);
        add(&s, 0, 0, 0, 8, 0x00, 16, 8);
        add(&s, 0, 4, 0, 7, 0x00, 0, 9);
        s.buf[s.len - REQ_BYTES] |= END;
        add(&s, 2 | END, 0, 0, 0, 0x00, 0, 10);
        snprintf(name, sizeof(name), "mixed-%s", backend ? "threads" : "uring");
        bad |= save(argv[1], name, &s);
        /* Discard and write zeroes (two and three segments), then read the disk. */
        begin(&s, backend | 8);
        add(&s, 4 | END, 0, 0x42, 0, 0x00, 0, 5);
        add(&s, 5 | END, 0, 0x43, 0, 0x01, 0, 6);
        add(&s, 0 | END, 0, 0, 32, 0x00, 0, 7);
        snprintf(name, sizeof(name), "dwz-%s", backend ? "threads" : "uring");
        bad |= save(argv[1], name, &s);
    }
    /* GET_ID short and long, an unknown type, a short header, out of range. */
    begin(&s, 4);
    add(&s, 3 | END, 0, 0, 0x85, 0x00, 0, 1);
    add(&s, 3 | END, 0, 0, 0x80 | 40, 0x10, 0, 1);
    add(&s, 15 | END, 0, 0, 1, 0x00, 0, 1);
    add(&s, 0 | END, 0, 0, 1, 0x00, 0x80 | 9, 1);
    add(&s, 0 | END, 0xf2, 0, 1, 0x00, 0, 1);
    add(&s, 1 | END, 127, 2, 0, 0x00, 0, 1);
    bad |= save(argv[1], "odd", &s);
    /* No status byte: the device needs a reset. */
    begin(&s, 16);
    add(&s, 1 | 32, 0, 1, 0, 0x00, 64, 1);
    bad |= save(argv[1], "no-status", &s);
    return bad ? 1 : 0;
}

#endif
