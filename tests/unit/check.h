/* SPDX-License-Identifier: MIT */
/* A minimal test vocabulary for unit tests: TAP output, one process per test file. */
#ifndef REVIRT_TESTS_CHECK_H
#define REVIRT_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;
static int check_count;
static int check_cases;

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

/* Run one named case and print its TAP line. */
#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int before = check_failures;                                                               \
        fn();                                                                                      \
        printf("%s %d - %s\n", check_failures == before ? "ok" : "not ok", ++check_cases, #fn);    \
    } while (0)

static inline int check_done(void)
{
    printf("1..%d\n# %d checks, %d failed\n", check_cases, check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
