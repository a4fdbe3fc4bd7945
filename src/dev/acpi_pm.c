/* SPDX-License-Identifier: MIT */
/* ACPI fixed-hardware registers (ACPI 6.5 §4.8): sleep to S5 powers off, RESET_REG resets. */
#include "acpi_pm.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/le.h"

/* PM1 status / enable bits (ACPI 6.5 Tables 4.16, 4.17). */
#define PM1_TMR (1u << 0)
#define PM1_GBL (1u << 5)
#define PM1_PWRBTN (1u << 8)
#define PM1_SLPBTN (1u << 9)
#define PM1_RTC (1u << 10)
#define PM1_PCIEXP_WAKE (1u << 14)
#define PM1_EN_MASK (PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC | PM1_PCIEXP_WAKE)

/* PM1 control bits (ACPI 6.5 Table 4.18). */
#define PM1_CNT_SCI_EN (1u << 0)
#define PM1_CNT_BM_RLD (1u << 1)
#define PM1_CNT_SLP_TYP_SHIFT 10
#define PM1_CNT_SLP_TYP (7u << PM1_CNT_SLP_TYP_SHIFT)
#define PM1_CNT_SLP_EN (1u << 13)
#define PM1_CNT_STORED (PM1_CNT_BM_RLD | PM1_CNT_SLP_TYP)

/* PIIX4/ICH reset control: a write with RST_CPU set resets (ICH9 datasheet, RST_CNT). */
#define RST_CNT_RST_CPU (1u << 2)

#define PM_TIMER_HZ 3579545u /* ACPI 6.5 §4.8.3.3 */

struct acpi_pm {
    struct bus *pio;
    struct acpi_pm_config cfg;
    pthread_mutex_t lock;
    uint16_t sts, en, cnt;
    uint8_t rst_cnt;
    bool sci_level;
    struct timespec epoch; /* the PM timer counts from here */
};

/* Bits of a register image covered by an access of len bytes at offset. */
static uint32_t access_mask(uint64_t offset, uint32_t len)
{
    uint32_t m = len >= 4 ? 0xffffffffu : (1u << (8 * len)) - 1;
    return offset >= 4 ? 0 : m << (8 * offset);
}

/* Called with the lock held: the SCI is a level, asserted while any enabled event is pending
 * (SCI_EN is fixed at 1, ACPI 6.5 §4.8.2.1.2). */
static void sci_update(struct acpi_pm *pm)
{
    bool level = (pm->sts & pm->en & PM1_EN_MASK) != 0;
    if (level != pm->sci_level) {
        pm->sci_level = level;
        irq_line_set(&pm->cfg.sci, level);
    }
}

static void evt_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    struct acpi_pm *pm = opaque;
    pthread_mutex_lock(&pm->lock);
    uint32_t mask = access_mask(offset, len);
    if (write) {
        uint32_t v = ((uint32_t)le_get(data, len) << (8 * offset)) & mask;
        /* Status bits are write-one-to-clear; enables are plain read/write. */
        pm->sts = (uint16_t)(pm->sts & ~v);
        uint16_t en_mask = (uint16_t)(mask >> 16);
        pm->en = (uint16_t)((pm->en & ~en_mask) | ((v >> 16) & en_mask & PM1_EN_MASK));
        sci_update(pm);
    } else {
        uint32_t img = (uint32_t)pm->sts | (uint32_t)pm->en << 16;
        le_put(data, len, (img & mask) >> (8 * offset));
    }
    pthread_mutex_unlock(&pm->lock);
}

static void cnt_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    struct acpi_pm *pm = opaque;
    bool power_off = false;
    pthread_mutex_lock(&pm->lock);
    uint32_t mask = access_mask(offset, len) & 0xffff;
    if (write) {
        uint32_t v = ((uint32_t)le_get(data, len) << (8 * offset)) & mask;
        pm->cnt = (uint16_t)((pm->cnt & ~mask) | (v & PM1_CNT_STORED));
        /* SLP_EN starts the transition to the state in SLP_TYP (ACPI 6.5 §4.8.3.2.1). Only S5
         * exists besides S0; SLP_EN with any other type leaves the machine running. */
        if ((v & PM1_CNT_SLP_EN) &&
            ((pm->cnt & PM1_CNT_SLP_TYP) >> PM1_CNT_SLP_TYP_SHIFT) == ACPI_S5_SLP_TYP)
            power_off = true;
    } else {
        /* SLP_EN and GBL_RLS are write-only and read as 0. */
        uint32_t img = pm->cnt | PM1_CNT_SCI_EN;
        le_put(data, len, (img & mask) >> (8 * offset));
    }
    pthread_mutex_unlock(&pm->lock);
    if (power_off && pm->cfg.power_off)
        pm->cfg.power_off(pm->cfg.opaque);
}

static uint32_t pm_timer_now(const struct acpi_pm *pm)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t sec = now.tv_sec - pm->epoch.tv_sec;
    int64_t nsec = now.tv_nsec - pm->epoch.tv_nsec;
    if (nsec < 0) {
        sec--;
        nsec += 1000000000;
    }
    /* Split so that no product overflows: whole seconds, then the fraction. */
    uint64_t ticks = (uint64_t)sec * PM_TIMER_HZ + (uint64_t)nsec * PM_TIMER_HZ / 1000000000u;
    return (uint32_t)ticks; /* 32-bit counter (FADT TMR_VAL_EXT) wraps */
}

static void tmr_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    struct acpi_pm *pm = opaque;
    if (write)
        return; /* read-only */
    uint32_t mask = access_mask(offset, len);
    le_put(data, len, (pm_timer_now(pm) & mask) >> (8 * offset));
}

static void rst_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    struct acpi_pm *pm = opaque;
    (void)offset;
    bool reset = false;
    pthread_mutex_lock(&pm->lock);
    if (write) {
        uint8_t v = data[0];
        /* The FADT's RESET_VALUE, or RST_CPU as Linux's reboot=pci writes it (0x02 then 0x06). */
        reset = v == pm->cfg.ports.reset_value || (v & RST_CNT_RST_CPU);
        pm->rst_cnt = v & (uint8_t)~RST_CNT_RST_CPU;
    } else {
        le_put(data, len, pm->rst_cnt);
    }
    pthread_mutex_unlock(&pm->lock);
    if (reset && pm->cfg.reset)
        pm->cfg.reset(pm->cfg.opaque);
}

int acpi_pm_create(struct bus *pio, const struct acpi_pm_config *cfg, struct acpi_pm **out)
{
    if (!pio || !cfg || !out || !cfg->ports.pm1a_evt || !cfg->ports.pm1a_cnt)
        return -EINVAL;
    struct acpi_pm *pm = calloc(1, sizeof(*pm));
    if (!pm)
        return -ENOMEM;
    pm->pio = pio;
    pm->cfg = *cfg;
    pthread_mutex_init(&pm->lock, NULL);
    clock_gettime(CLOCK_MONOTONIC, &pm->epoch);
    const struct acpi_ports *io = &cfg->ports;
    int ret = bus_register(pio, io->pm1a_evt, 4, evt_access, pm, "acpi-pm1a-evt");
    if (ret)
        goto err_free;
    ret = bus_register(pio, io->pm1a_cnt, 2, cnt_access, pm, "acpi-pm1a-cnt");
    if (ret)
        goto err_evt;
    if (io->pm_tmr) {
        ret = bus_register(pio, io->pm_tmr, 4, tmr_access, pm, "acpi-pm-tmr");
        if (ret)
            goto err_cnt;
    }
    if (io->reset) {
        ret = bus_register(pio, io->reset, 1, rst_access, pm, "acpi-reset");
        if (ret)
            goto err_tmr;
    }
    *out = pm;
    return 0;

err_tmr:
    if (io->pm_tmr)
        bus_unregister(pio, io->pm_tmr, pm);
err_cnt:
    bus_unregister(pio, io->pm1a_cnt, pm);
err_evt:
    bus_unregister(pio, io->pm1a_evt, pm);
err_free:
    pthread_mutex_destroy(&pm->lock);
    free(pm);
    return ret;
}

void acpi_pm_power_button(struct acpi_pm *pm)
{
    pthread_mutex_lock(&pm->lock);
    pm->sts |= PM1_PWRBTN;
    sci_update(pm);
    pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
    if (!pm)
        return;
    const struct acpi_ports *io = &pm->cfg.ports;
    bus_unregister(pm->pio, io->pm1a_evt, pm);
    bus_unregister(pm->pio, io->pm1a_cnt, pm);
    if (io->pm_tmr)
        bus_unregister(pm->pio, io->pm_tmr, pm);
    if (io->reset)
        bus_unregister(pm->pio, io->reset, pm);
    pthread_mutex_destroy(&pm->lock);
    free(pm);
}
