/* SPDX-License-Identifier: MIT */
/* Per-vCPU CPUID: APIC IDs and topology (SDM vol. 2A, CPUID leaves 1, 4, 0xB, 0x1F) so the
 * guest counts the vCPUs it was given, and the hypervisor bit and signature leaf. */
#include "cpuid.h"

#include <string.h>

/* Bits needed to number n things (ceil(log2(n))). */
static unsigned bits_for(unsigned n)
{
    unsigned b = 0;
    while ((1u << b) < n)
        b++;
    return b;
}

int vmm_cpuid_patch(struct hav_cpuid_entry *e, int n, unsigned index, unsigned count,
                    bool own_platform)
{
    unsigned core_bits = bits_for(count);
    bool have_hv_leaf = false;
    if (own_platform) {
        /* The backend's hypervisor leaves describe its paravirtual devices (KVM: kvm-clock, PV
         * EOI, PV IPIs, which need its in-kernel local APIC); with revirter's own platform the
         * guest must not look for them, as on a backend that has none. */
        int m = 0;
        for (int i = 0; i < n; i++)
            if ((e[i].function & 0xffffff00u) != 0x40000000u)
                e[m++] = e[i];
        n = m;
    }
    for (int i = 0; i < n; i++) {
        struct hav_cpuid_entry *c = &e[i];
        switch (c->function) {
        case 1:
            /* EBX: initial APIC ID [31:24], logical processors per package [23:16] (valid
             * with EDX.HTT). ECX bit 31: running under a hypervisor. */
            c->ebx = (c->ebx & 0x0000ffffu) | (index << 24) | ((count > 255 ? 255 : count) << 16);
            if (count > 1)
                c->edx |= 1u << 28;
            c->ecx |= 1u << 31;
            /* ECX bit 24, TSC-deadline timer: revirter's local APIC offers one-shot and
             * periodic modes only (a deadline in guest TSC units needs the backend's TSC
             * offset and rate, which the HAV API does not give yet). */
            if (own_platform)
                c->ecx &= ~(1u << 24);
            break;
        case 4:
            /* EAX[31:26]: cores per package - 1; [25:14]: threads sharing this cache - 1
             * (one: every vCPU is its own core). Leave the cache geometry as reported. */
            if ((c->eax & 0x1f) != 0)
                c->eax = (c->eax & 0x00003fffu) | ((count - 1) << 26);
            break;
        case 0xb:
        case 0x1f:
            /* Level 0: SMT, one thread per core; level 1: cores, count per package. */
            c->edx = index;
            if (c->index == 0) {
                c->eax = 0;
                c->ebx = 1;
                c->ecx = (1u << 8) | c->index;
            } else if (c->index == 1) {
                c->eax = core_bits;
                c->ebx = count;
                c->ecx = (2u << 8) | c->index;
            } else {
                c->eax = c->ebx = 0;
                c->ecx = c->index;
            }
            break;
        case 0x80000008:
            /* AMD: ECX[7:0] cores per package - 1, [15:12] APIC ID bits for them. */
            c->ecx = (c->ecx & ~0xf0ffu) | (count - 1) | (core_bits << 12);
            break;
        case 0x40000000:
            have_hv_leaf = true;
            break;
        default:
            break;
        }
    }
    /* The backend's own hypervisor leaves (KVM's describe its paravirtual clock and EOI, which
     * the guest then uses) are kept; otherwise announce Revirt. */
    if (!have_hv_leaf && n < (int)HAV_CPUID_MAX) {
        struct hav_cpuid_entry hv = {.function = 0x40000000, .eax = 0x40000000};
        memcpy(&hv.ebx, "Revi", 4);
        memcpy(&hv.ecx, "rtRe", 4);
        memcpy(&hv.edx, "virt", 4);
        e[n++] = hv;
    }
    return n;
}

int vmm_cpuid_build(struct hav_backend *b, unsigned index, unsigned count, bool own_platform,
                    struct hav_cpuid_entry *e)
{
    int n = hav_supported_cpuid(b, e, HAV_CPUID_MAX - 1);
    if (n < 0)
        return n;
    return vmm_cpuid_patch(e, n, index, count, own_platform);
}
