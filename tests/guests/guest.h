/* SPDX-License-Identifier: MIT */
/* What a tiny test guest can do: port and MMIO access, CPUID, MSRs, hypercalls, an IDT. */
#ifndef REVIRT_TEST_GUEST_H
#define REVIRT_TEST_GUEST_H

#include <stdint.h>

#include "guest_abi.h"
#include <revirt/hav.h>

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v)
{
    __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint16_t inw(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* Tell the harness a value; it keeps them in order. */
static inline void report(uint32_t v)
{
    outl(PORT_REPORT, v);
}
static inline void report64(uint64_t v)
{
    report((uint32_t)v);
    report((uint32_t)(v >> 32));
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid"
                     : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

/* The HAV hypercall ABI (include/revirt/hav.h): OUT of the number to HAV_HYPERCALL_PORT. */
static inline uint64_t hypercall(uint32_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
                                 uint64_t a4, uint64_t a5)
{
    uint64_t ret;
    register uint64_t r8 __asm__("r8") = a2;
    register uint64_t r9 __asm__("r9") = a3;
    register uint64_t r10 __asm__("r10") = a4;
    register uint64_t r11 __asm__("r11") = a5;
    __asm__ volatile("outl %%eax, %%dx"
                     : "=a"(ret)
                     : "a"(nr), "d"((uint16_t)HAV_HYPERCALL_PORT), "D"(a0), "S"(a1), "r"(r8),
                       "r"(r9), "r"(r10), "r"(r11)
                     : "memory");
    return ret;
}

static inline void mmio_write32(uint64_t addr, uint32_t v)
{
    *(volatile uint32_t *)addr = v;
}
static inline uint64_t mmio_read64(uint64_t addr)
{
    return *(volatile uint64_t *)addr;
}

/* Interrupt gates in a static IDT. */
struct idt_entry {
    uint16_t off_lo, sel;
    uint8_t ist, type;
    uint16_t off_mid;
    uint32_t off_hi, zero;
};

struct interrupt_frame;

static inline void idt_set(struct idt_entry *idt, unsigned vec, void *handler)
{
    uint64_t a = (uint64_t)handler;
    idt[vec] =
        (struct idt_entry){(uint16_t)a, 0x08, 0, 0x8e, (uint16_t)(a >> 16), (uint32_t)(a >> 32), 0};
}

static inline void idt_load(struct idt_entry *idt, unsigned entries)
{
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } d = {(uint16_t)(entries * sizeof(*idt) - 1), (uint64_t)idt};
    __asm__ volatile("lidt %0" : : "m"(d));
}

#endif
