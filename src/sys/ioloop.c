/* SPDX-License-Identifier: MIT */
/* Device I/O thread: level-triggered epoll over registered fds, stopped through an eventfd. */
#include "ioloop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/*
 * epoll's data pointer names a registered entry, not the fd: an fd removed (and perhaps
 * closed and reused) while the events of one epoll_wait batch are being dispatched must not
 * reach its old callback. Removal marks the entry dead and parks it on a graveyard list that
 * the loop frees once the batch is done; dispatch skips dead entries.
 *
 * The entry list is guarded by a mutex, so ioloop_add and ioloop_modify may come from any
 * thread. ioloop_remove from another thread while the loop runs also waits until the entry's
 * callback, if it is running, has returned, so that the caller may free the callback's state
 * on return (so it must not hold a lock that callback takes). From the loop thread (a callback
 * removing itself or another fd) it cannot wait and need not: nothing else dispatches.
 */

#define IOLOOP_BATCH 16

struct entry {
    int fd;
    ioloop_fn fn;
    void *opaque;
    uint64_t id; /* unique per loop: lets a remover wait without touching a freed entry */
    bool dead;
    struct entry *next;
};

struct ioloop {
    int epfd;
    int stopfd; /* eventfd that wakes the loop for a stop; its data pointer is NULL */
    char name[16];

    pthread_mutex_t lock; /* everything below up to stop_lock */
    pthread_cond_t idle;  /* signalled when running_id goes back to 0 */
    struct entry *entries;
    struct entry *graveyard;
    uint64_t next_id;
    uint64_t running_id; /* id of the entry whose callback runs now, 0 for none */
    bool thread_live;    /* started and not yet joined */
    bool stopping;       /* ioloop_stop was called: run no more callbacks */

    pthread_mutex_t stop_lock; /* serializes start and stop (and so the join) */
    pthread_t thread;
};

int ioloop_create(const char *name, struct ioloop **out)
{
    struct ioloop *l = calloc(1, sizeof(*l));
    int ret;

    if (!l)
        return -ENOMEM;
    snprintf(l->name, sizeof(l->name), "%s", name ? name : "ioloop");
    l->next_id = 1;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        ret = -errno;
        goto err_free;
    }
    l->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->stopfd < 0) {
        ret = -errno;
        goto err_epoll;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->stopfd, &ev) != 0) {
        ret = -errno;
        goto err_eventfd;
    }
    pthread_mutex_init(&l->lock, NULL);
    pthread_mutex_init(&l->stop_lock, NULL);
    pthread_cond_init(&l->idle, NULL);
    *out = l;
    return 0;

err_eventfd:
    close(l->stopfd);
err_epoll:
    close(l->epfd);
err_free:
    free(l);
    return ret;
}

static bool on_loop_thread(const struct ioloop *l)
{
    return l->thread_live && pthread_equal(pthread_self(), l->thread);
}

static struct entry *find(struct ioloop *l, int fd)
{
    for (struct entry *e = l->entries; e; e = e->next)
        if (e->fd == fd)
            return e;
    return NULL;
}

int ioloop_add(struct ioloop *l, int fd, uint32_t events, ioloop_fn fn, void *opaque)
{
    if (fd < 0 || !fn)
        return -EINVAL;
    struct entry *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->fd = fd;
    e->fn = fn;
    e->opaque = opaque;

    int ret = 0;
    pthread_mutex_lock(&l->lock);
    if (find(l, fd)) {
        ret = -EEXIST;
        goto out;
    }
    e->id = l->next_id++;
    struct epoll_event ev = {.events = events, .data.ptr = e};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        ret = -errno;
        goto out;
    }
    e->next = l->entries;
    l->entries = e;
    e = NULL;
out:
    pthread_mutex_unlock(&l->lock);
    free(e);
    return ret;
}

int ioloop_modify(struct ioloop *l, int fd, uint32_t events)
{
    int ret = 0;
    pthread_mutex_lock(&l->lock);
    struct entry *e = find(l, fd);
    if (!e) {
        ret = -ENOENT;
    } else {
        /* MOD replaces the data word too, so it must name the entry again. */
        struct epoll_event ev = {.events = events, .data.ptr = e};
        if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
            ret = -errno;
    }
    pthread_mutex_unlock(&l->lock);
    return ret;
}

int ioloop_remove(struct ioloop *l, int fd)
{
    pthread_mutex_lock(&l->lock);
    struct entry **pp = &l->entries;
    while (*pp && (*pp)->fd != fd)
        pp = &(*pp)->next;
    struct entry *e = *pp;
    if (!e) {
        pthread_mutex_unlock(&l->lock);
        return -ENOENT;
    }
    *pp = e->next;
    e->dead = true;
    /* Fails only if the caller already closed fd, which removed it from the set as well. */
    (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    if (!l->thread_live) {
        free(e);
    } else {
        /* The loop may hold e in its current batch: it frees the graveyard after it. */
        e->next = l->graveyard;
        l->graveyard = e;
        const uint64_t id = e->id;
        if (!on_loop_thread(l))
            while (l->running_id == id)
                pthread_cond_wait(&l->idle, &l->lock);
    }
    pthread_mutex_unlock(&l->lock);
    return 0;
}

static void free_list(struct entry *e)
{
    while (e) {
        struct entry *next = e->next;
        free(e);
        e = next;
    }
}

static void *loop_main(void *arg)
{
    struct ioloop *l = arg;
    struct epoll_event evs[IOLOOP_BATCH];
    bool stop = false;

    while (!stop) {
        int n = epoll_wait(l->epfd, evs, IOLOOP_BATCH, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* Only a bug makes epoll_wait fail on a valid epoll fd; don't spin on it. */
            fprintf(stderr, "ioloop %s: epoll_wait: %s\n", l->name, strerror(errno));
            break;
        }
        /* The stop eventfd only wakes us; the flag is what counts, checked before every
         * callback, since a stop may come from a callback earlier in this very batch. */
        for (int i = 0; i < n; i++) {
            struct entry *e = evs[i].data.ptr;
            pthread_mutex_lock(&l->lock);
            stop = l->stopping;
            if (stop || !e || e->dead) {
                pthread_mutex_unlock(&l->lock);
                if (stop)
                    break;
                continue;
            }
            l->running_id = e->id;
            pthread_mutex_unlock(&l->lock);

            e->fn(e->opaque, evs[i].events);

            pthread_mutex_lock(&l->lock);
            l->running_id = 0;
            pthread_cond_broadcast(&l->idle);
            pthread_mutex_unlock(&l->lock);
        }
        pthread_mutex_lock(&l->lock);
        stop = l->stopping;
        struct entry *gone = l->graveyard;
        l->graveyard = NULL;
        pthread_mutex_unlock(&l->lock);
        free_list(gone);
    }
    return NULL;
}

int ioloop_start(struct ioloop *l)
{
    int ret = 0;
    sigset_t all, old;

    pthread_mutex_lock(&l->stop_lock);
    pthread_mutex_lock(&l->lock);
    if (l->thread_live) {
        ret = -EBUSY;
        goto out_locked;
    }
    /* The thread inherits the creator's mask: block every signal across pthread_create so it
     * never takes one (vCPU threads are kicked with SIGUSR2, and a process-wide signal must not
     * land on a thread that does not expect it). */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&l->thread, NULL, loop_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        ret = -rc;
        goto out_locked;
    }
    l->thread_live = true;
    /* Only a name for debuggers and top; failure (name too long) is harmless. */
    (void)pthread_setname_np(l->thread, l->name);
out_locked:
    pthread_mutex_unlock(&l->lock);
    pthread_mutex_unlock(&l->stop_lock);
    return ret;
}

int ioloop_launch(const char *name, const struct ioloop_watch *w, unsigned n, struct ioloop **out)
{
    *out = NULL;
    int ret = ioloop_create(name, out);
    for (unsigned i = 0; ret == 0 && i < n; i++)
        if (w[i].fd >= 0)
            ret = ioloop_add(*out, w[i].fd, w[i].events, w[i].fn, w[i].opaque);
    if (ret == 0)
        ret = ioloop_start(*out);
    if (ret < 0) {
        ioloop_destroy(*out);
        *out = NULL;
    }
    return ret;
}

/* Ask the loop to end: no callback starts after this (the caller holds l->lock). */
static void request_stop(struct ioloop *l)
{
    uint64_t one = 1;
    l->stopping = true;
    (void)!write(l->stopfd, &one, sizeof(one));
}

void ioloop_stop(struct ioloop *l)
{
    pthread_mutex_lock(&l->lock);
    if (on_loop_thread(l)) {
        /* A callback cannot join its own thread (and must not wait for a stop in progress
         * elsewhere, which is joining it): the loop ends when this callback returns, and a
         * later stop or destroy from another thread joins it. */
        request_stop(l);
        pthread_mutex_unlock(&l->lock);
        return;
    }
    pthread_mutex_unlock(&l->lock);

    pthread_mutex_lock(&l->stop_lock);
    pthread_mutex_lock(&l->lock);
    const bool live = l->thread_live;
    if (live)
        request_stop(l);
    pthread_mutex_unlock(&l->lock);
    if (live) {
        pthread_join(l->thread, NULL);

        pthread_mutex_lock(&l->lock);
        l->thread_live = false;
        l->stopping = false;
        struct entry *gone = l->graveyard;
        l->graveyard = NULL;
        pthread_mutex_unlock(&l->lock);
        free_list(gone);
        /* Drain the eventfd so that a later ioloop_start sleeps until the next stop. */
        uint64_t v;
        (void)!read(l->stopfd, &v, sizeof(v));
    }
    pthread_mutex_unlock(&l->stop_lock);
}

void ioloop_destroy(struct ioloop *l)
{
    if (!l)
        return;
    ioloop_stop(l);
    free_list(l->entries);
    free_list(l->graveyard);
    close(l->stopfd);
    close(l->epfd);
    pthread_cond_destroy(&l->idle);
    pthread_mutex_destroy(&l->stop_lock);
    pthread_mutex_destroy(&l->lock);
    free(l);
}
