/* SPDX-License-Identifier: MIT */
/* Port I/O: writes of each size reach the harness; reads return what the harness supplied. */
#include "guest.h"

int guest_main(void)
{
    outb(0x80, 0x5a);
    outw(0x82, 0xbeef);
    outl(PORT_REPORT, 0xcafebabe);
    uint32_t l = inl(PORT_INPUT);
    uint16_t w = inw(PORT_INPUT);
    uint8_t b = inb(PORT_INPUT);
    report(l);
    report(w);
    report(b);
    return 0;
}
