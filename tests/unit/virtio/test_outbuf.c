/* SPDX-License-Identifier: MIT */
/* outbuf: bytes come out in order and complete, a full ring refuses and calls room later, the
 * end writes everything, and a reader that went away neither kills nor stalls the producer. */
#include "../check.h"
#include "sys/outbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static atomic_int rooms;

static void on_room(void *opaque)
{
    (void)opaque;
    atomic_fetch_add(&rooms, 1);
}

static void test_refuse_then_room(void)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    /* A pipe of one page, so that ring and pipe together hold little. */
    fcntl(p[1], F_SETPIPE_SZ, 4096);
    struct outbuf *o;
    CHECK_EQ(outbuf_create("t", p[1], 1000, on_room, NULL, &o), 0);
    enum { N = 100000 };
    static uint8_t data[N], got[N];
    for (size_t i = 0; i < N; i++)
        data[i] = (uint8_t)(i ^ (i >> 8));
    size_t sent = 0;
    for (int spin = 0; spin < 200 && sent < N; spin++) {
        sent += outbuf_write(o, data + sent, N - sent);
        usleep(1000);
    }
    CHECK(sent < N, "nothing refused with nobody reading (%zu)", sent);
    CHECK_EQ(outbuf_write(o, data + sent, 1), 0);
    int before = atomic_load(&rooms);
    size_t nread = 0;
    for (int idle = 0; nread < N && idle < 1000;) {
        if (sent < N)
            sent += outbuf_write(o, data + sent, N - sent);
        /* A write refused while the thread was writing is retried on the next round: the pipe
         * may be empty meanwhile, so wait for it only briefly. */
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, 10) <= 0) {
            idle++;
            continue;
        }
        ssize_t n = read(p[0], got + nread, N - nread);
        if (n <= 0)
            break;
        nread += (size_t)n;
    }
    CHECK_EQ(nread, N);
    CHECK(memcmp(got, data, N) == 0, "bytes out of order or changed");
    CHECK(atomic_load(&rooms) > before, "room not called after the reader made space");
    outbuf_destroy(o);
    close(p[0]);
    close(p[1]);
}

struct late_reader {
    int fd;
    uint8_t *buf;
    size_t len, got;
};

static void *late_read(void *arg)
{
    struct late_reader *r = arg;
    usleep(200000);
    r->got = check_read_fd(r->fd, r->buf, r->len);
    return NULL;
}

/* After outbuf_finish writes wait instead of refusing, and destroy writes everything. */
static void test_finish_loses_nothing(void)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    struct outbuf *o;
    CHECK_EQ(outbuf_create("t", p[1], 512, on_room, NULL, &o), 0);
    enum { N = 200000 };
    static uint8_t data[N], got[N];
    for (size_t i = 0; i < N; i++)
        data[i] = (uint8_t)(i * 31);
    struct late_reader r = {p[0], got, N, 0};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, late_read, &r), 0);
    outbuf_finish(o);
    CHECK_EQ(outbuf_write(o, data, N), N);
    outbuf_destroy(o);
    close(p[1]);
    pthread_join(t, NULL);
    CHECK_EQ(r.got, N);
    CHECK(memcmp(got, data, N) == 0, "bytes out of order or changed");
    close(p[0]);
}

/* The reader is gone: EPIPE (SIGPIPE is blocked on the thread), and from then on everything is
 * taken and dropped, so producers are never left waiting for a room that cannot come. */
static void test_reader_gone(void)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    close(p[0]);
    struct outbuf *o;
    CHECK_EQ(outbuf_create("t", p[1], 64, on_room, NULL, &o), 0);
    static uint8_t data[4096];
    size_t sent = 0;
    for (int spin = 0; spin < 1000 && sent < sizeof(data); spin++) {
        sent += outbuf_write(o, data + sent, sizeof(data) - sent);
        usleep(1000);
    }
    CHECK_EQ(sent, sizeof(data));
    outbuf_finish(o);
    CHECK_EQ(outbuf_write(o, data, sizeof(data)), sizeof(data));
    outbuf_destroy(o);
    close(p[1]);
}

static void test_create_errors(void)
{
    struct outbuf *o = NULL;
    CHECK_EQ(outbuf_create("t", -1, 64, on_room, NULL, &o), -EINVAL);
    CHECK_EQ(outbuf_create("t", 1, 0, on_room, NULL, &o), -EINVAL);
    CHECK_EQ(outbuf_create("t", 1, 64, NULL, NULL, &o), -EINVAL);
    outbuf_destroy(NULL);
}

int main(void)
{
    RUN(test_refuse_then_room);
    RUN(test_finish_loses_nothing);
    RUN(test_reader_gone);
    RUN(test_create_errors);
    return check_done();
}
