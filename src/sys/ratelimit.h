/* SPDX-License-Identifier: MIT */
/* Rate-limited log lines for events a guest can cause, so a hostile guest can neither flood the
 * host's log nor slow the VMM down with writes to stderr. */
#ifndef REVIRT_SYS_RATELIMIT_H
#define REVIRT_SYS_RATELIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Each limiter lets RATELIMIT_BURST lines through per RATELIMIT_INTERVAL_NS window and counts
 * the rest; the next line let through says how many were suppressed. A window opens at the first
 * line after the previous window ended, so a lone message is always printed. */
#define RATELIMIT_BURST 10u
#define RATELIMIT_INTERVAL_NS 5000000000ull /* 5 s, as Linux's printk_ratelimited */

/* One per kind of message (usually a static next to it): a flood of one kind of message then
 * never hides a different one. */
struct ratelimit {
    pthread_mutex_t lock;
    bool started;          /* a window is open */
    uint64_t window_start; /* CLOCK_MONOTONIC ns */
    unsigned printed;      /* lines let through in this window */
    uint64_t suppressed;   /* lines dropped since the last one let through */
};

#define RATELIMIT_INIT                                                                             \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, false, 0, 0, 0                                                  \
    }

/* Whether a line may be printed at now_ns (any monotonic clock). If so, *suppressed is set to
 * how many were dropped since the last one printed (then reset); if not, the drop is counted.
 * Any thread. */
bool ratelimit_allow(struct ratelimit *rl, uint64_t now_ns, uint64_t *suppressed);

/* Print one line (fmt has no trailing newline) on stderr if rl allows it now, with
 * " [N similar messages suppressed]" appended after a suppression; one write per line, so lines
 * from several threads do not interleave. Lines are cut at 511 bytes. Any thread. */
__attribute__((format(printf, 2, 3))) void ratelimit_log(struct ratelimit *rl, const char *fmt,
                                                         ...);

#endif
