/* SPDX-License-Identifier: MIT */
/* The exit-loop benchmark guest: N port writes (N from RDI), meant to run in ring 3. */
#include "guest.h"

int guest_main(uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        outb(0x80, (uint8_t)i);
    outl(PORT_DONE, 0);
    for (;;)
        ;
}
