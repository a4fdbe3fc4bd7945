/* SPDX-License-Identifier: MIT */
/* The log rate limiter: the window and its burst on a fake clock, the suppressed count, and a
 * burst of 10,000 guest-caused messages reaching stderr as at most RATELIMIT_BURST lines. */
#include "../check.h"
#include "../stderr_capture.h"
#include "sys/ratelimit.h"

#include <stdint.h>

#define SEC 1000000000ull

static void test_window(void)
{
    struct ratelimit rl = RATELIMIT_INIT;
    uint64_t dropped = 99, t = 1000 * SEC;
    unsigned ok = 0;
    for (unsigned i = 0; i < 10000; i++)
        ok += ratelimit_allow(&rl, t + i * 1000, &dropped);
    CHECK_EQ(ok, RATELIMIT_BURST);
    CHECK_EQ(dropped, 0); /* nothing had been dropped before the first line */
    /* Still inside the window: nothing more, however many try. */
    CHECK(!ratelimit_allow(&rl, t + RATELIMIT_INTERVAL_NS - 1, &dropped), "window");
    /* The next window lets one through and reports every drop since. */
    CHECK(ratelimit_allow(&rl, t + RATELIMIT_INTERVAL_NS, &dropped), "next window");
    CHECK_EQ(dropped, 10000 - RATELIMIT_BURST + 1);
    CHECK(ratelimit_allow(&rl, t + RATELIMIT_INTERVAL_NS + 1, &dropped), "second of it");
    CHECK_EQ(dropped, 0);
    /* A clock that jumps back opens a window rather than locking the log out. */
    CHECK(ratelimit_allow(&rl, 0, &dropped), "clock went back");
}

/* 10,000 events spread over 20 s of fake time: at most one burst per window. */
static void test_sustained(void)
{
    struct ratelimit rl = RATELIMIT_INIT;
    uint64_t dropped, total = 0, reported = 0;
    for (uint64_t i = 0; i < 10000; i++) {
        if (ratelimit_allow(&rl, i * 2000000 /* 2 ms */, &dropped)) {
            total++;
            reported += dropped;
        }
    }
    uint64_t windows = 20 * SEC / RATELIMIT_INTERVAL_NS;
    CHECK(total <= windows * RATELIMIT_BURST, "%llu lines", (unsigned long long)total);
    CHECK(total >= RATELIMIT_BURST, "%llu lines", (unsigned long long)total);
    /* Every event is either printed, reported as suppressed, or still counted. */
    CHECK_EQ(total + reported + rl.suppressed, 10000);
}

static struct ratelimit burst_rl = RATELIMIT_INIT;

static void burst(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < 10000; i++)
        ratelimit_log(&burst_rl, "revirter: test: guest event %u", i);
}

static void test_log_burst(void)
{
    char last[256];
    unsigned lines = stderr_capture(burst, NULL, last, sizeof(last));
    /* The burst takes far less than a window, but allow for a very slow machine. */
    CHECK(lines >= 1 && lines <= 2 * RATELIMIT_BURST, "%u lines", lines);
    CHECK(strncmp(last, "revirter: test: guest event ", 28) == 0, "last line %s", last);
}

static struct ratelimit long_rl = RATELIMIT_INIT;

static void long_lines(void *arg)
{
    (void)arg;
    char big[2000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ratelimit_log(&long_rl, "%s", big);
    long_rl.window_start -= RATELIMIT_INTERVAL_NS; /* as if the window had passed */
    long_rl.suppressed = 12345;
    ratelimit_log(&long_rl, "short");
}

static void test_log_format(void)
{
    char last[256];
    /* The long line is cut, and still one line. */
    CHECK_EQ(stderr_capture(long_lines, NULL, last, sizeof(last)), 2);
    CHECK(strcmp(last, "short [12345 similar messages suppressed]\n") == 0, "%s", last);
}

int main(void)
{
    RUN(test_window);
    RUN(test_sustained);
    RUN(test_log_burst);
    RUN(test_log_format);
    return check_done();
}
