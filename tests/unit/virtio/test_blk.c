/* SPDX-License-Identifier: MIT */
/* virtio-blk driven by vdriver on temporary images: data round trips through both I/O back ends,
 * flush, GET_ID, discard and write zeroes, every refusal, and requests cut up in odd ways. */
#include "../check.h"
#include "vdriver.h"

#include "virtio/blk.h"
#include "lib/le.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RAM (16ull << 20)
#define IMAGE_SECTORS 2048u /* 1 MiB */
#define WAIT_MS 5000
#define ALL_FEATURES (~0ull)

static char dir[64];
static enum virtio_blk_aio backend_aio; /* AUTO: io_uring where available; THREADS */

struct fix {
    struct vdriver d;
    struct virtio_blk *b;
};

static uint8_t pattern(uint64_t off, unsigned seed)
{
    uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ull ^ seed;
    return (uint8_t)(x >> 29);
}

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* A file of size bytes under dir filled with pattern(seed); its path in path. */
static void make_image(const char *name, uint64_t size, unsigned seed, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(fd >= 0, "create %s: %s", path, strerror(errno));
    uint8_t buf[4096];
    for (uint64_t off = 0; off < size; off += sizeof(buf)) {
        size_t k = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
        for (size_t i = 0; i < k; i++)
            buf[i] = pattern(off + i, seed);
        CHECK(pwrite(fd, buf, k, (off_t)off) == (ssize_t)k, "write %s", path);
    }
    close(fd);
}

static void file_read(const char *path, uint64_t off, void *dst, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0 && pread(fd, dst, len, (off_t)off) == (ssize_t)len, "read back %s", path);
    if (fd >= 0)
        close(fd);
}

static int fix_open_cfg(struct fix *f, const struct virtio_blk_config *cfg, uint64_t features)
{
    char err[256] = "";
    if (vdriver_init(&f->d, RAM) != 0)
        return -1;
    struct virtio_blk_config c = *cfg;
    c.aio = backend_aio;
    int r = virtio_blk_create(&c, &f->d.mem, &f->b, err, sizeof(err));
    CHECK(r == 0, "create %s: %d %s", cfg->path, r, err);
    if (r != 0) {
        vdriver_free(&f->d);
        return -1;
    }
    if (backend_aio == VIRTIO_BLK_AIO_THREADS)
        CHECK(strcmp(virtio_blk_backend(f->b), "threads") == 0, "backend %s",
              virtio_blk_backend(f->b));
    else if (strcmp(virtio_blk_backend(f->b), "io_uring") != 0)
        printf("# io_uring unavailable here: the threads back end runs instead\n");
    uint8_t st = vdriver_attach(&f->d, virtio_blk_device(f->b), features, 0);
    CHECK(st & VIRTIO_STATUS_DRIVER_OK, "status %#x", st);
    CHECK(!(st & VIRTIO_STATUS_NEEDS_RESET), "status %#x", st);
    return 0;
}

static int fix_open(struct fix *f, const char *path, bool ro)
{
    struct virtio_blk_config cfg = {.path = path, .readonly = ro};
    return fix_open_cfg(f, &cfg, ALL_FEATURES);
}

/* A fresh image of size bytes named name and a device on it with back end aio, which stays in
 * backend_aio for the case: 0, or -1 (already reported) when it cannot open. */
static int fix_open_backend(struct fix *f, enum virtio_blk_aio aio, const char *name, uint64_t size,
                            unsigned seed, char *path, size_t len)
{
    backend_aio = aio;
    make_image(name, size, seed, path, len);
    if (fix_open(f, path, false) != 0) {
        backend_aio = VIRTIO_BLK_AIO_AUTO;
        return -1;
    }
    return 0;
}

static void fix_close(struct fix *f)
{
    virtio_blk_destroy(f->b);
    vdriver_free(&f->d);
}

static uint64_t put_hdr(struct vdriver *d, uint32_t type, uint64_t sector)
{
    uint64_t g = vdriver_alloc(d, 16, 8);
    uint8_t *p = vdriver_ptr(d, g);
    le_put32(p, type);
    le_put64(p + 8, sector);
    return g;
}

static uint64_t new_status(struct vdriver *d)
{
    uint64_t g = vdriver_alloc(d, 1, 1);
    *(uint8_t *)vdriver_ptr(d, g) = 0xee;
    return g;
}

/* Run one chain and wait for it: 0 with the used length, or -ETIMEDOUT. */
static int run(struct vdriver *d, const struct vdriver_buf *bufs, unsigned n, uint32_t *used)
{
    uint16_t head = vdriver_add(d, 0, bufs, n, true), got;
    uint32_t len = 0;
    int r = vdriver_wait_used(d, 0, &got, &len, WAIT_MS);
    CHECK(r == 0, "no answer");
    if (r == 0)
        CHECK_EQ(got, head);
    if (used)
        *used = len;
    return r;
}

/* Header, one data buffer (unless len is 0) and a status byte, each in its own descriptor.
 * Returns the status byte, or -1 when unanswered. */
static int request(struct vdriver *d, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
                   bool write, uint32_t *used)
{
    uint64_t st = new_status(d);
    struct vdriver_buf bufs[3] = {{put_hdr(d, type, sector), 16, false}};
    unsigned n = 1;
    if (len)
        bufs[n++] = (struct vdriver_buf){data, len, write};
    bufs[n++] = (struct vdriver_buf){st, 1, true};
    if (run(d, bufs, n, used) != 0)
        return -1;
    return *(uint8_t *)vdriver_ptr(d, st);
}

static uint64_t put_dwz(struct vdriver *d, unsigned n, const uint64_t *sector, const uint32_t *num,
                        const uint32_t *flags)
{
    uint64_t g = vdriver_alloc(d, 16ull * n, 8);
    uint8_t *p = vdriver_ptr(d, g);
    for (unsigned k = 0; k < n; k++, p += 16) {
        le_put64(p, sector[k]);
        le_put32(p + 8, num[k]);
        le_put32(p + 12, flags[k]);
    }
    return g;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static uint32_t cfg32(struct fix *f, unsigned off)
{
    const uint8_t *c = virtio_blk_device(f->b)->config;
    return (uint32_t)c[off] | (uint32_t)c[off + 1] << 8 | (uint32_t)c[off + 2] << 16 |
           (uint32_t)c[off + 3] << 24;
}

/* ---------------------------------------------------------------- cases */

static void test_config(void)
{
    char path[128];
    make_image("config.img", IMAGE_SECTORS * 512ull, 1, path, sizeof(path));
    struct fix f;
    if (fix_open(&f, path, false) != 0)
        return;
    struct virtio_device *v = virtio_blk_device(f.b);
    CHECK_EQ(v->ops->device_id, VIRTIO_ID_BLOCK);
    CHECK_EQ(v->config_size, VIRTIO_BLK_CFG_SIZE);
    CHECK_EQ(cfg32(&f, VIRTIO_BLK_CFG_CAPACITY), IMAGE_SECTORS);
    CHECK_EQ(cfg32(&f, VIRTIO_BLK_CFG_CAPACITY + 4), 0);
    CHECK_EQ(cfg32(&f, VIRTIO_BLK_CFG_BLK_SIZE), 512);
    CHECK(cfg32(&f, VIRTIO_BLK_CFG_SEG_MAX) >= 1 && cfg32(&f, VIRTIO_BLK_CFG_SEG_MAX) <= 254,
          "seg_max %u", cfg32(&f, VIRTIO_BLK_CFG_SEG_MAX));
    CHECK_EQ(v->config[VIRTIO_BLK_CFG_NUM_QUEUES], 1);
    CHECK(cfg32(&f, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS) > 0, "max_discard_sectors");
    CHECK(cfg32(&f, VIRTIO_BLK_CFG_MAX_DISCARD_SEG) > 0, "max_discard_seg");
    CHECK(cfg32(&f, VIRTIO_BLK_CFG_DISCARD_ALIGNMENT) > 0, "discard_sector_alignment");
    CHECK(cfg32(&f, VIRTIO_BLK_CFG_MAX_WZ_SECTORS) > 0, "max_write_zeroes_sectors");
    CHECK(cfg32(&f, VIRTIO_BLK_CFG_MAX_WZ_SEG) > 0, "max_write_zeroes_seg");
    CHECK_EQ(v->config[VIRTIO_BLK_CFG_WZ_MAY_UNMAP], 1);
    uint64_t want = VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
                    VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |
                    VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
    CHECK((v->host_features & want) == want, "features %#llx",
          (unsigned long long)v->host_features);
    CHECK(!(v->host_features & VIRTIO_BIT(VIRTIO_BLK_F_RO)), "RO offered on a rw disk");
    fix_close(&f);
}

/* len bytes of guest memory whose host address is a multiple of align, plus skew bytes: what
 * decides whether the device can transfer them with O_DIRECT. */
static uint64_t host_aligned(struct vdriver *d, uint64_t len, uint64_t align, uint64_t skew)
{
    uint64_t g = vdriver_alloc(d, len + align + skew, 1);
    uintptr_t host = (uintptr_t)vdriver_ptr(d, g);
    return g + (align - host % align) % align + skew;
}

/* Writes that O_DIRECT can take and writes it cannot (misaligned guest buffers go through the
 * page cache), to the same sectors and in flight together, then a flush. Linux cannot drop the
 * page cache under a direct write that races a buffered one, and then records -EIO for the
 * next fsync of the file (dio_warn_stale_pagecache): the device must never have the two kinds
 * in flight at once, or a good flush fails. */
static void mixed_direct_buffered_backend(enum virtio_blk_aio aio)
{
    char path[128];
    struct fix f;
    if (fix_open_backend(&f, aio, "mixed.img", IMAGE_SECTORS * 512ull, 3, path, sizeof(path)) != 0)
        return;
    struct vdriver *d = &f.d;
    enum { PAIRS = 16, BYTES = 8192, ROUNDS = 48 };
    uint64_t data[2 * PAIRS], st[2 * PAIRS], hdr[2 * PAIRS];
    for (unsigned i = 0; i < 2 * PAIRS; i++) {
        /* Even: 4 KiB-aligned in host memory; odd: one byte off. */
        data[i] = host_aligned(d, BYTES, 4096, i % 2);
        memset(vdriver_ptr(d, data[i]), (int)(0x40 + i), BYTES);
        hdr[i] = put_hdr(d, VIRTIO_BLK_T_OUT, (i / 2) % 4 * 8);
        st[i] = new_status(d);
    }
    uint64_t fdata = 0;
    unsigned bad_flush = 0, bad_write = 0;
    for (unsigned round = 0; round < ROUNDS; round++) {
        for (unsigned i = 0; i < 2 * PAIRS; i++) {
            *(uint8_t *)vdriver_ptr(d, st[i]) = 0xee;
            struct vdriver_buf bufs[3] = {
                {hdr[i], 16, false}, {data[i], BYTES, false}, {st[i], 1, true}};
            vdriver_add(d, 0, bufs, 3, i + 1 == 2 * PAIRS); /* one kick for the batch */
        }
        unsigned seen = 0;
        for (unsigned i = 0; i < 2 * PAIRS; i++) {
            uint16_t head;
            uint32_t len;
            if (vdriver_wait_used(d, 0, &head, &len, WAIT_MS) != 0)
                break;
            seen++;
        }
        CHECK_EQ(seen, 2 * PAIRS);
        for (unsigned i = 0; i < 2 * PAIRS; i++)
            bad_write += *(uint8_t *)vdriver_ptr(d, st[i]) != VIRTIO_BLK_S_OK;
        bad_flush += request(d, VIRTIO_BLK_T_FLUSH, 0, fdata, 0, false, NULL) != VIRTIO_BLK_S_OK;
    }
    CHECK_EQ(bad_write, 0);
    CHECK_EQ(bad_flush, 0);
    fix_close(&f);
    backend_aio = VIRTIO_BLK_AIO_AUTO;
}

/* The file system refuses direct transfers that statx called fine (simulated with too small an
 * alignment): the refused requests fall back to the page cache, but only once no direct one is
 * in flight, so the mix above cannot happen during the switch either, and the O_DIRECT
 * descriptor is closed only when nothing can name it any more. Every write succeeds, the flush
 * after the batch too, and the data is what was written. A fresh device each round: the
 * fallback happens once per device. */
static void direct_refused_backend(enum virtio_blk_aio aio)
{
    backend_aio = aio;
    char path[128];
    make_image("refused.img", IMAGE_SECTORS * 512ull, 4, path, sizeof(path));
    enum { PAIRS = 16, BYTES = 8192, ROUNDS = 12 };
    unsigned bad_flush = 0, bad_write = 0, still_direct = 0;
    for (unsigned round = 0; round < ROUNDS; round++) {
        struct fix f;
        if (fix_open(&f, path, false) != 0)
            break;
        struct vdriver *d = &f.d;
        if (!virtio_blk_test_direct(f.b)) {
            printf("# no O_DIRECT on this file system: nothing to fall back from\n");
            fix_close(&f);
            break;
        }
        virtio_blk_test_dio_align(f.b, 1);
        uint64_t data[2 * PAIRS], st[2 * PAIRS];
        for (unsigned i = 0; i < 2 * PAIRS; i++) {
            /* Even: aligned for real; odd: one byte off, which the file system refuses. */
            data[i] = host_aligned(d, BYTES, 4096, i % 2);
            memset(vdriver_ptr(d, data[i]), (int)(round * 2 * PAIRS + i), BYTES);
            st[i] = new_status(d);
            struct vdriver_buf bufs[3] = {{put_hdr(d, VIRTIO_BLK_T_OUT, (i / 2) % 4 * 16), 16},
                                          {data[i], BYTES, false},
                                          {st[i], 1, true}};
            vdriver_add(d, 0, bufs, 3, i + 1 == 2 * PAIRS);
        }
        for (unsigned i = 0; i < 2 * PAIRS; i++) {
            uint16_t head;
            uint32_t len;
            if (vdriver_wait_used(d, 0, &head, &len, WAIT_MS) != 0) {
                CHECK(false, "round %u: a write was never answered", round);
                break;
            }
        }
        for (unsigned i = 0; i < 2 * PAIRS; i++)
            bad_write += *(uint8_t *)vdriver_ptr(d, st[i]) != VIRTIO_BLK_S_OK;
        bad_flush += request(d, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL) != VIRTIO_BLK_S_OK;
        still_direct += virtio_blk_test_direct(f.b);
        /* Alone now: written data reads back from the file. */
        uint64_t one = host_aligned(d, BYTES, 4096, 1);
        memset(vdriver_ptr(d, one), 0x5a ^ (int)round, BYTES);
        CHECK_EQ(request(d, VIRTIO_BLK_T_OUT, 1024, one, BYTES, false, NULL), VIRTIO_BLK_S_OK);
        uint8_t back[BYTES];
        file_read(path, 1024 * 512ull, back, sizeof(back));
        CHECK(memcmp(back, vdriver_ptr(d, one), BYTES) == 0, "round %u: data", round);
        fix_close(&f);
    }
    CHECK_EQ(bad_write, 0);
    CHECK_EQ(bad_flush, 0);
    CHECK_EQ(still_direct, 0);
    backend_aio = VIRTIO_BLK_AIO_AUTO;
}

static void test_direct_refused_uring(void)
{
    direct_refused_backend(VIRTIO_BLK_AIO_AUTO);
}

static void test_direct_refused_threads(void)
{
    direct_refused_backend(VIRTIO_BLK_AIO_THREADS);
}

static void test_mixed_direct_buffered_uring(void)
{
    mixed_direct_buffered_backend(VIRTIO_BLK_AIO_AUTO);
}

static void test_mixed_direct_buffered_threads(void)
{
    mixed_direct_buffered_backend(VIRTIO_BLK_AIO_THREADS);
}

/* cfg.aio picks the back end: threads on request, io_uring when asked and the kernel has it. */
static void test_aio_choice(void)
{
    char path[128], err[256];
    make_image("aio.img", 4096, 1, path, sizeof(path));
    uint8_t ram[4096];
    struct guest_mem mem = {0};
    CHECK_EQ(guest_mem_add(&mem, 0, ram, sizeof(ram)), 0);
    struct virtio_blk *b;
    struct virtio_blk_config cfg = {.path = path, .aio = VIRTIO_BLK_AIO_THREADS};
    CHECK_EQ(virtio_blk_create(&cfg, &mem, &b, err, sizeof(err)), 0);
    CHECK(strcmp(virtio_blk_backend(b), "threads") == 0, "%s", virtio_blk_backend(b));
    virtio_blk_destroy(b);
    cfg.aio = VIRTIO_BLK_AIO_AUTO;
    CHECK_EQ(virtio_blk_create(&cfg, &mem, &b, err, sizeof(err)), 0);
    bool have_uring = strcmp(virtio_blk_backend(b), "io_uring") == 0;
    virtio_blk_destroy(b);
    cfg.aio = VIRTIO_BLK_AIO_URING;
    int r = virtio_blk_create(&cfg, &mem, &b, err, sizeof(err));
    if (have_uring) {
        CHECK_EQ(r, 0);
        CHECK(strcmp(virtio_blk_backend(b), "io_uring") == 0, "%s", virtio_blk_backend(b));
        virtio_blk_destroy(b);
    } else {
        CHECK(r < 0 && strstr(err, "io_uring is not available"), "aio=uring without it: '%s'", err);
    }
}

/* Many writes in flight at once, each cut into three data descriptors, then reads of the same
 * sectors into two descriptors each; checksums against what was written and the file. */
static void write_read_backend(enum virtio_blk_aio aio)
{
    char path[128];
    struct fix f;
    if (fix_open_backend(&f, aio, aio == VIRTIO_BLK_AIO_THREADS ? "rw-threads.img" : "rw-uring.img",
                         IMAGE_SECTORS * 512ull, 2, path, sizeof(path)) != 0)
        return;
    struct vdriver *d = &f.d;
    enum { NREQ = 48, SECT = 24, BYTES = SECT * 512 };
    uint64_t wdata[NREQ], rdata[NREQ], wst[NREQ], rst[NREQ];
    uint64_t sums[NREQ];
    for (unsigned i = 0; i < NREQ; i++) {
        wdata[i] = vdriver_alloc(d, BYTES, 512);
        uint8_t *p = vdriver_ptr(d, wdata[i]);
        for (unsigned k = 0; k < BYTES; k++)
            p[k] = pattern((uint64_t)i * BYTES + k, 77);
        sums[i] = fnv(p, BYTES);
        wst[i] = new_status(d);
        struct vdriver_buf bufs[5] = {
            {put_hdr(d, VIRTIO_BLK_T_OUT, (uint64_t)i * SECT + 7), 16, false},
            {wdata[i], 512, false},
            {wdata[i] + 512, BYTES - 1536, false},
            {wdata[i] + BYTES - 1024, 1024, false},
            {wst[i], 1, true},
        };
        vdriver_add(d, 0, bufs, 5, i + 1 == NREQ); /* one kick for the batch */
    }
    unsigned seen = 0;
    for (unsigned i = 0; i < NREQ; i++) {
        uint16_t head;
        uint32_t len;
        if (vdriver_wait_used(d, 0, &head, &len, WAIT_MS) != 0)
            break;
        CHECK_EQ(len, 1);
        seen++;
    }
    CHECK_EQ(seen, NREQ);
    for (unsigned i = 0; i < NREQ; i++)
        CHECK_EQ(*(uint8_t *)vdriver_ptr(d, wst[i]), VIRTIO_BLK_S_OK);

    for (unsigned i = 0; i < NREQ; i++) {
        rdata[i] = vdriver_alloc(d, BYTES, 512);
        rst[i] = new_status(d);
        struct vdriver_buf bufs[4] = {
            {put_hdr(d, VIRTIO_BLK_T_IN, (uint64_t)i * SECT + 7), 16, false},
            {rdata[i], 4096, true},
            {rdata[i] + 4096, BYTES - 4096, true},
            {rst[i], 1, true},
        };
        vdriver_add(d, 0, bufs, 4, true);
    }
    seen = 0;
    for (unsigned i = 0; i < NREQ; i++) {
        uint16_t head;
        uint32_t len;
        if (vdriver_wait_used(d, 0, &head, &len, WAIT_MS) != 0)
            break;
        CHECK_EQ(len, BYTES + 1);
        seen++;
    }
    CHECK_EQ(seen, NREQ);
    static uint8_t disk[BYTES];
    for (unsigned i = 0; i < NREQ; i++) {
        CHECK_EQ(*(uint8_t *)vdriver_ptr(d, rst[i]), VIRTIO_BLK_S_OK);
        uint8_t *p = vdriver_ptr(d, rdata[i]);
        CHECK(fnv(p, BYTES) == sums[i], "request %u: read back differs", i);
        file_read(path, ((uint64_t)i * SECT + 7) * 512, disk, BYTES);
        CHECK(fnv(disk, BYTES) == sums[i], "request %u: file differs", i);
    }
    /* The sectors around the writes are untouched. */
    file_read(path, 0, disk, 7 * 512);
    for (unsigned k = 0; k < 7 * 512; k++)
        if (disk[k] != pattern(k, 2)) {
            CHECK(0, "byte %u before the first write changed", k);
            break;
        }

    /* Flush answers OK, with only a status byte written. */
    uint32_t used = 0;
    CHECK_EQ(request(d, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, &used), VIRTIO_BLK_S_OK);
    CHECK_EQ(used, 1);
    fix_close(&f);
    backend_aio = VIRTIO_BLK_AIO_AUTO;
}

static void test_write_read_uring(void)
{
    write_read_backend(VIRTIO_BLK_AIO_AUTO);
}

static void test_write_read_threads(void)
{
    write_read_backend(VIRTIO_BLK_AIO_THREADS);
}

/* Without FLUSH negotiated the disk is write-through; requests still work. */
static void test_writethrough(void)
{
    char path[128];
    make_image("wt.img", IMAGE_SECTORS * 512ull, 3, path, sizeof(path));
    struct fix f;
    struct virtio_blk_config cfg = {.path = path};
    if (fix_open_cfg(&f, &cfg, ALL_FEATURES & ~VIRTIO_BIT(VIRTIO_BLK_F_FLUSH)) != 0)
        return;
    uint64_t g = vdriver_alloc(&f.d, 4096, 512);
    memset(vdriver_ptr(&f.d, g), 0x5a, 4096);
    CHECK_EQ(request(&f.d, VIRTIO_BLK_T_OUT, 100, g, 4096, false, NULL), VIRTIO_BLK_S_OK);
    uint8_t buf[4096];
    file_read(path, 100 * 512, buf, sizeof(buf));
    CHECK(buf[0] == 0x5a && buf[4095] == 0x5a, "write-through data");
    fix_close(&f);
}

static void test_get_id(void)
{
    char path[128];
    make_image("id.img", IMAGE_SECTORS * 512ull, 4, path, sizeof(path));
    struct fix f;
    struct virtio_blk_config cfg = {.path = path, .id = "serial-42"};
    if (fix_open_cfg(&f, &cfg, ALL_FEATURES) != 0)
        return;
    uint64_t g = vdriver_alloc(&f.d, 32, 8);
    memset(vdriver_ptr(&f.d, g), 0xaa, 32);
    uint32_t used = 0;
    CHECK_EQ(request(&f.d, VIRTIO_BLK_T_GET_ID, 0, g, 32, true, &used), VIRTIO_BLK_S_OK);
    CHECK_EQ(used, VIRTIO_BLK_ID_BYTES + 1);
    uint8_t *p = vdriver_ptr(&f.d, g);
    CHECK(memcmp(p, "serial-42", 9) == 0 && all_zero(p + 9, VIRTIO_BLK_ID_BYTES - 9), "id '%.20s'",
          (char *)p);
    CHECK_EQ(p[VIRTIO_BLK_ID_BYTES], 0xaa); /* nothing past 20 bytes */
    /* A shorter buffer gets what fits. */
    uint64_t s = vdriver_alloc(&f.d, 8, 8);
    CHECK_EQ(request(&f.d, VIRTIO_BLK_T_GET_ID, 0, s, 4, true, &used), VIRTIO_BLK_S_OK);
    CHECK_EQ(used, 5);
    CHECK(memcmp(vdriver_ptr(&f.d, s), "seri", 4) == 0, "short id");
    fix_close(&f);

    /* Without an id: one derived from the file, stable across opens. */
    char first[VIRTIO_BLK_ID_BYTES];
    for (int round = 0; round < 2; round++) {
        if (fix_open(&f, path, false) != 0)
            return;
        g = vdriver_alloc(&f.d, VIRTIO_BLK_ID_BYTES, 8);
        CHECK_EQ(request(&f.d, VIRTIO_BLK_T_GET_ID, 0, g, VIRTIO_BLK_ID_BYTES, true, &used),
                 VIRTIO_BLK_S_OK);
        p = vdriver_ptr(&f.d, g);
        CHECK(p[0] != 0, "derived id is empty");
        if (round == 0)
            memcpy(first, p, sizeof(first));
        else
            CHECK(memcmp(first, p, sizeof(first)) == 0, "derived id changed");
        fix_close(&f);
    }
}

static void discard_zeroes_backend(enum virtio_blk_aio aio)
{
    char path[128];
    struct fix f;
    if (fix_open_backend(&f, aio, "dwz.img", IMAGE_SECTORS * 512ull, 5, path, sizeof(path)) != 0)
        return;
    struct vdriver *d = &f.d;
    uint64_t sec[3] = {16, 64, 200};
    uint32_t num[3] = {16, 9, 1}, flags[3] = {0, 0, 0};
    uint64_t seg = put_dwz(d, 3, sec, num, flags);
    CHECK_EQ(request(d, VIRTIO_BLK_T_DISCARD, 0, seg, 48, false, NULL), VIRTIO_BLK_S_OK);

    sec[0] = 300, num[0] = 20, flags[0] = 0;
    sec[1] = 400, num[1] = 8, flags[1] = VIRTIO_BLK_WZ_F_UNMAP;
    seg = put_dwz(d, 2, sec, num, flags);
    CHECK_EQ(request(d, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 32, false, NULL), VIRTIO_BLK_S_OK);

    /* Discarded and zeroed ranges read back as zeroes (on a file, discard punches holes);
     * the sectors next to them keep their data. */
    static const struct {
        uint64_t sector;
        uint32_t n;
    } zero[] = {{16, 16}, {64, 9}, {200, 1}, {300, 20}, {400, 8}};
    uint64_t g = vdriver_alloc(d, 32 * 512, 512);
    for (unsigned i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) {
        CHECK_EQ(request(d, VIRTIO_BLK_T_IN, zero[i].sector, g, zero[i].n * 512, true, NULL),
                 VIRTIO_BLK_S_OK);
        CHECK(all_zero(vdriver_ptr(d, g), zero[i].n * 512), "sector %llu not zero",
              (unsigned long long)zero[i].sector);
        uint8_t around[512];
        file_read(path, (zero[i].sector + zero[i].n) * 512, around, 512);
        CHECK(around[0] == pattern((zero[i].sector + zero[i].n) * 512, 5) &&
                  around[511] == pattern((zero[i].sector + zero[i].n) * 512 + 511, 5),
              "sector after %llu changed", (unsigned long long)zero[i].sector);
    }
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && sb.st_size == IMAGE_SECTORS * 512, "size kept");

    /* Refusals: unmap on a discard or unknown flags (UNSUPP), beyond the end, more sectors
     * than offered, a torn segment (IOERR). */
    sec[0] = 0, num[0] = 1, flags[0] = VIRTIO_BLK_WZ_F_UNMAP;
    seg = put_dwz(d, 1, sec, num, flags);
    CHECK_EQ(request(d, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false, NULL), VIRTIO_BLK_S_UNSUPP);
    flags[0] = 4;
    seg = put_dwz(d, 1, sec, num, flags);
    CHECK_EQ(request(d, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, false, NULL), VIRTIO_BLK_S_UNSUPP);
    sec[0] = IMAGE_SECTORS - 1, num[0] = 2, flags[0] = 0;
    seg = put_dwz(d, 1, sec, num, flags);
    CHECK_EQ(request(d, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, false, NULL), VIRTIO_BLK_S_IOERR);
    sec[0] = UINT64_MAX - 1, num[0] = 4;
    seg = put_dwz(d, 1, sec, num, flags);
    CHECK_EQ(request(d, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false, NULL), VIRTIO_BLK_S_IOERR);
    sec[0] = 0, num[0] = cfg32(&f, VIRTIO_BLK_CFG_MAX_WZ_SECTORS) + 1;
    seg = put_dwz(d, 1, sec, num, flags);
    CHECK_EQ(request(d, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, false, NULL), VIRTIO_BLK_S_IOERR);
    CHECK_EQ(request(d, VIRTIO_BLK_T_DISCARD, 0, seg, 12, false, NULL), VIRTIO_BLK_S_IOERR);
    CHECK_EQ(request(d, VIRTIO_BLK_T_DISCARD, 0, 0, 0, false, NULL), VIRTIO_BLK_S_IOERR);
    fix_close(&f);
    backend_aio = VIRTIO_BLK_AIO_AUTO;
}

static void test_discard_write_zeroes_uring(void)
{
    discard_zeroes_backend(VIRTIO_BLK_AIO_AUTO);
}

static void test_discard_write_zeroes_threads(void)
{
    discard_zeroes_backend(VIRTIO_BLK_AIO_THREADS);
}

static void test_out_of_range(void)
{
    char path[128];
    make_image("range.img", IMAGE_SECTORS * 512ull, 6, path, sizeof(path));
    struct fix f;
    if (fix_open(&f, path, false) != 0)
        return;
    struct vdriver *d = &f.d;
    uint64_t g = vdriver_alloc(d, 4096, 512);
    CHECK_EQ(request(d, VIRTIO_BLK_T_IN, IMAGE_SECTORS - 1, g, 512, true, NULL), VIRTIO_BLK_S_OK);
    CHECK_EQ(request(d, VIRTIO_BLK_T_IN, IMAGE_SECTORS, g, 512, true, NULL), VIRTIO_BLK_S_IOERR);
    CHECK_EQ(request(d, VIRTIO_BLK_T_IN, IMAGE_SECTORS - 1, g, 1024, true, NULL),
             VIRTIO_BLK_S_IOERR);
    CHECK_EQ(request(d, VIRTIO_BLK_T_OUT, IMAGE_SECTORS - 7, g, 4096, false, NULL),
             VIRTIO_BLK_S_IOERR);
    /* sector * 512 and sector + count must not wrap into range. */
    CHECK_EQ(request(d, VIRTIO_BLK_T_IN, UINT64_MAX, g, 512, true, NULL), VIRTIO_BLK_S_IOERR);
    CHECK_EQ(request(d, VIRTIO_BLK_T_OUT, 1ull << 55, g, 512, false, NULL), VIRTIO_BLK_S_IOERR);
    CHECK_EQ(request(d, VIRTIO_BLK_T_OUT, UINT64_MAX - 3, g, 4096, false, NULL),
             VIRTIO_BLK_S_IOERR);
    /* Data that is not whole sectors. */
    CHECK_EQ(request(d, VIRTIO_BLK_T_IN, 0, g, 100, true, NULL), VIRTIO_BLK_S_IOERR);
    CHECK_EQ(request(d, VIRTIO_BLK_T_OUT, 0, g, 513, false, NULL), VIRTIO_BLK_S_IOERR);
    /* A header shorter than 16 bytes. */
    uint64_t st = new_status(d);
    struct vdriver_buf shorthdr[2] = {{put_hdr(d, VIRTIO_BLK_T_IN, 0), 12, false}, {st, 1, true}};
    CHECK_EQ(run(d, shorthdr, 2, NULL), 0);
    CHECK_EQ(*(uint8_t *)vdriver_ptr(d, st), VIRTIO_BLK_S_IOERR);
    /* The file is untouched by the refused writes. */
    uint8_t buf[512];
    file_read(path, 0, buf, sizeof(buf));
    CHECK(buf[0] == pattern(0, 6) && buf[511] == pattern(511, 6), "sector 0 changed");
    CHECK(!(vdriver_status(d) & VIRTIO_STATUS_NEEDS_RESET), "refusals are answered, not fatal");
    fix_close(&f);
}

static void test_unsupported(void)
{
    char path[128];
    make_image("unsupp.img", IMAGE_SECTORS * 512ull, 7, path, sizeof(path));
    struct fix f;
    if (fix_open(&f, path, false) != 0)
        return;
    uint64_t g = vdriver_alloc(&f.d, 512, 512);
    static const uint32_t types[] = {2, 3, 5, 10, 12, 14, 99, 0x80000000u, UINT32_MAX};
    for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        uint32_t used = 0;
        CHECK_EQ(request(&f.d, types[i], 0, g, 512, true, &used), VIRTIO_BLK_S_UNSUPP);
        CHECK_EQ(used, 1);
    }
    fix_close(&f);
}

static void test_readonly(void)
{
    char path[128];
    make_image("ro.img", IMAGE_SECTORS * 512ull, 8, path, sizeof(path));
    struct fix f;
    if (fix_open(&f, path, true) != 0)
        return;
    struct virtio_device *v = virtio_blk_device(f.b);
    CHECK(v->host_features & VIRTIO_BIT(VIRTIO_BLK_F_RO), "RO not offered");
    CHECK(!(v->host_features & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD)), "discard offered on ro");
    struct vdriver *d = &f.d;
    uint64_t g = vdriver_alloc(d, 4096, 512);
    memset(vdriver_ptr(d, g), 0x11, 4096);
    CHECK_EQ(request(d, VIRTIO_BLK_T_OUT, 0, g, 4096, false, NULL), VIRTIO_BLK_S_IOERR);
    uint32_t one[1] = {8}, fl[1] = {0};
    uint64_t sec[1] = {0};
    uint64_t seg = put_dwz(d, 1, sec, one, fl);
    CHECK_EQ(request(d, VIRTIO_BLK_T_DISCARD, 0, seg, 16, false, NULL), VIRTIO_BLK_S_IOERR);
    CHECK_EQ(request(d, VIRTIO_BLK_T_WRITE_ZEROES, 0, seg, 16, false, NULL), VIRTIO_BLK_S_IOERR);
    CHECK_EQ(request(d, VIRTIO_BLK_T_IN, 0, g, 4096, true, NULL), VIRTIO_BLK_S_OK);
    uint8_t *p = vdriver_ptr(d, g);
    CHECK(p[0] == pattern(0, 8) && p[4095] == pattern(4095, 8), "ro read");
    CHECK_EQ(request(d, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
    uint8_t buf[4096];
    file_read(path, 0, buf, sizeof(buf));
    bool same = true;
    for (unsigned k = 0; k < sizeof(buf); k++)
        same = same && buf[k] == pattern(k, 8);
    CHECK(same, "read-only image changed");

    /* Read-only opens share the image; a writer is kept out while they hold it. */
    struct virtio_blk *other = NULL;
    char err[256] = "";
    struct virtio_blk_config cfg = {.path = path, .readonly = true};
    CHECK_EQ(virtio_blk_create(&cfg, &f.d.mem, &other, err, sizeof(err)), 0);
    virtio_blk_destroy(other);
    cfg.readonly = false;
    CHECK_EQ(virtio_blk_create(&cfg, &f.d.mem, &other, err, sizeof(err)), -EBUSY);
    CHECK(strstr(err, "in use") != NULL, "message '%s'", err);
    fix_close(&f);
}

/* The header cut across descriptors, combined with data, data combined with the status byte. */
static void test_segmentation(void)
{
    char path[128];
    make_image("seg.img", IMAGE_SECTORS * 512ull, 9, path, sizeof(path));
    struct fix f;
    if (fix_open(&f, path, false) != 0)
        return;
    struct vdriver *d = &f.d;

    /* OUT: header in 5 + 3 bytes, then 8 header bytes and the first 100 data bytes in one
     * descriptor, then the rest of 1024 data bytes. */
    uint64_t blob = vdriver_alloc(d, 16 + 1024, 8);
    uint8_t *b = vdriver_ptr(d, blob);
    uint64_t h = put_hdr(d, VIRTIO_BLK_T_OUT, 33);
    memcpy(b, vdriver_ptr(d, h), 16);
    for (unsigned k = 0; k < 1024; k++)
        b[16 + k] = (uint8_t)(k * 7 + 3);
    uint64_t st = new_status(d);
    struct vdriver_buf out[5] = {
        {blob, 5, false},
        {blob + 5, 3, false},
        {blob + 8, 8 + 100, false},
        {blob + 116, 1024 - 100, false},
        {st, 1, true},
    };
    uint32_t used = 0;
    CHECK_EQ(run(d, out, 5, &used), 0);
    CHECK_EQ(*(uint8_t *)vdriver_ptr(d, st), VIRTIO_BLK_S_OK);
    CHECK_EQ(used, 1);
    uint8_t disk[1024];
    file_read(path, 33 * 512, disk, sizeof(disk));
    CHECK(memcmp(disk, b + 16, sizeof(disk)) == 0, "split write");

    /* IN: header in two descriptors, then data and status in one writable buffer, cut so that
     * the status is the last byte of the last descriptor. */
    uint64_t in = vdriver_alloc(d, 1024 + 1, 8);
    memset(vdriver_ptr(d, in), 0xcc, 1025);
    uint64_t h2 = put_hdr(d, VIRTIO_BLK_T_IN, 33);
    struct vdriver_buf rd[4] = {
        {h2, 10, false},
        {h2 + 10, 6, false},
        {in, 700, true},
        {in + 700, 325, true},
    };
    CHECK_EQ(run(d, rd, 4, &used), 0);
    uint8_t *r = vdriver_ptr(d, in);
    CHECK_EQ(r[1024], VIRTIO_BLK_S_OK);
    CHECK_EQ(used, 1025);
    CHECK(memcmp(r, b + 16, 1024) == 0, "split read");

    /* A zero-length writable descriptor after the status byte does not move it. */
    uint64_t st2 = new_status(d);
    uint64_t h3 = put_hdr(d, VIRTIO_BLK_T_FLUSH, 0);
    struct vdriver_buf fl[3] = {{h3, 16, false}, {st2, 1, true}, {st2 + 1, 0, true}};
    CHECK_EQ(run(d, fl, 3, &used), 0);
    CHECK_EQ(*(uint8_t *)vdriver_ptr(d, st2), VIRTIO_BLK_S_OK);
    fix_close(&f);
}

/* No writable byte for the status: the request cannot be answered, the device needs a reset;
 * after one it works again. */
static void test_missing_status(void)
{
    char path[128];
    make_image("nostatus.img", IMAGE_SECTORS * 512ull, 10, path, sizeof(path));
    struct fix f;
    if (fix_open(&f, path, false) != 0)
        return;
    struct vdriver *d = &f.d;
    uint64_t g = vdriver_alloc(d, 512, 512);
    struct vdriver_buf bufs[2] = {{put_hdr(d, VIRTIO_BLK_T_OUT, 0), 16, false}, {g, 512, false}};
    vdriver_add(d, 0, bufs, 2, true);
    CHECK(vdriver_wait_needs_reset(d, WAIT_MS), "NEEDS_RESET not set");
    uint8_t buf[512];
    file_read(path, 0, buf, sizeof(buf));
    CHECK(buf[0] == pattern(0, 10), "the unanswerable write was done");
    vdriver_reset(d);

    uint8_t st = vdriver_attach(d, virtio_blk_device(f.b), ALL_FEATURES, 0);
    CHECK(!(st & VIRTIO_STATUS_NEEDS_RESET) && (st & VIRTIO_STATUS_DRIVER_OK), "status %#x", st);
    CHECK_EQ(request(d, VIRTIO_BLK_T_IN, 0, g, 512, true, NULL), VIRTIO_BLK_S_OK);
    fix_close(&f);
}

/* A reset with reads in flight waits for them, and the device comes back. */
static void reset_inflight_backend(enum virtio_blk_aio aio)
{
    char path[128];
    struct fix f;
    if (fix_open_backend(&f, aio, "reset.img", 8ull << 20, 11, path, sizeof(path)) != 0)
        return;
    struct vdriver *d = &f.d;
    for (int round = 0; round < 3; round++) {
        for (unsigned i = 0; i < 64; i++) {
            uint64_t g = vdriver_alloc(d, 32 * 1024, 512);
            struct vdriver_buf bufs[3] = {
                {put_hdr(d, i % 2 ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT, (uint64_t)i * 128), 16,
                 false},
                {g, 32 * 1024, i % 2 == 1},
                {new_status(d), 1, true},
            };
            vdriver_add(d, 0, bufs, 3, true);
        }
        vdriver_reset(d);
        uint8_t st = vdriver_attach(d, virtio_blk_device(f.b), ALL_FEATURES, 0);
        CHECK(st & VIRTIO_STATUS_DRIVER_OK, "status %#x", st);
        uint64_t g = vdriver_alloc(d, 512, 512);
        CHECK_EQ(request(d, VIRTIO_BLK_T_IN, 8, g, 512, true, NULL), VIRTIO_BLK_S_OK);
    }
    fix_close(&f);
    backend_aio = VIRTIO_BLK_AIO_AUTO;
}

static void test_reset_inflight_uring(void)
{
    reset_inflight_backend(VIRTIO_BLK_AIO_AUTO);
}

static void test_reset_inflight_threads(void)
{
    reset_inflight_backend(VIRTIO_BLK_AIO_THREADS);
}

static int try_create(const char *path, bool ro, char *err, size_t len)
{
    static struct guest_mem mem;
    static uint8_t ram[4096];
    if (mem.count == 0 && guest_mem_add(&mem, 0, ram, sizeof(ram)) != 0)
        return -1;
    struct virtio_blk_config cfg = {.path = path, .readonly = ro};
    struct virtio_blk *b = NULL;
    err[0] = '\0';
    int r = virtio_blk_create(&cfg, &mem, &b, err, len);
    if (r == 0)
        virtio_blk_destroy(b);
    return r;
}

static void expect_refused(const char *path, bool ro, const char *want)
{
    char err[256];
    int r = try_create(path, ro, err, sizeof(err));
    CHECK(r < 0, "%s accepted", path);
    CHECK(strstr(err, want) != NULL, "%s: message '%s', expected '%s'", path, err, want);
    CHECK(err[0] && !strchr(err, '\n'), "one line: '%s'", err);
}

static void test_bad_images(void)
{
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/missing.img", dir);
    expect_refused(path, false, "no such file");
    expect_refused(dir, false, "directory");
    expect_refused(dir, true, "directory");
    make_image("odd.img", 1000, 1, path, sizeof(path));
    expect_refused(path, false, "size 1000 is not a multiple of 512 bytes");
    make_image("empty.img", 0, 1, path, sizeof(path));
    expect_refused(path, true, "empty");
    expect_refused("/dev/null", true, "not a regular file or block device");

    struct guest_mem mem = {0};
    struct virtio_blk *b;
    make_image("good.img", 4096, 1, path, sizeof(path));
    struct virtio_blk_config cfg = {.path = path, .id = "123456789012345678901"};
    CHECK(virtio_blk_create(&cfg, &mem, &b, err, sizeof(err)) < 0 && strstr(err, "id"),
          "long id: '%s'", err);

    /* Two writers on one image: the second is refused. */
    CHECK_EQ(try_create(path, false, err, sizeof(err)), 0);
    uint8_t ram[4096];
    CHECK_EQ(guest_mem_add(&mem, 0, ram, sizeof(ram)), 0);
    cfg.id = NULL;
    CHECK_EQ(virtio_blk_create(&cfg, &mem, &b, err, sizeof(err)), 0);
    CHECK_EQ(try_create(path, false, err, sizeof(err)), -EBUSY);
    CHECK(strstr(err, "in use") != NULL, "message '%s'", err);
    CHECK_EQ(try_create(path, true, err, sizeof(err)), -EBUSY);
    virtio_blk_destroy(b);
    CHECK_EQ(try_create(path, false, err, sizeof(err)), 0);

    /* No write permission: as root, check it as an unprivileged user in a child. */
    make_image("readable.img", 4096, 1, path, sizeof(path));
    CHECK(chmod(path, 0444) == 0, "chmod");
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(3);
        /* A fresh process image: no threads inherited across the fork. */
        execl("/proc/self/exe", "test_virtio_blk", "--no-write-permission", path, (char *)NULL);
        _exit(4);
    }
    int ws = 0;
    CHECK(pid > 0 && waitpid(pid, &ws, 0) == pid, "fork");
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "no-write-permission case: exit %d",
          WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
}

/* The unprivileged half of the no-write-permission case: a read-write open of a read-only file
 * is refused with a hint, a read-only one accepted. */
static int no_write_permission(const char *path)
{
    char err[256];
    int r = try_create(path, false, err, sizeof(err));
    if (r >= 0 || !strstr(err, "no write permission") || !strstr(err, ",ro")) {
        fprintf(stderr, "read-write open: %d '%s'\n", r, err);
        return 1;
    }
    r = try_create(path, true, err, sizeof(err));
    if (r != 0) {
        fprintf(stderr, "read-only open: %d '%s'\n", r, err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--no-write-permission") == 0)
        return no_write_permission(argv[2]);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/revirt-blk-XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    chmod(dir, 0755); /* the unprivileged child reads an image in here */
    RUN(test_config);
    RUN(test_aio_choice);
    RUN(test_write_read_uring);
    RUN(test_write_read_threads);
    RUN(test_writethrough);
    RUN(test_mixed_direct_buffered_uring);
    RUN(test_mixed_direct_buffered_threads);
    RUN(test_direct_refused_uring);
    RUN(test_direct_refused_threads);
    RUN(test_get_id);
    RUN(test_discard_write_zeroes_uring);
    RUN(test_discard_write_zeroes_threads);
    RUN(test_out_of_range);
    RUN(test_unsupported);
    RUN(test_readonly);
    RUN(test_segmentation);
    RUN(test_missing_status);
    RUN(test_reset_inflight_uring);
    RUN(test_reset_inflight_threads);
    RUN(test_bad_images);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return check_done();
}
