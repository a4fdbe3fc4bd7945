/* SPDX-License-Identifier: MIT */
/* Dirty tracking: write some pages of a tracked region, sync, write another. */
#include "guest.h"

int guest_main(void)
{
    volatile uint8_t *d = (volatile uint8_t *)GUEST_DIRTY;
    uint8_t sum = 0;
    for (unsigned p = 0; p < GUEST_DIRTY_PAGES; p++) /* reads must not dirty pages */
        sum += d[p * 4096];
    d[1 * 4096 + 7] = 1;
    d[5 * 4096] = 2;
    d[13 * 4096 + 4095] = 3;
    outl(PORT_SYNC, 1);
    d[2 * 4096 + 100] = 4;
    return sum;
}
