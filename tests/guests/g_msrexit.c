/* SPDX-License-Identifier: MIT */
/* MSR exits: RDMSR/WRMSR of MSRs the backend does not handle reach the harness, which answers
 * reads, sees writes' values and may refuse either with #GP (the guest's handler reports it).
 * PORT_INPUT selects the case: 0 no irqchip, 1 in-kernel irqchip, 2 MSR exits masked. */
#include "guest.h"

#define MSR_APIC_BASE 0x1bu
#define MSR_TSC_DEADLINE 0x6e0u
#define MSR_X2APIC_TPR 0x808u
#define MSR_X2APIC_ICR 0x830u
#define MSR_KERNEL_GS_BASE 0xc0000102u
#define MSR_UNKNOWN 0x4b564dffu /* in KVM's paravirtual range, but no MSR */
#define MSR_REFUSED 0x4b564dfeu

static struct idt_entry idt[32] __attribute__((aligned(16)));
static volatile unsigned gps;

/* #GP: report it with its error code and skip the two-byte RDMSR/WRMSR. */
__attribute__((interrupt)) static void gp_handler(struct interrupt_frame *f, unsigned long err)
{
    report(0x6d000000u | (uint32_t)err);
    gps++;
    ((uint64_t *)f)[0] += 2;
}

int guest_main(void)
{
    idt_set(idt, 13, gp_handler);
    idt_load(idt, 32);
    uint32_t mode = inl(PORT_INPUT);
    if (mode == 0) {
        report64(rdmsr(MSR_X2APIC_TPR));
        report64(rdmsr(MSR_UNKNOWN));
        report64(rdmsr(MSR_APIC_BASE));
        wrmsr(MSR_X2APIC_ICR, 0x0000000200004608ull);
        wrmsr(MSR_TSC_DEADLINE, 0x1122334455667788ull);
        wrmsr(MSR_KERNEL_GS_BASE, 0xffff800000abc000ull); /* the backend's: no exit */
        report64(rdmsr(MSR_KERNEL_GS_BASE));
        (void)rdmsr(MSR_REFUSED);
        report(gps);
        wrmsr(MSR_REFUSED, 5);
        report(gps);
    } else if (mode == 1) {
        report64(rdmsr(MSR_APIC_BASE));
        wrmsr(MSR_APIC_BASE, 0xfee00d00ull); /* x2APIC mode */
        report64(rdmsr(MSR_APIC_BASE));
        wrmsr(MSR_X2APIC_TPR, 0x30);
        report64(rdmsr(MSR_X2APIC_TPR));
        report64(rdmsr(MSR_UNKNOWN));
    } else {
        (void)rdmsr(MSR_UNKNOWN);
        report(gps);
        (void)rdmsr(MSR_X2APIC_TPR);
        report(gps);
    }
    return 0;
}
