/* SPDX-License-Identifier: MIT */
/* MC146818A RTC model (Motorola MC146818A datasheet): time registers computed from host UTC. */
#include "rtc.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REG_SEC 0x00
#define REG_MIN 0x02
#define REG_HOUR 0x04
#define REG_WDAY 0x06
#define REG_MDAY 0x07
#define REG_MON 0x08
#define REG_YEAR 0x09
#define REG_A 0x0a
#define REG_B 0x0b
#define REG_C 0x0c
#define REG_D 0x0d

#define A_UIP 0x80
#define B_SET 0x80 /* updates halted while the guest sets the time */
#define B_DM 0x04  /* 1: binary, 0: BCD */
#define B_24H 0x02
#define D_VRT 0x80 /* valid RAM and time: the battery is good */
#define HOUR_PM 0x80

#define INDEX_MASK 0x7f /* bit 7 of the index port masks NMI on a PC; not modelled */

struct rtc {
    struct bus *pio;
    uint16_t port;
    pthread_mutex_t lock;
    uint8_t index;
    uint8_t cmos[128]; /* registers A, B, alarms and NVRAM; time bytes are computed */
    int64_t offset;    /* guest time minus host time, seconds */
    struct tm set_tm;  /* the time being written while B_SET is on, not yet normalised */
};

static bool is_time_reg(uint8_t i)
{
    return i == REG_SEC || i == REG_MIN || i == REG_HOUR || i == REG_WDAY || i == REG_MDAY ||
           i == REG_MON || i == REG_YEAR || i == RTC_CENTURY_INDEX;
}

static uint8_t to_bcd(unsigned v)
{
    return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static unsigned from_bcd(uint8_t v)
{
    return (unsigned)(v >> 4) * 10 + (v & 0x0f);
}

static void current_tm(const struct rtc *r, struct tm *tm)
{
    if (r->cmos[REG_B] & B_SET) {
        *tm = r->set_tm;
        return;
    }
    time_t t = time(NULL) + (time_t)r->offset;
    gmtime_r(&t, tm);
}

/* Encode a value in the data mode register B selects (MC146818A Table 3). */
static uint8_t encode(const struct rtc *r, unsigned v)
{
    return (r->cmos[REG_B] & B_DM) ? (uint8_t)v : to_bcd(v % 100);
}

static unsigned decode(const struct rtc *r, uint8_t v)
{
    return (r->cmos[REG_B] & B_DM) ? v : from_bcd(v);
}

static uint8_t time_read(const struct rtc *r, uint8_t i)
{
    struct tm tm;
    current_tm(r, &tm);
    switch (i) {
    case REG_SEC:
        return encode(r, (unsigned)tm.tm_sec % 60); /* a leap second shows as :59 */
    case REG_MIN:
        return encode(r, (unsigned)tm.tm_min);
    case REG_HOUR: {
        if (r->cmos[REG_B] & B_24H)
            return encode(r, (unsigned)tm.tm_hour);
        /* 12-hour mode: 12, 1 .. 11 with bit 7 for PM. */
        unsigned h = (unsigned)tm.tm_hour % 12;
        return (uint8_t)(encode(r, h ? h : 12) | (tm.tm_hour >= 12 ? HOUR_PM : 0));
    }
    case REG_WDAY:
        return encode(r, (unsigned)tm.tm_wday + 1); /* Sunday = 1 */
    case REG_MDAY:
        return encode(r, (unsigned)tm.tm_mday);
    case REG_MON:
        return encode(r, (unsigned)tm.tm_mon + 1);
    case REG_YEAR:
        return encode(r, (unsigned)(tm.tm_year + 1900) % 100);
    default: /* century */
        return encode(r, (unsigned)(tm.tm_year + 1900) / 100);
    }
}

/* While B_SET is on, writes collect in set_tm unnormalised, so that writing day 29 before
 * month 2 does not roll over; the clock restarts from it when B_SET is cleared. Outside SET
 * mode each write moves the clock at once. */
static void time_write(struct rtc *r, uint8_t i, uint8_t v)
{
    struct tm tm;
    current_tm(r, &tm);
    int year = tm.tm_year + 1900;
    switch (i) {
    case REG_SEC:
        tm.tm_sec = (int)decode(r, v);
        break;
    case REG_MIN:
        tm.tm_min = (int)decode(r, v);
        break;
    case REG_HOUR:
        if (r->cmos[REG_B] & B_24H) {
            tm.tm_hour = (int)decode(r, v);
        } else {
            int h = (int)decode(r, v & (uint8_t)~HOUR_PM) % 12;
            tm.tm_hour = (v & HOUR_PM) ? h + 12 : h;
        }
        break;
    case REG_WDAY:
        return; /* derived from the date */
    case REG_MDAY:
        tm.tm_mday = (int)decode(r, v);
        break;
    case REG_MON:
        tm.tm_mon = (int)decode(r, v) - 1;
        break;
    case REG_YEAR:
        tm.tm_year = year / 100 * 100 + (int)decode(r, v) - 1900;
        break;
    default: /* century */
        tm.tm_year = (int)decode(r, v) * 100 + year % 100 - 1900;
        break;
    }
    if (r->cmos[REG_B] & B_SET)
        r->set_tm = tm;
    else
        r->offset = (int64_t)(timegm(&tm) - time(NULL));
}

static uint8_t reg_read(struct rtc *r, uint8_t i)
{
    if (is_time_reg(i))
        return time_read(r, i);
    switch (i) {
    case REG_A:
        /* UIP stays 0: the time registers are computed on each read, never mid-update. */
        return r->cmos[REG_A] & (uint8_t)~A_UIP;
    case REG_C:
        return 0; /* no interrupt flags: nothing is ever pending */
    case REG_D:
        return D_VRT;
    default:
        return r->cmos[i];
    }
}

static void reg_write(struct rtc *r, uint8_t i, uint8_t v)
{
    if (is_time_reg(i)) {
        time_write(r, i, v);
        return;
    }
    switch (i) {
    case REG_A:
        r->cmos[REG_A] = v & (uint8_t)~A_UIP;
        break;
    case REG_B: {
        bool was_set = r->cmos[REG_B] & B_SET, set = v & B_SET;
        if (set && !was_set)
            current_tm(r, &r->set_tm);
        r->cmos[REG_B] = v;
        if (was_set && !set) {
            struct tm tm = r->set_tm;
            r->offset = (int64_t)(timegm(&tm) - time(NULL));
        }
        break;
    }
    case REG_C:
    case REG_D:
        break; /* read-only */
    default:
        r->cmos[i] = v;
        break;
    }
}

static void rtc_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    struct rtc *r = opaque;
    pthread_mutex_lock(&r->lock);
    for (uint32_t n = 0; n < len; n++) {
        bool index_port = ((offset + n) & 1) == 0;
        if (index_port && write)
            r->index = data[n] & INDEX_MASK;
        else if (index_port)
            data[n] = r->index; /* write-only on a PC; reading back is harmless */
        else if (write)
            reg_write(r, r->index, data[n]);
        else
            data[n] = reg_read(r, r->index);
    }
    pthread_mutex_unlock(&r->lock);
}

int rtc_create(struct bus *pio, uint16_t port, struct rtc **out)
{
    if (!pio || !out)
        return -EINVAL;
    struct rtc *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->pio = pio;
    r->port = port;
    pthread_mutex_init(&r->lock, NULL);
    r->cmos[REG_A] = 0x26;  /* 32.768 kHz time base, 1024 Hz periodic rate */
    r->cmos[REG_B] = B_24H; /* BCD, 24-hour, as PC firmware leaves it */
    int ret = bus_register(pio, port, 2, rtc_access, r, "rtc");
    if (ret) {
        pthread_mutex_destroy(&r->lock);
        free(r);
        return ret;
    }
    *out = r;
    return 0;
}

void rtc_nvram_set(struct rtc *r, uint8_t index, uint8_t value)
{
    if (index < 0x0e || index > INDEX_MASK || index == RTC_CENTURY_INDEX)
        return;
    pthread_mutex_lock(&r->lock);
    r->cmos[index] = value;
    pthread_mutex_unlock(&r->lock);
}

void rtc_destroy(struct rtc *r)
{
    if (!r)
        return;
    bus_unregister(r->pio, r->port, r);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
