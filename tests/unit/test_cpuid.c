/* SPDX-License-Identifier: MIT */
/* Per-vCPU CPUID: APIC IDs, topology leaves and the hypervisor leaf. */
#include "check.h"
#include "board/pc/cpuid.h"

static int table(struct hav_cpuid_entry *e)
{
    int n = 0;
    e[n++] = (struct hav_cpuid_entry){.function = 1, .ebx = 0xff000800, .ecx = 0x1, .edx = 0};
    e[n++] =
        (struct hav_cpuid_entry){.function = 4, .index = 0, .indexed = true, .eax = 0xfc004121};
    e[n++] = (struct hav_cpuid_entry){.function = 0xb, .index = 0, .indexed = true};
    e[n++] = (struct hav_cpuid_entry){.function = 0xb, .index = 1, .indexed = true};
    e[n++] = (struct hav_cpuid_entry){.function = 0xb, .index = 2, .indexed = true};
    return n;
}

static struct hav_cpuid_entry *find(struct hav_cpuid_entry *e, int n, uint32_t f, uint32_t i)
{
    for (int k = 0; k < n; k++)
        if (e[k].function == f && e[k].index == i)
            return &e[k];
    return NULL;
}

static void test_topology(void)
{
    struct hav_cpuid_entry e[HAV_CPUID_MAX];
    int n = vmm_cpuid_patch(e, table(e), 2, 3, false);
    struct hav_cpuid_entry *l1 = find(e, n, 1, 0), *l4 = find(e, n, 4, 0);
    CHECK_EQ(l1->ebx >> 24, 2);          /* APIC ID */
    CHECK_EQ((l1->ebx >> 16) & 0xff, 3); /* logical processors */
    CHECK_EQ(l1->ebx & 0xffff, 0x0800);  /* CLFLUSH size kept */
    CHECK(l1->edx & (1u << 28), "HTT set for more than one vCPU");
    CHECK(l1->ecx & (1u << 31), "hypervisor bit");
    CHECK_EQ(l4->eax >> 26, 2);         /* cores per package - 1 */
    CHECK_EQ(l4->eax & 0x3fff, 0x0121); /* cache type and level kept */
    struct hav_cpuid_entry *smt = find(e, n, 0xb, 0), *core = find(e, n, 0xb, 1);
    CHECK(smt->ebx == 1 && smt->eax == 0 && ((smt->ecx >> 8) & 0xff) == 1, "SMT level");
    CHECK(core->ebx == 3 && core->eax == 2 && ((core->ecx >> 8) & 0xff) == 2, "core level");
    CHECK(smt->edx == 2 && core->edx == 2, "x2APIC ID");
    CHECK_EQ(find(e, n, 0xb, 2)->ebx, 0);
    struct hav_cpuid_entry *hv = find(e, n, 0x40000000, 0);
    CHECK(hv && !memcmp(&hv->ebx, "Revi", 4) && !memcmp(&hv->edx, "virt", 4), "signature");
}

static void test_single_and_kept_signature(void)
{
    struct hav_cpuid_entry e[HAV_CPUID_MAX];
    int n = table(e);
    e[n++] = (struct hav_cpuid_entry){.function = 0x40000000, .ebx = 0x4b4d564b};
    n = vmm_cpuid_patch(e, n, 0, 1, false);
    CHECK(!(find(e, n, 1, 0)->edx & (1u << 28)), "no HTT with one vCPU");
    CHECK_EQ(find(e, n, 0x40000000, 0)->ebx, 0x4b4d564b); /* the backend's leaf is kept */
    int leaves = 0;
    for (int k = 0; k < n; k++)
        leaves += e[k].function == 0x40000000;
    CHECK_EQ(leaves, 1);
}

/* With revirter's own platform the backend's hypervisor leaves go (the guest would look for
 * kvm-clock and PV EOI behind them), Revirt's signature stands in, and TSC-deadline is off. */
static void test_own_platform(void)
{
    struct hav_cpuid_entry e[HAV_CPUID_MAX];
    int n = table(e);
    e[0].ecx |= 1u << 24;
    e[n++] = (struct hav_cpuid_entry){.function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b};
    e[n++] = (struct hav_cpuid_entry){.function = 0x40000001, .eax = 0x01007afb};
    e[n++] = (struct hav_cpuid_entry){.function = 0x80000001, .ecx = 0x123};
    n = vmm_cpuid_patch(e, n, 1, 2, true);
    CHECK(find(e, n, 0x40000001, 0) == NULL, "KVM feature leaf removed");
    struct hav_cpuid_entry *hv = find(e, n, 0x40000000, 0);
    CHECK(hv && !memcmp(&hv->ebx, "Revi", 4), "Revirt signature");
    CHECK(!(find(e, n, 1, 0)->ecx & (1u << 24)), "no TSC-deadline");
    CHECK_EQ(find(e, n, 1, 0)->ebx >> 24, 1);
    CHECK_EQ(find(e, n, 0x80000001, 0)->ecx, 0x123); /* other leaves kept */
    CHECK_EQ(n, table(e) + 2);
}

int main(void)
{
    RUN(test_own_platform);
    RUN(test_topology);
    RUN(test_single_and_kept_signature);
    return check_done();
}
