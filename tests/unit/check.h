/* SPDX-License-Identifier: MIT */
/* A minimal test vocabulary for unit tests: TAP output, one process per test file. */
#ifndef REVIRT_TESTS_CHECK_H
#define REVIRT_TESTS_CHECK_H

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int check_failures;
static int check_count;
static int check_cases;
/* Unused where a file includes this header without RUN or CHECK_SKIP (hav_tests.c); room
 * for a reason that quotes a whole 256-byte error message (-Wformat-truncation). */
static char check_skip_reason[512] __attribute__((unused)); /* set by CHECK_SKIP */

/* CHECK(cond, fmt, ...): record one assertion; on failure say where and what. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        check_count++;                                                                             \
        if (!(cond)) {                                                                             \
            check_failures++;                                                                      \
            printf("# FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                               \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    CHECK((long long)(a) == (long long)(b), "%s = %lld, expected %lld", #a, (long long)(a),        \
          (long long)(b))

/* CHECK_SKIP(fmt, ...): the running case cannot run here, for the reason given (a privilege or
 * a device this machine lacks); the caller returns. Its TAP line says "# SKIP reason". Under CI
 * (CI=true), which has everything the tests need, a skip is a failure instead. */
#define CHECK_SKIP(...)                                                                            \
    do {                                                                                           \
        snprintf(check_skip_reason, sizeof(check_skip_reason), __VA_ARGS__);                       \
        const char *ci_ = getenv("CI");                                                            \
        if (ci_ && !strcmp(ci_, "true")) {                                                         \
            check_failures++;                                                                      \
            printf("# FAIL %s:%d: cannot skip under CI: %s\n", __FILE__, __LINE__,                 \
                   check_skip_reason);                                                             \
            check_skip_reason[0] = 0;                                                              \
        }                                                                                          \
    } while (0)

/* Run one named case and print its TAP line. */
#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int before = check_failures;                                                               \
        check_skip_reason[0] = 0;                                                                  \
        fn();                                                                                      \
        printf("%s %d - %s%s%s\n", check_failures == before ? "ok" : "not ok", ++check_cases, #fn, \
               check_skip_reason[0] ? " # SKIP " : "", check_skip_reason);                         \
    } while (0)

/* Read len bytes from fd (a pipe a device writes to); stops early after a second with nothing
 * to read, or at end of file. Returns how many were read. */
static inline size_t check_read_fd(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 1000) <= 0)
            break;
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

static inline int check_done(void)
{
    printf("1..%d\n# %d checks, %d failed\n", check_cases, check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
