/* SPDX-License-Identifier: MIT */
/* The console escape filter: Ctrl-A x quits, Ctrl-A Ctrl-A passes one Ctrl-A, state carries. */
#include "check.h"
#include "revirter/console.h"

static void test_filter(void)
{
    uint8_t out[64];
    int state = 0, quit = 0;
    size_t n = console_filter(&state, (const uint8_t *)"ls\r", 3, out, &quit);
    CHECK(n == 3 && !memcmp(out, "ls\r", 3) && !quit, "plain bytes pass");
    const uint8_t dbl[] = {'a', 1, 1, 'b'};
    n = console_filter(&state, dbl, 4, out, &quit);
    CHECK(n == 3 && out[0] == 'a' && out[1] == 1 && out[2] == 'b', "Ctrl-A Ctrl-A");
    const uint8_t split1[] = {'q', 1}, split2[] = {'x', 'z'};
    n = console_filter(&state, split1, 2, out, &quit);
    CHECK(n == 1 && state == 1 && !quit, "escape pending across reads");
    n = console_filter(&state, split2, 2, out, &quit);
    CHECK(quit && n == 0, "Ctrl-A x quits");
    state = quit = 0;
    const uint8_t other[] = {1, 'c'};
    n = console_filter(&state, other, 2, out, &quit);
    CHECK(n == 2 && out[0] == 1 && out[1] == 'c' && !quit, "unknown escape passes through");
}

int main(void)
{
    RUN(test_filter);
    return check_done();
}
