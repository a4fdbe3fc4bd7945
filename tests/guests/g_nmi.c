/* SPDX-License-Identifier: MIT */
/* NMIs: the handler reports entry and exit and stops at PORT_SYNC in between, where the
 * harness queues more NMIs; the guest halts with interrupts off until it has seen two. */
#include "guest.h"

static struct idt_entry idt[32] __attribute__((aligned(16)));
static volatile unsigned nmis;

__attribute__((interrupt)) static void nmi_handler(struct interrupt_frame *f)
{
    (void)f;
    unsigned n = ++nmis;
    report(0x4e00 | n);
    outl(PORT_SYNC, 0x4e00 | n);
    report(0x4e80 | n);
}

int guest_main(void)
{
    idt_set(idt, 2, nmi_handler);
    idt_load(idt, 32);
    __asm__ volatile("cli");
    outl(PORT_SYNC, 1);
    while (nmis < 2)
        __asm__ volatile("hlt");
    return 0;
}
