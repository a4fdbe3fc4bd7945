/* SPDX-License-Identifier: MIT */
/* ACPI PM tests: the register writes ACPICA makes for S5 and reset, the SCI, the PM timer. */
#include "../check.h"

#include <errno.h>
#include <time.h>

#include "dev/acpi_pm.h"
#include "lib/le.h"

static struct bus pio;
static int power_offs, resets;
static struct acpi_ports ports;

struct fake_irq {
    bool level;
    int rises;
};
static struct fake_irq sci;

static void fake_irq_set(void *opaque, unsigned gsi, bool level)
{
    struct fake_irq *f = opaque;
    CHECK_EQ(gsi, 9);
    if (level && !f->level)
        f->rises++;
    f->level = level;
}

static void on_power_off(void *opaque)
{
    (void)opaque;
    power_offs++;
}

static void on_reset(void *opaque)
{
    (void)opaque;
    resets++;
}

static struct acpi_pm *make(void)
{
    bus_init(&pio, "pio");
    power_offs = resets = 0;
    memset(&sci, 0, sizeof(sci));
    ports = ACPI_PORTS_DEFAULT;
    struct acpi_pm_config cfg = {
        .ports = ports,
        .sci = {.set = fake_irq_set, .opaque = &sci, .gsi = 9},
        .power_off = on_power_off,
        .reset = on_reset,
    };
    struct acpi_pm *pm = NULL;
    int ret = acpi_pm_create(&pio, &cfg, &pm);
    CHECK(ret == 0 && pm, "acpi_pm_create: %d", ret);
    return pm;
}

static void done(struct acpi_pm *pm)
{
    acpi_pm_destroy(pm);
    bus_free(&pio);
}

static void out(uint16_t port, uint32_t v, uint32_t len)
{
    uint8_t b[4];
    le_put32(b, v);
    CHECK(bus_dispatch(&pio, port, b, len, true), "no device at %#x", port);
}

static uint32_t in(uint16_t port, uint32_t len)
{
    uint8_t b[4] = {0};
    CHECK(bus_dispatch(&pio, port, b, len, false), "no device at %#x", port);
    return le_get32(b);
}

#define SLP_EN (1u << 13)
#define SLP_TYP(t) ((uint32_t)(t) << 10)

static void test_acpi_pm_s5_power_off(void)
{
    struct acpi_pm *pm = make();
    /* ACPI is always on: SCI_EN reads 1 without any SMI_CMD hand-over. */
    CHECK_EQ(in(ports.pm1a_cnt, 2) & 1, 1);
    /* acpi_hw_legacy_sleep: clear WAK_STS, write SLP_TYP, then SLP_TYP | SLP_EN. */
    out(ports.pm1a_evt, 0x8000, 2);
    out(ports.pm1a_cnt, SLP_TYP(ACPI_S5_SLP_TYP) | 1, 2);
    CHECK_EQ(power_offs, 0);
    CHECK_EQ(in(ports.pm1a_cnt, 2), SLP_TYP(ACPI_S5_SLP_TYP) | 1);
    out(ports.pm1a_cnt, SLP_TYP(ACPI_S5_SLP_TYP) | SLP_EN | 1, 2);
    CHECK_EQ(power_offs, 1);
    CHECK_EQ(in(ports.pm1a_cnt, 2) & SLP_EN, 0); /* write-only bit */
    CHECK_EQ(resets, 0);
    done(pm);
}

static void test_acpi_pm_other_sleep_types(void)
{
    struct acpi_pm *pm = make();
    out(ports.pm1a_cnt, SLP_TYP(0) | SLP_EN, 2); /* S0: stay up */
    out(ports.pm1a_cnt, SLP_TYP(1) | SLP_EN, 2); /* no such state in our DSDT */
    CHECK_EQ(power_offs, 0);
    /* Byte writes: SLP_TYP and SLP_EN both live in the high byte. */
    out(ports.pm1a_cnt + 1, (SLP_TYP(ACPI_S5_SLP_TYP) | SLP_EN) >> 8, 1);
    CHECK_EQ(power_offs, 1);
    done(pm);
}

static void test_acpi_pm_reset_register(void)
{
    struct acpi_pm *pm = make();
    out(ports.reset, 0x02, 1); /* reboot=pci first writes SYS_RST alone */
    CHECK_EQ(resets, 0);
    CHECK_EQ(in(ports.reset, 1), 0x02);
    out(ports.reset, ports.reset_value, 1); /* ACPICA's acpi_reset */
    CHECK_EQ(resets, 1);
    CHECK_EQ(power_offs, 0);
    done(pm);
}

static void test_acpi_pm_power_button_sci(void)
{
    struct acpi_pm *pm = make();
    acpi_pm_power_button(pm);
    CHECK(!sci.level, "PWRBTN_EN clear: no SCI");
    CHECK_EQ(in(ports.pm1a_evt, 2) & 0x100, 0x100);
    out(ports.pm1a_evt + 2, 0x100, 2); /* PWRBTN_EN */
    CHECK_EQ(in(ports.pm1a_evt + 2, 2), 0x100);
    CHECK(sci.level, "pending and enabled: SCI asserted");
    CHECK_EQ(in(ports.pm1a_evt, 4), 0x01000100);
    out(ports.pm1a_evt, 0x0001, 2); /* clearing another bit changes nothing */
    CHECK(sci.level, "still pending");
    out(ports.pm1a_evt, 0x0100, 2); /* write one to clear */
    CHECK(!sci.level, "acknowledged");
    CHECK_EQ(in(ports.pm1a_evt, 2), 0);
    acpi_pm_power_button(pm);
    CHECK_EQ(sci.rises, 2);
    out(ports.pm1a_evt + 1, 0x01, 1); /* byte write of the status high byte */
    CHECK(!sci.level, "acknowledged by byte");
    CHECK_EQ(power_offs, 0);
    done(pm);
}

static void test_acpi_pm_timer(void)
{
    struct acpi_pm *pm = make();
    uint32_t t0 = in(ports.pm_tmr, 4);
    struct timespec d = {0, 20 * 1000 * 1000};
    nanosleep(&d, NULL);
    uint32_t t1 = in(ports.pm_tmr, 4);
    uint32_t ticks = t1 - t0; /* 20 ms at 3.579545 MHz: 71591 */
    CHECK(ticks >= 71000 && ticks < 71591 * 5, "PM timer advanced %u ticks in 20 ms", ticks);
    uint32_t prev = in(ports.pm_tmr, 4);
    for (int i = 0; i < 1000; i++) {
        uint32_t now = in(ports.pm_tmr, 4);
        CHECK(now - prev < 0x80000000u, "monotonic");
        prev = now;
    }
    out(ports.pm_tmr, 0, 4); /* read-only */
    CHECK(in(ports.pm_tmr, 4) - prev < 0x80000000u, "write ignored");
    done(pm);
}

static void test_acpi_pm_create_errors(void)
{
    bus_init(&pio, "pio");
    struct acpi_pm_config cfg = {.ports = ACPI_PORTS_DEFAULT};
    struct acpi_pm *a = NULL, *b = NULL;
    CHECK_EQ(acpi_pm_create(&pio, &cfg, &a), 0);
    CHECK_EQ(pio.count, 4);
    cfg.ports.pm1a_evt = 0x700;
    cfg.ports.pm1a_cnt = 0x704;
    cfg.ports.pm_tmr = 0x708;
    CHECK_EQ(acpi_pm_create(&pio, &cfg, &b), -EEXIST); /* the reset port is taken */
    CHECK_EQ(pio.count, 4);                            /* nothing left behind */
    cfg.ports.reset = 0;
    cfg.ports.pm_tmr = 0;
    CHECK_EQ(acpi_pm_create(&pio, &cfg, &b), 0);
    CHECK_EQ(pio.count, 6);
    acpi_pm_destroy(b);
    acpi_pm_destroy(a);
    CHECK_EQ(pio.count, 0);
    cfg.ports.pm1a_evt = 0;
    CHECK_EQ(acpi_pm_create(&pio, &cfg, &a), -EINVAL);
    bus_free(&pio);
}

int main(void)
{
    RUN(test_acpi_pm_s5_power_off);
    RUN(test_acpi_pm_other_sleep_types);
    RUN(test_acpi_pm_reset_register);
    RUN(test_acpi_pm_power_button_sci);
    RUN(test_acpi_pm_timer);
    RUN(test_acpi_pm_create_errors);
    return check_done();
}
