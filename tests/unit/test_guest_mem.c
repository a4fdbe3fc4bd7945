/* SPDX-License-Identifier: MIT */
/* Guest-memory accessor: in-range access works, everything else (edges, overflow) misses. */
#include "check.h"
#include "core/guest_mem.h"

#include <errno.h>
#include <stdint.h>

static uint8_t low[0x1000], high[0x2000];

static struct guest_mem two_regions(void)
{
    struct guest_mem m = {0};
    CHECK_EQ(guest_mem_add(&m, 0, low, sizeof(low)), 0);
    CHECK_EQ(guest_mem_add(&m, 0x100000, high, sizeof(high)), 0);
    return m;
}

static void test_ptr_in_range(void)
{
    struct guest_mem m = two_regions();
    CHECK(guest_mem_ptr(&m, 0, 1) == low, "start of low");
    CHECK(guest_mem_ptr(&m, 0xfff, 1) == low + 0xfff, "last byte of low");
    CHECK(guest_mem_ptr(&m, 0x100000, sizeof(high)) == high, "whole high region");
    CHECK(guest_mem_ptr(&m, 0x101fff, 0) == high + 0x1fff, "empty access inside");
}

static void test_ptr_out_of_range(void)
{
    struct guest_mem m = two_regions();
    CHECK(!guest_mem_ptr(&m, 0xfff, 2), "crosses the end of low");
    CHECK(!guest_mem_ptr(&m, 0x1000, 1), "gap");
    CHECK(!guest_mem_ptr(&m, 0x0ffffe, 4), "straddles into high");
    CHECK(!guest_mem_ptr(&m, 0x102000, 1), "after high");
    CHECK(!guest_mem_ptr(&m, 0x100001, UINT64_MAX), "length overflow");
    CHECK(!guest_mem_ptr(&m, UINT64_MAX, 2), "address overflow");
}

static void test_read_write(void)
{
    struct guest_mem m = two_regions();
    uint32_t v = 0x11223344, back = 0;
    CHECK_EQ(guest_mem_write(&m, 0x100010, &v, 4), 0);
    CHECK_EQ(guest_mem_read(&m, 0x100010, &back, 4), 0);
    CHECK_EQ(back, v);
    CHECK_EQ(guest_mem_write(&m, 0x101ffe, &v, 4), -EFAULT);
    CHECK_EQ(guest_mem_read(&m, 0x5000, &back, 4), -EFAULT);
}

static void test_add_errors(void)
{
    struct guest_mem m = two_regions();
    CHECK_EQ(guest_mem_add(&m, 0x800, low, 0x1000), -EEXIST);
    CHECK_EQ(guest_mem_add(&m, 0x5000, low, 0), -EINVAL);
    CHECK_EQ(guest_mem_add(&m, UINT64_MAX - 10, low, 0x1000), -EINVAL);
    CHECK_EQ(guest_mem_end(&m), 0x102000);
    for (unsigned i = m.count; i < GUEST_MEM_MAX_REGIONS; i++)
        CHECK_EQ(guest_mem_add(&m, 0x200000 + i * 0x1000ull, low, 0x1000), 0);
    CHECK_EQ(guest_mem_add(&m, 0x900000, low, 0x1000), -ENOSPC);
}

int main(void)
{
    RUN(test_ptr_in_range);
    RUN(test_ptr_out_of_range);
    RUN(test_read_write);
    RUN(test_add_errors);
    return check_done();
}
