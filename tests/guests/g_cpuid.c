/* SPDX-License-Identifier: MIT */
/* CPUID answers come from the table the harness set through the HAV API. */
#include "guest.h"

int guest_main(void)
{
    uint32_t r[4];
    cpuid(0x40000000, 0, r);
    for (int i = 0; i < 4; i++)
        report(r[i]);
    cpuid(0x40000002, 1, r); /* sub-leaf 1 of an indexed leaf the harness set */
    report(r[0]);
    return 0;
}
