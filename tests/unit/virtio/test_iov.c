/* SPDX-License-Identifier: MIT */
/* Segment lists as byte streams: reads, writes and slices across segment boundaries, empty
 * segments, and ranges running past the end. */
#include "../check.h"
#include "lib/iov.h"

#include <stdint.h>

/* Three segments of 3, 0 and 5 bytes over one 8-byte buffer: the stream is buf[0..8). */
struct rig {
    uint8_t buf[8];
    struct iovec iov[3];
};

static void rig_init(struct rig *g)
{
    for (unsigned i = 0; i < sizeof(g->buf); i++)
        g->buf[i] = (uint8_t)(0x10 + i);
    g->iov[0] = (struct iovec){g->buf, 3};
    g->iov[1] = (struct iovec){g->buf + 3, 0};
    g->iov[2] = (struct iovec){g->buf + 3, 5};
}

static void test_read(void)
{
    struct rig g;
    rig_init(&g);
    uint8_t out[8] = {0};
    CHECK_EQ(iov_read(g.iov, 3, 2, out, 4), 4);
    CHECK(memcmp(out, g.buf + 2, 4) == 0, "bytes 2..6 across the boundary");
    CHECK_EQ(iov_read(g.iov, 3, 6, out, 8), 2); /* the stream ends first */
    CHECK(out[0] == 0x16 && out[1] == 0x17, "the last two bytes");
    CHECK_EQ(iov_read(g.iov, 3, 8, out, 1), 0);
    CHECK_EQ(iov_read(g.iov, 3, 100, out, 1), 0);
    CHECK_EQ(iov_read(g.iov, 0, 0, out, 1), 0);
    CHECK_EQ(iov_read(g.iov, 3, 0, out, 0), 0);
}

static void test_write(void)
{
    struct rig g;
    rig_init(&g);
    static const uint8_t src[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CHECK_EQ(iov_write(g.iov, 3, 1, src, 4), 4);
    static const uint8_t want[8] = {0x10, 1, 2, 3, 4, 0x15, 0x16, 0x17};
    CHECK(memcmp(g.buf, want, 8) == 0, "bytes 1..5 written across the boundary");
    CHECK_EQ(iov_write(g.iov, 3, 5, src, 8), 3); /* only three fit */
    CHECK(g.buf[5] == 1 && g.buf[7] == 3, "tail written");
    CHECK_EQ(iov_write(g.iov, 3, 8, src, 1), 0);
}

static void test_slice(void)
{
    struct rig g;
    rig_init(&g);
    struct iovec out[3];
    CHECK_EQ(iov_slice(g.iov, 3, 1, 4, out), 2);
    CHECK(out[0].iov_base == g.buf + 1 && out[0].iov_len == 2, "first piece");
    CHECK(out[1].iov_base == g.buf + 3 && out[1].iov_len == 2, "second piece, empty skipped");
    CHECK_EQ(iov_slice(g.iov, 3, 3, SIZE_MAX, out), 1);
    CHECK(out[0].iov_base == g.buf + 3 && out[0].iov_len == 5, "to the end");
    CHECK_EQ(iov_slice(g.iov, 3, 0, SIZE_MAX, out), 2);
    CHECK_EQ(out[0].iov_len + out[1].iov_len, 8);
    CHECK_EQ(iov_slice(g.iov, 3, 8, SIZE_MAX, out), 0);
    CHECK_EQ(iov_slice(g.iov, 3, 2, 0, out), 0);
}

int main(void)
{
    RUN(test_read);
    RUN(test_write);
    RUN(test_slice);
    return check_done();
}
