/* SPDX-License-Identifier: MIT */
/* Several vCPUs at once: each counts in its own slot of the shared page until the harness
 * sets the stop word, then reports its index. */
#include "guest.h"

int guest_main(uint64_t index)
{
    volatile uint64_t *shared = (volatile uint64_t *)GUEST_SHARED;
    while (!shared[0])
        shared[1 + index]++;
    report((uint32_t)index);
    return 0;
}
