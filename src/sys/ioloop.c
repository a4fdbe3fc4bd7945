/* SPDX-License-Identifier: MIT */
/* Device I/O thread: level-triggered epoll over registered fds, stopped through an eventfd; or,
 * for tests, the same loop run inline by its caller. */
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
 *
 * An inline loop has no thread: "the loop's thread" is whoever is inside ioloop_poll, which
 * marks the loop polling (under the lock, before epoll_wait, so a removal from then on parks
 * its entry) and dispatches the batch exactly as the thread does. Started inline loops have
 * their epoll fd in one process-wide epoll set, so ioloop_poll_inline can sleep until any of
 * them has work.
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
    bool inline_mode;    /* no thread: ioloop_poll runs it; thread_live means started */
    bool polling;        /* inline: inside ioloop_poll, on the thread poller */
    pthread_t poller;

    pthread_mutex_t stop_lock; /* serializes start and stop (and so the join) */
    pthread_t thread;
};

static bool inline_on;
/* Held while ioloop_poll_inline dispatches, and by whoever takes a loop out of inline_epfd
 * from outside it, so that a loop is never freed under the dispatcher. */
static pthread_mutex_t inline_lock = PTHREAD_MUTEX_INITIALIZER;
/* The epoll fds of started inline loops. Made when inline mode is first turned on (so that a
 * test counting its fds around a device sees none appear), kept for the life of the process. */
static int inline_epfd = -1;

/* inline_lock held. */
static void make_inline_epfd(void)
{
    if (inline_epfd < 0)
        inline_epfd = epoll_create1(EPOLL_CLOEXEC);
}

void ioloop_set_inline(bool on)
{
    if (on) {
        pthread_mutex_lock(&inline_lock);
        make_inline_epfd();
        pthread_mutex_unlock(&inline_lock);
    }
    __atomic_store_n(&inline_on, on, __ATOMIC_RELAXED);
}

bool ioloop_inline(void)
{
    return __atomic_load_n(&inline_on, __ATOMIC_RELAXED);
}

int ioloop_create(const char *name, struct ioloop **out)
{
    struct ioloop *l = calloc(1, sizeof(*l));
    int ret;

    if (!l)
        return -ENOMEM;
    snprintf(l->name, sizeof(l->name), "%s", name ? name : "ioloop");
    l->next_id = 1;
    l->inline_mode = ioloop_inline();
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
    if (l->inline_mode)
        return l->polling && pthread_equal(pthread_self(), l->poller);
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
    if (!l->thread_live || (l->inline_mode && !l->polling)) {
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

/* Run the callbacks of one epoll batch; returns how many ran. The stop eventfd only wakes the
 * thread; the flag is what counts, checked before every callback, since a stop may come from a
 * callback earlier in this very batch. */
static int dispatch(struct ioloop *l, const struct epoll_event *evs, int n)
{
    int ran = 0;
    for (int i = 0; i < n; i++) {
        struct entry *e = evs[i].data.ptr;
        pthread_mutex_lock(&l->lock);
        if (l->stopping) {
            pthread_mutex_unlock(&l->lock);
            break;
        }
        if (!e || e->dead) {
            pthread_mutex_unlock(&l->lock);
            continue;
        }
        l->running_id = e->id;
        pthread_mutex_unlock(&l->lock);

        e->fn(e->opaque, evs[i].events);
        ran++;

        pthread_mutex_lock(&l->lock);
        l->running_id = 0;
        pthread_cond_broadcast(&l->idle);
        pthread_mutex_unlock(&l->lock);
    }
    return ran;
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
        dispatch(l, evs, n);
        pthread_mutex_lock(&l->lock);
        stop = l->stopping;
        struct entry *gone = l->graveyard;
        l->graveyard = NULL;
        pthread_mutex_unlock(&l->lock);
        free_list(gone);
    }
    return NULL;
}

/* Lock order: inline_lock, then a loop's lock (ioloop_poll_inline polls under inline_lock). */

/* An inline loop is started: into the process-wide set. */
static int start_inline(struct ioloop *l)
{
    int ret = 0;
    pthread_mutex_lock(&inline_lock);
    pthread_mutex_lock(&l->lock);
    if (l->thread_live) {
        ret = -EBUSY;
        goto out;
    }
    make_inline_epfd();
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
    if (inline_epfd < 0 || epoll_ctl(inline_epfd, EPOLL_CTL_ADD, l->epfd, &ev) != 0)
        ret = -errno;
    else
        l->thread_live = true;
out:
    pthread_mutex_unlock(&l->lock);
    pthread_mutex_unlock(&inline_lock);
    return ret;
}

/* An inline loop ends (l->lock held, no poll in progress). Whoever stops it from outside holds
 * inline_lock; from a callback, the poll running it may hold inline_lock already and is done
 * with l for this round. */
static struct entry *end_inline(struct ioloop *l)
{
    (void)epoll_ctl(inline_epfd, EPOLL_CTL_DEL, l->epfd, NULL);
    l->thread_live = false;
    l->stopping = false;
    struct entry *gone = l->graveyard;
    l->graveyard = NULL;
    return gone;
}

int ioloop_poll(struct ioloop *l, int timeout_ms)
{
    pthread_mutex_lock(&l->lock);
    int ret = !l->inline_mode ? -EINVAL : l->polling ? -EBUSY : 0;
    if (ret < 0 || !l->thread_live) {
        pthread_mutex_unlock(&l->lock);
        return ret;
    }
    l->polling = true;
    l->poller = pthread_self();
    pthread_mutex_unlock(&l->lock);

    struct epoll_event evs[IOLOOP_BATCH];
    int n = epoll_wait(l->epfd, evs, IOLOOP_BATCH, timeout_ms);
    if (n < 0)
        ret = errno == EINTR ? 0 : -errno;
    else
        ret = dispatch(l, evs, n);

    pthread_mutex_lock(&l->lock);
    l->polling = false;
    /* A callback stopped its loop: it ends now, as a thread would after the batch. */
    struct entry *gone = l->stopping ? end_inline(l) : l->graveyard;
    l->graveyard = NULL;
    pthread_cond_broadcast(&l->idle);
    pthread_mutex_unlock(&l->lock);
    free_list(gone);
    return ret;
}

int ioloop_poll_inline(int timeout_ms)
{
    struct epoll_event evs[IOLOOP_BATCH];
    int ran = 0;
    pthread_mutex_lock(&inline_lock);
    int n = inline_epfd < 0 ? 0 : epoll_wait(inline_epfd, evs, IOLOOP_BATCH, timeout_ms);
    for (int i = 0; i < n; i++) {
        int r = ioloop_poll(evs[i].data.ptr, 0);
        if (r > 0)
            ran += r;
    }
    pthread_mutex_unlock(&inline_lock);
    return ran;
}

int ioloop_start(struct ioloop *l)
{
    int ret = 0;
    sigset_t all, old;

    if (l->inline_mode)
        return start_inline(l);
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
    /* Inline, nothing sleeps on it, and a readable stopfd would keep waking pollers. */
    if (!l->inline_mode)
        (void)!write(l->stopfd, &one, sizeof(one));
}

void ioloop_stop(struct ioloop *l)
{
    pthread_mutex_lock(&l->lock);
    if (l->inline_mode) {
        if (on_loop_thread(l)) {
            /* From a callback: the poll that runs it ends the loop after its batch. */
            if (l->thread_live)
                request_stop(l);
            pthread_mutex_unlock(&l->lock);
            return;
        }
        pthread_mutex_unlock(&l->lock);
        pthread_mutex_lock(&inline_lock);
        pthread_mutex_lock(&l->lock);
        /* Like a join: a poll on another thread finishes its batch first. */
        while (l->polling)
            pthread_cond_wait(&l->idle, &l->lock);
        struct entry *gone = l->thread_live ? end_inline(l) : NULL;
        pthread_mutex_unlock(&l->lock);
        pthread_mutex_unlock(&inline_lock);
        free_list(gone);
        return;
    }
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
