/* SPDX-License-Identifier: MIT */
/* virtio-blk (virtio 1.2 §5.2) on a raw image. The device's I/O thread pops requests, checks
 * them and hands the data transfers to io_uring (or, where the kernel refuses io_uring, to a few
 * worker threads), so many requests are in flight at once; completions come back to the same
 * thread through eventfds and are answered in batches, one interrupt per batch. */
#include "blk.h"

#include "sys/ioloop.h"
#include "lib/iov.h"
#include "sys/ratelimit.h"
#include "sys/workpool.h"
#include "lib/le.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define SECTOR_SHIFT 9
#define SECTOR_SIZE 512u
#define HDR_BYTES 16u /* struct virtio_blk_req's header: le32 type, le32 reserved, le64 sector */
#define DWZ_BYTES 16u /* one discard / write-zeroes segment: le64 sector, le32 num, le32 flags */

#define BLK_QUEUE_SIZE 256u
/* Data segments per request: the chain also carries a header and a status descriptor. */
#define BLK_SEG_MAX (BLK_QUEUE_SIZE - 2)
#define BLK_MAX_DWZ_SEG 32u
/* Sectors per discard / write-zeroes segment: 2 GiB, what one fallocate should do at a time. */
#define BLK_MAX_DWZ_SECTORS (1u << 22)
#define BLK_POOL_THREADS 4u

/* How a request's data reaches the image, for the gate that keeps the two kinds apart. */
enum blk_io {
    IO_NONE,   /* no data through the page cache or around it: flush, discard, inline answers */
    IO_DIRECT, /* read or write on the O_DIRECT descriptor */
    IO_CACHED, /* read or write through the page cache (write zeroes may write by hand) */
};

struct blk_dwz {
    uint64_t sector;
    uint32_t num;
    uint32_t flags;
};

/* One request in flight. The header and segments are copied out of guest memory once, so the
 * guest cannot change them between the checks and the I/O; the data stays in guest memory. */
struct blk_slot {
    struct workpool_job job; /* first: the pool hands it back */
    struct virtio_blk *b;
    uint16_t index;
    uint32_t type;
    uint8_t *status; /* the last writable byte of the chain */
    uint8_t result;  /* VIRTIO_BLK_S_* */
    enum blk_io io;  /* its kind, fixed when it passes the gate */
    bool refused;    /* a worker's direct transfer got EINVAL: the I/O thread falls back */
    int fd;          /* the descriptor its transfers use */
    struct blk_slot *wait_next; /* on the gate's waiting list */
    uint64_t offset;            /* image byte offset of what is left to transfer */
    struct iovec *iov; /* data left to transfer: a view into req.iov, advanced as it goes */
    unsigned niov;
    uint64_t left;    /* bytes of data left */
    uint64_t written; /* bytes written into the guest's buffers, the status byte excluded */
    unsigned nseg;
    struct blk_dwz seg[BLK_MAX_DWZ_SEG];
    struct virtq_req req;
};

struct virtio_blk {
    struct virtio_device vdev;
    struct virtio_device_ops ops; /* per device: the features depend on ro */
    uint8_t config[VIRTIO_BLK_CFG_SIZE];
    int fd;
    int dfd;            /* the same image opened O_DIRECT, or -1 (direct=off, unsupported) */
    unsigned dio_align; /* memory and offset alignment O_DIRECT needs */
    bool dio_refused;   /* the file system refused a direct transfer: close dfd once quiet */
    bool readonly;
    uint64_t capacity; /* in sectors */
    char id[VIRTIO_BLK_ID_BYTES];

    bool uring;
    struct io_uring ring;
    int ring_efd;           /* the ring's completion eventfd */
    unsigned ring_inflight; /* sqes prepared and not completed */
    struct workpool *pool;  /* everything without io_uring; discard and write zeroes with it */

    /* Between start and stop, used by the I/O thread only. */
    struct ioloop *loop;
    bool broken; /* NEEDS_RESET was raised: pop nothing more */
    bool dsync;  /* FLUSH not negotiated: the disk is write-through (§5.2.6.3) */
    unsigned nfree;
    uint16_t free_idx[BLK_QUEUE_SIZE]; /* a stack: low indices are reused first */
    /* The gate: direct and cached requests are never in flight together (see gate_enter). */
    unsigned busy[3];                        /* started and not completed, by enum blk_io */
    struct blk_slot *wait_head, **wait_tail; /* waiting for the other kind to drain, in order */
    struct blk_slot *slots[BLK_QUEUE_SIZE];  /* allocated on first use, kept until destroy */
};

/* ---------------------------------------------------------------- iovec helpers */

/* Drop the first skip bytes of iov[0..n): returns how many entries are left, *first the first
 * of them (trimmed in place). */
static unsigned iov_skip(struct iovec *iov, unsigned n, uint64_t skip, struct iovec **first)
{
    unsigned i = 0;
    while (i < n && skip >= iov[i].iov_len) {
        skip -= iov[i].iov_len;
        i++;
    }
    if (i < n) {
        iov[i].iov_base = (uint8_t *)iov[i].iov_base + skip;
        iov[i].iov_len -= skip;
    }
    *first = &iov[i];
    return n - i;
}

/* ---------------------------------------------------------------- in-flight slots */

static void run_job(struct workpool_job *job);

static struct blk_slot *take_slot(struct virtio_blk *b)
{
    if (b->nfree == 0)
        return NULL;
    uint16_t i = b->free_idx[b->nfree - 1];
    if (!b->slots[i]) {
        /* Slot 0 exists from create on, so a failure here only delays: a completion frees
         * a slot and the queue is looked at again. */
        b->slots[i] = malloc(sizeof(*b->slots[i]));
        if (!b->slots[i])
            return NULL;
    }
    b->nfree--;
    struct blk_slot *s = b->slots[i];
    s->job.fn = run_job;
    s->b = b;
    s->index = i;
    return s;
}

static void put_slot(struct virtio_blk *b, struct blk_slot *s)
{
    b->free_idx[b->nfree++] = s->index;
}

/* ---------------------------------------------------------------- completing requests */

static void fail(struct virtio_blk *b, const char *why)
{
    b->broken = true;
    virtio_set_needs_reset(&b->vdev, why);
}

static void gate_leave(struct virtio_blk *b, struct blk_slot *s);

static void complete(struct virtio_blk *b, struct blk_slot *s)
{
    gate_leave(b, s);
    struct virtq *vq = &b->vdev.queues[0].vq;
    *s->status = s->result;
    /* used len: what the device wrote into the chain, data and status byte (§2.7.8). */
    uint64_t len = s->written + 1;
    if (virtq_push(vq, s->req.head, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len) < 0)
        fail(b, vq->error);
    put_slot(b, s);
}

static void finish(struct virtio_blk *b, struct blk_slot *s, uint8_t result)
{
    s->result = result;
    complete(b, s);
}

/* Account for one transfer's result res (bytes, or -errno). Returns true when the request has
 * more to do (a short transfer, an interrupted call), false when it is finished (s->result
 * says how). */
static bool advance(struct blk_slot *s, int64_t res)
{
    if (res == -EINTR || res == -EAGAIN)
        return true;
    if (res < 0) {
        s->result = VIRTIO_BLK_S_IOERR;
        return false;
    }
    if (s->type == VIRTIO_BLK_T_FLUSH)
        return false;
    if (res == 0 || (uint64_t)res > s->left) {
        /* End of file inside the capacity: the image shrank under us. */
        s->result = VIRTIO_BLK_S_IOERR;
        return false;
    }
    if (s->type == VIRTIO_BLK_T_IN)
        s->written += (uint64_t)res;
    s->left -= (uint64_t)res;
    s->offset += (uint64_t)res;
    s->niov = iov_skip(s->iov, s->niov, (uint64_t)res, &s->iov);
    return s->left > 0;
}

/* ---------------------------------------------------------------- worker-thread I/O */

static uint8_t write_zeroes_by_hand(int fd, uint64_t off, uint64_t len)
{
    static const uint8_t zeroes[64 * 1024];
    while (len) {
        size_t k = len < sizeof(zeroes) ? (size_t)len : sizeof(zeroes);
        ssize_t n = pwrite(fd, zeroes, k, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return VIRTIO_BLK_S_IOERR;
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return VIRTIO_BLK_S_OK;
}

static bool not_supported(int e)
{
    return e == EOPNOTSUPP || e == ENOSYS || e == EINVAL || e == ENODEV;
}

/* §5.2.6.2: discard MAY deallocate, so a file system without holes answers OK; write zeroes
 * MUST read back as zeroes, so it falls back from punching or zeroing a range to writing. */
static uint8_t run_dwz(int fd, uint32_t type, const struct blk_dwz *seg)
{
    uint64_t off = seg->sector << SECTOR_SHIFT, len = (uint64_t)seg->num << SECTOR_SHIFT;
    if (len == 0)
        return VIRTIO_BLK_S_OK;
    if (type == VIRTIO_BLK_T_DISCARD) {
        if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) ==
                0 ||
            not_supported(errno))
            return VIRTIO_BLK_S_OK;
        return VIRTIO_BLK_S_IOERR;
    }
    if ((seg->flags & VIRTIO_BLK_WZ_F_UNMAP) &&
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
        return VIRTIO_BLK_S_OK;
    if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
        return VIRTIO_BLK_S_OK;
    if (!not_supported(errno))
        return VIRTIO_BLK_S_IOERR;
    return write_zeroes_by_hand(fd, off, len);
}

static int64_t transfer_once(struct virtio_blk *b, struct blk_slot *s)
{
    ssize_t n;
    if (s->type == VIRTIO_BLK_T_IN)
        n = preadv(s->fd, s->iov, (int)s->niov, (off_t)s->offset);
    else
        n = pwritev2(s->fd, s->iov, (int)s->niov, (off_t)s->offset, b->dsync ? RWF_DSYNC : 0);
    return n < 0 ? -errno : n;
}

/* Runs on a pool thread: the whole request, blocking. */
static void run_job(struct workpool_job *job)
{
    struct blk_slot *s = (struct blk_slot *)job;
    struct virtio_blk *b = s->b;
    s->result = VIRTIO_BLK_S_OK;
    switch (s->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        for (;;) {
            int64_t res = transfer_once(b, s);
            if (res == -EINVAL && s->io == IO_DIRECT) {
                /* Only the I/O thread may give up direct I/O (refuse_direct): hand it back. */
                s->refused = true;
                break;
            }
            if (!advance(s, res))
                break;
        }
        break;
    case VIRTIO_BLK_T_FLUSH:
        while (advance(s, fdatasync(b->fd) < 0 ? -errno : 0))
            ;
        break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
        for (unsigned i = 0; i < s->nseg && s->result == VIRTIO_BLK_S_OK; i++)
            s->result = run_dwz(b->fd, s->type, &s->seg[i]);
        if (s->result == VIRTIO_BLK_S_OK && b->dsync && fdatasync(b->fd) < 0)
            s->result = VIRTIO_BLK_S_IOERR;
        break;
    }
}

/* ---------------------------------------------------------------- io_uring I/O */

/* Whether s's transfer meets O_DIRECT's alignment; others go through the page cache. */
static bool direct_ok(const struct virtio_blk *b, const struct blk_slot *s)
{
    if (b->dfd < 0 || b->dio_refused || s->offset % b->dio_align)
        return false;
    for (unsigned i = 0; i < s->niov; i++)
        if ((uintptr_t)s->iov[i].iov_base % b->dio_align || s->iov[i].iov_len % b->dio_align)
            return false;
    return true;
}

/* Queue s's next transfer on the ring; submitted at the end of the batch. */
static void ring_prep(struct virtio_blk *b, struct blk_slot *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
    if (!sqe) {
        (void)io_uring_submit(&b->ring);
        sqe = io_uring_get_sqe(&b->ring);
    }
    if (!sqe) {
        /* Cannot happen: the ring has a slot per in-flight request. */
        finish(b, s, VIRTIO_BLK_S_IOERR);
        return;
    }
    switch (s->type) {
    case VIRTIO_BLK_T_IN:
        io_uring_prep_readv(sqe, s->fd, s->iov, s->niov, s->offset);
        break;
    case VIRTIO_BLK_T_OUT:
        io_uring_prep_writev(sqe, s->fd, s->iov, s->niov, s->offset);
        if (b->dsync)
            sqe->rw_flags = RWF_DSYNC;
        break;
    default:
        io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
        break;
    }
    io_uring_sqe_set_data(sqe, s);
    b->ring_inflight++;
}

static void ring_submit(struct virtio_blk *b)
{
    /* On -EAGAIN or -EBUSY (completions to reap first) the sqes stay queued: the next
     * completion's batch submits them. */
    for (unsigned tries = 0; tries < 4 && io_uring_sq_ready(&b->ring); tries++) {
        int r = io_uring_submit(&b->ring);
        if (r < 0 && r != -EINTR)
            break;
    }
}

/* ---------------------------------------------------------------- the direct / cached gate */

/* Linux does not keep O_DIRECT and page-cache I/O on one file coherent when they overlap in
 * time: a direct write invalidates the cached pages of its range when it completes, and when
 * a buffered write or read holds them at that moment the invalidation fails, the kernel logs
 * "Page cache invalidation failure on direct I/O" and records -EIO on the file, which the next
 * fsync returns (dio_warn_stale_pagecache). A guest's good FLUSH would then fail, and cached
 * data could be stale. So a request of one kind starts only when none of the other kind is in
 * flight, and waits in order otherwise; FLUSH and discard, which move no data, pass freely. */

static enum blk_io opposite(enum blk_io io)
{
    return io == IO_DIRECT ? IO_CACHED : IO_DIRECT;
}

static void start(struct virtio_blk *b, struct blk_slot *s)
{
    b->busy[s->io]++;
    s->fd = s->io == IO_DIRECT ? b->dfd : b->fd;
    s->refused = false;
    if (b->uring && s->type != VIRTIO_BLK_T_DISCARD && s->type != VIRTIO_BLK_T_WRITE_ZEROES)
        ring_prep(b, s);
    else
        workpool_submit(b->pool, &s->job);
}

static void gate_enter(struct virtio_blk *b, struct blk_slot *s)
{
    if (s->io != IO_NONE && (b->busy[opposite(s->io)] || b->wait_head)) {
        s->wait_next = NULL;
        *b->wait_tail = s;
        b->wait_tail = &s->wait_next;
        return;
    }
    start(b, s);
}

/* Once no direct transfer is in flight or waiting, nothing can still name dfd: closing it
 * then cannot send a queued request's I/O to whatever file reuses the number. */
static void maybe_close_direct(struct virtio_blk *b)
{
    if (b->dio_refused && b->dfd >= 0 && b->busy[IO_DIRECT] == 0) {
        close(b->dfd);
        b->dfd = -1;
    }
}

/* Start waiting requests, in order, while the first of them may go. */
static void gate_release(struct virtio_blk *b)
{
    while (b->wait_head && b->busy[opposite(b->wait_head->io)] == 0) {
        struct blk_slot *w = b->wait_head;
        b->wait_head = w->wait_next;
        if (!b->wait_head)
            b->wait_tail = &b->wait_head;
        start(b, w);
    }
}

static void gate_leave(struct virtio_blk *b, struct blk_slot *s)
{
    if (s->io == IO_NONE)
        return;
    b->busy[s->io]--;
    s->io = IO_NONE; /* so a second complete of the slot cannot count twice */
    maybe_close_direct(b);
    gate_release(b);
}

/* The file system refused s's direct transfer after all (an alignment statx did not report):
 * the device stays buffered from now on. s, and direct requests still waiting, go through the
 * page cache once every direct transfer in flight has finished; dfd is closed then too. */
static void refuse_direct(struct virtio_blk *b, struct blk_slot *s)
{
    b->dio_refused = true;
    for (struct blk_slot *w = b->wait_head; w; w = w->wait_next)
        if (w->io == IO_DIRECT)
            w->io = IO_CACHED;
    b->busy[IO_DIRECT]--;
    s->io = IO_CACHED;
    maybe_close_direct(b);
    gate_enter(b, s);
    gate_release(b); /* s may have been the last direct one the waiting list waited for */
}

/* Take every completion off the ring. answer is false while stopping: the rings are being
 * reset, so nothing is pushed and nothing resubmitted. */
static void ring_reap(struct virtio_blk *b, bool answer)
{
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&b->ring, &cqe) == 0) {
        struct blk_slot *s = io_uring_cqe_get_data(cqe);
        int64_t res = cqe->res;
        io_uring_cqe_seen(&b->ring, cqe);
        b->ring_inflight--;
        if (!answer) {
            put_slot(b, s);
        } else if (res == -EINVAL && s->io == IO_DIRECT) {
            refuse_direct(b, s);
        } else if (advance(s, res))
            ring_prep(b, s);
        else
            complete(b, s);
    }
}

/* ---------------------------------------------------------------- requests */

static bool in_capacity(const struct virtio_blk *b, uint64_t sector, uint64_t bytes)
{
    uint64_t n = bytes >> SECTOR_SHIFT;
    return bytes % SECTOR_SIZE == 0 && sector <= b->capacity && n <= b->capacity - sector;
}

static void submit(struct virtio_blk *b, struct blk_slot *s)
{
    s->result = VIRTIO_BLK_S_OK;
    if (s->type == VIRTIO_BLK_T_IN || s->type == VIRTIO_BLK_T_OUT)
        s->io = direct_ok(b, s) ? IO_DIRECT : IO_CACHED;
    else if (s->type == VIRTIO_BLK_T_WRITE_ZEROES && b->dfd >= 0)
        s->io = IO_CACHED; /* may fall back to writing zeroes through the page cache */
    else
        s->io = IO_NONE;
    gate_enter(b, s);
}

/* Copy and check discard / write-zeroes segments (§5.2.6.2). 0 when they may run, else the
 * status to answer. */
static unsigned parse_dwz(struct virtio_blk *b, struct blk_slot *s, struct iovec *data, unsigned n,
                          uint64_t len)
{
    if (len == 0 || len % DWZ_BYTES)
        return VIRTIO_BLK_S_IOERR;
    if (len / DWZ_BYTES > BLK_MAX_DWZ_SEG)
        return VIRTIO_BLK_S_UNSUPP;
    s->nseg = (unsigned)(len / DWZ_BYTES);
    for (unsigned i = 0; i < s->nseg; i++) {
        uint8_t raw[DWZ_BYTES];
        (void)iov_read(data, n, (size_t)i * DWZ_BYTES, raw, sizeof(raw));
        struct blk_dwz *g = &s->seg[i];
        g->sector = le_get64(raw);
        g->num = le_get32(raw + 8);
        g->flags = le_get32(raw + 12);
        /* Unknown flags, and unmap on a discard, are unsupported. */
        if ((g->flags & ~VIRTIO_BLK_WZ_F_UNMAP) ||
            (s->type == VIRTIO_BLK_T_DISCARD && (g->flags & VIRTIO_BLK_WZ_F_UNMAP)))
            return VIRTIO_BLK_S_UNSUPP;
        if (g->num > BLK_MAX_DWZ_SECTORS ||
            !in_capacity(b, g->sector, (uint64_t)g->num << SECTOR_SHIFT))
            return VIRTIO_BLK_S_IOERR;
    }
    return 0;
}

/* Parse the popped chain in s and answer it or send it on its way. */
static void handle(struct virtio_blk *b, struct blk_slot *s)
{
    struct virtq_req *r = &s->req;
    s->written = 0;
    s->nseg = 0;
    s->io = IO_NONE;
    /* The status byte is the last byte the device may write (§5.2.6): without one the request
     * cannot even be answered. */
    if (r->in_len == 0) {
        put_slot(b, s);
        fail(b, "request without a status byte");
        return;
    }
    unsigned last = r->n_out + r->n_in;
    while (r->iov[last - 1].iov_len == 0)
        last--;
    struct iovec *st = &r->iov[last - 1];
    s->status = (uint8_t *)st->iov_base + st->iov_len - 1;
    st->iov_len--;
    struct iovec *in = &r->iov[r->n_out];
    unsigned n_in = last - r->n_out;
    uint64_t in_bytes = r->in_len - 1;

    uint8_t hdr[HDR_BYTES];
    if (iov_read(r->iov, r->n_out, 0, hdr, sizeof(hdr)) < sizeof(hdr)) {
        finish(b, s, VIRTIO_BLK_S_IOERR);
        return;
    }
    s->type = le_get32(hdr);
    uint64_t sector = le_get64(hdr + 8);
    struct iovec *out;
    unsigned n_out = iov_skip(r->iov, r->n_out, HDR_BYTES, &out);
    uint64_t out_bytes = r->out_len - HDR_BYTES;

    switch (s->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
        bool read = s->type == VIRTIO_BLK_T_IN;
        uint64_t len = read ? in_bytes : out_bytes;
        if ((!read && b->readonly) || !in_capacity(b, sector, len)) {
            finish(b, s, VIRTIO_BLK_S_IOERR);
            return;
        }
        if (len == 0) {
            finish(b, s, VIRTIO_BLK_S_OK);
            return;
        }
        s->iov = read ? in : out;
        s->niov = read ? n_in : n_out;
        s->left = len;
        s->offset = sector << SECTOR_SHIFT;
        submit(b, s);
        return;
    }
    case VIRTIO_BLK_T_FLUSH:
        submit(b, s);
        return;
    case VIRTIO_BLK_T_GET_ID:
        s->written = iov_write(in, n_in, 0, b->id,
                               in_bytes < VIRTIO_BLK_ID_BYTES ? in_bytes : VIRTIO_BLK_ID_BYTES);
        finish(b, s, VIRTIO_BLK_S_OK);
        return;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
        unsigned st_bad = b->readonly ? VIRTIO_BLK_S_IOERR : parse_dwz(b, s, out, n_out, out_bytes);
        if (st_bad) {
            finish(b, s, (uint8_t)st_bad);
            return;
        }
        submit(b, s);
        return;
    }
    default:
        finish(b, s, VIRTIO_BLK_S_UNSUPP);
        return;
    }
}

/* Pop and dispatch what the driver made available, as far as free slots allow (completions
 * call again), then submit the batch and raise one interrupt for everything answered. */
static void pop_and_dispatch(struct virtio_blk *b)
{
    struct virtio_queue *q = &b->vdev.queues[0];
    if (!b->broken)
        (void)virtq_notifications(&q->vq, false);
    while (!b->broken) {
        struct blk_slot *s = take_slot(b);
        if (!s)
            break;
        int got = virtq_pop(&q->vq, &s->req);
        if (got <= 0) {
            put_slot(b, s);
            if (got < 0)
                fail(b, q->vq.error);
            else if (b->nfree < BLK_QUEUE_SIZE)
                break; /* requests in flight: their completions look again, no kick needed */
            else if (virtq_notifications(&q->vq, true))
                continue; /* buffers arrived while notifications were off */
            break;
        }
        handle(b, s);
    }
}

static void process_queue(struct virtio_blk *b)
{
    pop_and_dispatch(b);
    /* Fast devices (a RAM disk, the page cache) complete inside the submission: reap those at
     * once rather than after a trip through the eventfd and the loop, and look at the ring
     * again. Bounded, so a guest that keeps the ring full cannot starve the loop. */
    for (unsigned round = 0; b->uring && round < 8; round++) {
        ring_submit(b);
        if (!io_uring_cq_ready(&b->ring))
            break;
        ring_reap(b, true);
        pop_and_dispatch(b);
    }
    if (b->uring)
        ring_submit(b);
    virtio_queue_notify(&b->vdev, 0);
}

static void on_kick(void *opaque, uint32_t events)
{
    (void)events;
    struct virtio_blk *b = opaque;
    uint64_t n;
    if (read(b->vdev.queues[0].kick_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        return;
    process_queue(b);
}

static void on_ring(void *opaque, uint32_t events)
{
    (void)events;
    struct virtio_blk *b = opaque;
    uint64_t n;
    (void)!read(b->ring_efd, &n, sizeof(n));
    ring_reap(b, true);
    process_queue(b);
}

static void on_pool(void *opaque, uint32_t events)
{
    (void)events;
    struct virtio_blk *b = opaque;
    struct workpool_job *j = workpool_reap(b->pool);
    while (j) {
        struct workpool_job *next = j->next;
        struct blk_slot *s = (struct blk_slot *)j;
        if (s->refused)
            refuse_direct(b, s);
        else
            complete(b, s);
        j = next;
    }
    process_queue(b);
}

/* ---------------------------------------------------------------- device ops */

static int blk_start(void *dev)
{
    struct virtio_blk *b = dev;
    struct virtq *vq = &b->vdev.queues[0].vq;
    b->broken = false;
    b->dsync = !virtio_has_feature(&b->vdev, VIRTIO_BLK_F_FLUSH);
    /* As many requests in flight as the ring has descriptors: a driver cannot have more
     * outstanding, and a hostile one that reuses heads is simply made to wait. */
    b->nfree = vq->size ? vq->size : 1;
    for (unsigned i = 0; i < b->nfree; i++)
        b->free_idx[i] = (uint16_t)(b->nfree - 1 - i);
    memset(b->busy, 0, sizeof(b->busy));
    b->wait_head = NULL;
    b->wait_tail = &b->wait_head;

    const struct ioloop_watch w[] = {
        {b->vdev.queues[0].kick_fd, EPOLLIN, on_kick, b},
        {b->uring ? b->ring_efd : -1, EPOLLIN, on_ring, b},
        {workpool_fd(b->pool), EPOLLIN, on_pool, b},
    };
    return ioloop_launch("virtio-blk", w, 3, &b->loop);
}

static void blk_stop(void *dev)
{
    struct virtio_blk *b = dev;
    ioloop_destroy(b->loop);
    b->loop = NULL;
    /* No request is answered any more (the rings are being reset), but I/O already in the
     * kernel or on a worker writes into guest memory: wait for all of it before returning. */
    if (b->uring) {
        while (b->ring_inflight) {
            /* Submits what is still queued, too. */
            int r = io_uring_submit_and_wait(&b->ring, 1);
            if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
                /* Stop follows the guest's resets, which it may repeat in a loop. */
                static struct ratelimit rl = RATELIMIT_INIT;
                ratelimit_log(&rl, "revirter: virtio-blk: waiting for I/O: %s", strerror(-r));
                break;
            }
            ring_reap(b, false);
        }
        uint64_t n;
        (void)!read(b->ring_efd, &n, sizeof(n));
    }
    workpool_drain(b->pool);
    for (struct workpool_job *j = workpool_reap(b->pool); j;) {
        struct workpool_job *next = j->next;
        put_slot(b, (struct blk_slot *)j);
        j = next;
    }
    /* Requests the gate held never started: their slots are simply free again. */
    for (struct blk_slot *w = b->wait_head; w; w = w->wait_next)
        put_slot(b, w);
    b->wait_head = NULL;
    b->wait_tail = &b->wait_head;
    memset(b->busy, 0, sizeof(b->busy));
    maybe_close_direct(b);
}

/* ---------------------------------------------------------------- creation */

__attribute__((format(printf, 4, 5))) static int refuse(char *err, size_t errlen, int rc,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* A second descriptor of the image with O_DIRECT: guest data then goes to the disk without a
 * copy in the host's page cache, which would double what the guest caches itself. File systems
 * without direct I/O (tmpfs) leave dfd at -1 and the device buffered. */
static void open_direct(struct virtio_blk *b, const struct virtio_blk_config *cfg)
{
    b->dfd = open(cfg->path, (cfg->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_DIRECT);
    b->dio_align = SECTOR_SIZE;
    struct statx stx;
    if (b->dfd >= 0 && statx(b->dfd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
        (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_mem_align) {
        b->dio_align = stx.stx_dio_mem_align > stx.stx_dio_offset_align ? stx.stx_dio_mem_align
                                                                        : stx.stx_dio_offset_align;
    }
}

/* Open, check and lock the image; fills fd, capacity and the derived id. */
static int open_image(struct virtio_blk *b, const struct virtio_blk_config *cfg, char *err,
                      size_t errlen)
{
    b->fd = open(cfg->path, (cfg->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (b->fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return refuse(err, errlen, -e, "no such file");
        if (e == EISDIR)
            return refuse(err, errlen, -e, "is a directory, not a disk image");
        if ((e == EACCES || e == EROFS || e == EPERM) && !cfg->readonly)
            return refuse(err, errlen, -e, "no write permission (add ,ro to use it read-only)");
        return refuse(err, errlen, -e, "cannot open: %s", strerror(e));
    }
    struct stat sb;
    if (fstat(b->fd, &sb) < 0)
        return refuse(err, errlen, -errno, "cannot stat: %s", strerror(errno));
    uint64_t size;
    if (S_ISREG(sb.st_mode)) {
        size = (uint64_t)sb.st_size;
    } else if (S_ISBLK(sb.st_mode)) {
        if (ioctl(b->fd, BLKGETSIZE64, &size) < 0)
            return refuse(err, errlen, -errno, "cannot read the device's size: %s",
                          strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        return refuse(err, errlen, -EISDIR, "is a directory, not a disk image");
    } else {
        return refuse(err, errlen, -EINVAL, "not a regular file or block device");
    }
    if (size == 0)
        return refuse(err, errlen, -EINVAL, "the image is empty");
    if (size % SECTOR_SIZE)
        return refuse(err, errlen, -EINVAL, "size %llu is not a multiple of 512 bytes",
                      (unsigned long long)size);
    b->capacity = size >> SECTOR_SHIFT;

    /* One writer or many readers: two VMMs writing one image corrupt it. An OFD lock belongs to
     * this open file, so it also keeps two disks of one VMM apart. */
    struct flock lk = {.l_type = cfg->readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(b->fd, F_OFD_SETLK, &lk) < 0) {
        int e = errno;
        if (e == EINVAL) /* no OFD locks: a whole-file flock() does the same job */
            e = flock(b->fd, (cfg->readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0 ? 0 : errno;
        if (e == EAGAIN || e == EACCES || e == EWOULDBLOCK)
            return refuse(err, errlen, -EBUSY, "in use by another process (locked)%s",
                          cfg->readonly ? "" : "; add ,ro to share it read-only");
        if (e)
            return refuse(err, errlen, -e, "cannot lock: %s", strerror(e));
    }

    if (!cfg->buffered)
        open_direct(b, cfg);

    if (cfg->id) {
        memcpy(b->id, cfg->id, strlen(cfg->id));
    } else {
        /* Stable for one file on one host, which is what a guest's /dev/disk/by-id wants. */
        uint64_t h = 0xcbf29ce484222325ull;
        uint64_t parts[2] = {(uint64_t)sb.st_dev, (uint64_t)sb.st_ino};
        for (unsigned i = 0; i < 2; i++) {
            for (unsigned k = 0; k < 8; k++) {
                h ^= (uint8_t)(parts[i] >> (8 * k));
                h *= 0x100000001b3ull;
            }
        }
        char idbuf[VIRTIO_BLK_ID_BYTES + 1];
        snprintf(idbuf, sizeof(idbuf), "revirt-%013llx", (unsigned long long)(h >> 12));
        memcpy(b->id, idbuf, VIRTIO_BLK_ID_BYTES);
    }
    return 0;
}

static void fill_config(struct virtio_blk *b, unsigned discard_align)
{
    uint8_t *c = b->config;
    le_put64(c + VIRTIO_BLK_CFG_CAPACITY, b->capacity);
    le_put32(c + VIRTIO_BLK_CFG_SEG_MAX, BLK_SEG_MAX);
    le_put32(c + VIRTIO_BLK_CFG_BLK_SIZE, SECTOR_SIZE);
    le_put16(c + VIRTIO_BLK_CFG_NUM_QUEUES, 1);
    le_put32(c + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, BLK_MAX_DWZ_SECTORS);
    le_put32(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, BLK_MAX_DWZ_SEG);
    le_put32(c + VIRTIO_BLK_CFG_DISCARD_ALIGNMENT, discard_align);
    le_put32(c + VIRTIO_BLK_CFG_MAX_WZ_SECTORS, BLK_MAX_DWZ_SECTORS);
    le_put32(c + VIRTIO_BLK_CFG_MAX_WZ_SEG, BLK_MAX_DWZ_SEG);
    c[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1;
}

/* io_uring with its completions on an eventfd: 0, or a negative errno when the kernel refuses
 * it (then nothing is left set up). */
static int setup_uring(struct virtio_blk *b)
{
    int r = io_uring_queue_init(BLK_QUEUE_SIZE, &b->ring, 0);
    if (r < 0)
        return r;
    b->ring_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->ring_efd < 0)
        r = -errno;
    else
        r = io_uring_register_eventfd(&b->ring, b->ring_efd);
    if (r == 0)
        return 0;
    if (b->ring_efd >= 0)
        close(b->ring_efd);
    b->ring_efd = -1;
    io_uring_queue_exit(&b->ring);
    return r;
}

static void free_blk(struct virtio_blk *b)
{
    workpool_destroy(b->pool);
    if (b->uring)
        io_uring_queue_exit(&b->ring);
    if (b->ring_efd >= 0)
        close(b->ring_efd);
    if (b->dfd >= 0)
        close(b->dfd);
    if (b->fd >= 0)
        close(b->fd); /* drops the lock */
    for (unsigned i = 0; i < BLK_QUEUE_SIZE; i++)
        free(b->slots[i]);
    free(b);
}

int virtio_blk_create(const struct virtio_blk_config *cfg, const struct guest_mem *mem,
                      struct virtio_blk **out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!cfg || !cfg->path || !mem || !out)
        return refuse(err, errlen, -EINVAL, "no image path");
    if (cfg->id && strlen(cfg->id) > VIRTIO_BLK_ID_BYTES)
        return refuse(err, errlen, -EINVAL, "id is longer than %d bytes", VIRTIO_BLK_ID_BYTES);
    struct virtio_blk *b = calloc(1, sizeof(*b));
    if (!b)
        return refuse(err, errlen, -ENOMEM, "out of memory");
    b->fd = -1;
    b->dfd = -1;
    b->ring_efd = -1;
    b->readonly = cfg->readonly;
    int r = open_image(b, cfg, err, errlen);
    if (r < 0)
        goto fail;

    struct stat sb;
    unsigned align = 1;
    if (fstat(b->fd, &sb) == 0 && sb.st_blksize >= (blksize_t)SECTOR_SIZE &&
        sb.st_blksize <= 1024 * 1024)
        align = (unsigned)(sb.st_blksize / SECTOR_SIZE);
    fill_config(b, align);

    if (cfg->aio != VIRTIO_BLK_AIO_THREADS) {
        r = setup_uring(b);
        b->uring = r == 0;
        if (r < 0 && cfg->aio == VIRTIO_BLK_AIO_URING) {
            refuse(err, errlen, r, "io_uring is not available: %s (aio=threads does without)",
                   strerror(-r));
            goto fail;
        }
    }
    r = workpool_create("virtio-blk-io", b->uring ? 1 : BLK_POOL_THREADS, &b->pool);
    if (r < 0) {
        refuse(err, errlen, r, "cannot start I/O threads: %s", strerror(-r));
        goto fail;
    }
    b->slots[0] = malloc(sizeof(*b->slots[0]));
    if (!b->slots[0]) {
        r = refuse(err, errlen, -ENOMEM, "out of memory");
        goto fail;
    }

    b->ops = (struct virtio_device_ops){
        .name = "virtio-blk",
        .device_id = VIRTIO_ID_BLOCK,
        .num_queues = 1,
        .queue_size = BLK_QUEUE_SIZE,
        .features = VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
                    VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
                    (b->readonly ? VIRTIO_BIT(VIRTIO_BLK_F_RO)
                                 : VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |
                                       VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES)),
        .start = blk_start,
        .stop = blk_stop,
    };
    r = virtio_device_init(&b->vdev, &b->ops, b, b->config, sizeof(b->config), mem);
    if (r < 0) {
        refuse(err, errlen, r, "cannot set up the device: %s", strerror(-r));
        goto fail;
    }
    *out = b;
    return 0;

fail:
    free_blk(b);
    return r;
}

struct virtio_device *virtio_blk_device(struct virtio_blk *b)
{
    return &b->vdev;
}

const char *virtio_blk_backend(const struct virtio_blk *b)
{
    return b->uring ? "io_uring" : "threads";
}

void virtio_blk_destroy(struct virtio_blk *b)
{
    if (!b)
        return;
    virtio_device_cleanup(&b->vdev);
    free_blk(b);
}

void virtio_blk_test_dio_align(struct virtio_blk *b, unsigned align)
{
    b->dio_align = align ? align : 1;
}

bool virtio_blk_test_direct(const struct virtio_blk *b)
{
    return b->dfd >= 0;
}
