/* SPDX-License-Identifier: MIT */
/* Output buffer: producers copy into a ring under a mutex; one thread writes it out in as few
 * write(2) calls as the reader allows and tells the producers when there is room again. */
#include "outbuf.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long the thread waits, once bytes arrive in an empty ring, before writing them. A UART
 * hands over one byte per guest exit: without the wait every byte costs the producer a
 * wake-up and the thread a write(2) (and the reader a wake-up too); with it a console line
 * goes out in one write, and while the ring is not empty producers wake nobody. 1 ms is
 * below what a person typing at a shell notices. */
#define OUTBUF_LINGER_NS 1000000L

struct outbuf {
    int fd;
    void (*room)(void *);
    void *opaque;
    uint8_t *ring;
    size_t cap;

    pthread_mutex_t lock; /* everything below */
    pthread_cond_t cond;  /* bytes to write, room, a room call returned, stop */
    size_t head, count;
    bool refused;   /* a write took less than offered: call room when half is free */
    bool finishing; /* outbuf_finish: writes wait, room is not called */
    bool in_room;   /* room is running on the thread */
    bool broken;    /* fd failed for good */
    bool stop;
    pthread_t thread;
};

size_t outbuf_write(struct outbuf *o, const uint8_t *buf, size_t len)
{
    size_t taken = 0;
    pthread_mutex_lock(&o->lock);
    for (;;) {
        if (o->broken) {
            taken = len;
            break;
        }
        bool was_empty = o->count == 0;
        while (taken < len && o->count < o->cap) {
            size_t tail = (o->head + o->count) % o->cap;
            /* Free space from tail: up to the end of the ring, or up to head once wrapped. */
            size_t n = o->cap - o->count < o->cap - tail ? o->cap - o->count : o->cap - tail;
            if (n > len - taken)
                n = len - taken;
            memcpy(o->ring + tail, buf + taken, n);
            o->count += n;
            taken += n;
        }
        /* Only an empty ring has the thread asleep waiting for bytes: a producer that adds to
         * a non-empty one costs no wake-up, and the thread takes the batch in one write. */
        if (was_empty && o->count)
            pthread_cond_broadcast(&o->cond);
        if (taken == len || !o->finishing)
            break;
        pthread_cond_wait(&o->cond, &o->lock);
    }
    if (taken < len)
        o->refused = true;
    pthread_mutex_unlock(&o->lock);
    return taken;
}

size_t outbuf_sink_write(void *o, const uint8_t *buf, size_t len)
{
    return outbuf_write(o, buf, len);
}

/* Write ring[off, off + len) to fd: how much went out, or -1 when fd has failed for good. */
static ssize_t put(struct outbuf *o, size_t off, size_t len)
{
    for (;;) {
        ssize_t w = write(o->fd, o->ring + off, len);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* Someone made fd non-blocking (a terminal shares it with stdin): wait here. */
            struct pollfd p = {o->fd, POLLOUT, 0};
            if (poll(&p, 1, -1) < 0 && errno != EINTR)
                return -1;
            continue;
        }
        return -1;
    }
}

static void *outbuf_main(void *arg)
{
    struct outbuf *o = arg;
    /* A reader that went away is EPIPE here, not the death of the VMM. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_mutex_lock(&o->lock);
    for (;;) {
        bool waited = false;
        while (o->count == 0 && !o->stop) {
            pthread_cond_wait(&o->cond, &o->lock);
            waited = true;
        }
        if (o->count == 0)
            break;
        if (waited && !o->stop && !o->finishing && o->count < o->cap / 2) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += OUTBUF_LINGER_NS;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            /* Only stop and finish signal meanwhile: producers see a ring that is not empty. */
            (void)pthread_cond_timedwait(&o->cond, &o->lock, &until);
        }
        /* Producers only append after head + count, so this stretch is stable unlocked. */
        size_t off = o->head;
        size_t len = o->cap - off < o->count ? o->cap - off : o->count;
        pthread_mutex_unlock(&o->lock);
        ssize_t w = put(o, off, len);
        pthread_mutex_lock(&o->lock);
        if (w < 0) {
            o->broken = true;
            o->count = 0;
        } else {
            o->head = (o->head + (size_t)w) % o->cap;
            o->count -= (size_t)w;
        }
        pthread_cond_broadcast(&o->cond);
        /* Half free before calling back: a producer refilling byte by byte would otherwise
         * be called for every byte written. */
        if (o->refused && !o->finishing && (o->broken || o->count <= o->cap / 2)) {
            o->refused = false;
            o->in_room = true;
            pthread_mutex_unlock(&o->lock);
            o->room(o->opaque);
            pthread_mutex_lock(&o->lock);
            o->in_room = false;
            pthread_cond_broadcast(&o->cond);
        }
    }
    pthread_mutex_unlock(&o->lock);
    return NULL;
}

int outbuf_create(const char *name, int fd, size_t capacity, void (*room)(void *), void *opaque,
                  struct outbuf **out)
{
    if (fd < 0 || capacity == 0 || !room || !out)
        return -EINVAL;
    struct outbuf *o = calloc(1, sizeof(*o));
    if (!o)
        return -ENOMEM;
    *o = (struct outbuf){.fd = fd, .room = room, .opaque = opaque, .cap = capacity};
    o->ring = malloc(capacity);
    if (!o->ring) {
        free(o);
        return -ENOMEM;
    }
    pthread_mutex_init(&o->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the linger is not moved by clock steps */
    pthread_cond_init(&o->cond, &ca);
    pthread_condattr_destroy(&ca);
    int err = pthread_create(&o->thread, NULL, outbuf_main, o);
    if (err) {
        pthread_cond_destroy(&o->cond);
        pthread_mutex_destroy(&o->lock);
        free(o->ring);
        free(o);
        return -err;
    }
    if (name)
        pthread_setname_np(o->thread, name);
    *out = o;
    return 0;
}

void outbuf_finish(struct outbuf *o)
{
    pthread_mutex_lock(&o->lock);
    o->finishing = true;
    while (o->in_room)
        pthread_cond_wait(&o->cond, &o->lock);
    pthread_mutex_unlock(&o->lock);
}

void outbuf_destroy(struct outbuf *o)
{
    if (!o)
        return;
    outbuf_finish(o);
    pthread_mutex_lock(&o->lock);
    o->stop = true;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->lock);
    pthread_join(o->thread, NULL);
    pthread_cond_destroy(&o->cond);
    pthread_mutex_destroy(&o->lock);
    free(o->ring);
    free(o);
}
