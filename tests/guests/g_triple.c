/* SPDX-License-Identifier: MIT */
/* An exception with no usable IDT escalates to a triple fault: the VMM must see shutdown. */
#include "guest.h"

int guest_main(void)
{
    report(1);
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } none = {0, 0};
    __asm__ volatile("lidt %0; ud2" : : "m"(none));
    report(2); /* never */
    return 1;
}
