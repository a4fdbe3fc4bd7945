/* SPDX-License-Identifier: MIT */
/* 16550A tests: only bus_dispatch accesses, checked against what Linux's 8250 driver expects. */
#include "../check.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "dev/serial.h"

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

static struct serial *make(int out_fd)
{
    bus_init(&pio, "pio");
    memset(&irq, 0, sizeof(irq));
    rx_ready_calls = 0;
    struct serial_config cfg = {
        .port = COM1,
        .irq = {.set = fake_irq_set, .opaque = &irq, .gsi = SERIAL_COM1_IRQ},
        .out_fd = out_fd,
        .rx_ready = on_rx_ready,
    };
    struct serial *s = NULL;
    int ret = serial_create(&pio, &cfg, &s);
    CHECK(ret == 0 && s, "serial_create: %d", ret);
    return s;
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
    struct serial *s = make(-1);
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
    struct serial *s = make(-1);
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

static void test_serial_output_fd(void)
{
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    struct serial *s = make(p[1]);
    const char *msg = "ok\n";
    for (const char *c = msg; *c; c++) {
        CHECK(inb(LSR) & 0x20, "THRE before byte");
        outb(THR, (uint8_t)*c);
    }
    char got[8] = {0};
    CHECK_EQ(read(p[0], got, sizeof(got)), 3);
    CHECK(strcmp(got, msg) == 0, "output '%s'", got);
    /* DLAB set: offset 0 is DLL, nothing is transmitted. */
    outb(LCR, 0x80);
    outb(THR, 'x');
    outb(LCR, 0x03);
    outb(THR, '!');
    CHECK_EQ(read(p[0], got, sizeof(got)), 1);
    CHECK_EQ(got[0], '!');
    done(s);
    close(p[0]);
    close(p[1]);
}

static void test_serial_loopback(void)
{
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    struct serial *s = make(p[1]);
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
    char c;
    outb(THR, 'o');
    CHECK_EQ(read(p[0], &c, 1), 1);
    CHECK_EQ(c, 'o'); /* 'L' never reached the fd */
    done(s);
    close(p[0]);
    close(p[1]);
}

/* The sequence of serial8250_do_startup's THRE test, then the TX interrupt cycle. */
static void test_serial_thre_interrupt(void)
{
    struct serial *s = make(-1);
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
    struct serial *s = make(-1);
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
    struct serial *s = make(-1);
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
    struct serial *s = make(-1);
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
    struct serial *s = make(-1);
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

static void test_serial_create_errors(void)
{
    bus_init(&pio, "pio");
    struct serial_config cfg = {.port = COM1, .out_fd = -1};
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
    RUN(test_serial_output_fd);
    RUN(test_serial_loopback);
    RUN(test_serial_thre_interrupt);
    RUN(test_serial_irq_gating);
    RUN(test_serial_rx_fifo);
    RUN(test_serial_overrun);
    RUN(test_serial_threaded_input);
    RUN(test_serial_create_errors);
    return check_done();
}
