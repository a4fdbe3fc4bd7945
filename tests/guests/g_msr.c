/* SPDX-License-Identifier: MIT */
/* MSRs: the guest reads a value the harness set and writes one the harness reads back. */
#include "guest.h"

#define MSR_KERNEL_GS_BASE 0xc0000102u
#define MSR_STAR 0xc0000081u

int guest_main(void)
{
    report64(rdmsr(MSR_KERNEL_GS_BASE));
    wrmsr(MSR_KERNEL_GS_BASE, 0xffff800012345000ull);
    wrmsr(MSR_STAR, 0x0023001000000000ull);
    report64(rdmsr(MSR_STAR));
    return 0;
}
