/* SPDX-License-Identifier: MIT */
/* Bus dispatch: the right device sees the right offset; overlaps and misses are reported. */
#include "check.h"
#include "core/bus.h"

#include <errno.h>

struct fake {
    uint64_t last_off;
    uint32_t last_len;
    int writes, reads;
};

static void fake_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
    struct fake *f = opaque;
    f->last_off = off;
    f->last_len = len;
    if (write)
        f->writes++;
    else {
        f->reads++;
        for (uint32_t i = 0; i < len; i++)
            data[i] = (uint8_t)(0xa0 + i);
    }
}

static void test_dispatch(void)
{
    struct bus bus;
    struct fake a = {0}, b = {0};
    bus_init(&bus, "pio");
    CHECK_EQ(bus_register(&bus, 0x3f8, 8, fake_access, &a, "uart"), 0);
    CHECK_EQ(bus_register(&bus, 0x60, 1, fake_access, &b, "kbd"), 0);
    uint8_t d[4] = {0};
    CHECK(bus_dispatch(&bus, 0x3fd, d, 1, false), "uart claims 0x3fd");
    CHECK_EQ(a.last_off, 5);
    CHECK_EQ(d[0], 0xa0);
    CHECK(bus_dispatch(&bus, 0x60, d, 1, true), "kbd claims 0x60");
    CHECK_EQ(b.writes, 1);
    CHECK(!bus_dispatch(&bus, 0x3ff, d, 2, false), "access crossing the end is unclaimed");
    CHECK(!bus_dispatch(&bus, 0x61, d, 4, false), "nobody at 0x61");
    CHECK_EQ(d[0] & d[1] & d[2] & d[3], 0xff);
    bus_free(&bus);
}

static void test_register_errors(void)
{
    struct bus bus;
    struct fake a = {0};
    bus_init(&bus, "mmio");
    CHECK_EQ(bus_register(&bus, 0x1000, 0x1000, fake_access, &a, "a"), 0);
    CHECK_EQ(bus_register(&bus, 0x1fff, 1, fake_access, &a, "b"), -EEXIST);
    CHECK_EQ(bus_register(&bus, 0x800, 0x801, fake_access, &a, "c"), -EEXIST);
    CHECK_EQ(bus_register(&bus, 0x2000, 0, fake_access, &a, "d"), -EINVAL);
    CHECK_EQ(bus_register(&bus, UINT64_MAX, 2, fake_access, &a, "e"), -EINVAL);
    CHECK_EQ(bus_register(&bus, 0x800, 0x800, fake_access, &a, "f"), 0);
    CHECK_EQ(bus_unregister(&bus, 0x1000, &a), 0);
    CHECK_EQ(bus_unregister(&bus, 0x1000, &a), -ENOENT);
    uint8_t d = 0;
    CHECK(!bus_dispatch(&bus, 0x1000, &d, 1, false), "unregistered range is gone");
    CHECK(bus_dispatch(&bus, 0xfff, &d, 1, false), "neighbour still there");
    /* many ranges exercise the sorted insert and binary search */
    for (unsigned i = 0; i < 100; i++)
        CHECK_EQ(bus_register(&bus, 0x100000 + (99 - i) * 0x10, 0x10, fake_access, &a, "n"), 0);
    CHECK(bus_dispatch(&bus, 0x100000 + 57 * 0x10 + 3, &d, 1, false), "range 57");
    CHECK_EQ(a.last_off, 3);
    bus_free(&bus);
}

int main(void)
{
    RUN(test_dispatch);
    RUN(test_register_errors);
    return check_done();
}
