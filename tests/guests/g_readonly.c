/* SPDX-License-Identifier: MIT */
/* Read-only memory: reads see its contents, a write exits as MMIO and changes nothing. */
#include "guest.h"

int guest_main(void)
{
    volatile uint32_t *ro = (volatile uint32_t *)(GUEST_RO + 0x40);
    report(ro[0]);
    ro[0] = 0x0badf00d;
    report(ro[0]);
    return 0;
}
