/* SPDX-License-Identifier: MIT */
/* virtio-console through vdriver: output through an outbuf to a pipe (also a full one), input
 * into posted buffers, and rx_ready once buffers come back after input was turned away. */
#include "../check.h"
#include "vdriver.h"
#include "sys/outbuf.h"
#include "virtio/console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define RXQ 0
#define TXQ 1

static atomic_int rx_ready_calls;

static void on_rx_ready(void *opaque)
{
    (void)opaque;
    atomic_fetch_add(&rx_ready_calls, 1);
}

static int wait_rx_ready(int before, int timeout_ms)
{
    for (int i = 0; i < timeout_ms; i++) {
        if (atomic_load(&rx_ready_calls) > before)
            return 0;
        usleep(1000);
    }
    return -ETIMEDOUT;
}

struct fixture {
    struct vdriver d;
    struct virtio_console *c;
    struct outbuf *out;
    int pipe[2];
};

static void on_room(void *opaque)
{
    struct fixture *f = opaque;
    virtio_console_tx_ready(f->c);
}

static void setup(struct fixture *f, bool attach)
{
    CHECK_EQ(pipe2(f->pipe, O_CLOEXEC), 0);
    CHECK_EQ(vdriver_init(&f->d, 4u << 20), 0);
    /* Smaller than the chains below, so that a full pipe makes the device hold one. */
    CHECK_EQ(outbuf_create("test-out", f->pipe[1], 4096, on_room, f, &f->out), 0);
    struct virtio_console_config cfg = {.out = {outbuf_sink_write, f->out},
                                        .rx_ready = on_rx_ready};
    CHECK_EQ(virtio_console_create(&cfg, &f->d.mem, &f->c), 0);
    if (attach) {
        uint8_t st = vdriver_attach(&f->d, virtio_console_device(f->c), 0, 16);
        CHECK(st & VIRTIO_STATUS_DRIVER_OK, "status %#x", st);
    }
}

static void teardown(struct fixture *f)
{
    outbuf_finish(f->out);
    virtio_console_destroy(f->c);
    outbuf_destroy(f->out);
    vdriver_free(&f->d);
    close(f->pipe[0]);
    close(f->pipe[1]);
}

static uint64_t put(struct fixture *f, const void *data, uint32_t len)
{
    uint64_t gpa = vdriver_alloc(&f->d, len, 8);
    memcpy(vdriver_ptr(&f->d, gpa), data, len);
    return gpa;
}

static void test_transmit(void)
{
    struct fixture f;
    setup(&f, true);
    struct vdriver_buf b[2] = {
        {put(&f, "hello, ", 7), 7, false},
        {put(&f, "world\n", 6), 6, false},
    };
    uint16_t head = vdriver_add(&f.d, TXQ, b, 2, true), used;
    uint32_t len;
    CHECK_EQ(vdriver_wait_used(&f.d, TXQ, &used, &len, 1000), 0);
    CHECK_EQ(used, head);
    char out[32] = {0};
    CHECK_EQ(check_read_fd(f.pipe[0], out, 13), 13);
    CHECK(memcmp(out, "hello, world\n", 13) == 0, "got '%s'", out);
    teardown(&f);
}

/* A full pipe behind the outbuf: the chain is held (not returned, nothing dropped) until the
 * reader makes room, and neither the device nor the outbuf spins meanwhile. */
static void test_transmit_slow_terminal(void)
{
    struct fixture f;
    setup(&f, true);
    CHECK_EQ(fcntl(f.pipe[1], F_SETFL, O_NONBLOCK), 0);
    static uint8_t fill[1 << 16];
    memset(fill, 'f', sizeof(fill));
    size_t prefill = 0;
    for (;;) {
        ssize_t n = write(f.pipe[1], fill, sizeof(fill));
        if (n <= 0)
            break;
        prefill += (size_t)n;
    }
    enum { N = 200000 };
    static uint8_t data[N];
    for (size_t i = 0; i < N; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    struct vdriver_buf b = {put(&f, data, N), N, false};
    vdriver_add(&f.d, TXQ, &b, 1, true);
    uint16_t used;
    uint32_t len;
    CHECK_EQ(vdriver_wait_used(&f.d, TXQ, &used, &len, 100), -ETIMEDOUT);

    /* Its thread must be waiting, not burning a CPU. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    usleep(200000);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    double cpu = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(cpu < 0.1, "%.3f s of CPU in 0.2 s while blocked", cpu);

    static uint8_t back[1 << 16];
    size_t drained = 0;
    while (drained < prefill) {
        size_t want = prefill - drained < sizeof(back) ? prefill - drained : sizeof(back);
        size_t n = check_read_fd(f.pipe[0], back, want);
        if (n == 0)
            break;
        drained += n;
    }
    CHECK_EQ(drained, prefill);
    static uint8_t out[N];
    CHECK_EQ(check_read_fd(f.pipe[0], out, N), N);
    CHECK(memcmp(out, data, N) == 0, "output differs");
    CHECK_EQ(vdriver_wait_used(&f.d, TXQ, &used, &len, 1000), 0);
    teardown(&f);
}

static void test_receive(void)
{
    struct fixture f;
    setup(&f, true);
    /* No buffers yet: nothing taken. */
    int before = atomic_load(&rx_ready_calls);
    CHECK_EQ(virtio_console_receive(f.c, (const uint8_t *)"x", 1), 0);

    uint64_t g1 = vdriver_alloc(&f.d, 4, 8), g2 = vdriver_alloc(&f.d, 4, 8);
    struct vdriver_buf b1 = {g1, 4, true}, b2 = {g2, 4, true};
    uint16_t h1 = vdriver_add(&f.d, RXQ, &b1, 1, true);
    CHECK_EQ(wait_rx_ready(before, 1000), 0);
    uint16_t h2 = vdriver_add(&f.d, RXQ, &b2, 1, true);

    /* Ten bytes offered, eight fit: a partial take, the rest waits for rx_ready. */
    before = atomic_load(&rx_ready_calls);
    CHECK_EQ(virtio_console_receive(f.c, (const uint8_t *)"abcdefghij", 10), 8);
    uint16_t head;
    uint32_t len;
    CHECK_EQ(vdriver_wait_used(&f.d, RXQ, &head, &len, 1000), 0);
    CHECK_EQ(head, h1);
    CHECK_EQ(len, 4);
    CHECK(memcmp(vdriver_ptr(&f.d, g1), "abcd", 4) == 0, "first buffer");
    CHECK_EQ(vdriver_wait_used(&f.d, RXQ, &head, &len, 1000), 0);
    CHECK_EQ(head, h2);
    CHECK_EQ(len, 4);
    CHECK(memcmp(vdriver_ptr(&f.d, g2), "efgh", 4) == 0, "second buffer");
    usleep(20000);
    CHECK_EQ(atomic_load(&rx_ready_calls), before);

    uint64_t g3 = vdriver_alloc(&f.d, 16, 8);
    struct vdriver_buf b3 = {g3, 16, true};
    vdriver_add(&f.d, RXQ, &b3, 1, true);
    CHECK_EQ(wait_rx_ready(before, 1000), 0);
    CHECK_EQ(virtio_console_receive(f.c, (const uint8_t *)"ij", 2), 2);
    CHECK_EQ(vdriver_wait_used(&f.d, RXQ, &head, &len, 1000), 0);
    CHECK_EQ(len, 2);
    CHECK(memcmp(vdriver_ptr(&f.d, g3), "ij", 2) == 0, "third buffer");
    teardown(&f);
}

/* Input before the driver is ready is turned away; once it posts buffers, rx_ready. After a
 * reset, input is turned away again. */
static void test_receive_lifecycle(void)
{
    struct fixture f;
    setup(&f, false);
    int before = atomic_load(&rx_ready_calls);
    CHECK_EQ(virtio_console_receive(f.c, (const uint8_t *)"early", 5), 0);
    uint8_t st = vdriver_attach(&f.d, virtio_console_device(f.c), 0, 16);
    CHECK(st & VIRTIO_STATUS_DRIVER_OK, "status %#x", st);
    struct vdriver_buf b = {vdriver_alloc(&f.d, 64, 8), 64, true};
    vdriver_add(&f.d, RXQ, &b, 1, true);
    CHECK_EQ(wait_rx_ready(before, 1000), 0);
    CHECK_EQ(virtio_console_receive(f.c, (const uint8_t *)"early", 5), 5);
    vdriver_reset(&f.d);
    CHECK_EQ(virtio_console_receive(f.c, (const uint8_t *)"late", 4), 0);
    teardown(&f);
}

/* A chain without writable bytes on the receive queue is returned empty, not a crash. */
static void test_receive_odd_chain(void)
{
    struct fixture f;
    setup(&f, true);
    struct vdriver_buf ro = {vdriver_alloc(&f.d, 8, 8), 8, false};
    vdriver_add(&f.d, RXQ, &ro, 1, false);
    struct vdriver_buf ok = {vdriver_alloc(&f.d, 8, 8), 8, true};
    vdriver_add(&f.d, RXQ, &ok, 1, false);
    CHECK_EQ(virtio_console_receive(f.c, (const uint8_t *)"zz", 2), 2);
    uint16_t head;
    uint32_t len;
    CHECK_EQ(vdriver_wait_used(&f.d, RXQ, &head, &len, 1000), 0);
    CHECK_EQ(len, 0);
    CHECK_EQ(vdriver_wait_used(&f.d, RXQ, &head, &len, 1000), 0);
    CHECK_EQ(len, 2);
    CHECK(!(vdriver_status(&f.d) & VIRTIO_STATUS_NEEDS_RESET), "device healthy");
    teardown(&f);
}

/* A closed terminal: output is dropped rather than stalling the guest. */
static void test_transmit_closed(void)
{
    struct fixture f;
    setup(&f, true);
    close(f.pipe[0]);
    f.pipe[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct vdriver_buf b = {put(&f, "lost", 4), 4, false};
    vdriver_add(&f.d, TXQ, &b, 1, true);
    uint16_t used;
    uint32_t len;
    CHECK_EQ(vdriver_wait_used(&f.d, TXQ, &used, &len, 1000), 0);
    teardown(&f);
}

int main(void)
{
    RUN(test_transmit);
    RUN(test_transmit_slow_terminal);
    RUN(test_receive);
    RUN(test_receive_lifecycle);
    RUN(test_receive_odd_chain);
    RUN(test_transmit_closed);
    return check_done();
}
