/* SPDX-License-Identifier: MIT */
/* Device I/O loop: callbacks on the named loop thread with signals blocked, stop, remove; and
 * inline loops run by their caller. */
#include "../check.h"
#include "sys/ioloop.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static int efd(void)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        abort();
    return fd;
}

static void kick(int fd)
{
    uint64_t one = 1;
    if (write(fd, &one, sizeof(one)) != sizeof(one))
        abort();
}

static void drain(int fd)
{
    uint64_t v;
    (void)!read(fd, &v, sizeof(v));
}

/* Wait up to ms milliseconds for fd to become readable. */
static bool wait_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

struct seen {
    int fd;      /* the watched eventfd */
    int done_fd; /* kicked after each callback */
    pthread_t thread;
    char name[16];
    bool usr2_blocked;
    uint32_t events;
    int calls;
};

/* Wait for s's callback; the acquire pairs with its counter update, so the fields it wrote
 * before are visible here (the eventfd orders them too, but not in a race detector's eyes). */
static bool wait_seen(struct seen *s, int ms)
{
    bool ok = wait_readable(s->done_fd, ms);
    (void)__atomic_load_n(&s->calls, __ATOMIC_ACQUIRE);
    return ok;
}

static void on_event(void *opaque, uint32_t events)
{
    struct seen *s = opaque;
    sigset_t mask;

    drain(s->fd);
    s->thread = pthread_self();
    pthread_getname_np(pthread_self(), s->name, sizeof(s->name));
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    s->usr2_blocked = sigismember(&mask, SIGUSR2) == 1;
    s->events = events;
    __atomic_add_fetch(&s->calls, 1, __ATOMIC_SEQ_CST);
    kick(s->done_fd);
}

static void test_callback_on_loop_thread(void)
{
    struct ioloop *l;
    struct seen s = {.fd = efd(), .done_fd = efd()};

    CHECK_EQ(ioloop_create("vq-test-io", &l), 0);
    CHECK_EQ(ioloop_add(l, s.fd, EPOLLIN, on_event, &s), 0);
    CHECK_EQ(ioloop_add(l, s.fd, EPOLLIN, on_event, &s), -EEXIST);
    CHECK_EQ(ioloop_add(l, -1, EPOLLIN, on_event, &s), -EINVAL);
    CHECK_EQ(ioloop_start(l), 0);
    CHECK_EQ(ioloop_start(l), -EBUSY);
    kick(s.fd);
    CHECK(wait_seen(&s, 5000), "callback ran");
    drain(s.done_fd);
    CHECK(!pthread_equal(s.thread, pthread_self()), "not on the caller's thread");
    CHECK(strcmp(s.name, "vq-test-io") == 0, "thread name '%s'", s.name);
    CHECK(s.usr2_blocked, "signals blocked on the loop thread");
    CHECK(s.events & EPOLLIN, "events 0x%x", s.events);

    /* Adding from another thread while running works too. */
    struct seen t = {.fd = efd(), .done_fd = efd()};
    CHECK_EQ(ioloop_add(l, t.fd, EPOLLIN, on_event, &t), 0);
    kick(t.fd);
    CHECK(wait_seen(&t, 5000), "second fd");
    CHECK(pthread_equal(s.thread, t.thread), "same loop thread");

    ioloop_destroy(l);
    close(s.fd);
    close(s.done_fd);
    close(t.fd);
    close(t.done_fd);
}

static void test_stop(void)
{
    struct ioloop *l;
    struct seen s = {.fd = efd(), .done_fd = efd()};

    CHECK_EQ(ioloop_create("stop", &l), 0);
    ioloop_stop(l); /* not started: nothing to do */
    CHECK_EQ(ioloop_add(l, s.fd, EPOLLIN, on_event, &s), 0);
    CHECK_EQ(ioloop_start(l), 0);
    kick(s.fd);
    CHECK(wait_seen(&s, 5000), "callback ran");
    drain(s.done_fd);
    ioloop_stop(l);
    ioloop_stop(l); /* idempotent */
    int calls = __atomic_load_n(&s.calls, __ATOMIC_SEQ_CST);
    kick(s.fd);
    usleep(50 * 1000);
    CHECK_EQ(__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST), calls);

    /* It can start again, and the pending event is delivered then. */
    CHECK_EQ(ioloop_start(l), 0);
    CHECK(wait_seen(&s, 5000), "callback after restart");
    ioloop_destroy(l);
    ioloop_destroy(NULL);
    close(s.fd);
    close(s.done_fd);
}

/* Two fds, both ready in the same batch: whichever callback runs first removes the other, which
 * must then not run although epoll already reported it. */
struct pair {
    struct ioloop *l;
    int fd[2];
    int done_fd;
    int calls[2];
    int remove_rc;
};

static void on_pair(struct pair *p, int me)
{
    drain(p->fd[me]);
    p->calls[me]++;
    p->remove_rc = ioloop_remove(p->l, p->fd[!me]);
    kick(p->done_fd);
}

static void on_pair0(void *opaque, uint32_t events)
{
    (void)events;
    on_pair(opaque, 0);
}

static void on_pair1(void *opaque, uint32_t events)
{
    (void)events;
    on_pair(opaque, 1);
}

/* Both fds watched and ready before the loop starts, so they come in its first batch. */
static void pair_setup(struct pair *p, const char *name)
{
    *p = (struct pair){.fd = {efd(), efd()}, .done_fd = efd()};
    CHECK_EQ(ioloop_create(name, &p->l), 0);
    CHECK_EQ(ioloop_add(p->l, p->fd[0], EPOLLIN, on_pair0, p), 0);
    CHECK_EQ(ioloop_add(p->l, p->fd[1], EPOLLIN, on_pair1, p), 0);
    kick(p->fd[0]);
    kick(p->fd[1]);
}

/* Once the loop has stopped or gone idle: one callback ran and removed the other's fd. */
static void pair_check_and_free(struct pair *p)
{
    CHECK_EQ(p->calls[0] + p->calls[1], 1);
    CHECK_EQ(p->remove_rc, 0);
    /* Exactly one of the two is still registered. */
    CHECK_EQ(ioloop_modify(p->l, p->fd[0], EPOLLIN) + ioloop_modify(p->l, p->fd[1], EPOLLIN),
             -ENOENT);
    CHECK_EQ(ioloop_remove(p->l, p->fd[0]) + ioloop_remove(p->l, p->fd[1]), -ENOENT);
    ioloop_destroy(p->l);
    close(p->fd[0]);
    close(p->fd[1]);
    close(p->done_fd);
}

static void test_remove_in_callback(void)
{
    struct pair p;

    pair_setup(&p, "remove");
    CHECK_EQ(ioloop_start(p.l), 0);
    CHECK(wait_readable(p.done_fd, 5000), "a callback ran");
    usleep(50 * 1000);
    ioloop_stop(p.l);
    pair_check_and_free(&p);
}

/* Bookkeeping before start: add, remove from the middle, errors from epoll come back. */
static void test_registry(void)
{
    struct ioloop *l;
    struct seen s[3];
    int file = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);

    CHECK_EQ(ioloop_create("registry-name-longer-than-15", &l), 0);
    for (int i = 0; i < 3; i++) {
        s[i] = (struct seen){.fd = efd(), .done_fd = efd()};
        CHECK_EQ(ioloop_add(l, s[i].fd, EPOLLIN, on_event, &s[i]), 0);
    }
    CHECK_EQ(ioloop_remove(l, s[1].fd), 0);
    CHECK_EQ(ioloop_remove(l, s[1].fd), -ENOENT);
    CHECK_EQ(ioloop_add(l, file, EPOLLIN, on_event, &s[1]), -EPERM); /* not pollable */
    CHECK_EQ(ioloop_add(l, s[0].fd, EPOLLIN, NULL, &s[0]), -EINVAL);
    CHECK_EQ(ioloop_modify(l, s[0].fd, EPOLLIN | EPOLLEXCLUSIVE), -EINVAL);
    CHECK_EQ(ioloop_start(l), 0);
    for (int i = 0; i < 3; i++)
        kick(s[i].fd);
    CHECK(wait_seen(&s[0], 5000) && wait_seen(&s[2], 5000), "kept fds");
    CHECK(!wait_seen(&s[1], 50), "removed fd");
    ioloop_destroy(l);
    for (int i = 0; i < 3; i++) {
        close(s[i].fd);
        close(s[i].done_fd);
    }
    close(file);
}

/* A slow callback: removal from another thread waits for it to return. */
struct slow {
    int fd;
    int started_fd;
    int finished;
};

static void on_slow(void *opaque, uint32_t events)
{
    struct slow *s = opaque;
    (void)events;
    drain(s->fd);
    kick(s->started_fd);
    usleep(100 * 1000);
    __atomic_store_n(&s->finished, 1, __ATOMIC_SEQ_CST);
}

static void test_remove_from_other_thread(void)
{
    struct ioloop *l;
    struct slow s = {.fd = efd(), .started_fd = efd()};

    CHECK_EQ(ioloop_create("remove-other", &l), 0);
    CHECK_EQ(ioloop_add(l, s.fd, EPOLLIN, on_slow, &s), 0);
    CHECK_EQ(ioloop_start(l), 0);
    kick(s.fd);
    CHECK(wait_readable(s.started_fd, 5000), "slow callback started");
    CHECK_EQ(ioloop_remove(l, s.fd), 0);
    CHECK_EQ(__atomic_load_n(&s.finished, __ATOMIC_SEQ_CST), 1);
    drain(s.started_fd);
    kick(s.fd);
    CHECK(!wait_readable(s.started_fd, 100), "no callback after remove");
    ioloop_destroy(l);
    close(s.fd);
    close(s.started_fd);
}

/* modify: EPOLLIN off, then on again. */
static void test_modify(void)
{
    struct ioloop *l;
    struct seen s = {.fd = efd(), .done_fd = efd()};

    CHECK_EQ(ioloop_create("modify", &l), 0);
    CHECK_EQ(ioloop_add(l, s.fd, 0, on_event, &s), 0);
    CHECK_EQ(ioloop_start(l), 0);
    kick(s.fd);
    usleep(50 * 1000);
    CHECK_EQ(__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST), 0);
    CHECK_EQ(ioloop_modify(l, s.fd, EPOLLIN), 0);
    CHECK(wait_seen(&s, 5000), "callback after modify");
    ioloop_destroy(l);
    close(s.fd);
    close(s.done_fd);
}

/* A callback may stop its own loop; a later stop from outside joins it. */
struct self_stop {
    struct ioloop *l;
    int fd, done_fd;
    int calls;
};

static void on_self_stop(void *opaque, uint32_t events)
{
    struct self_stop *s = opaque;
    (void)events;
    drain(s->fd);
    ioloop_stop(s->l);
    __atomic_add_fetch(&s->calls, 1, __ATOMIC_SEQ_CST);
    kick(s->done_fd);
}

static void test_stop_from_callback(void)
{
    struct self_stop s = {.fd = efd(), .done_fd = efd()};

    CHECK_EQ(ioloop_create("self-stop", &s.l), 0);
    CHECK_EQ(ioloop_add(s.l, s.fd, EPOLLIN, on_self_stop, &s), 0);
    CHECK_EQ(ioloop_start(s.l), 0);
    kick(s.fd);
    CHECK(wait_readable(s.done_fd, 5000), "callback ran");
    drain(s.done_fd);
    kick(s.fd);
    CHECK(!wait_readable(s.done_fd, 100), "the loop ended after the callback");
    CHECK_EQ(__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST), 1);
    ioloop_stop(s.l);
    ioloop_destroy(s.l);
    close(s.fd);
    close(s.done_fd);
}

/* ioloop_launch: every fd watched (one skipped), the loop pointer visible to the first
 * callback, and all undone when an fd cannot be added. */
struct launched {
    struct ioloop *l;
    int fd, done_fd;
    bool saw_loop;
};

static void on_launched(void *opaque, uint32_t events)
{
    (void)events;
    struct launched *x = opaque;
    drain(x->fd);
    bool saw = x->l != NULL && ioloop_modify(x->l, x->fd, EPOLLIN) == 0;
    __atomic_store_n(&x->saw_loop, saw, __ATOMIC_RELEASE);
    kick(x->done_fd);
}

static void test_launch(void)
{
    struct launched x = {.fd = efd(), .done_fd = efd()};
    struct seen s = {.fd = efd(), .done_fd = efd()};
    kick(x.fd); /* ready before the thread starts: its first callback */
    const struct ioloop_watch w[] = {
        {x.fd, EPOLLIN, on_launched, &x},
        {-1, EPOLLIN, on_event, &s},
        {s.fd, EPOLLIN, on_event, &s},
    };
    CHECK_EQ(ioloop_launch("launch", w, 3, &x.l), 0);
    CHECK(wait_readable(x.done_fd, 5000), "first callback ran");
    CHECK(__atomic_load_n(&x.saw_loop, __ATOMIC_ACQUIRE), "the callback saw the loop");
    kick(s.fd);
    CHECK(wait_seen(&s, 5000), "third fd watched");
    CHECK(strcmp(s.name, "launch") == 0, "thread name '%s'", s.name);
    CHECK_EQ(ioloop_add(x.l, s.fd, EPOLLIN, on_event, &s), -EEXIST);
    ioloop_destroy(x.l);

    /* A regular file cannot be watched (EPERM from epoll): nothing is left behind. */
    int file = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    CHECK(file >= 0, "open");
    const struct ioloop_watch bad[] = {
        {s.fd, EPOLLIN, on_event, &s},
        {file, EPOLLIN, on_event, &s},
    };
    struct ioloop *l = NULL;
    CHECK_EQ(ioloop_launch("launch-bad", bad, 2, &l), -EPERM);
    CHECK(l == NULL, "no loop on failure");
    close(file);
    close(x.fd);
    close(x.done_fd);
    close(s.fd);
    close(s.done_fd);
}

/* Inline: no thread; callbacks run inside ioloop_poll and ioloop_poll_inline, on the caller's
 * thread, and only while the loop is started. */
static void test_inline_poll(void)
{
    struct ioloop *l, *threaded;
    struct seen s = {.fd = efd(), .done_fd = efd()};

    CHECK_EQ(ioloop_create("threaded", &threaded), 0);
    ioloop_set_inline(true);
    CHECK(ioloop_inline(), "inline mode on");
    CHECK_EQ(ioloop_create("inline", &l), 0);
    ioloop_set_inline(false);
    CHECK_EQ(ioloop_poll(threaded, 0), -EINVAL);
    ioloop_destroy(threaded);

    CHECK_EQ(ioloop_add(l, s.fd, EPOLLIN, on_event, &s), 0);
    kick(s.fd);
    CHECK_EQ(ioloop_poll(l, 0), 0); /* not started: nothing runs */
    CHECK_EQ(ioloop_poll_inline(0), 0);
    CHECK_EQ(ioloop_start(l), 0);
    CHECK_EQ(ioloop_start(l), -EBUSY);
    CHECK_EQ(ioloop_poll(l, 0), 1);
    CHECK_EQ(s.calls, 1);
    CHECK(pthread_equal(s.thread, pthread_self()), "callback on the polling thread");
    CHECK(s.events & EPOLLIN, "events passed on");
    CHECK_EQ(ioloop_poll(l, 0), 0); /* drained: idle */
    CHECK_EQ(ioloop_poll_inline(0), 0);
    kick(s.fd);
    CHECK_EQ(ioloop_poll_inline(1000), 1);
    CHECK_EQ(s.calls, 2);

    /* Stopped: out of the set, so the pending kick runs nothing, and a restart resumes. */
    kick(s.fd);
    ioloop_stop(l);
    CHECK_EQ(ioloop_poll_inline(0), 0);
    CHECK_EQ(ioloop_poll(l, 0), 0);
    CHECK_EQ(s.calls, 2);
    CHECK_EQ(ioloop_start(l), 0);
    CHECK_EQ(ioloop_poll_inline(0), 1);
    CHECK_EQ(s.calls, 3);
    ioloop_destroy(l);
    CHECK_EQ(ioloop_poll_inline(0), 0);
    close(s.fd);
    close(s.done_fd);
}

/* Inline, a removal from a callback still keeps the other, already reported fd from running. */
static void test_inline_remove_in_callback(void)
{
    struct pair p;

    ioloop_set_inline(true);
    pair_setup(&p, "inline-remove");
    ioloop_set_inline(false);
    CHECK_EQ(ioloop_start(p.l), 0);
    CHECK_EQ(ioloop_poll(p.l, 0), 1); /* one batch with both: the second was removed */
    CHECK_EQ(ioloop_poll(p.l, 0), 0);
    pair_check_and_free(&p);
}

/* Inline, a callback that stops its loop ends it after that batch, as a thread would. */
static void test_inline_stop_from_callback(void)
{
    struct self_stop s = {.fd = efd(), .done_fd = efd()};

    ioloop_set_inline(true);
    CHECK_EQ(ioloop_create("inline-stop", &s.l), 0);
    ioloop_set_inline(false);
    CHECK_EQ(ioloop_add(s.l, s.fd, EPOLLIN, on_self_stop, &s), 0);
    CHECK_EQ(ioloop_start(s.l), 0);
    kick(s.fd);
    CHECK_EQ(ioloop_poll_inline(1000), 1);
    kick(s.fd);
    CHECK_EQ(ioloop_poll_inline(0), 0);
    CHECK_EQ(ioloop_poll(s.l, 0), 0);
    CHECK_EQ(__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST), 1);
    CHECK_EQ(ioloop_start(s.l), 0); /* ended, so it can start again */
    CHECK_EQ(ioloop_poll(s.l, 0), 1);
    ioloop_destroy(s.l);
    close(s.fd);
    close(s.done_fd);
}

/* ioloop_poll_inline sleeps until some inline loop has work, here a kick from another thread. */
static void *kick_later(void *arg)
{
    usleep(20 * 1000);
    kick(*(int *)arg);
    return NULL;
}

static void test_inline_wait(void)
{
    struct ioloop *a, *b;
    struct seen sa = {.fd = efd(), .done_fd = efd()}, sb = {.fd = efd(), .done_fd = efd()};
    pthread_t t;

    ioloop_set_inline(true);
    CHECK_EQ(ioloop_create("inline-a", &a), 0);
    CHECK_EQ(ioloop_create("inline-b", &b), 0);
    ioloop_set_inline(false);
    CHECK_EQ(ioloop_add(a, sa.fd, EPOLLIN, on_event, &sa), 0);
    CHECK_EQ(ioloop_add(b, sb.fd, EPOLLIN, on_event, &sb), 0);
    CHECK_EQ(ioloop_start(a), 0);
    CHECK_EQ(ioloop_start(b), 0);
    CHECK_EQ(pthread_create(&t, NULL, kick_later, &sb.fd), 0);
    CHECK_EQ(ioloop_poll_inline(5000), 1);
    pthread_join(t, NULL);
    CHECK_EQ(sa.calls + 10 * sb.calls, 10);
    kick(sa.fd);
    kick(sb.fd);
    CHECK_EQ(ioloop_poll_inline(0), 2); /* both loops in one round */
    ioloop_destroy(a);
    ioloop_destroy(b);
    close(sa.fd);
    close(sa.done_fd);
    close(sb.fd);
    close(sb.done_fd);
}

int main(void)
{
    RUN(test_callback_on_loop_thread);
    RUN(test_stop);
    RUN(test_remove_in_callback);
    RUN(test_registry);
    RUN(test_remove_from_other_thread);
    RUN(test_modify);
    RUN(test_stop_from_callback);
    RUN(test_launch);
    RUN(test_inline_poll);
    RUN(test_inline_remove_in_callback);
    RUN(test_inline_stop_from_callback);
    RUN(test_inline_wait);
    return check_done();
}
