/* SPDX-License-Identifier: MIT */
/* CMOS RTC tests: the clock a guest reads matches the host's UTC time, in every data mode. */
#include "../check.h"

#include <errno.h>
#include <time.h>

#include "dev/rtc.h"

static struct bus pio;

static struct rtc *make(void)
{
    bus_init(&pio, "pio");
    struct rtc *r = NULL;
    int ret = rtc_create(&pio, RTC_PORT, &r);
    CHECK(ret == 0 && r, "rtc_create: %d", ret);
    return r;
}

static void done(struct rtc *r)
{
    rtc_destroy(r);
    bus_free(&pio);
}

static uint8_t cmos_read(uint8_t index)
{
    uint8_t v = index | 0x80; /* NMI mask bit, as Linux's CMOS_READ may set it */
    CHECK(bus_dispatch(&pio, RTC_PORT, &v, 1, true), "index port");
    CHECK(bus_dispatch(&pio, RTC_PORT + 1, &v, 1, false), "data port");
    return v;
}

static void cmos_write(uint8_t index, uint8_t v)
{
    CHECK(bus_dispatch(&pio, RTC_PORT, &index, 1, true), "index port");
    CHECK(bus_dispatch(&pio, RTC_PORT + 1, &v, 1, true), "data port");
}

static unsigned bcd(uint8_t v)
{
    CHECK((v & 0x0f) <= 9 && (v >> 4) <= 9, "not BCD: %#x", v);
    return (unsigned)(v >> 4) * 10 + (v & 0x0f);
}

/* Read the clock the way Linux's mc146818_get_time does: wait for UIP clear, read, and retry
 * if the seconds moved in between. Returns seconds since the epoch. */
static time_t guest_time(bool binary, bool h24, struct tm *out)
{
    for (int tries = 0; tries < 5; tries++) {
        CHECK(!(cmos_read(0x0a) & 0x80), "UIP must read 0");
        uint8_t sec = cmos_read(0x00);
        uint8_t raw[7] = {cmos_read(0x02), cmos_read(0x04), cmos_read(0x06), cmos_read(0x07),
                          cmos_read(0x08), cmos_read(0x09), cmos_read(0x32)};
        if (cmos_read(0x00) != sec)
            continue;
        unsigned (*conv)(uint8_t) = binary ? NULL : bcd;
#define CV(x) (conv ? conv(x) : (unsigned)(x))
        struct tm tm = {0};
        tm.tm_sec = (int)CV(sec);
        tm.tm_min = (int)CV(raw[0]);
        if (h24) {
            tm.tm_hour = (int)CV(raw[1]);
        } else {
            int h = (int)CV(raw[1] & 0x7f);
            CHECK(h >= 1 && h <= 12, "12h hour %d", h);
            tm.tm_hour = h % 12 + ((raw[1] & 0x80) ? 12 : 0);
        }
        tm.tm_mday = (int)CV(raw[3]);
        tm.tm_mon = (int)CV(raw[4]) - 1;
        tm.tm_year = (int)(CV(raw[6]) * 100 + CV(raw[5])) - 1900;
        int wday = (int)CV(raw[2]);
#undef CV
        time_t t = timegm(&tm);
        struct tm check;
        gmtime_r(&t, &check);
        CHECK_EQ(wday, check.tm_wday + 1);
        if (out)
            *out = tm;
        return t;
    }
    CHECK(0, "seconds never stable");
    return 0;
}

static void test_rtc_status_registers(void)
{
    struct rtc *r = make();
    CHECK_EQ(cmos_read(0x0a) & 0x80, 0); /* UIP low */
    CHECK_EQ(cmos_read(0x0b), 0x02);     /* 24h, BCD */
    CHECK_EQ(cmos_read(0x0c), 0x00);     /* no interrupt flags */
    CHECK_EQ(cmos_read(0x0d), 0x80);     /* VRT: valid RAM and time */
    cmos_write(0x0d, 0x00);
    CHECK_EQ(cmos_read(0x0d), 0x80);
    cmos_write(0x0a, 0xa6); /* UIP is read-only */
    CHECK_EQ(cmos_read(0x0a), 0x26);
    CHECK_EQ(cmos_read(0x32), 0x20); /* century, named by the FADT */
    CHECK_EQ(cmos_read(0x10), 0x00); /* NVRAM starts zeroed */
    cmos_write(0x40, 0x5a);
    CHECK_EQ(cmos_read(0x40), 0x5a);
    rtc_nvram_set(r, 0x34, 0x12);
    CHECK_EQ(cmos_read(0x34), 0x12);
    rtc_nvram_set(r, 0x00, 0x12); /* not NVRAM: ignored */
    done(r);
}

static void test_rtc_bcd_time_matches_host(void)
{
    struct rtc *r = make();
    time_t host = time(NULL);
    time_t t = guest_time(false, true, NULL);
    CHECK(t - host >= -3 && t - host <= 3, "guest %lld host %lld", (long long)t, (long long)host);
    done(r);
}

static void test_rtc_binary_and_12h(void)
{
    struct rtc *r = make();
    cmos_write(0x0b, 0x06); /* binary, 24h */
    time_t host = time(NULL);
    time_t t = guest_time(true, true, NULL);
    CHECK(t - host >= -3 && t - host <= 3, "binary: off by %lld", (long long)(t - host));
    cmos_write(0x0b, 0x00); /* BCD, 12h */
    t = guest_time(false, false, NULL);
    CHECK(t - host >= -3 && t - host <= 3, "12h: off by %lld", (long long)(t - host));
    done(r);
}

static void test_rtc_guest_sets_time(void)
{
    struct rtc *r = make();
    /* As mc146818_set_time: SET, fields (day before month), then clear SET. 2024-02-29 is a
     * date that only survives if nothing is normalised before the year is written. */
    cmos_write(0x0b, 0x82);
    cmos_write(0x00, 0x56);
    cmos_write(0x02, 0x34);
    cmos_write(0x04, 0x23);
    cmos_write(0x07, 0x29);
    cmos_write(0x08, 0x02);
    cmos_write(0x09, 0x24);
    cmos_write(0x32, 0x20);
    CHECK_EQ(cmos_read(0x07), 0x29); /* frozen while SET */
    cmos_write(0x0b, 0x02);
    struct tm tm;
    time_t t = guest_time(false, true, &tm);
    struct tm want = {
        .tm_year = 124, .tm_mon = 1, .tm_mday = 29, .tm_hour = 23, .tm_min = 34, .tm_sec = 56};
    time_t w = timegm(&want);
    CHECK(t - w >= 0 && t - w <= 3, "set time: off by %lld", (long long)(t - w));
    CHECK_EQ(tm.tm_mon, 1);
    /* 12h write outside SET mode: 11 PM stays 23h. */
    cmos_write(0x0b, 0x00);
    cmos_write(0x04, 0x91);
    cmos_write(0x0b, 0x02);
    CHECK_EQ(cmos_read(0x04), 0x23);
    done(r);
}

static void test_rtc_create_errors(void)
{
    bus_init(&pio, "pio");
    struct rtc *a = NULL, *b = NULL;
    CHECK_EQ(rtc_create(&pio, RTC_PORT, &a), 0);
    CHECK_EQ(rtc_create(&pio, RTC_PORT + 1, &b), -EEXIST);
    CHECK_EQ(rtc_create(NULL, RTC_PORT, &b), -EINVAL);
    rtc_destroy(a);
    CHECK_EQ(pio.count, 0);
    bus_free(&pio);
}

int main(void)
{
    RUN(test_rtc_status_registers);
    RUN(test_rtc_bcd_time_matches_host);
    RUN(test_rtc_binary_and_12h);
    RUN(test_rtc_guest_sets_time);
    RUN(test_rtc_create_errors);
    return check_done();
}
