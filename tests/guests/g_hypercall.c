/* SPDX-License-Identifier: MIT */
/* A hypercall carries its number and six arguments out and a result back. */
#include "guest.h"

int guest_main(void)
{
    uint64_t r = hypercall(42, 1, 2, 0x300000003ull, 4, 5, 0xfedcba9876543210ull);
    report64(r);
    r = hypercall(7, 0, 0, 0, 0, 0, 0);
    report64(r);
    return 0;
}
