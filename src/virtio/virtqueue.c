/* SPDX-License-Identifier: MIT */
/* Device side of split virtqueues (virtio 1.2 §2.7), hardened against a hostile driver. */
#include "virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

/*
 * Threat model: the driver runs on other CPUs and may rewrite any ring byte at any time, also
 * while we read it. So every value taken from the rings is read exactly once into a local and
 * checked there (a second read could see a different value than the one checked), ring indices
 * are reduced modulo the queue size or checked against it before use, every buffer goes
 * through guest_mem_ptr, and each loop is bounded by a count we choose, never by the guest.
 *
 * Ring layout (§2.7): the descriptor table is size 16-byte entries {le64 addr, le32 len, le16
 * flags, le16 next}; the available ring is {le16 flags, le16 idx, le16 ring[size], le16
 * used_event}; the used ring is {le16 flags, le16 idx, {le32 id, le32 len} ring[size], le16
 * avail_event}. The event fields exist only with VIRTIO_F_EVENT_IDX (§2.7.6, §2.7.8).
 *
 * Guest memory regions are fixed for the VM's life, so a ring checked at setup stays mapped;
 * the host pointers are still looked up through guest_mem_ptr on use rather than cached, which
 * keeps struct virtq free of pointers into guest memory.
 */

#define DESC_SIZE 16u

/* One descriptor as read from the guest, already in host byte order. */
struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

static uint64_t avail_bytes(const struct virtq *q)
{
    return 4 + 2ull * q->size + (q->event_idx ? 2 : 0);
}

static uint64_t used_bytes(const struct virtq *q)
{
    return 4 + 8ull * q->size + (q->event_idx ? 2 : 0);
}

/* Host views of the rings as arrays of 16-bit words: avail[1] is avail->idx, avail[2 + i] is
 * ring[i], avail[2 + size] is used_event; used[1] is used->idx, used[2 + 4 * size] is
 * avail_event. virtq_setup checked both ranges, and their natural alignment on the host side
 * (the atomics below need it). NULL only if the queue is not set up. */
static uint16_t *avail_ring(const struct virtq *q)
{
    return guest_mem_ptr(q->mem, q->avail_gpa, avail_bytes(q));
}

static uint16_t *used_ring(const struct virtq *q)
{
    return guest_mem_ptr(q->mem, q->used_gpa, used_bytes(q));
}

static uint16_t load16(const uint16_t *p, int order)
{
    return le16toh(__atomic_load_n(p, order));
}

static void store16(uint16_t *p, uint16_t v, int order)
{
    __atomic_store_n(p, htole16(v), order);
}

static int fail(struct virtq *q, const char *why)
{
    q->broken = true;
    q->error = why;
    return -EIO;
}

void virtq_init(struct virtq *q, const struct guest_mem *mem)
{
    memset(q, 0, sizeof(*q));
    q->mem = mem;
}

void virtq_reset(struct virtq *q)
{
    virtq_init(q, q->mem);
}

int virtq_setup(struct virtq *q, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used,
                bool event_idx, bool indirect)
{
    virtq_reset(q);
    /* §2.7: Queue Size is a power of two; alignment per the table in §2.7 (16, 2, 4). */
    if (size == 0 || size > VIRTQ_MAX_SIZE || (size & (size - 1)) != 0)
        return -EINVAL;
    if (desc % 16 != 0 || avail % 2 != 0 || used % 4 != 0)
        return -EINVAL;

    struct virtq t = *q;
    t.size = size;
    t.desc_gpa = desc;
    t.avail_gpa = avail;
    t.used_gpa = used;
    t.event_idx = event_idx;
    t.indirect = indirect;
    const uint16_t *a = avail_ring(&t);
    const uint16_t *u = used_ring(&t);
    if (!guest_mem_ptr(q->mem, desc, (uint64_t)DESC_SIZE * size) || !a || !u)
        return -EINVAL;
    /* A region's host mapping could in principle be less aligned than its guest address; the
     * atomic 16-bit accesses to the rings must not straddle. */
    if ((uintptr_t)a % 2 != 0 || (uintptr_t)u % 4 != 0)
        return -EINVAL;
    t.ready = true;
    *q = t;
    return 0;
}

/* Read descriptor i of the table at host address table once (the table may be written
 * concurrently, and is only byte-aligned when indirect). The signal fence keeps the compiler
 * from replacing uses of the copy with fresh loads from guest memory. */
static struct desc read_desc(const uint8_t *table, uint32_t i)
{
    uint8_t raw[DESC_SIZE];
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;

    memcpy(raw, table + (size_t)i * DESC_SIZE, sizeof(raw));
    atomic_signal_fence(memory_order_seq_cst);
    memcpy(&addr, raw, 8);
    memcpy(&len, raw + 8, 4);
    memcpy(&flags, raw + 12, 2);
    memcpy(&next, raw + 14, 2);
    return (struct desc){le64toh(addr), le32toh(len), le16toh(flags), le16toh(next)};
}

/* Walk the chain starting at head into r. The walk visits at most limit buffer descriptors plus
 * one indirect descriptor, so it ends even on a looping chain (which is then too long). */
static int walk_chain(struct virtq *q, uint16_t head, struct virtq_req *r)
{
    const unsigned limit = q->size < VIRTQ_MAX_CHAIN ? q->size : VIRTQ_MAX_CHAIN;
    const uint8_t *table = guest_mem_ptr(q->mem, q->desc_gpa, (uint64_t)DESC_SIZE * q->size);
    uint32_t count = q->size; /* entries in the table being walked */
    bool in_indirect = false;
    uint32_t i = head;
    unsigned n = 0;

    if (!table)
        return fail(q, "descriptor table not in guest RAM");
    r->head = head;
    r->n_out = r->n_in = 0;
    r->out_len = r->in_len = 0;
    for (;;) {
        const struct desc d = read_desc(table, i);

        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            /* §2.7.5.3.1: only if negotiated, one table per chain (not inside another), and
             * never together with NEXT, so it is the chain's last direct descriptor. Its
             * WRITE flag is ignored (§2.7.5.3.2). */
            if (!q->indirect)
                return fail(q, "indirect descriptor without VIRTIO_F_INDIRECT_DESC");
            if (in_indirect)
                return fail(q, "nested indirect descriptor table");
            if (d.flags & VIRTQ_DESC_F_NEXT)
                return fail(q, "indirect descriptor with NEXT set");
            if (d.len == 0 || d.len % DESC_SIZE != 0)
                return fail(q, "indirect table length not a non-zero multiple of 16");
            table = guest_mem_ptr(q->mem, d.addr, d.len);
            if (!table)
                return fail(q, "indirect table not in guest RAM");
            count = d.len / DESC_SIZE;
            in_indirect = true;
            i = 0; /* §2.7.5.3: the chain starts at the table's first entry */
            continue;
        }

        /* §2.7.5.3.1: a chain is at most Queue Size long. We count buffers, indirect
         * entries included (not the descriptor naming a table, which holds no data); §2.7.4.1
         * lets a device cap chains further, and VIRTQ_MAX_CHAIN keeps iov[] bounded. */
        if (n == limit)
            return fail(q, "descriptor chain too long (or a loop)");
        void *p = guest_mem_ptr(q->mem, d.addr, d.len);
        if (!p)
            return fail(q, "buffer not in guest RAM");
        if (d.flags & VIRTQ_DESC_F_WRITE) {
            r->n_in++;
            r->in_len += d.len;
        } else {
            /* §2.7.4.2: device-writable descriptors come after all device-readable ones. */
            if (r->n_in)
                return fail(q, "readable descriptor after a writable one");
            r->n_out++;
            r->out_len += d.len;
        }
        r->iov[n].iov_base = p;
        r->iov[n].iov_len = d.len;
        n++;

        if (!(d.flags & VIRTQ_DESC_F_NEXT))
            return 0;
        if (d.next >= count)
            return fail(q, "next descriptor index out of range");
        i = d.next;
    }
}

int virtq_pop(struct virtq *q, struct virtq_req *r)
{
    if (!q->ready)
        return 0;
    if (q->broken)
        return -EIO;
    uint16_t *avail = avail_ring(q);
    if (!avail)
        return fail(q, "available ring not in guest RAM");

    /* Acquire: the ring entry and descriptors the driver wrote before bumping idx (§2.7.13)
     * are read after it. */
    const uint16_t avail_idx = load16(&avail[1], __ATOMIC_ACQUIRE);
    const uint16_t pending = (uint16_t)(avail_idx - q->last_avail);
    if (pending == 0)
        return 0;
    if (pending > q->size)
        return fail(q, "available index more than queue size ahead");

    const uint16_t head = load16(&avail[2 + (q->last_avail & (q->size - 1))], __ATOMIC_RELAXED);
    if (head >= q->size)
        return fail(q, "available ring head out of range");
    int rc = walk_chain(q, head, r);
    if (rc)
        return rc;
    q->last_avail++;
    return 1;
}

int virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
    if (!q->ready || q->broken)
        return -EIO;
    if (head >= q->size)
        return fail(q, "pushed head out of range");
    uint16_t *used = used_ring(q);
    if (!used)
        return fail(q, "used ring not in guest RAM");

    /* §2.7.8: fill the element, then publish it by bumping idx with release ordering so the
     * driver never sees the new idx before the element (or the data written to the buffers). */
    uint32_t *elem = (uint32_t *)(used + 2) + 2u * (q->used_idx & (q->size - 1));
    __atomic_store_n(&elem[0], htole32(head), __ATOMIC_RELAXED);
    __atomic_store_n(&elem[1], htole32(len), __ATOMIC_RELAXED);
    q->used_idx++;
    store16(&used[1], q->used_idx, __ATOMIC_RELEASE);
    return 0;
}

/* §2.7.7: with event_idx the driver asks for an interrupt once used->idx passes used_event;
 * "passes" between old and new is (new - event - 1) < (new - old) in 16-bit arithmetic, which
 * stays right across the wrap of the free-running indices. */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

bool virtq_should_notify(struct virtq *q)
{
    if (!q->ready || q->broken)
        return false;
    uint16_t *avail = avail_ring(q);
    if (!avail)
        return false;

    /* The used->idx store must be visible before we read the driver's suppression state,
     * or we could miss an interrupt the driver asked for in between (§2.7.7, §2.7.14). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    /* Like vhost and QEMU, `signalled` is the used index as of the previous check: anything
     * before it was either notified or not asked for then, and a driver moving used_event
     * back re-checks the used ring itself. */
    const bool valid = q->signalled_valid;
    const uint16_t old_idx = q->signalled;
    q->signalled = q->used_idx;
    q->signalled_valid = true;
    if (valid && old_idx == q->used_idx)
        return false; /* nothing pushed since the last check */
    if (q->event_idx) {
        if (!valid)
            return true;
        return need_event(load16(&avail[2 + q->size], __ATOMIC_RELAXED), q->used_idx, old_idx);
    }
    return !(load16(&avail[0], __ATOMIC_RELAXED) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

/* Devices drain a queue as: notifications off, pop until empty, notifications on, and pop
 * again if that returns true. With event_idx the "on" step is what moves avail_event forward;
 * a device that pops without it would hear one kick per 65536 buffers. */
bool virtq_notifications(struct virtq *q, bool enable)
{
    if (!q->ready || q->broken)
        return false;
    uint16_t *avail = avail_ring(q);
    uint16_t *used = used_ring(q);
    if (!avail || !used)
        return false;

    if (q->event_idx) {
        /* §2.7.10: avail_event = last_avail asks for a kick when that entry is made
         * available. To suppress, leave it alone: it falls behind as the driver adds buffers,
         * so the driver's own need_event test stays false (as vhost does). */
        if (enable)
            store16(&used[2 + 4 * q->size], q->last_avail, __ATOMIC_RELAXED);
    } else {
        /* The device owns used->flags; NO_NOTIFY is its only defined bit (§2.7.10.2). */
        store16(&used[0], enable ? 0 : VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
    }
    if (!enable)
        return false;
    /* The driver may have added buffers after our last pop but before it could see the write
     * above, and then skipped the kick. A full fence orders our write before the re-read of
     * avail->idx (the driver fences between its idx write and reading ours), so one of the two
     * sides sees the other. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return load16(&avail[1], __ATOMIC_ACQUIRE) != q->last_avail;
}

bool virtq_has_work(const struct virtq *q)
{
    if (!q->ready || q->broken)
        return false;
    uint16_t *avail = avail_ring(q);
    return avail && load16(&avail[1], __ATOMIC_ACQUIRE) != q->last_avail;
}
