/* SPDX-License-Identifier: MIT */
/* MC146818 CMOS real-time clock and NVRAM on ports 0x70 (index) and 0x71 (data). */
#ifndef REVIRT_DEV_RTC_H
#define REVIRT_DEV_RTC_H

#include <stdint.h>

#include "core/bus.h"

#define RTC_PORT 0x70
#define RTC_CENTURY_INDEX 0x32 /* named by the FADT CENTURY field */

struct rtc;

/* Register index/data ports at port, port + 1. The clock runs on the host's UTC time
 * (CLOCK_REALTIME) plus whatever offset the guest sets by writing the time registers. No
 * interrupts: register C never reports alarm, periodic or update-ended events (IRQ 8 stays
 * low). -EINVAL, -EEXIST, -ENOMEM. */
__attribute__((warn_unused_result)) int rtc_create(struct bus *pio, uint16_t port,
                                                   struct rtc **out);
/* Preset an NVRAM byte (index 0x0e-0x7f, not the century byte) before the guest runs, e.g. the
 * memory-size bytes some firmware reads. Other indexes are ignored. */
void rtc_nvram_set(struct rtc *r, uint8_t index, uint8_t value);
/* Unregister and free; vCPUs must be stopped. NULL is ignored. */
void rtc_destroy(struct rtc *r);

#endif
