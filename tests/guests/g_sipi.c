/* SPDX-License-Identifier: MIT */
/* AP start-up without an in-kernel APIC: the BSP copies a real-mode trampoline to 0x8000 and
 * 0x9000 and asks the harness (standing in for a local APIC model) to send STARTUP to vCPU 2
 * with vector 8, then to vCPU 1 with vector 9. Each AP takes a ticket (its identity, no APIC
 * ID involved) and reports it, its CS and the IP it found itself at. */
#include "guest.h"

#define TICKET 0x7000 /* below the trampolines, above the harness's page tables */

/* Real mode, entered at CS = vector << 8, IP 0. */
__asm__(".pushsection .text\n"
        ".globl tramp_start, tramp_ip, tramp_end\n"
        ".code16\n"
        "tramp_start:\n"
        "    cli\n"
        "    xor %ax, %ax\n"
        "    mov %ax, %ds\n"
        "    mov %ax, %ss\n"
        "    mov $0x7ff0, %sp\n"
        "    mov $1, %eax\n"
        "    lock xaddl %eax, 0x7000\n" /* TICKET */
        "    mov $0x10, %dx\n"          /* PORT_REPORT */
        "    outl %eax, %dx\n"
        "    mov %cs, %ax\n"
        "    movzwl %ax, %eax\n"
        "    outl %eax, %dx\n"
        "    call tramp_ip\n"
        "tramp_ip:\n"
        "    pop %ax\n"
        "    movzwl %ax, %eax\n"
        "    outl %eax, %dx\n"
        "    mov $0x11, %dx\n" /* PORT_DONE */
        "    xor %eax, %eax\n"
        "    outl %eax, %dx\n"
        "2:  hlt\n"
        "    jmp 2b\n"
        "tramp_end:\n"
        ".code64\n"
        ".popsection\n");
extern const uint8_t tramp_start[], tramp_ip[], tramp_end[];

static void copy(uint64_t to)
{
    volatile uint8_t *d = (volatile uint8_t *)to;
    for (const uint8_t *s = tramp_start; s < tramp_end; s++)
        *d++ = *s;
}

int guest_main(void)
{
    volatile uint32_t *ticket = (volatile uint32_t *)TICKET;
    *ticket = 0;
    report((uint32_t)(tramp_ip - tramp_start)); /* the IP an AP started at 0 finds there */
    copy(0x8000);
    copy(0x9000);
    outl(PORT_SYNC, (2u << 16) | 0x4600 | 0x08); /* "STARTUP to vCPU 2, vector 8" */
    report(*ticket);
    outl(PORT_SYNC, (1u << 16) | 0x4600 | 0x09);
    report(*ticket);
    return 0;
}
