/* SPDX-License-Identifier: MIT */
/* virtio-console (virtio 1.2 §5.3) with a single port and no MULTIPORT: receiveq (0) carries
 * terminal input to the guest, transmitq (1) the guest's output to a byte sink. Output is never
 * dropped because the terminal is slow: a chain the sink cannot take yet is held back,
 * unreturned, until the sink has room again, which stalls the guest's hvc writer instead of
 * losing bytes; and neither the loop thread nor a vCPU ever waits on the terminal. */
#include "console.h"

#include "sys/ioloop.h"
#include "lib/iov.h"
#include "lib/le.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define RXQ 0
#define TXQ 1

/* §5.3.4: struct virtio_console_config {le16 cols, rows; le32 max_nr_ports, emerg_wr}. None of
 * the features that make the driver read it (SIZE, MULTIPORT, EMERG_WRITE) is offered. */
#define CONFIG_SIZE 12
#define CONFIG_MAX_NR_PORTS 4

struct virtio_console {
    struct virtio_device vdev;
    struct virtio_console_config cfg;
    uint8_t config[CONFIG_SIZE];
    struct ioloop *loop;

    /* Transmit: the loop thread only (and stop, once the loop is gone). */
    struct virtq_req tx;
    bool tx_held;   /* tx was popped and the sink has not taken all of it yet */
    size_t tx_done; /* bytes of tx already taken */
    int room_fd;    /* eventfd: virtio_console_tx_ready wakes the loop through it */

    /* Receive: the terminal's input thread and the loop thread. The lock is never held while
     * calling rx_ready (which may take the input thread's own locks). */
    pthread_mutex_t lock;
    bool started;    /* between start and stop: the queues may be used */
    bool rx_refused; /* receive took less than offered: call rx_ready when buffers appear */
    struct virtq_req rx;
};

/* Hand what is left of the held chain to the sink: true when it has all been taken, false
 * when the sink is full for now. */
static bool tx_flush(struct virtio_console *c)
{
    const struct byte_sink *out = &c->cfg.out;
    for (;;) {
        struct iovec iov[VIRTQ_MAX_CHAIN];
        unsigned n = iov_slice(c->tx.iov, c->tx.n_out, c->tx_done, SIZE_MAX, iov);
        if (n == 0)
            return true;
        size_t took =
            out->write ? out->write(out->opaque, iov[0].iov_base, iov[0].iov_len) : iov[0].iov_len;
        c->tx_done += took;
        if (took < iov[0].iov_len)
            return false;
    }
}

/* Pop and pass on transmit chains until the ring is empty or the sink is full; a full sink
 * leaves the chain held until virtio_console_tx_ready. */
static void process_tx(struct virtio_console *c)
{
    struct virtio_queue *q = &c->vdev.queues[TXQ];
    for (;;) {
        int got = 0;
        while (!c->tx_held && (got = virtq_pop(&q->vq, &c->tx)) > 0) {
            c->tx_done = 0;
            if (!tx_flush(c)) {
                c->tx_held = true;
                break;
            }
            if (virtq_push(&q->vq, c->tx.head, 0) < 0) {
                got = -EIO;
                break;
            }
        }
        virtio_queue_notify(&c->vdev, TXQ);
        if (got < 0) {
            virtio_set_needs_reset(&c->vdev, q->vq.error);
            return;
        }
        if (c->tx_held || !virtq_notifications(&q->vq, true))
            return;
    }
}

/* The sink has room again: finish the held chain, then carry on. */
static void on_room(void *opaque, uint32_t events)
{
    (void)events;
    struct virtio_console *c = opaque;
    struct virtio_queue *q = &c->vdev.queues[TXQ];
    uint64_t n;
    if (read(c->room_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        return;
    if (!c->tx_held || !tx_flush(c))
        return;
    c->tx_held = false;
    if (virtq_push(&q->vq, c->tx.head, 0) < 0) {
        virtio_set_needs_reset(&c->vdev, q->vq.error);
        return;
    }
    process_tx(c);
}

void virtio_console_tx_ready(struct virtio_console *c)
{
    uint64_t one = 1;
    (void)!write(c->room_fd, &one, sizeof(one)); /* a full eventfd still wakes the loop */
}

static void on_tx_kick(void *opaque, uint32_t events)
{
    (void)events;
    struct virtio_console *c = opaque;
    uint64_t n;
    if (read(c->vdev.queues[TXQ].kick_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        return;
    if (!c->tx_held)
        process_tx(c);
}

/* The guest posted receive buffers: if input was turned away, let it flow again. */
static void on_rx_kick(void *opaque, uint32_t events)
{
    (void)events;
    struct virtio_console *c = opaque;
    struct virtq *vq = &c->vdev.queues[RXQ].vq;
    uint64_t n;
    if (read(c->vdev.queues[RXQ].kick_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        return;
    bool ready = false;
    pthread_mutex_lock(&c->lock);
    if (c->started && c->rx_refused && (virtq_has_work(vq) || virtq_notifications(vq, true))) {
        c->rx_refused = false;
        ready = true;
    }
    pthread_mutex_unlock(&c->lock);
    if (ready && c->cfg.rx_ready)
        c->cfg.rx_ready(c->cfg.opaque);
}

/* Copy up to len bytes into the writable segments of c->rx; returns how many. */
static uint32_t rx_fill(const struct virtq_req *r, const uint8_t *buf, size_t len)
{
    return (uint32_t)iov_write(r->iov + r->n_out, r->n_in, 0, buf, len);
}

size_t virtio_console_receive(struct virtio_console *c, const uint8_t *buf, size_t len)
{
    size_t taken = 0;
    pthread_mutex_lock(&c->lock);
    if (c->started) {
        struct virtq *vq = &c->vdev.queues[RXQ].vq;
        bool pushed = false;
        while (taken < len) {
            int got = virtq_pop(vq, &c->rx);
            if (got == 0 && virtq_notifications(vq, true))
                continue; /* buffers arrived as we re-armed the kick */
            if (got == 0)
                break;
            /* A chain with no writable bytes is returned empty: the driver's mistake. Each pop
             * consumes a ring entry, so this loop ends. */
            uint32_t n = got > 0 ? rx_fill(&c->rx, buf + taken, len - taken) : 0;
            if (got < 0 || virtq_push(vq, c->rx.head, n) < 0) {
                virtio_set_needs_reset(&c->vdev, vq->error);
                break;
            }
            pushed = true;
            taken += n;
        }
        if (pushed)
            virtio_queue_notify(&c->vdev, RXQ);
    }
    if (taken < len)
        c->rx_refused = true;
    pthread_mutex_unlock(&c->lock);
    return taken;
}

static int console_start(void *dev)
{
    struct virtio_console *c = dev;
    c->tx_held = false;
    /* Started before the loop runs: its first rx kick must find the queue usable. */
    pthread_mutex_lock(&c->lock);
    c->started = true;
    pthread_mutex_unlock(&c->lock);
    const struct ioloop_watch w[] = {
        {c->vdev.queues[TXQ].kick_fd, EPOLLIN, on_tx_kick, c},
        {c->vdev.queues[RXQ].kick_fd, EPOLLIN, on_rx_kick, c},
        {c->room_fd, EPOLLIN, on_room, c},
    };
    int err = ioloop_launch("virtio-console", w, 3, &c->loop);
    if (err < 0) {
        pthread_mutex_lock(&c->lock);
        c->started = false;
        pthread_mutex_unlock(&c->lock);
        return err;
    }
    /* Input turned away before the driver was ready waits for rx_ready: look at the receive
     * queue once now, as a kick would, in case its buffers were posted without one. */
    uint64_t one = 1;
    (void)!write(c->vdev.queues[RXQ].kick_fd, &one, sizeof(one));
    return 0;
}

static void console_stop(void *dev)
{
    struct virtio_console *c = dev;
    pthread_mutex_lock(&c->lock);
    c->started = false;
    pthread_mutex_unlock(&c->lock);
    ioloop_destroy(c->loop);
    c->loop = NULL;
    /* The rest of a held chain is offered once more, from guest memory that is still mapped:
     * at the end of the VM the sink waits and takes it all, so the guest's last words are not
     * lost. The chain itself belongs to rings the reset discards. */
    if (c->tx_held)
        (void)tx_flush(c);
    c->tx_held = false;
}

static const struct virtio_device_ops console_ops = {
    .name = "virtio-console",
    .device_id = VIRTIO_ID_CONSOLE,
    .num_queues = 2,
    .queue_size = 256,
    .start = console_start,
    .stop = console_stop,
};

int virtio_console_create(const struct virtio_console_config *cfg, const struct guest_mem *mem,
                          struct virtio_console **out)
{
    if (!cfg || !out)
        return -EINVAL;
    struct virtio_console *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cfg = *cfg;
    le_put32(c->config + CONFIG_MAX_NR_PORTS, 1);
    c->room_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->room_fd < 0) {
        int err = -errno;
        free(c);
        return err;
    }
    pthread_mutex_init(&c->lock, NULL);
    int err = virtio_device_init(&c->vdev, &console_ops, c, c->config, CONFIG_SIZE, mem);
    if (err < 0) {
        pthread_mutex_destroy(&c->lock);
        close(c->room_fd);
        free(c);
        return err;
    }
    *out = c;
    return 0;
}

struct virtio_device *virtio_console_device(struct virtio_console *c)
{
    return &c->vdev;
}

void virtio_console_destroy(struct virtio_console *c)
{
    if (!c)
        return;
    virtio_device_cleanup(&c->vdev);
    pthread_mutex_destroy(&c->lock);
    close(c->room_fd);
    free(c);
}
