/* SPDX-License-Identifier: MIT */
/* i8042 tests: the probe sequence of Linux's i8042/atkbd drivers and the reset command. */
#include "../check.h"

#include <errno.h>

#include "dev/i8042.h"

struct fake_irq {
    bool level;
    int rises;
};

static void fake_irq_set(void *opaque, unsigned gsi, bool level)
{
    struct fake_irq *f = opaque;
    (void)gsi;
    if (level && !f->level)
        f->rises++;
    f->level = level;
}

static struct bus pio;
static struct fake_irq kbd_irq, aux_irq;
static int resets;

static void on_reset(void *opaque)
{
    (void)opaque;
    resets++;
}

static struct i8042 *make(void)
{
    bus_init(&pio, "pio");
    memset(&kbd_irq, 0, sizeof(kbd_irq));
    memset(&aux_irq, 0, sizeof(aux_irq));
    resets = 0;
    struct i8042_config cfg = {
        .kbd_irq = {.set = fake_irq_set, .opaque = &kbd_irq, .gsi = I8042_KBD_IRQ},
        .aux_irq = {.set = fake_irq_set, .opaque = &aux_irq, .gsi = I8042_AUX_IRQ},
        .reset = on_reset,
    };
    struct i8042 *k = NULL;
    int ret = i8042_create(&pio, &cfg, &k);
    CHECK(ret == 0 && k, "i8042_create: %d", ret);
    return k;
}

static void done(struct i8042 *k)
{
    i8042_destroy(k);
    bus_free(&pio);
}

static void outb(uint16_t port, uint8_t v)
{
    CHECK(bus_dispatch(&pio, port, &v, 1, true), "no device at %#x", port);
}

static uint8_t inb(uint16_t port)
{
    uint8_t v = 0;
    CHECK(bus_dispatch(&pio, port, &v, 1, false), "no device at %#x", port);
    return v;
}

#define STATUS() inb(I8042_CMD_PORT)
#define DATA() inb(I8042_DATA_PORT)

/* What i8042_command does: write the command, poll OBF, read the reply. */
static int command(uint8_t cmd)
{
    outb(I8042_CMD_PORT, cmd);
    if (!(STATUS() & 0x01))
        return -1;
    return DATA();
}

static void test_i8042_probe(void)
{
    struct i8042 *k = make();
    uint8_t st = STATUS();
    CHECK_EQ(st & 0x01, 0);    /* nothing to read: i8042_flush finds it empty */
    CHECK_EQ(st & 0x02, 0);    /* never busy */
    CHECK_EQ(st & 0x10, 0x10); /* not key-locked: no "Keylock active" warning */
    CHECK_EQ(command(0xaa), 0x55);
    CHECK_EQ(STATUS() & 0x01, 0);
    int ctr = command(0x20);
    CHECK_EQ(ctr, 0x47);
    /* i8042_controller_init: disable kbd interface and interrupt, write the CTR back. */
    outb(I8042_CMD_PORT, 0x60);
    outb(I8042_DATA_PORT, (uint8_t)((ctr | 0x10) & ~0x01));
    CHECK_EQ(command(0x20), 0x56);
    CHECK_EQ(command(0xab), 0x00); /* keyboard interface test */
    CHECK_EQ(command(0xa9), 0x00); /* AUX interface test */
    /* AUX loop: the byte comes back as AUX data (and is not a MUX, whose reply differs). */
    outb(I8042_CMD_PORT, 0xd3);
    outb(I8042_DATA_PORT, 0xa4);
    CHECK_EQ(STATUS() & 0x21, 0x21);
    CHECK_EQ(DATA(), 0xa4);
    /* Bit assignment test: AUX disable/enable show in the CTR. */
    outb(I8042_CMD_PORT, 0xa7);
    CHECK(command(0x20) & 0x20, "AUXDIS set");
    outb(I8042_CMD_PORT, 0xa8);
    CHECK(!(command(0x20) & 0x20), "AUXDIS clear");
    CHECK_EQ(command(0xd0) & 0x03, 0x03); /* output port: reset line high, A20 on */
    CHECK_EQ(resets, 0);
    uint8_t v;
    CHECK(!bus_dispatch(&pio, I8042_DATA_PORT + 1, &v, 1, false), "0x61 belongs to the PIT");
    done(k);
}

static void test_i8042_keyboard(void)
{
    struct i8042 *k = make();
    outb(I8042_CMD_PORT, 0x60);
    outb(I8042_DATA_PORT, 0x07); /* interrupts on, no translation */
    CHECK(!kbd_irq.level, "idle");
    outb(I8042_DATA_PORT, 0xf2); /* GETID */
    CHECK(kbd_irq.level, "IRQ 1 for the ACK");
    CHECK_EQ(STATUS() & 0x21, 0x01);
    const uint8_t want[] = {0xfa, 0xab, 0x83};
    for (unsigned i = 0; i < sizeof(want); i++)
        CHECK_EQ(DATA(), want[i]);
    CHECK_EQ(kbd_irq.rises, 3); /* one edge per byte */
    CHECK(!kbd_irq.level, "drained");
    CHECK_EQ(aux_irq.rises, 0);
    outb(I8042_DATA_PORT, 0xed); /* LEDs + parameter: two ACKs */
    outb(I8042_DATA_PORT, 0x00);
    CHECK_EQ(DATA(), 0xfa);
    CHECK_EQ(DATA(), 0xfa);
    outb(I8042_DATA_PORT, 0xff); /* reset: ACK, BAT OK */
    CHECK_EQ(DATA(), 0xfa);
    CHECK_EQ(DATA(), 0xaa);
    outb(I8042_DATA_PORT, 0xf4);
    CHECK_EQ(DATA(), 0xfa);
    CHECK_EQ(STATUS() & 0x01, 0);
    /* Translated mode reports the MF2 ID the way a translating controller does. */
    outb(I8042_CMD_PORT, 0x60);
    outb(I8042_DATA_PORT, 0x45);
    outb(I8042_DATA_PORT, 0xf2);
    CHECK_EQ(DATA(), 0xfa);
    CHECK_EQ(DATA(), 0xab);
    CHECK_EQ(DATA(), 0x41);
    /* Interrupt disabled in the CTR: no edge, data still readable. */
    int rises = kbd_irq.rises;
    outb(I8042_CMD_PORT, 0x60);
    outb(I8042_DATA_PORT, 0x44);
    outb(I8042_DATA_PORT, 0xee);
    CHECK_EQ(kbd_irq.rises, rises);
    CHECK_EQ(DATA(), 0xee);
    done(k);
}

static void test_i8042_no_mouse(void)
{
    struct i8042 *k = make();
    outb(I8042_CMD_PORT, 0xd4);
    outb(I8042_DATA_PORT, 0xf2);     /* GETID to the mouse */
    CHECK_EQ(STATUS() & 0x61, 0x61); /* OBF, AUX data, timeout */
    CHECK(aux_irq.level, "IRQ 12");
    CHECK(!kbd_irq.level, "not IRQ 1");
    CHECK_EQ(DATA(), 0xfe);
    CHECK(!aux_irq.level, "drained");
    done(k);
}

static void test_i8042_reset(void)
{
    struct i8042 *k = make();
    outb(I8042_CMD_PORT, 0xff); /* pulse nothing */
    CHECK_EQ(resets, 0);
    outb(I8042_CMD_PORT, 0xfe); /* pulse reset: Linux's reboot=kbd */
    CHECK_EQ(resets, 1);
    outb(I8042_CMD_PORT, 0xd1); /* output port with the reset line low */
    outb(I8042_DATA_PORT, 0x02);
    CHECK_EQ(resets, 2);
    outb(I8042_CMD_PORT, 0xd1);
    outb(I8042_DATA_PORT, 0x03);
    CHECK_EQ(resets, 2);
    done(k);
}

static void test_i8042_create_errors(void)
{
    bus_init(&pio, "pio");
    struct i8042_config cfg = {0};
    struct i8042 *a = NULL, *b = NULL;
    CHECK_EQ(i8042_create(&pio, &cfg, &a), 0);
    CHECK_EQ(i8042_create(&pio, &cfg, &b), -EEXIST);
    CHECK_EQ(pio.count, 2);
    i8042_destroy(a);
    CHECK_EQ(pio.count, 0);
    bus_free(&pio);
}

int main(void)
{
    RUN(test_i8042_probe);
    RUN(test_i8042_keyboard);
    RUN(test_i8042_no_mouse);
    RUN(test_i8042_reset);
    RUN(test_i8042_create_errors);
    return check_done();
}
