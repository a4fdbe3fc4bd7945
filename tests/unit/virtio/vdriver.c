/* SPDX-License-Identifier: MIT */
/* The test driver: plays the guest's part of virtio 1.2 §2.7 against a device core. */
#include "vdriver.h"

#include "sys/ioloop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void fake_notify_queue(void *opaque, unsigned q)
{
    struct vdriver *d = opaque;
    pthread_mutex_lock(&d->lock);
    d->irqs[q]++;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static void fake_notify_config(void *opaque)
{
    struct vdriver *d = opaque;
    pthread_mutex_lock(&d->lock);
    d->config_irqs++;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static int fake_irq_fd(void *opaque, unsigned q)
{
    (void)opaque, (void)q;
    return -1;
}

static const struct virtio_transport_ops fake_transport = {
    .notify_queue = fake_notify_queue,
    .notify_config = fake_notify_config,
    .queue_irq_fd = fake_irq_fd,
};

int vdriver_init(struct vdriver *d, uint64_t ram_size)
{
    memset(d, 0, sizeof(*d));
    /* Anonymous pages, as revirter maps guest RAM: page-aligned (so which buffers suit
     * O_DIRECT is what a guest sees), and vdriver_wipe can zero them cheaply. */
    void *ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ram == MAP_FAILED)
        return -ENOMEM;
    d->ram = ram;
    d->ram_size = ram_size;
    d->brk = 0x1000; /* keep GPA 0 unused so a zero address is always a bug */
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    return guest_mem_add(&d->mem, 0, d->ram, ram_size);
}

void vdriver_wipe(struct vdriver *d)
{
    /* What the allocator handed out is zeroed by hand, so those pages stay mapped: faulting
     * them in again per fuzz input cost more than the memset. The rest can only hold what a
     * device wrote through a wild address: private anonymous pages read back as zeroes after
     * MADV_DONTNEED, and untouched ones cost nothing. */
    uint64_t top = (d->top + 4095) & ~4095ull;
    if (top > d->ram_size)
        top = d->ram_size;
    memset(d->ram, 0, top);
    if (top < d->ram_size && madvise(d->ram + top, d->ram_size - top, MADV_DONTNEED) != 0)
        memset(d->ram + top, 0, d->ram_size - top);
    d->brk = 0x1000;
    d->top = 0;
}

void vdriver_free(struct vdriver *d)
{
    if (d->ram)
        munmap(d->ram, d->ram_size);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
}

uint64_t vdriver_alloc(struct vdriver *d, uint64_t len, uint64_t align)
{
    uint64_t at = (d->brk + align - 1) & ~(align - 1);
    if (at + len > d->ram_size) {
        fprintf(stderr, "vdriver: out of guest RAM\n");
        abort();
    }
    d->brk = at + len;
    if (d->brk > d->top)
        d->top = d->brk;
    memset(d->ram + at, 0, len);
    return at;
}

void *vdriver_ptr(struct vdriver *d, uint64_t gpa)
{
    return d->ram + gpa;
}

uint8_t vdriver_status(struct vdriver *d)
{
    pthread_mutex_lock(&d->v->lock);
    uint8_t s = virtio_status(d->v);
    pthread_mutex_unlock(&d->v->lock);
    return s;
}

void vdriver_reset(struct vdriver *d)
{
    pthread_mutex_lock(&d->v->lock);
    virtio_write_status(d->v, 0);
    pthread_mutex_unlock(&d->v->lock);
}

uint8_t vdriver_attach(struct vdriver *d, struct virtio_device *v, uint64_t features,
                       uint16_t qsize)
{
    d->v = v;
    pthread_mutex_lock(&v->lock);
    virtio_write_status(v, 0);
    /* Only once the device is stopped: its threads read the transport. */
    v->transport = &fake_transport;
    v->transport_opaque = d;
    virtio_write_status(v, VIRTIO_STATUS_ACKNOWLEDGE);
    virtio_write_status(v, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    uint64_t want = (features | VIRTIO_BIT(VIRTIO_F_VERSION_1)) &
                    ((uint64_t)virtio_host_features(v, 1) << 32 | virtio_host_features(v, 0));
    virtio_write_driver_features(v, 0, (uint32_t)want);
    virtio_write_driver_features(v, 1, (uint32_t)(want >> 32));
    virtio_write_status(v, v->status | VIRTIO_STATUS_FEATURES_OK);
    for (unsigned i = 0; i < v->ops->num_queues; i++) {
        struct vdriver_queue *q = &d->q[i];
        struct virtio_queue *vq = &v->queues[i];
        q->size = qsize && qsize <= vq->size ? qsize : vq->size;
        q->desc = vdriver_alloc(d, 16ull * q->size, 16);
        q->avail = vdriver_alloc(d, 6 + 2ull * q->size, 2);
        q->used = vdriver_alloc(d, 6 + 8ull * q->size, 4);
        q->avail_idx = q->used_seen = q->next_desc = 0;
        vq->size = q->size;
        vq->desc = q->desc;
        vq->avail = q->avail;
        vq->used = q->used;
        vq->msix_vector = (uint16_t)i;
        vq->enabled = true;
    }
    virtio_write_status(v, v->status | VIRTIO_STATUS_DRIVER_OK);
    pthread_mutex_unlock(&v->lock);
    return vdriver_status(d);
}

uint16_t vdriver_add(struct vdriver *d, unsigned qi, const struct vdriver_buf *bufs, unsigned n,
                     bool kick)
{
    struct vdriver_queue *q = &d->q[qi];
    uint16_t head = q->next_desc;
    for (unsigned i = 0; i < n; i++) {
        uint16_t idx = (uint16_t)((head + i) % q->size);
        uint8_t *desc = d->ram + q->desc + 16ull * idx;
        uint16_t flags =
            (bufs[i].write ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0);
        uint16_t next = (uint16_t)((idx + 1) % q->size);
        memcpy(desc, &bufs[i].gpa, 8);
        memcpy(desc + 8, &bufs[i].len, 4);
        memcpy(desc + 12, &flags, 2);
        memcpy(desc + 14, &next, 2);
    }
    q->next_desc = (uint16_t)((head + n) % q->size);
    uint8_t *avail = d->ram + q->avail;
    memcpy(avail + 4 + 2 * (q->avail_idx % q->size), &head, 2);
    q->avail_idx++;
    __atomic_store_n((uint16_t *)(avail + 2), q->avail_idx, __ATOMIC_RELEASE);
    if (kick) {
        uint64_t one = 1;
        if (write(d->v->queues[qi].kick_fd, &one, sizeof(one)) != sizeof(one))
            perror("vdriver: kick");
    }
    return head;
}

/* timeout_ms from now on CLOCK_REALTIME, what pthread_cond_timedwait takes. */
static struct timespec deadline(int timeout_ms)
{
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += timeout_ms / 1000;
    end.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (end.tv_nsec >= 1000000000) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000;
    }
    return end;
}

/* Let the device work until end or for 5 ms, whichever is sooner, with d->lock held on entry
 * and on return: with inline I/O loops (ioloop_set_inline) by running them on this thread,
 * which is then the only one that works, else by sleeping until an interrupt. */
static int wait_step(struct vdriver *d, const struct timespec *end)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec > end->tv_sec || (now.tv_sec == end->tv_sec && now.tv_nsec >= end->tv_nsec))
        return ETIMEDOUT;
    if (ioloop_inline()) {
        long ms = (end->tv_sec - now.tv_sec) * 1000 + (end->tv_nsec - now.tv_nsec) / 1000000;
        /* The device's callbacks raise interrupts, which take d->lock. */
        pthread_mutex_unlock(&d->lock);
        (void)ioloop_poll_inline(ms < 1 ? 1 : ms > 5 ? 5 : (int)ms);
        pthread_mutex_lock(&d->lock);
        return 0;
    }
    struct timespec step = now;
    step.tv_nsec += 5000000;
    if (step.tv_nsec >= 1000000000) {
        step.tv_sec++;
        step.tv_nsec -= 1000000000;
    }
    if (step.tv_sec > end->tv_sec || (step.tv_sec == end->tv_sec && step.tv_nsec > end->tv_nsec))
        step = *end;
    pthread_cond_timedwait(&d->cond, &d->lock, &step);
    return 0;
}

int vdriver_wait_used(struct vdriver *d, unsigned qi, uint16_t *head, uint32_t *len, int timeout_ms)
{
    struct vdriver_queue *q = &d->q[qi];
    uint8_t *used = d->ram + q->used;
    struct timespec end = deadline(timeout_ms);
    /* §2.7.10: with event_idx, used_event = the next entry we wait for asks for an interrupt
     * as soon as it is used, as Linux's virtqueue_enable_cb does (without it the device may
     * stay silent and only the polling below would notice). The fence orders the store before
     * the load of used->idx, against the device's store of used->idx then load of used_event. */
    __atomic_store_n((uint16_t *)(d->ram + q->avail + 4 + 2ull * q->size), q->used_seen,
                     __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    pthread_mutex_lock(&d->lock);
    /* Poll the ring as well as waiting for interrupts, in case a test holds some back. */
    while (__atomic_load_n((uint16_t *)(used + 2), __ATOMIC_ACQUIRE) == q->used_seen) {
        if (wait_step(d, &end) == ETIMEDOUT) {
            pthread_mutex_unlock(&d->lock);
            return -ETIMEDOUT;
        }
    }
    pthread_mutex_unlock(&d->lock);
    uint8_t *elem = used + 4 + 8 * (q->used_seen % q->size);
    uint32_t id;
    memcpy(&id, elem, 4);
    memcpy(len, elem + 4, 4);
    *head = (uint16_t)id;
    q->used_seen++;
    return 0;
}

bool vdriver_wait_needs_reset(struct vdriver *d, int timeout_ms)
{
    struct timespec end = deadline(timeout_ms);
    /* The device raises the configuration interrupt after setting NEEDS_RESET (virtio 1.2
     * §2.1.2), from under the device's lock: so sample the interrupt count first, then read
     * the status (never holding our lock, whose order is after the device's), then sleep
     * until the count moves. */
    for (;;) {
        pthread_mutex_lock(&d->lock);
        unsigned seen = d->config_irqs;
        pthread_mutex_unlock(&d->lock);
        if (vdriver_status(d) & VIRTIO_STATUS_NEEDS_RESET)
            return true;
        int r = 0;
        pthread_mutex_lock(&d->lock);
        while (d->config_irqs == seen && r != ETIMEDOUT)
            r = wait_step(d, &end);
        pthread_mutex_unlock(&d->lock);
        if (r == ETIMEDOUT)
            return vdriver_status(d) & VIRTIO_STATUS_NEEDS_RESET;
    }
}
