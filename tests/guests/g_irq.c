/* SPDX-License-Identifier: MIT */
/* Interrupt delivery: handlers for vectors 0x30..0x3f report their vector; the guest waits
 * with interrupts on until the harness has delivered what it announced. Optionally the local
 * APIC is enabled first (for the in-kernel irqchip), and EOIs are sent. */
#include "guest.h"

#define LAPIC 0xfee00000ull

static struct idt_entry idt[64] __attribute__((aligned(16)));
static volatile unsigned seen;
static int use_apic;

#define HANDLER(n)                                                                                 \
    __attribute__((interrupt)) static void h##n(struct interrupt_frame *f)                         \
    {                                                                                              \
        (void)f;                                                                                   \
        report(0x30 + n);                                                                          \
        seen++;                                                                                    \
        if (use_apic)                                                                              \
            *(volatile uint32_t *)(LAPIC + 0xb0) = 0;                                              \
    }
HANDLER(0)
HANDLER(1)
HANDLER(2)
HANDLER(3)

int guest_main(void)
{
    idt_set(idt, 0x30, h0);
    idt_set(idt, 0x31, h1);
    idt_set(idt, 0x32, h2);
    idt_set(idt, 0x33, h3);
    idt_load(idt, 64);
    /* PORT_INPUT: how many interrupts to expect, and whether to enable the local APIC. */
    uint32_t want = inl(PORT_INPUT);
    use_apic = (int)inl(PORT_INPUT);
    if (use_apic)
        *(volatile uint32_t *)(LAPIC + 0xf0) = 0x1ff; /* SVR: software enable, spurious 0xff */
    outl(PORT_SYNC, 1);
    while (seen < want)
        __asm__ volatile("sti; hlt; cli");
    return 0;
}
