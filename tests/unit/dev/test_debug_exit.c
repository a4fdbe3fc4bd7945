/* SPDX-License-Identifier: MIT */
/* isa-debug-exit tests: the status a test guest's write turns into. */
#include "../check.h"

#include <errno.h>

#include "dev/debug_exit.h"

static struct bus pio;
static uint64_t last_status;
static int exits;

static void on_exit_status(void *opaque, uint64_t status)
{
    (void)opaque;
    last_status = status;
    exits++;
}

static struct debug_exit *make(uint8_t size)
{
    bus_init(&pio, "pio");
    exits = 0;
    struct debug_exit_config cfg = {.port = DEBUG_EXIT_PORT, .size = size, .exit = on_exit_status};
    struct debug_exit *d = NULL;
    int ret = debug_exit_create(&pio, &cfg, &d);
    CHECK(ret == 0 && d, "debug_exit_create: %d", ret);
    return d;
}

static void done(struct debug_exit *d)
{
    debug_exit_destroy(d);
    bus_free(&pio);
}

static void test_debug_exit_byte(void)
{
    struct debug_exit *d = make(0);
    static const struct {
        uint8_t v;
        uint64_t status;
    } cases[] = {{0x00, 1}, {0x01, 3}, {0x10, 0x21}, {0x7f, 0xff}, {0xff, 0x1ff}};
    for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t v = cases[i].v;
        CHECK(bus_dispatch(&pio, DEBUG_EXIT_PORT, &v, 1, true), "write");
        CHECK_EQ(last_status, cases[i].status);
    }
    CHECK_EQ(exits, 5);
    CHECK_EQ(last_status & 0xff, 0xff); /* the exit code a VMM would return for 0xff */
    uint8_t r = 0x55;
    CHECK(bus_dispatch(&pio, DEBUG_EXIT_PORT, &r, 1, false), "read");
    CHECK_EQ(r, 0);
    CHECK_EQ(exits, 5);
    uint32_t wide = 0x01;
    CHECK(!bus_dispatch(&pio, DEBUG_EXIT_PORT, (uint8_t *)&wide, 4, true), "1-byte port");
    CHECK_EQ(exits, 5);
    done(d);
}

static void test_debug_exit_dword(void)
{
    struct debug_exit *d = make(4);
    uint8_t v[4] = {0x78, 0x56, 0x34, 0x12};
    CHECK(bus_dispatch(&pio, DEBUG_EXIT_PORT, v, 4, true), "outl");
    CHECK_EQ(last_status, (0x12345678ull << 1) | 1);
    uint8_t b = 0x02;
    CHECK(bus_dispatch(&pio, DEBUG_EXIT_PORT, &b, 1, true), "outb");
    CHECK_EQ(last_status, 5);
    done(d);
}

static void test_debug_exit_errors(void)
{
    bus_init(&pio, "pio");
    struct debug_exit *d = NULL;
    struct debug_exit_config cfg = {.port = DEBUG_EXIT_PORT, .size = 3, .exit = on_exit_status};
    CHECK_EQ(debug_exit_create(&pio, &cfg, &d), -EINVAL);
    cfg.size = 1;
    cfg.exit = NULL;
    CHECK_EQ(debug_exit_create(&pio, &cfg, &d), -EINVAL);
    CHECK_EQ(pio.count, 0);
    bus_free(&pio);
}

int main(void)
{
    RUN(test_debug_exit_byte);
    RUN(test_debug_exit_dword);
    RUN(test_debug_exit_errors);
    return check_done();
}
