/* SPDX-License-Identifier: MIT */
/* Local APIC model (Intel SDM vol. 3A ch. 11): xAPIC page, x2APIC MSRs, timer, interrupt
 * acceptance and IPIs, for boards whose hypervisor has no in-kernel local APIC. */
#ifndef REVIRT_DEV_LAPIC_H
#define REVIRT_DEV_LAPIC_H

#include <stdbool.h>
#include <stdint.h>

#include "core/timer.h"
#include "dev/apic_msg.h"

#define LAPIC_DEFAULT_BASE 0xfee00000u
#define LAPIC_PAGE_SIZE 0x1000u
/* Timer input clock before the divider: 1 GHz (one count per ns at divide-by-1), what the
 * board advertises in CPUID 0x40000010 EBX (in kHz) and 0x15/0x16. */
#define LAPIC_BUS_HZ 1000000000ull
/* A periodic timer never fires more often than this (the counter still counts at the
 * programmed rate): a guest programming a 1-count period must not spin a host thread. */
#define LAPIC_MIN_PERIOD_NS 100000ull

/* IA32_APIC_BASE (SDM §11.4.4) and the x2APIC MSR range (§11.12.1.2). */
#define LAPIC_MSR_APIC_BASE 0x1bu
#define LAPIC_MSR_TSC_DEADLINE 0x6e0u
#define LAPIC_MSR_X2APIC_FIRST 0x800u
#define LAPIC_MSR_X2APIC_LAST 0x8ffu
#define LAPIC_BASE_BSP (1ull << 8)
#define LAPIC_BASE_EXTD (1ull << 10) /* x2APIC enable */
#define LAPIC_BASE_EN (1ull << 11)   /* global enable */

/* Pending non-vectored events, as lapic_take_events returns them. */
#define LAPIC_EV_NMI 1u
#define LAPIC_EV_INIT 2u
#define LAPIC_EV_SIPI 4u   /* vector in *sipi_vector */
#define LAPIC_EV_EXTINT 8u /* the vector comes from the 8259 (INTA to the PIC) */

struct lapic;

struct lapic_config {
    unsigned cpu;       /* the board's vCPU index, passed back to kick() */
    uint32_t apic_id;   /* initial APIC ID: the x2APIC ID; bits 7:0 are the xAPIC ID */
    bool bsp;           /* IA32_APIC_BASE.BSP at power-up */
    bool x2apic;        /* CPUID.1:ECX.x2APIC is advertised: else setting EXTD is a #GP */
    bool eoi_suppress;  /* version bit 24: SVR bit 12 (suppress EOI broadcast) is writable */
    unsigned phys_bits; /* guest MAXPHYADDR, for IA32_APIC_BASE reserved bits; 0: 36 */
    uint64_t bus_hz;    /* timer clock; 0: LAPIC_BUS_HZ. At most 2^40. */
    /* Guest TSC frequency, for TSC-deadline mode (§11.5.4.1). 0: no TSC-deadline mode (LVT timer
     * bit 18 is reserved and MSR 0x6e0 is a #GP). At most 2^40. */
    uint64_t tsc_hz;
    /* The guest's TSC at monotonic time now_ns (timer->now()'s clock). NULL: the guest TSC is
     * now_ns * tsc_hz / 1e9 (a TSC that started with the clock). Called with the lapic lock
     * held: it must not call back into any lapic. */
    uint64_t (*guest_tsc)(void *opaque, uint64_t now_ns);
    const struct timer_ops *timer; /* required; one vtimer is created per lapic */

    /* The board's callbacks, all called without the lapic's lock held, so they may deliver to
     * any lapic, this one included (a self IPI, an EOI broadcast whose IOAPIC re-delivers a
     * still-asserted line). May be called from any thread that calls into the lapic, and from
     * the timer service's thread. */
    void *opaque;
    /* Something became deliverable for cpu (IRR gained a vector above PPR, an event is
     * pending): wake it if halted, or make it exit and look. */
    void (*kick)(void *opaque, unsigned cpu);
    /* The guest wrote ICR: route m (shorthand relative to from, e.g. with apic_bus_deliver). */
    void (*send_ipi)(void *opaque, const struct lapic *from, const struct apic_msg *m);
    /* EOI of a level-triggered vector (§11.8.5): to the IOAPIC(s). NULL: none. */
    void (*eoi_broadcast)(void *opaque, uint8_t vector);
};

/* A lapic in the power-up state (§11.4.7.1): xAPIC mode at LAPIC_DEFAULT_BASE, software
 * disabled, everything masked. -EINVAL (no timer, kick or send_ipi; bus_hz or tsc_hz too
 * large), -ENOMEM. */
__attribute__((warn_unused_result)) int lapic_create(const struct lapic_config *cfg,
                                                     struct lapic **out);
/* Cancels the timer and waits for its callback; nothing may call into l any more. NULL ok. */
void lapic_destroy(struct lapic *l);

/* INIT (§11.4.7.3): every register to its power-up value except the APIC ID and
 * IA32_APIC_BASE (x2APIC mode is kept, §11.12.5.1); BSP flag set from bsp. Pending events
 * and the timer are dropped. */
void lapic_reset(struct lapic *l, bool bsp);
/* RESET / power-up: as lapic_reset, and the ID and IA32_APIC_BASE back to their initial
 * values (xAPIC mode at LAPIC_DEFAULT_BASE). */
void lapic_hard_reset(struct lapic *l, bool bsp);

/* The xAPIC page, for bus_register at lapic_base(): offset is within the 4 KiB page.
 * Accesses (§11.4.1) are meant to be aligned 32-bit ones: a read of 1-4 bytes inside the
 * first dword of a 16-byte register slot returns those bytes of the register, any other read
 * returns zeros; writes other than an aligned 4-byte one are ignored. While the APIC is
 * globally disabled or in x2APIC mode the page reads 0 and ignores writes (the board should
 * unmap it). */
void lapic_mmio_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write);
/* The guest-physical address of the page as IA32_APIC_BASE says (it may have moved since the
 * board mapped it: the board compares after each lapic_msr_write to 0x1b). */
uint64_t lapic_base(struct lapic *l);
/* The APIC's mode from IA32_APIC_BASE. */
bool lapic_enabled(struct lapic *l);
bool lapic_x2apic_mode(struct lapic *l);

/* RDMSR/WRMSR of IA32_APIC_BASE (0x1b), IA32_TSC_DEADLINE (0x6e0) and the x2APIC registers
 * (0x800-0x8ff, §11.12.1.2). 0, or -1: the caller injects #GP(0). -1 for: any other MSR; an
 * x2APIC register while not in x2APIC mode; a register that does not exist in x2APIC mode
 * (APR, RRD, DFR, ICR high 0x831, CMCI, reserved ones); reading EOI or SELF IPI; writing a
 * read-only register; setting bits 63:32 of anything but ICR; a non-zero write to EOI or ESR;
 * SELF IPI with bits above 7; IA32_APIC_BASE with reserved bits or an illegal mode change
 * (§11.12.5: EN=0 EXTD=1, x2APIC to xAPIC, disabled to x2APIC, EXTD without x2APIC support);
 * TSC deadline without tsc_hz. Other reserved bits of writable registers are ignored (real
 * parts may #GP on them, §11.12.1.3; KVM ignores them too, and no guest relies on the #GP). */
__attribute__((warn_unused_result)) int lapic_msr_read(struct lapic *l, uint32_t msr,
                                                       uint64_t *val);
__attribute__((warn_unused_result)) int lapic_msr_write(struct lapic *l, uint32_t msr,
                                                        uint64_t val);

/* Accept a message already routed to this APIC (§11.8): FIXED and LOWEST set IRR (TMR for
 * level; vectors below 16 set ESR "receive illegal vector" instead; dropped while software
 * disabled, as the APIC then only answers NMI, INIT and SIPI, §11.4.7.2); NMI, INIT (not its
 * level de-assert), STARTUP and EXTINT become pending events. SMI is ignored. Nothing is
 * accepted while globally disabled. May kick. */
void lapic_accept(struct lapic *l, const struct apic_msg *m);
/* Whether m's destination (not its shorthand: apic_bus does that) names this APIC
 * (§11.6.2): physical ID or broadcast (0xff; 0xffffffff for x2APIC messages), logical flat
 * or cluster per DFR, x2APIC logical cluster per LDR (§11.12.10.2). */
bool lapic_match_dest(const struct lapic *l, const struct apic_msg *m);
/* Processor priority (§11.8.3.1), for lowest-priority arbitration. */
uint8_t lapic_ppr(const struct lapic *l);
uint32_t lapic_id(const struct lapic *l); /* the initial (x2APIC) ID of the config */

/* The vCPU side. next_irq: the highest vector in IRR whose priority class is above PPR's, or
 * -1. ack_irq: the vCPU injected vector: IRR to ISR (ignored when vector is not in IRR).
 * The spurious vector (SVR[7:0]) is kept but never delivered: on hardware it answers an INTA
 * that lost a race with a TPR raise (§11.9), and the vCPU here acks only what it was offered,
 * on its own thread, the only one that changes TPR. */
int lapic_next_irq(struct lapic *l);
void lapic_ack_irq(struct lapic *l, uint8_t vector);
/* Take the pending LAPIC_EV_* bits, clearing them; *sipi_vector is set when SIPI is among
 * them (NULL ok). EXTINT is also reported, without being cleared, while LINT0 is asserted in
 * ExtINT mode: the 8259's INTR is a level the CPU samples whenever it can take an interrupt,
 * so the board takes it only then (IF=1) and asks the PIC for the vector. */
unsigned lapic_take_events(struct lapic *l, uint8_t *sipi_vector);
/* CR8 is TPR[7:4] (§11.8.6.1): the vCPU loop syncs them around each run. */
void lapic_set_tpr(struct lapic *l, uint8_t cr8);
uint8_t lapic_get_tpr(struct lapic *l);
/* The LINT0 (pin 0) or LINT1 (pin 1) input changed (§11.5.1): the 8259's INTR on LINT0 of
 * the BSP, NMI on LINT1. While globally disabled the pins act as INTR and NMI directly. */
void lapic_set_lint(struct lapic *l, int pin, bool level);

#endif
