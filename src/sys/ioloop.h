/* SPDX-License-Identifier: MIT */
/* A device I/O thread: an epoll loop over a few fds (queue kicks, a TAP device, sockets, an
 * io_uring), so device work never runs on vCPU threads. */
#ifndef REVIRT_SYS_IOLOOP_H
#define REVIRT_SYS_IOLOOP_H

#include <stdbool.h>
#include <stdint.h>

struct ioloop;

/* events: EPOLLIN etc. as returned by epoll. */
typedef void (*ioloop_fn)(void *opaque, uint32_t events);

/* name is for the thread (pthread_setname_np, up to 15 characters). */
__attribute__((warn_unused_result)) int ioloop_create(const char *name, struct ioloop **out);
/* Watch fd for events (level-triggered); fn runs on the loop's thread. Before ioloop_start or
 * from the loop's own thread. */
__attribute__((warn_unused_result)) int ioloop_add(struct ioloop *l, int fd, uint32_t events,
                                                   ioloop_fn fn, void *opaque);
__attribute__((warn_unused_result)) int ioloop_modify(struct ioloop *l, int fd, uint32_t events);
int ioloop_remove(struct ioloop *l, int fd);
/* Start the thread. */
__attribute__((warn_unused_result)) int ioloop_start(struct ioloop *l);
/* One fd for ioloop_launch to watch, as ioloop_add would. */
struct ioloop_watch {
    int fd; /* < 0: skipped (a source the device does not have this time) */
    uint32_t events;
    ioloop_fn fn;
    void *opaque;
};

/* What a device's start does: ioloop_create, ioloop_add for each of w[0..n), ioloop_start. *out
 * is set before the thread starts (callbacks may use it); on failure everything is undone,
 * *out is NULL and a negative errno is returned. */
__attribute__((warn_unused_result)) int
ioloop_launch(const char *name, const struct ioloop_watch *w, unsigned n, struct ioloop **out);
/* Stop the thread and wait for it (from any other thread; a no-op when not started). Callbacks
 * already running finish first; none runs after the return. */
void ioloop_stop(struct ioloop *l);
/* Stop, then free (fds added stay the caller's). NULL is fine. */
void ioloop_destroy(struct ioloop *l);

/*
 * Inline loops, for tests and fuzz targets: a loop created while inline mode is on never has a
 * thread. ioloop_start only marks it started, and its callbacks run on whichever thread calls
 * ioloop_poll or ioloop_poll_inline, so a test drives a device step by step with no thread
 * wake-ups, and the device (which only sees the calls above) cannot tell the difference.
 * Callbacks may add, modify and remove fds and stop their own loop, as on a thread; they must
 * not create, start, destroy or stop other inline loops (a stop from outside waits for
 * ioloop_poll_inline, which is running the callback). Off by default; revirter never turns it
 * on.
 */
/* Whether loops created from now on are inline (a process-wide setting). */
void ioloop_set_inline(bool on);
bool ioloop_inline(void);
/* Wait up to timeout_ms (0: not at all, -1: forever) for events on an inline loop l, then run
 * the ready callbacks of one epoll batch on this thread. Returns how many ran (0 when l is not
 * started), -EINVAL for a loop with a thread, -EBUSY while another thread polls l. */
__attribute__((warn_unused_result)) int ioloop_poll(struct ioloop *l, int timeout_ms);
/* The same over every started inline loop: wait up to timeout_ms for any of them to have
 * events, then poll each ready one once. Returns how many callbacks ran; 0 on a timeout or
 * when no inline loop is started. Repeat until it returns 0 to run devices until idle. */
int ioloop_poll_inline(int timeout_ms);

#endif
