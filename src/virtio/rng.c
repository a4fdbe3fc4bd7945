/* SPDX-License-Identifier: MIT */
/* virtio-rng (virtio 1.2 §5.4): one request queue whose writable buffers are filled from the
 * host's getrandom(). The smallest device, and the template the others follow: an ioloop thread
 * between start and stop, kicks through the queue's eventfd, errors put the device in
 * NEEDS_RESET. */
#include "rng.h"

#include "sys/ioloop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

/* A bound per request, so that one huge buffer cannot keep the thread from stopping. */
#define RNG_MAX_PER_REQUEST (64u * 1024)

struct virtio_rng {
    struct virtio_device vdev;
    struct ioloop *loop;
    struct virtq_req req;
};

static uint32_t fill(const struct virtq_req *req)
{
    uint32_t done = 0;
    for (unsigned i = req->n_out; i < req->n_out + req->n_in && done < RNG_MAX_PER_REQUEST; i++) {
        uint8_t *p = req->iov[i].iov_base;
        size_t want = req->iov[i].iov_len;
        if (want > RNG_MAX_PER_REQUEST - done)
            want = RNG_MAX_PER_REQUEST - done;
        while (want) {
            ssize_t n = getrandom(p, want, 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                return done; /* hand back what we have: the driver asks again */
            }
            p += n;
            want -= (size_t)n;
            done += (uint32_t)n;
        }
    }
    return done;
}

static void on_kick(void *opaque, uint32_t events)
{
    (void)events;
    struct virtio_rng *r = opaque;
    struct virtio_queue *q = &r->vdev.queues[0];
    uint64_t n;
    if (read(q->kick_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        return;
    for (;;) {
        int got;
        while ((got = virtq_pop(&q->vq, &r->req)) > 0) {
            if (virtq_push(&q->vq, r->req.head, fill(&r->req)) < 0) {
                got = -EIO;
                break;
            }
        }
        virtio_queue_notify(&r->vdev, 0);
        if (got < 0) {
            virtio_set_needs_reset(&r->vdev, q->vq.error);
            return;
        }
        if (!virtq_notifications(&q->vq, true))
            return;
    }
}

static int rng_start(void *dev)
{
    struct virtio_rng *r = dev;
    const struct ioloop_watch w[] = {{r->vdev.queues[0].kick_fd, EPOLLIN, on_kick, r}};
    return ioloop_launch("virtio-rng", w, 1, &r->loop);
}

static void rng_stop(void *dev)
{
    struct virtio_rng *r = dev;
    ioloop_destroy(r->loop);
    r->loop = NULL;
}

static const struct virtio_device_ops rng_ops = {
    .name = "virtio-rng",
    .device_id = VIRTIO_ID_RNG,
    .num_queues = 1,
    .queue_size = 256,
    .start = rng_start,
    .stop = rng_stop,
};

int virtio_rng_create(const struct guest_mem *mem, struct virtio_rng **out)
{
    struct virtio_rng *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    int err = virtio_device_init(&r->vdev, &rng_ops, r, NULL, 0, mem);
    if (err < 0) {
        free(r);
        return err;
    }
    *out = r;
    return 0;
}

struct virtio_device *virtio_rng_device(struct virtio_rng *r)
{
    return &r->vdev;
}

void virtio_rng_destroy(struct virtio_rng *r)
{
    if (!r)
        return;
    virtio_device_cleanup(&r->vdev);
    free(r);
}
