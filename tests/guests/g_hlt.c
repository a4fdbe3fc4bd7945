/* SPDX-License-Identifier: MIT */
/* HLT with interrupts off and no interrupt controller exits to the VMM. */
#include "guest.h"

int guest_main(void)
{
    report(1);
    __asm__ volatile("cli; hlt");
    report(2);
    return 0;
}
