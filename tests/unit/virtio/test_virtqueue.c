/* SPDX-License-Identifier: MIT */
/* Split virtqueue: rings built by hand in two RAM regions around a hole, well-formed and hostile.
 */
#include "../check.h"
#include "virtio/virtqueue.h"
#include "lib/le.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

/* RAM ends at 3 GiB and starts again at 4 GiB, as on a PC; both regions are exactly sized heap
 * blocks, so a sanitizer catches any access past them. */
#define LO_SIZE 0x10000ull
#define LO_GPA (0xc0000000ull - LO_SIZE)
#define HI_SIZE 0x10000ull
#define HI_GPA 0x100000000ull
#define HOLE_GPA 0xc0000000ull

#define DESC_GPA LO_GPA
#define AVAIL_GPA (LO_GPA + 0x4000)
#define USED_GPA (LO_GPA + 0x6000)
#define IND_GPA (LO_GPA + 0x8000) /* indirect tables */
#define BUF_GPA (LO_GPA + 0xc000) /* buffers */

struct rig {
    struct guest_mem mem;
    uint8_t *lo, *hi;
    uint8_t *snap_lo, *snap_hi; /* copies taken before a pop that must fail */
    struct virtq q;
    uint16_t size;
    uint16_t avail_idx; /* the driver's next avail->idx */
    uint64_t desc_gpa, avail_gpa, used_gpa;
    bool event_idx, indirect;
};

static uint8_t *host(struct rig *g, uint64_t gpa, uint64_t len)
{
    uint8_t *p = guest_mem_ptr(&g->mem, gpa, len);
    if (!p) {
        printf("# test bug: gpa 0x%llx not in RAM\n", (unsigned long long)gpa);
        abort();
    }
    return p;
}

static void put16(struct rig *g, uint64_t gpa, uint16_t v)
{
    le_put16(host(g, gpa, 2), v);
}

static void put32(struct rig *g, uint64_t gpa, uint32_t v)
{
    le_put32(host(g, gpa, 4), v);
}

static void put64(struct rig *g, uint64_t gpa, uint64_t v)
{
    le_put64(host(g, gpa, 8), v);
}

static uint16_t get16(struct rig *g, uint64_t gpa)
{
    return le_get16(host(g, gpa, 2));
}

static uint32_t get32(struct rig *g, uint64_t gpa)
{
    return le_get32(host(g, gpa, 4));
}

/* Descriptor i of the table at table_gpa. */
static void desc(struct rig *g, uint64_t table_gpa, unsigned i, uint64_t addr, uint32_t len,
                 uint16_t flags, uint16_t next)
{
    uint64_t d = table_gpa + 16ull * i;
    put64(g, d, addr);
    put32(g, d + 8, len);
    put16(g, d + 12, flags);
    put16(g, d + 14, next);
}

/* Make the chain at head available, as a driver does (§2.7.13): ring entry, then idx. */
static void offer(struct rig *g, uint16_t head)
{
    put16(g, g->avail_gpa + 4 + 2ull * (g->avail_idx % g->size), head);
    g->avail_idx++;
    put16(g, g->avail_gpa + 2, g->avail_idx);
}

static uint16_t used_idx(struct rig *g)
{
    return get16(g, g->used_gpa + 2);
}

static void set_used_event(struct rig *g, uint16_t v)
{
    put16(g, g->avail_gpa + 4 + 2ull * g->size, v);
}

static uint16_t avail_event(struct rig *g)
{
    return get16(g, g->used_gpa + 4 + 8ull * g->size);
}

static void rig_init_at(struct rig *g, uint16_t size, bool event_idx, bool indirect, uint64_t d,
                        uint64_t a, uint64_t u)
{
    memset(g, 0, sizeof(*g));
    g->lo = calloc(1, LO_SIZE);
    g->hi = calloc(1, HI_SIZE);
    g->snap_lo = malloc(LO_SIZE);
    g->snap_hi = malloc(HI_SIZE);
    if (!g->lo || !g->hi || !g->snap_lo || !g->snap_hi)
        abort();
    CHECK_EQ(guest_mem_add(&g->mem, LO_GPA, g->lo, LO_SIZE), 0);
    CHECK_EQ(guest_mem_add(&g->mem, HI_GPA, g->hi, HI_SIZE), 0);
    g->size = size;
    g->desc_gpa = d;
    g->avail_gpa = a;
    g->used_gpa = u;
    g->event_idx = event_idx;
    g->indirect = indirect;
    virtq_init(&g->q, &g->mem);
    CHECK_EQ(virtq_setup(&g->q, size, d, a, u, event_idx, indirect), 0);
    CHECK(g->q.ready, "ready after setup");
}

static void rig_init(struct rig *g, uint16_t size, bool event_idx, bool indirect)
{
    rig_init_at(g, size, event_idx, indirect, DESC_GPA, AVAIL_GPA, USED_GPA);
}

static void rig_free(struct rig *g)
{
    free(g->lo);
    free(g->hi);
    free(g->snap_lo);
    free(g->snap_hi);
}

/* Start both free-running indices at v, as after 65536 - v requests. */
static void rig_start_at(struct rig *g, uint16_t v)
{
    g->q.last_avail = g->q.used_idx = v;
    g->avail_idx = v;
    put16(g, g->avail_gpa + 2, v);
    put16(g, g->used_gpa + 2, v);
}

/* The next pop must break the queue without writing a byte of guest memory, and the queue
 * must stay broken until it is set up again. */
static void expect_broken(struct rig *g, const char *what)
{
    struct virtq_req r;
    const uint16_t last = g->q.last_avail;

    memcpy(g->snap_lo, g->lo, LO_SIZE);
    memcpy(g->snap_hi, g->hi, HI_SIZE);
    CHECK_EQ(virtq_pop(&g->q, &r), -EIO);
    CHECK(g->q.broken && g->q.error, "%s: broken with a reason", what);
    CHECK(memcmp(g->snap_lo, g->lo, LO_SIZE) == 0 && memcmp(g->snap_hi, g->hi, HI_SIZE) == 0,
          "%s: guest memory untouched", what);
    CHECK_EQ(g->q.last_avail, last);
    CHECK_EQ(virtq_pop(&g->q, &r), -EIO);
    CHECK_EQ(virtq_push(&g->q, 0, 0), -EIO);
    CHECK(!virtq_has_work(&g->q), "%s: no work on a broken queue", what);
    CHECK(!virtq_should_notify(&g->q), "%s: no interrupt from a broken queue", what);

    /* A device reset and a new setup bring the queue back. */
    virtq_reset(&g->q);
    CHECK(!g->q.broken && !g->q.ready && g->q.mem == &g->mem, "%s: reset", what);
    CHECK_EQ(virtq_pop(&g->q, &r), 0);
    CHECK_EQ(virtq_setup(&g->q, g->size, g->desc_gpa, g->avail_gpa, g->used_gpa, g->event_idx,
                         g->indirect),
             0);
    CHECK(!g->q.broken && g->q.error == NULL, "%s: set up again", what);
}

static struct virtq_req req; /* 4 KiB of iovecs: keep it off the stack */

static void test_simple_chain(void)
{
    struct rig g;
    rig_init(&g, 8, false, false);
    CHECK_EQ(virtq_pop(&g.q, &req), 0);
    CHECK(!virtq_has_work(&g.q), "empty ring");

    desc(&g, DESC_GPA, 5, BUF_GPA, 100, VIRTQ_DESC_F_NEXT, 2);
    desc(&g, DESC_GPA, 2, BUF_GPA + 0x100, 20, VIRTQ_DESC_F_NEXT, 7);
    desc(&g, DESC_GPA, 7, HI_GPA + 0x10, 30, 0, 0);
    offer(&g, 5);
    CHECK(virtq_has_work(&g.q), "one chain");
    CHECK_EQ(virtq_pop(&g.q, &req), 1);
    CHECK_EQ(req.head, 5);
    CHECK_EQ(req.n_out, 3);
    CHECK_EQ(req.n_in, 0);
    CHECK_EQ(req.out_len, 150);
    CHECK_EQ(req.in_len, 0);
    CHECK(req.iov[0].iov_base == g.lo + (BUF_GPA - LO_GPA) && req.iov[0].iov_len == 100, "iov0");
    CHECK(req.iov[1].iov_base == g.lo + (BUF_GPA + 0x100 - LO_GPA) && req.iov[1].iov_len == 20,
          "iov1");
    CHECK(req.iov[2].iov_base == g.hi + 0x10 && req.iov[2].iov_len == 30, "iov2 in high RAM");
    CHECK_EQ(virtq_pop(&g.q, &req), 0);
    CHECK(!virtq_has_work(&g.q), "drained");

    /* A zero-length buffer is legal and gives an empty segment. */
    desc(&g, DESC_GPA, 0, BUF_GPA, 0, 0, 0);
    offer(&g, 0);
    CHECK_EQ(virtq_pop(&g.q, &req), 1);
    CHECK(req.n_out == 1 && req.iov[0].iov_len == 0 && req.out_len == 0, "empty segment");

    /* A buffer ending exactly at the end of a region is inside it. */
    desc(&g, DESC_GPA, 1, HI_GPA + HI_SIZE - 64, 64, 0, 0);
    offer(&g, 1);
    CHECK_EQ(virtq_pop(&g.q, &req), 1);
    CHECK(req.iov[0].iov_base == g.hi + HI_SIZE - 64, "last bytes of high RAM");
    rig_free(&g);
}

static void test_readable_writable(void)
{
    struct rig g;
    rig_init(&g, 4, false, false);
    desc(&g, DESC_GPA, 0, BUF_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
    desc(&g, DESC_GPA, 1, BUF_GPA + 16, 512, VIRTQ_DESC_F_NEXT, 3);
    desc(&g, DESC_GPA, 3, BUF_GPA + 0x400, 1000, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
    desc(&g, DESC_GPA, 2, BUF_GPA + 0x800, 1, VIRTQ_DESC_F_WRITE, 0);
    offer(&g, 0);
    CHECK_EQ(virtq_pop(&g.q, &req), 1);
    CHECK_EQ(req.n_out, 2);
    CHECK_EQ(req.n_in, 2);
    CHECK_EQ(req.out_len, 528);
    CHECK_EQ(req.in_len, 1001);
    CHECK(req.iov[2].iov_base == g.lo + (BUF_GPA + 0x400 - LO_GPA), "first writable segment");
    CHECK_EQ(req.iov[3].iov_len, 1);

    /* Only writable segments. */
    desc(&g, DESC_GPA, 1, BUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
    offer(&g, 1);
    CHECK_EQ(virtq_pop(&g.q, &req), 1);
    CHECK(req.n_out == 0 && req.n_in == 1 && req.in_len == 8, "writable only");
    rig_free(&g);
}

static void test_indirect(void)
{
    struct rig g;
    rig_init(&g, 8, false, true);
    /* Head 3 points at a table of 3: one readable, two writable, chained out of order. The
     * WRITE flag on the indirect descriptor itself is ignored (§2.7.5.3.2). */
    desc(&g, DESC_GPA, 3, IND_GPA, 48, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
    desc(&g, IND_GPA, 0, BUF_GPA, 10, VIRTQ_DESC_F_NEXT, 2);
    desc(&g, IND_GPA, 2, BUF_GPA + 0x10, 20, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
    desc(&g, IND_GPA, 1, HI_GPA, 30, VIRTQ_DESC_F_WRITE, 0);
    offer(&g, 3);
    CHECK_EQ(virtq_pop(&g.q, &req), 1);
    CHECK_EQ(req.head, 3);
    CHECK(req.n_out == 1 && req.n_in == 2, "out %u in %u", req.n_out, req.n_in);
    CHECK(req.out_len == 10 && req.in_len == 50, "lengths");
    CHECK(req.iov[2].iov_base == g.hi, "indirect entry in high RAM");

    /* Direct descriptors followed by one indirect descriptor (§2.7.5.3.2). */
    desc(&g, DESC_GPA, 0, BUF_GPA + 0x100, 4, VIRTQ_DESC_F_NEXT, 1);
    desc(&g, DESC_GPA, 1, IND_GPA + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
    desc(&g, IND_GPA + 0x100, 0, BUF_GPA + 0x200, 6, VIRTQ_DESC_F_WRITE, 0);
    offer(&g, 0);
    CHECK_EQ(virtq_pop(&g.q, &req), 1);
    CHECK(req.n_out == 1 && req.n_in == 1 && req.out_len == 4 && req.in_len == 6, "mixed");

    /* An indirect table may hold up to queue size entries. */
    desc(&g, DESC_GPA, 2, IND_GPA + 0x200, 16 * 8, VIRTQ_DESC_F_INDIRECT, 0);
    for (unsigned i = 0; i < 8; i++)
        desc(&g, IND_GPA + 0x200, i, BUF_GPA + i, 1, i < 7 ? VIRTQ_DESC_F_NEXT : 0,
             (uint16_t)(i + 1));
    offer(&g, 2);
    CHECK_EQ(virtq_pop(&g.q, &req), 1);
    CHECK_EQ(req.n_out, 8);
    rig_free(&g);
}

static void test_push(void)
{
    struct rig g;
    rig_init(&g, 4, false, false);
    for (uint16_t i = 0; i < 6; i++) {
        CHECK_EQ(virtq_push(&g.q, (uint16_t)(3 - i % 4), 100u + i), 0);
        const uint64_t elem = USED_GPA + 4 + 8ull * (i % 4);
        CHECK_EQ(get32(&g, elem), 3 - i % 4);
        CHECK_EQ(get32(&g, elem + 4), 100 + i);
        CHECK_EQ(used_idx(&g), i + 1);
    }
    CHECK_EQ(g.q.used_idx, 6);

    /* A head the device never popped from this queue breaks it. */
    CHECK_EQ(virtq_push(&g.q, 4, 0), -EIO);
    CHECK(g.q.broken, "broken");
    CHECK_EQ(used_idx(&g), 6);
    rig_free(&g);

    struct virtq q;
    virtq_init(&q, NULL);
    CHECK_EQ(virtq_push(&q, 0, 0), -EIO);
}

/* Pop and push n one-descriptor chains around the 16-bit wrap. */
static void cycle(struct rig *g, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint16_t head = (uint16_t)(g->avail_idx % g->size);
        desc(g, DESC_GPA, head, BUF_GPA, 8, VIRTQ_DESC_F_WRITE, 0);
        offer(g, head);
        CHECK_EQ(virtq_pop(&g->q, &req), 1);
        CHECK_EQ(req.head, head);
        CHECK_EQ(virtq_push(&g->q, head, 8), 0);
    }
}

static void test_event_idx_wrap(void)
{
    struct rig g;
    rig_init(&g, 8, true, false);
    rig_start_at(&g, 0xfffe);
    CHECK(virtq_should_notify(&g.q), "first check always notifies");
    CHECK(!virtq_should_notify(&g.q), "nothing pushed since");

    /* used_event 0xffff: interrupt once entry 0xffff is used, i.e. used->idx reaches 0. */
    set_used_event(&g, 0xffff);
    cycle(&g, 1); /* used->idx 0xffff */
    CHECK(!virtq_should_notify(&g.q), "entry 0xfffe used, not yet 0xffff");
    cycle(&g, 1); /* 0x0000 */
    CHECK_EQ(used_idx(&g), 0);
    CHECK(virtq_should_notify(&g.q), "entry 0xffff used, across the wrap");
    cycle(&g, 1); /* 0x0001 */
    CHECK(!virtq_should_notify(&g.q), "already signalled past used_event");

    set_used_event(&g, 3);
    cycle(&g, 2); /* 0x0003 */
    CHECK(!virtq_should_notify(&g.q), "entry 3 not used yet");
    cycle(&g, 1); /* 0x0004 */
    CHECK(virtq_should_notify(&g.q), "entry 3 used");

    /* Several pushes between checks: notify if used_event is anywhere in the batch. */
    set_used_event(&g, 5);
    cycle(&g, 3); /* 0x0007 */
    CHECK(virtq_should_notify(&g.q), "used_event inside a batch");
    set_used_event(&g, 0x8000);
    cycle(&g, 5);
    CHECK(!virtq_should_notify(&g.q), "used_event far ahead");

    /* avail_event tells the driver which entry to kick for: the next one we would pop. */
    CHECK(!virtq_notifications(&g.q, true), "nothing pending");
    CHECK_EQ(avail_event(&g), g.q.last_avail);
    CHECK(!virtq_notifications(&g.q, false), "disabling never asks to pop");
    desc(&g, DESC_GPA, 0, BUF_GPA, 8, 0, 0);
    offer(&g, 0);
    CHECK(virtq_notifications(&g.q, true), "a buffer came while suppressed");
    CHECK_EQ(avail_event(&g), g.q.last_avail);
    CHECK_EQ(virtq_pop(&g.q, &req), 1);
    rig_free(&g);
}

static void test_event_idx_start_wrap(void)
{
    /* The avail side across the wrap with an almost full ring. */
    struct rig g;
    rig_init(&g, 4, true, false);
    rig_start_at(&g, 0xfffd);
    for (uint16_t i = 0; i < 4; i++) {
        desc(&g, DESC_GPA, i, BUF_GPA + i, 1, 0, 0);
        offer(&g, i);
    }
    CHECK_EQ(get16(&g, AVAIL_GPA + 2), 1);
    for (uint16_t i = 0; i < 4; i++) {
        CHECK_EQ(virtq_pop(&g.q, &req), 1);
        CHECK_EQ(req.head, i);
    }
    CHECK_EQ(virtq_pop(&g.q, &req), 0);
    CHECK_EQ(g.q.last_avail, 1);
    rig_free(&g);
}

static void test_no_event_idx_flags(void)
{
    struct rig g;
    rig_init(&g, 8, false, false);
    cycle(&g, 1);
    CHECK(virtq_should_notify(&g.q), "interrupts wanted by default");
    CHECK(!virtq_should_notify(&g.q), "nothing new");
    put16(&g, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
    cycle(&g, 1);
    CHECK(!virtq_should_notify(&g.q), "NO_INTERRUPT");
    put16(&g, AVAIL_GPA, 0);
    cycle(&g, 1);
    CHECK(virtq_should_notify(&g.q), "interrupts back");

    CHECK(!virtq_notifications(&g.q, false), "disable");
    CHECK_EQ(get16(&g, USED_GPA), VIRTQ_USED_F_NO_NOTIFY);
    CHECK(!virtq_notifications(&g.q, true), "enable, nothing pending");
    CHECK_EQ(get16(&g, USED_GPA), 0);
    virtq_notifications(&g.q, false);
    desc(&g, DESC_GPA, 0, BUF_GPA, 8, 0, 0);
    offer(&g, 0);
    CHECK(virtq_notifications(&g.q, true), "pending after enable");
    rig_free(&g);
}

static void test_rings_in_high_ram(void)
{
    struct rig g;
    rig_init_at(&g, 16, true, true, HI_GPA + 0x1000, HI_GPA + 0x2000, HI_GPA + 0x3000);
    desc(&g, HI_GPA + 0x1000, 15, BUF_GPA, 64, VIRTQ_DESC_F_WRITE, 0);
    offer(&g, 15);
    CHECK_EQ(virtq_pop(&g.q, &req), 1);
    CHECK_EQ(virtq_push(&g.q, req.head, 64), 0);
    CHECK_EQ(used_idx(&g), 1);
    rig_free(&g);
}

static void test_setup_errors(void)
{
    struct rig g;
    rig_init(&g, 8, false, false);
    struct virtq *q = &g.q;
    const uint64_t end = LO_GPA + LO_SIZE;

    CHECK_EQ(virtq_setup(q, 0, DESC_GPA, AVAIL_GPA, USED_GPA, false, false), -EINVAL);
    CHECK_EQ(virtq_setup(q, 6, DESC_GPA, AVAIL_GPA, USED_GPA, false, false), -EINVAL);
    CHECK_EQ(virtq_setup(q, 2048, DESC_GPA, AVAIL_GPA, USED_GPA, false, false), -EINVAL);
    CHECK_EQ(virtq_setup(q, 8, DESC_GPA + 8, AVAIL_GPA, USED_GPA, false, false), -EINVAL);
    CHECK_EQ(virtq_setup(q, 8, DESC_GPA, AVAIL_GPA + 1, USED_GPA, false, false), -EINVAL);
    CHECK_EQ(virtq_setup(q, 8, DESC_GPA, AVAIL_GPA, USED_GPA + 2, false, false), -EINVAL);
    CHECK_EQ(virtq_setup(q, 8, HOLE_GPA, AVAIL_GPA, USED_GPA, false, false), -EINVAL);
    CHECK_EQ(virtq_setup(q, 8, end - 64, AVAIL_GPA, USED_GPA, false, false), -EINVAL);
    CHECK_EQ(virtq_setup(q, 8, DESC_GPA, HOLE_GPA, USED_GPA, false, false), -EINVAL);
    CHECK_EQ(virtq_setup(q, 8, DESC_GPA, AVAIL_GPA, end - 16, false, false), -EINVAL);
    CHECK_EQ(virtq_setup(q, 8, DESC_GPA, AVAIL_GPA, UINT64_MAX - 3, false, false), -EINVAL);
    CHECK(!q->ready, "not ready after a failed setup");
    struct virtq_req r;
    CHECK_EQ(virtq_pop(q, &r), 0);
    CHECK(!virtq_has_work(q) && !virtq_should_notify(q) && !virtq_notifications(q, true),
          "a queue that is not ready does nothing");

    /* The event fields count only with event_idx: avail ends with ring[7], used with ring[7]. */
    CHECK_EQ(virtq_setup(q, 8, DESC_GPA, end - 20, USED_GPA, false, false), 0);
    CHECK_EQ(virtq_setup(q, 8, DESC_GPA, end - 20, USED_GPA, true, false), -EINVAL);
    CHECK_EQ(virtq_setup(q, 8, DESC_GPA, AVAIL_GPA, end - 68, false, false), 0);
    CHECK_EQ(virtq_setup(q, 8, DESC_GPA, AVAIL_GPA, end - 68, true, false), -EINVAL);
    CHECK_EQ(virtq_setup(q, 8, end - 128, AVAIL_GPA, USED_GPA, true, true), 0);
    CHECK_EQ(virtq_setup(q, VIRTQ_MAX_SIZE, DESC_GPA, AVAIL_GPA, USED_GPA, true, true), 0);
    CHECK_EQ(virtq_setup(q, VIRTQ_MAX_SIZE, DESC_GPA, AVAIL_GPA, end - 0x1000, true, true),
             -EINVAL);
    CHECK_EQ(virtq_setup(q, VIRTQ_MAX_SIZE, end - 0x2000, AVAIL_GPA, USED_GPA, true, true),
             -EINVAL);
    rig_free(&g);
}

static void test_hostile_ranges(void)
{
    struct rig g;
    rig_init(&g, 8, false, true);

    /* Head out of range. */
    offer(&g, 8);
    expect_broken(&g, "head == size");
    g.avail_idx = 0;
    desc(&g, DESC_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 8);
    offer(&g, 0);
    expect_broken(&g, "next == size");

    struct {
        uint64_t addr;
        uint32_t len;
        const char *what;
    } bad[] = {
        {HOLE_GPA + 0x1000, 16, "address in the hole"},
        {LO_GPA + LO_SIZE - 8, 16, "buffer spanning the hole"},
        {HI_GPA + HI_SIZE - 1, 2, "buffer past the end of RAM"},
        {0xfffffffffffffff0ull, 0x20, "address + length overflows 2^64"},
        {UINT64_MAX, 0, "empty buffer outside RAM"},
        {0, 16, "page zero is not RAM here"},
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        g.avail_idx = 0;
        desc(&g, DESC_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
        desc(&g, DESC_GPA, 1, bad[i].addr, bad[i].len, VIRTQ_DESC_F_WRITE, 0);
        offer(&g, 0);
        expect_broken(&g, bad[i].what);
    }

    /* The same through an indirect table. */
    g.avail_idx = 0;
    desc(&g, DESC_GPA, 0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
    desc(&g, IND_GPA, 0, 0xfffffffffffffff0ull, 0x20, 0, 0);
    offer(&g, 0);
    expect_broken(&g, "indirect entry overflows 2^64");

    /* Avail idx more than size ahead: the driver cannot have made that many available. */
    g.avail_idx = 0;
    desc(&g, DESC_GPA, 0, BUF_GPA, 8, 0, 0);
    put16(&g, AVAIL_GPA + 2, 9);
    expect_broken(&g, "avail idx 9 ahead with size 8");
    put16(&g, AVAIL_GPA + 2, 0xffff);
    expect_broken(&g, "avail idx behind");
    rig_free(&g);
}

static void test_hostile_chains(void)
{
    struct rig g;
    rig_init(&g, 8, false, true);

    desc(&g, DESC_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
    desc(&g, DESC_GPA, 1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 0);
    offer(&g, 0);
    expect_broken(&g, "loop in the next chain");

    g.avail_idx = 0;
    desc(&g, DESC_GPA, 3, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 3);
    offer(&g, 3);
    expect_broken(&g, "descriptor pointing at itself");

    g.avail_idx = 0;
    desc(&g, DESC_GPA, 0, IND_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
    desc(&g, IND_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
    desc(&g, IND_GPA, 1, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 0);
    offer(&g, 0);
    expect_broken(&g, "loop inside an indirect table");

    g.avail_idx = 0;
    desc(&g, DESC_GPA, 0, IND_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
    desc(&g, IND_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
    desc(&g, IND_GPA, 1, IND_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
    offer(&g, 0);
    expect_broken(&g, "indirect table pointing at itself (nested)");

    g.avail_idx = 0;
    desc(&g, DESC_GPA, 0, IND_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
    desc(&g, IND_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
    offer(&g, 0);
    expect_broken(&g, "indirect next beyond the table");

    g.avail_idx = 0;
    desc(&g, DESC_GPA, 0, IND_GPA, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
    desc(&g, DESC_GPA, 1, BUF_GPA, 8, 0, 0);
    desc(&g, IND_GPA, 0, BUF_GPA, 8, 0, 0);
    offer(&g, 0);
    expect_broken(&g, "INDIRECT together with NEXT");

    const uint32_t bad_len[] = {0, 8, 24, 33};
    for (unsigned i = 0; i < sizeof(bad_len) / sizeof(bad_len[0]); i++) {
        g.avail_idx = 0;
        desc(&g, DESC_GPA, 0, IND_GPA, bad_len[i], VIRTQ_DESC_F_INDIRECT, 0);
        offer(&g, 0);
        expect_broken(&g, "indirect table length not a multiple of 16");
    }

    g.avail_idx = 0;
    desc(&g, DESC_GPA, 0, LO_GPA + LO_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
    offer(&g, 0);
    expect_broken(&g, "indirect table crossing the end of RAM");

    g.avail_idx = 0;
    desc(&g, DESC_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    desc(&g, DESC_GPA, 1, BUF_GPA, 8, 0, 0);
    offer(&g, 0);
    expect_broken(&g, "readable after writable");

    g.avail_idx = 0;
    desc(&g, DESC_GPA, 0, BUF_GPA, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    desc(&g, DESC_GPA, 1, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
    desc(&g, IND_GPA, 0, BUF_GPA, 8, 0, 0);
    offer(&g, 0);
    expect_broken(&g, "readable indirect entry after a writable direct one");

    /* Longer than the queue: 9 entries in a table with size 8, or 3 direct + 6 indirect. */
    g.avail_idx = 0;
    desc(&g, DESC_GPA, 0, IND_GPA, 16 * 9, VIRTQ_DESC_F_INDIRECT, 0);
    for (unsigned i = 0; i < 9; i++)
        desc(&g, IND_GPA, i, BUF_GPA, 1, i < 8 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    offer(&g, 0);
    expect_broken(&g, "indirect chain longer than the queue");
    g.avail_idx = 0;
    desc(&g, DESC_GPA, 0, BUF_GPA, 1, VIRTQ_DESC_F_NEXT, 1);
    desc(&g, DESC_GPA, 1, BUF_GPA, 1, VIRTQ_DESC_F_NEXT, 2);
    desc(&g, DESC_GPA, 2, BUF_GPA, 1, VIRTQ_DESC_F_NEXT, 3);
    desc(&g, DESC_GPA, 3, IND_GPA + 16 * 3, 16 * 6, VIRTQ_DESC_F_INDIRECT, 0);
    offer(&g, 0);
    expect_broken(&g, "direct and indirect together longer than the queue");
    rig_free(&g);

    rig_init(&g, 8, false, false);
    desc(&g, DESC_GPA, 0, IND_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
    desc(&g, IND_GPA, 0, BUF_GPA, 8, 0, 0);
    offer(&g, 0);
    expect_broken(&g, "INDIRECT without the feature");
    rig_free(&g);
}

static void test_max_chain(void)
{
    /* With size 1024 the cap is VIRTQ_MAX_CHAIN: 256 entries pass, 257 do not. */
    struct rig g;
    rig_init_at(&g, VIRTQ_MAX_SIZE, false, true, LO_GPA, LO_GPA + 0x4000, LO_GPA + 0x5000);
    const uint64_t table = HI_GPA;
    for (unsigned i = 0; i < VIRTQ_MAX_CHAIN + 1; i++)
        desc(&g, table, i, HI_GPA + 0x8000 + i, 1, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1));
    desc(&g, table, VIRTQ_MAX_CHAIN - 1, HI_GPA + 0x8000, 1, 0, 0);
    desc(&g, LO_GPA, 0, table, 16 * (VIRTQ_MAX_CHAIN + 1), VIRTQ_DESC_F_INDIRECT, 0);
    offer(&g, 0);
    CHECK_EQ(virtq_pop(&g.q, &req), 1);
    CHECK_EQ(req.n_out, VIRTQ_MAX_CHAIN);
    desc(&g, table, VIRTQ_MAX_CHAIN - 1, HI_GPA + 0x8000, 1, VIRTQ_DESC_F_NEXT, VIRTQ_MAX_CHAIN);
    offer(&g, 0);
    CHECK_EQ(virtq_pop(&g.q, &req), -EIO);
    CHECK(g.q.broken && strstr(g.q.error, "too long"), "257 entries: %s", g.q.error);

    /* A direct chain longer than the cap, looping over all 1024 entries. */
    CHECK_EQ(
        virtq_setup(&g.q, VIRTQ_MAX_SIZE, LO_GPA, LO_GPA + 0x4000, LO_GPA + 0x5000, false, true),
        0);
    g.avail_idx = 0;
    for (unsigned i = 0; i < VIRTQ_MAX_SIZE; i++)
        desc(&g, LO_GPA, i, BUF_GPA, 1, VIRTQ_DESC_F_NEXT, (uint16_t)((i + 1) % VIRTQ_MAX_SIZE));
    offer(&g, 0);
    CHECK_EQ(virtq_pop(&g.q, &req), -EIO);
    CHECK(g.q.broken && strstr(g.q.error, "too long"), "long direct chain: %s", g.q.error);
    rig_free(&g);
}

/* A driver thread and a device thread through the real orderings: every request's payload
 * must arrive intact and in order, and none may be lost with notifications suppressed. */
#define STRESS_N 50000u

struct stress {
    struct rig *g;
};

static void *stress_driver(void *arg)
{
    struct stress *s = arg;
    struct rig *g = s->g;
    uint16_t *avail = (uint16_t *)host(g, g->avail_gpa, 4 + 2 * g->size);
    uint16_t *used = (uint16_t *)host(g, g->used_gpa, 4);
    uint32_t *payload = (uint32_t *)host(g, BUF_GPA, 4 * g->size);
    uint32_t sent = 0;

    while (sent < STRESS_N) {
        uint16_t done = __atomic_load_n(&used[1], __ATOMIC_ACQUIRE);
        if ((uint16_t)(g->avail_idx - done) >= g->size) {
            sched_yield(); /* full: let the device catch up, even on one CPU */
            continue;
        }
        uint16_t slot = (uint16_t)(g->avail_idx % g->size);
        payload[slot] = sent++;
        __atomic_store_n(&avail[2 + slot], slot, __ATOMIC_RELAXED);
        __atomic_store_n(&avail[1], (uint16_t)(g->avail_idx + 1), __ATOMIC_RELEASE);
        g->avail_idx++;
    }
    return NULL;
}

static void test_two_threads(void)
{
    struct rig g;
    rig_init(&g, 16, true, false);
    for (uint16_t i = 0; i < 16; i++)
        desc(&g, DESC_GPA, i, BUF_GPA + 4ull * i, 4, 0, 0);
    struct stress s = {.g = &g};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, stress_driver, &s), 0);
    uint32_t expect = 0, bad = 0;
    while (expect < STRESS_N) {
        virtq_notifications(&g.q, false);
        int rc;
        while ((rc = virtq_pop(&g.q, &req)) == 1) {
            uint32_t v;
            memcpy(&v, req.iov[0].iov_base, 4);
            bad += v != expect++;
            if (virtq_push(&g.q, req.head, 0) != 0)
                bad++;
        }
        if (rc < 0) {
            CHECK(0, "pop failed: %s", g.q.error);
            break;
        }
        if (!virtq_notifications(&g.q, true))
            sched_yield(); /* a real device would sleep until the kick here */
    }
    pthread_join(t, NULL);
    CHECK_EQ(bad, 0);
    CHECK_EQ(expect, STRESS_N);
    rig_free(&g);
}

int main(void)
{
    RUN(test_simple_chain);
    RUN(test_readable_writable);
    RUN(test_indirect);
    RUN(test_push);
    RUN(test_event_idx_wrap);
    RUN(test_event_idx_start_wrap);
    RUN(test_no_event_idx_flags);
    RUN(test_rings_in_high_ram);
    RUN(test_setup_errors);
    RUN(test_hostile_ranges);
    RUN(test_hostile_chains);
    RUN(test_max_chain);
    RUN(test_two_threads);
    return check_done();
}
