/* SPDX-License-Identifier: MIT */
/* State set by the harness is what the guest runs with: it reports registers it was given. */
#include "guest.h"

int guest_main(void)
{
    uint64_t rbx, r12, cr4, dr0;
    __asm__ volatile("" : "=b"(rbx));
    __asm__ volatile("mov %%r12, %0" : "=r"(r12));
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %%dr0, %0" : "=r"(dr0));
    report64(rbx);
    report64(r12);
    report64(cr4);
    report64(dr0);
    return 0;
}
