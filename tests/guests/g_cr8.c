/* SPDX-License-Identifier: MIT */
/* CR8 and RFLAGS.IF in exit records, and CR8 values the harness sets. */
#include "guest.h"

static inline uint64_t read_cr8(void)
{
    uint64_t c;
    __asm__ volatile("mov %%cr8, %0" : "=r"(c));
    return c;
}

static inline void write_cr8(uint64_t c)
{
    __asm__ volatile("mov %0, %%cr8" : : "r"(c));
}

int guest_main(void)
{
    write_cr8(5);
    outl(PORT_SYNC, 1); /* the harness sees CR8 5 and sets 9 */
    report((uint32_t)read_cr8());
    __asm__ volatile("sti; nop");
    outl(PORT_SYNC, 2); /* IF on */
    __asm__ volatile("cli");
    outl(PORT_SYNC, 3); /* IF off */
    write_cr8(12);
    outl(PORT_SYNC, 4); /* the harness sees 12 through the state and sets 3 with it */
    report((uint32_t)read_cr8());
    return 0;
}
