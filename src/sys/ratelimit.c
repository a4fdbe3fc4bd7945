/* SPDX-License-Identifier: MIT */
/* Rate-limited log lines: a fixed window per call site, and the count of what it dropped. */
#include "ratelimit.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

bool ratelimit_allow(struct ratelimit *rl, uint64_t now_ns, uint64_t *suppressed)
{
    pthread_mutex_lock(&rl->lock);
    /* A clock that went backwards (another clock source in a test) also opens a window. */
    if (!rl->started || now_ns < rl->window_start ||
        now_ns - rl->window_start >= RATELIMIT_INTERVAL_NS) {
        rl->started = true;
        rl->window_start = now_ns;
        rl->printed = 0;
    }
    bool ok = rl->printed < RATELIMIT_BURST;
    if (ok) {
        rl->printed++;
        *suppressed = rl->suppressed;
        rl->suppressed = 0;
    } else {
        rl->suppressed++;
    }
    pthread_mutex_unlock(&rl->lock);
    return ok;
}

void ratelimit_log(struct ratelimit *rl, const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t dropped;
    /* The dropped case costs a clock read and a lock: nothing is formatted or written. */
    if (!ratelimit_allow(rl, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, &dropped))
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) - 1 ? (size_t)n : sizeof(line) - 2;
    if (dropped) {
        int k = snprintf(line + len, sizeof(line) - 1 - len, " [%llu similar messages suppressed]",
                         (unsigned long long)dropped);
        if (k > 0)
            len = len + (size_t)k < sizeof(line) - 1 ? len + (size_t)k : sizeof(line) - 2;
    }
    line[len++] = '\n';
    /* One write(2): lines from several device threads never interleave. */
    (void)!write(STDERR_FILENO, line, len);
}
