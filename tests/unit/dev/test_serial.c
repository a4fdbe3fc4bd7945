/* SPDX-License-Identifier: MIT */
/* 16550A tests: only bus_dispatch accesses, checked against what Linux's 8250 driver expects;
 * output into a sink that can refuse bytes, and through an outbuf into a pipe nobody reads. */
#include "../check.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "dev/serial.h"
#include "sys/outbuf.h"

#define COM1 SERIAL_COM1_PORT

struct fake_irq {
    bool level;
    int rises, calls;
};

static void fake_irq_set(void *opaque, unsigned gsi, bool level)
{
    struct fake_irq *f = opaque;
    (void)gsi;
    f->calls++;
    if (level && !f->level)
        f->rises++;
    f->level = level;
}

static struct bus pio;
static struct fake_irq irq;
static int rx_ready_calls;

static void on_rx_ready(void *opaque)
{
    (void)opaque;
    rx_ready_calls++;
}

/* What the UART transmitted, and how much more it may take (SIZE_MAX: no limit). */
static struct {
    uint8_t buf[1 << 16];
    size_t len;
    size_t room;
} sink;

static size_t sink_write(void *opaque, const uint8_t *buf, size_t len)
{
    (void)opaque;
    size_t n = len < sink.room ? len : sink.room;
    if (n > sizeof(sink.buf) - sink.len)
        n = sizeof(sink.buf) - sink.len;
    memcpy(sink.buf + sink.len, buf, n);
    sink.len += n;
    if (sink.room != SIZE_MAX)
        sink.room -= n;
    return n;
}

static struct serial *make_on(struct byte_sink out)
{
    bus_init(&pio, "pio");
    memset(&irq, 0, sizeof(irq));
    rx_ready_calls = 0;
    struct serial_config cfg = {
        .port = COM1,
        .irq = {.set = fake_irq_set, .opaque = &irq, .gsi = SERIAL_COM1_IRQ},
        .out = out,
        .rx_ready = on_rx_ready,
    };
    struct serial *s = NULL;
    int ret = serial_create(&pio, &cfg, &s);
    CHECK(ret == 0 && s, "serial_create: %d", ret);
    return s;
}

/* A UART on the test sink, empty and taking everything. */
static struct serial *make(void)
{
    sink.len = 0;
    sink.room = SIZE_MAX;
    return make_on((struct byte_sink){sink_write, NULL});
}

static void done(struct serial *s)
{
    serial_destroy(s);
    bus_free(&pio);
}

static void outb(unsigned reg, uint8_t v)
{
    CHECK(bus_dispatch(&pio, COM1 + reg, &v, 1, true), "no device at +%u", reg);
}

static uint8_t inb(unsigned reg)
{
    uint8_t v = 0;
    CHECK(bus_dispatch(&pio, COM1 + reg, &v, 1, false), "no device at +%u", reg);
    return v;
}

enum { THR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

static void test_serial_probe_registers(void)
{
    struct serial *s = make();
    /* serial8250 autoconfig: IER keeps exactly its low nibble. */
    outb(IER, 0x00);
    CHECK_EQ(inb(IER) & 0x0f, 0x00);
    outb(IER, 0x0f);
    CHECK_EQ(inb(IER), 0x0f);
    outb(IER, 0x40); /* the XScale UUE bit must not stick on a 16550A */
    CHECK_EQ(inb(IER), 0x00);
    outb(SCR, 0xa5);
    CHECK_EQ(inb(SCR), 0xa5);
    CHECK_EQ(inb(IIR), 0x01); /* no FIFO, nothing pending */
    outb(FCR, 0x01);
    CHECK_EQ(inb(IIR) >> 6, 3); /* FIFO enabled: 16550A */
    /* With LCR 0xBF offset 2 must not read 0 (that would be an EFR, a 16650). */
    outb(LCR, 0xbf);
    CHECK(inb(IIR) != 0, "EFR-like read as 0");
    outb(LCR, 0x03);
    CHECK_EQ(inb(LCR), 0x03);
    CHECK_EQ(inb(LSR), 0x60); /* THRE | TEMT */
    CHECK_EQ(inb(MSR), 0xb0); /* DCD | DSR | CTS, no deltas */
    uint8_t wide[2] = {0};
    CHECK(bus_dispatch(&pio, COM1 + LCR, wide, 2, false), "word read");
    CHECK_EQ(wide[0], 0x03); /* LCR then MCR */
    done(s);
}

static void test_serial_divisor_latch(void)
{
    struct serial *s = make();
    outb(IER, 0x05);
    outb(LCR, 0x83); /* DLAB */
    outb(THR, 0x01); /* DLL: 115200 baud */
    outb(IER, 0x00); /* DLM */
    CHECK_EQ(inb(THR), 0x01);
    CHECK_EQ(inb(IER), 0x00);
    outb(LCR, 0x03);
    CHECK_EQ(inb(IER), 0x05); /* IER untouched by the DLM write */
    outb(LCR, 0x83);
    CHECK_EQ(inb(THR) | inb(IER) << 8, 0x0001);
    done(s);
}

static void test_serial_output_sink(void)
{
    struct serial *s = make();
    const char *msg = "ok\n";
    for (const char *c = msg; *c; c++) {
        CHECK(inb(LSR) & 0x20, "THRE before byte");
        outb(THR, (uint8_t)*c);
    }
    CHECK_EQ(sink.len, 3);
    CHECK(memcmp(sink.buf, msg, 3) == 0, "output '%.3s'", (char *)sink.buf);
    /* DLAB set: offset 0 is DLL, nothing is transmitted. */
    outb(LCR, 0x80);
    outb(THR, 'x');
    outb(LCR, 0x03);
    outb(THR, '!');
    CHECK_EQ(sink.len, 4);
    CHECK_EQ(sink.buf[3], '!');
    done(s);
}

/* A sink that refuses bytes: the transmitter is busy (THRE and TEMT clear, no THRE interrupt)
 * until serial_tx_ready, then everything comes out in order and the interrupt is raised. */
static void test_serial_sink_full(void)
{
    struct serial *s = make();
    outb(FCR, 0x07);
    outb(LCR, 0x03);
    outb(MCR, 0x0b);
    sink.room = 2;
    outb(THR, 'a');
    outb(THR, 'b');
    CHECK_EQ(inb(LSR) & 0x60, 0x60);
    outb(THR, 'c'); /* refused: held in the transmit FIFO */
    CHECK_EQ(sink.len, 2);
    CHECK_EQ(inb(LSR) & 0x60, 0x00);
    /* Setting ETBEI while the FIFO holds bytes raises nothing yet. */
    outb(IER, 0x02);
    CHECK_EQ(inb(IIR), 0xc1);
    CHECK(!irq.level, "no THRE interrupt while the transmitter is busy");
    /* The FIFO takes 16 in all, as a driver that loads tx_loadsz bytes per THRE expects. */
    for (int i = 1; i < SERIAL_FIFO_SIZE; i++)
        outb(THR, (uint8_t)('c' + i));
    CHECK_EQ(sink.len, 2);
    serial_tx_ready(s); /* still no room: nothing changes */
    CHECK_EQ(inb(LSR) & 0x60, 0x00);
    CHECK(!irq.level, "still busy");
    sink.room = 5; /* room for part of it */
    serial_tx_ready(s);
    CHECK_EQ(sink.len, 7);
    CHECK_EQ(inb(LSR) & 0x60, 0x00);
    CHECK(!irq.level, "busy until the FIFO is empty");
    sink.room = SIZE_MAX;
    serial_tx_ready(s);
    CHECK_EQ(sink.len, 2 + SERIAL_FIFO_SIZE);
    for (size_t i = 0; i < sink.len; i++)
        CHECK_EQ(sink.buf[i], 'a' + i);
    CHECK_EQ(inb(LSR) & 0x60, 0x60);
    CHECK(irq.level, "THRE interrupt once the FIFO emptied");
    CHECK_EQ(inb(IIR), 0xc2);
    CHECK(!irq.level, "acknowledged");

    /* 16450 mode: THR is one byte deep. */
    outb(IER, 0x00);
    outb(FCR, 0x00);
    sink.room = 0;
    outb(THR, 'x');
    CHECK_EQ(inb(LSR) & 0x60, 0x00);
    sink.room = SIZE_MAX;
    serial_tx_ready(s);
    CHECK_EQ(inb(LSR) & 0x60, 0x60);
    CHECK_EQ(sink.buf[sink.len - 1], 'x');

    /* Resetting the XMIT FIFO empties it: THRE again, the held bytes dropped as on the chip. */
    outb(FCR, 0x01);
    sink.room = 0;
    outb(THR, 'y');
    outb(FCR, 0x05);
    CHECK_EQ(inb(LSR) & 0x60, 0x60);
    sink.room = SIZE_MAX;
    size_t before = sink.len;
    serial_tx_ready(s);
    CHECK_EQ(sink.len, before);

    /* What the FIFO still holds at the end is offered to the sink by serial_destroy. */
    sink.room = 0;
    outb(THR, 'z');
    sink.room = SIZE_MAX;
    done(s);
    CHECK_EQ(sink.buf[sink.len - 1], 'z');
}

static void test_serial_loopback(void)
{
    struct serial *s = make();
    outb(MSR, 0); /* ignored */
    (void)inb(MSR);
    /* serial8250 autoconfig: MCR = LOOP | OUT2 | RTS must show DCD | CTS. */
    outb(MCR, 0x1a);
    CHECK_EQ(inb(MSR) & 0xf0, 0x90);
    outb(MCR, 0x1f);
    uint8_t msr = inb(MSR);
    CHECK_EQ(msr & 0xf0, 0xf0);
    CHECK_EQ(msr & 0x0f, 0x02); /* only DSR changed since the last read: DDSR */
    outb(MCR, 0x1b);            /* OUT1 (RI) falls: trailing-edge RI */
    CHECK_EQ(inb(MSR) & 0x0f, 0x04);
    outb(THR, 'L');
    CHECK(inb(LSR) & 0x01, "DR after looped byte");
    CHECK_EQ(inb(THR), 'L');
    CHECK(!(inb(LSR) & 0x01), "DR clear after read");
    /* The line is disconnected in loopback: host input is dropped, output goes nowhere. */
    uint8_t in = 'h';
    CHECK_EQ(serial_receive(s, &in, 1), 1);
    CHECK(!(inb(LSR) & 0x01), "host byte must not arrive in loopback");
    outb(MCR, 0x0b);
    outb(THR, 'o');
    CHECK_EQ(sink.len, 1);
    CHECK_EQ(sink.buf[0], 'o'); /* 'L' never reached the sink */
    done(s);
}

/* The sequence of serial8250_do_startup's THRE test, then the TX interrupt cycle. */
static void test_serial_thre_interrupt(void)
{
    struct serial *s = make();
    outb(FCR, 0x07);
    outb(LCR, 0x03);
    outb(MCR, 0x0b); /* DTR | RTS | OUT2: the PC IRQ gate */
    CHECK(!irq.level, "idle line low");
    outb(IER, 0x02);
    CHECK(irq.level, "THRE interrupt right after IER.ETBEI");
    CHECK_EQ(irq.rises, 1);
    uint8_t iir1 = inb(IIR);
    CHECK_EQ(iir1, 0xc2);
    CHECK_EQ(inb(IIR), 0xc1); /* the IIR read acknowledged it */
    CHECK(!irq.level, "line drops after the IIR read");
    outb(IER, 0x00);
    outb(IER, 0x02);
    CHECK_EQ(inb(IIR), 0xc2); /* re-asserted on ETBEI 0 -> 1: no UART_BUG_THRE */
    CHECK_EQ(irq.rises, 2);
    outb(IER, 0x00);
    CHECK(!irq.level, "ETBEI off drops the line");

    /* TX cycle: IRQ, IIR says THRE, driver writes bytes, THR empties again: a new edge. */
    outb(IER, 0x02);
    int rises = irq.rises;
    CHECK(irq.level, "pending");
    CHECK_EQ(inb(IIR), 0xc2);
    CHECK(!irq.level, "acknowledged");
    outb(THR, 'a');
    outb(THR, 'b');
    CHECK(irq.level, "THR empty again after the bytes left");
    CHECK_EQ(irq.rises, rises + 1);
    outb(IER, 0x00);
    CHECK(!irq.level, "stop_tx");

    /* IER.ETBEI already set: writing IER again does not re-arm an acknowledged THRE. */
    outb(IER, 0x02);
    (void)inb(IIR);
    outb(IER, 0x03);
    CHECK_EQ(inb(IIR), 0xc1);
    done(s);
}

static void test_serial_irq_gating(void)
{
    struct serial *s = make();
    outb(IER, 0x02);
    CHECK_EQ(inb(IIR), 0x02); /* pending in the UART, FIFOs off */
    outb(IER, 0x00);
    outb(IER, 0x02);
    CHECK(!irq.level, "no OUT2: the ISA line stays low");
    CHECK_EQ(irq.calls, 0);
    outb(MCR, 0x08);
    CHECK(irq.level, "OUT2 connects the pending interrupt");
    outb(MCR, 0x18);
    CHECK(!irq.level, "loopback disconnects it");
    outb(MCR, 0x08);
    CHECK(irq.level, "back");
    CHECK_EQ(irq.rises, 2);
    done(s);
}

static void test_serial_rx_fifo(void)
{
    struct serial *s = make();
    outb(MCR, 0x08);
    outb(FCR, 0xc7); /* FIFO on, clear, trigger at 14 */
    outb(IER, 0x01);
    CHECK(!irq.level, "idle");
    const uint8_t msg[] = "0123456789abcdefXYZ"; /* 19 bytes */
    CHECK_EQ(serial_receive(s, msg, 3), 3);
    CHECK(irq.level, "RX interrupt");
    CHECK_EQ(inb(IIR), 0xcc); /* below trigger: character timeout */
    CHECK_EQ(serial_receive(s, msg + 3, 16), 13);
    CHECK_EQ(inb(IIR), 0xc4);        /* at or above trigger: data available */
    CHECK_EQ(inb(LSR) & 0x03, 0x01); /* DR, and no overrun: surplus refused, not lost */
    CHECK_EQ(rx_ready_calls, 0);
    for (int i = 0; i < 16; i++) {
        CHECK_EQ(inb(THR), msg[i]);
        if (i == 0)
            CHECK_EQ(rx_ready_calls, 1);
    }
    CHECK(!(inb(LSR) & 0x01), "empty");
    CHECK(!irq.level, "line low once drained");
    CHECK_EQ(inb(IIR), 0xc1);
    CHECK_EQ(serial_receive(s, msg + 16, 3), 3);
    CHECK_EQ(inb(THR), 'X');
    CHECK_EQ(inb(THR), 'Y');
    outb(FCR, 0xc3); /* clear RX FIFO */
    CHECK(!(inb(LSR) & 0x01), "cleared");
    CHECK(!irq.level, "nothing pending after clear");
    CHECK_EQ(inb(THR), 'Y'); /* RBR keeps the last byte read */

    /* 16450 mode: a one-byte receiver. */
    outb(FCR, 0x00);
    CHECK_EQ(serial_receive(s, msg, 2), 1);
    CHECK_EQ(inb(IIR), 0x04);
    CHECK_EQ(inb(THR), '0');
    done(s);
}

static void test_serial_overrun(void)
{
    struct serial *s = make();
    outb(FCR, 0x01);
    outb(MCR, 0x18); /* loopback */
    outb(IER, 0x05); /* RX data + line status */
    for (int i = 0; i < SERIAL_FIFO_SIZE + 1; i++)
        outb(THR, (uint8_t)('a' + i));
    CHECK_EQ(inb(IIR), 0xc6); /* receiver line status outranks data */
    CHECK(!irq.level, "loopback: line gated");
    CHECK_EQ(inb(LSR) & 0x03, 0x03); /* OE | DR */
    CHECK_EQ(inb(LSR) & 0x02, 0x00); /* OE cleared by the read */
    CHECK_EQ(inb(IIR), 0xc4);
    for (int i = 0; i < SERIAL_FIFO_SIZE; i++)
        CHECK_EQ(inb(THR), 'a' + i); /* the 17th byte was lost, the first 16 kept */
    CHECK(!(inb(LSR) & 0x01), "empty");
    /* 16450 mode: the new byte replaces the unread one. */
    outb(FCR, 0x00);
    outb(THR, '1');
    outb(THR, '2');
    CHECK_EQ(inb(LSR) & 0x03, 0x03);
    CHECK_EQ(inb(THR), '2');
    done(s);
}

struct feeder {
    struct serial *s;
    int n;
};

static void *feed(void *arg)
{
    struct feeder *f = arg;
    for (int i = 0; i < f->n;) {
        uint8_t b = (uint8_t)i;
        if (serial_receive(f->s, &b, 1) == 1)
            i++;
        else
            sched_yield();
    }
    return NULL;
}

static void test_serial_threaded_input(void)
{
    struct serial *s = make();
    outb(FCR, 0x01);
    outb(MCR, 0x08);
    outb(IER, 0x01);
    struct feeder f = {s, 5000};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, feed, &f) == 0, "thread");
    int next = 0, bad = 0, missing = 0;
    while (next < f.n) {
        uint8_t lsr, b;
        /* Unchecked accesses: this loop spins, and one CHECK per spin would swamp the log. */
        missing += !bus_dispatch(&pio, COM1 + LSR, &lsr, 1, false);
        if (lsr & 0x01) {
            missing += !bus_dispatch(&pio, COM1 + THR, &b, 1, false);
            bad += b != (uint8_t)next;
            next++;
        } else {
            sched_yield(); /* let the feeder have the device lock */
        }
    }
    CHECK_EQ(missing, 0);
    pthread_join(t, NULL);
    CHECK_EQ(bad, 0);
    CHECK(!(inb(LSR) & 0x01), "all consumed");
    CHECK(!irq.level, "line low at the end");
    done(s);
}

/* ---------------------------------------------------------------- through an outbuf */

static struct serial *room_uart;
static atomic_int room_calls;

static void on_room(void *opaque)
{
    (void)opaque;
    atomic_fetch_add(&room_calls, 1);
    serial_tx_ready(room_uart);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* What Linux's console does per byte (serial8250_console_putchar via wait_for_xmitrdy): poll
 * LSR for THRE a bounded number of times, then write THR. Here the byte is only written once
 * THRE is seen, so a byte the guest sent is never one the FIFO had to lose; returns false when
 * THRE did not come within polls. */
static bool guest_putc(uint8_t b, int polls)
{
    for (int i = 0; i < polls; i++) {
        uint8_t lsr;
        bus_dispatch(&pio, COM1 + LSR, &lsr, 1, false);
        if (lsr & 0x20) {
            bus_dispatch(&pio, COM1 + THR, &b, 1, true);
            return true;
        }
        if (polls > 1000)
            sched_yield();
    }
    return false;
}

/* stdout a pipe that nobody reads: the vCPU side sees a busy transmitter and goes on, it never
 * blocks in write(2); once a reader drains the pipe every byte arrives, in order. */
static void test_serial_stopped_reader(void)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    struct outbuf *o = NULL;
    CHECK_EQ(outbuf_create("test-out", p[1], 4096, on_room, NULL, &o), 0);
    struct serial *s = make_on((struct byte_sink){outbuf_sink_write, o});
    room_uart = s;
    outb(FCR, 0x07);
    enum { N = 300000 }; /* well beyond the pipe's 64 KiB and the ring */
    static uint8_t data[N], got[N];
    for (size_t i = 0; i < N; i++)
        data[i] = (uint8_t)(i * 13 + i / 251);

    /* Nobody reads: the pipe and the ring fill, then THRE stays clear. Every access returns at
     * once; the slowest of them is timed. */
    size_t sent = 0;
    double worst = 0, t_end = now() + 2;
    while (now() < t_end && sent < N) {
        double t0 = now();
        bool ok = guest_putc(data[sent], 1);
        double dt = now() - t0;
        worst = dt > worst ? dt : worst;
        if (ok)
            sent++;
    }
    CHECK(sent < N, "all %zu bytes taken with nobody reading", sent);
    CHECK(sent > 65536, "only %zu bytes before the transmitter got busy", sent);
    CHECK(worst < 0.5, "an access took %.3f s: the vCPU path blocked", worst);
    CHECK_EQ(inb(LSR) & 0x60, 0x00);

    /* A reader appears: the guest's waits end and every byte comes out, in order. */
    size_t nread = 0;
    int bad = 0;
    while (nread < N) {
        struct pollfd pf = {p[0], POLLIN, 0};
        if (sent < N) {
            if (guest_putc(data[sent], 1))
                sent++;
            if (poll(&pf, 1, 0) <= 0)
                continue;
        } else if (poll(&pf, 1, 2000) <= 0) {
            break;
        }
        ssize_t n = read(p[0], got + nread, N - nread);
        if (n <= 0)
            break;
        nread += (size_t)n;
    }
    CHECK_EQ(sent, N);
    CHECK_EQ(nread, N);
    for (size_t i = 0; i < nread; i++)
        bad += got[i] != data[i];
    CHECK_EQ(bad, 0);
    CHECK(atomic_load(&room_calls) > 0, "room was never called");
    CHECK_EQ(inb(LSR) & 0x60, 0x60);

    /* At the end nothing is left behind: bytes still in the UART and the ring are written
     * while a late reader drains the pipe. */
    outbuf_finish(o);
    done(s);
    outbuf_destroy(o);
    close(p[1]);
    close(p[0]);
}

static void test_serial_create_errors(void)
{
    bus_init(&pio, "pio");
    struct serial_config cfg = {.port = COM1};
    struct serial *a = NULL, *b = NULL;
    CHECK_EQ(serial_create(&pio, &cfg, &a), 0);
    CHECK_EQ(serial_create(&pio, &cfg, &b), -EEXIST);
    CHECK_EQ(serial_create(NULL, &cfg, &b), -EINVAL);
    serial_destroy(a);
    uint8_t v;
    CHECK(!bus_dispatch(&pio, COM1, &v, 1, false), "unregistered by destroy");
    serial_destroy(NULL);
    bus_free(&pio);
}

int main(void)
{
    RUN(test_serial_probe_registers);
    RUN(test_serial_divisor_latch);
    RUN(test_serial_output_sink);
    RUN(test_serial_sink_full);
    RUN(test_serial_stopped_reader);
    RUN(test_serial_loopback);
    RUN(test_serial_thre_interrupt);
    RUN(test_serial_irq_gating);
    RUN(test_serial_rx_fifo);
    RUN(test_serial_overrun);
    RUN(test_serial_threaded_input);
    RUN(test_serial_create_errors);
    return check_done();
}
