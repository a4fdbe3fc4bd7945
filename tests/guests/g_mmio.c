/* SPDX-License-Identifier: MIT */
/* MMIO to an unbacked address: the write's address and data, and a read's harness value. */
#include "guest.h"

int guest_main(void)
{
    mmio_write32(GUEST_MMIO + 0x10, 0xdeadbeef);
    uint64_t v = mmio_read64(GUEST_MMIO + 0x18);
    report64(v);
    return 0;
}
