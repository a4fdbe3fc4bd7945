/* SPDX-License-Identifier: MIT */
/* The CPUID table a vCPU sees: the backend's supported set plus topology and identity. */
#ifndef REVIRT_BOARD_PC_CPUID_H
#define REVIRT_BOARD_PC_CPUID_H

#include <revirt/hav.h>

#include <stdbool.h>

/* Fill e (room for HAV_CPUID_MAX) for vCPU index of count, one core per vCPU in one package.
 * own_platform: the interrupt controllers and timers are revirter's, not the backend's (no
 * backend hypervisor leaves, no TSC-deadline timer). Returns the number of entries or -errno. */
HAV_MUST_CHECK int vmm_cpuid_build(struct hav_backend *b, unsigned index, unsigned count,
                                   bool own_platform, struct hav_cpuid_entry *e);

/* Adjust a supported table in place for one vCPU (split out so unit tests need no backend). */
int vmm_cpuid_patch(struct hav_cpuid_entry *e, int n, unsigned index, unsigned count,
                    bool own_platform);

#endif
