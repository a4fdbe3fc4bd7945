/* SPDX-License-Identifier: MIT */
/* Linux KVM backend types, shared by its generic (kvm.c) and x86-64 (kvm_x86_64.c) halves. The
 * only header outside src/hav/ rules that may include <linux/kvm.h>. */
#ifndef REVIRT_HAV_KVM_H
#define REVIRT_HAV_KVM_H

#include "hav_backend.h"

#include <linux/kvm.h>

#define KVM_ROUTES_MAX (24 * 2 + HAV_MAX_GSI)

struct kvm_backend {
    struct hav_backend base;
    int fd;
    int run_size;
    struct hav_cpuid_entry *cpuid; /* what KVM supports, fetched once at open */
    unsigned ncpuid;
};

struct kvm_vm {
    struct hav_vm base;
    int fd;
    unsigned nroutes;
    struct kvm_irq_routing_entry *routes; /* the whole table: KVM replaces it at once */
};

struct kvm_vcpu {
    struct hav_vcpu base;
    int fd;
    struct kvm_run *run;
    /* kick: the thread that runs this vCPU, and whether it is inside KVM_RUN now */
    pthread_t thread;
    atomic_bool in_run;
};

static inline struct kvm_backend *kvm_backend_of(struct hav_backend *b)
{
    return (struct kvm_backend *)b;
}

static inline struct kvm_vm *kvm_vm_of(struct hav_vm *vm)
{
    return (struct kvm_vm *)vm;
}

static inline struct kvm_vcpu *kvm_vcpu_of(struct hav_vcpu *v)
{
    return (struct kvm_vcpu *)v;
}

/* kvm_x86_64.c */
int kvm_x86_get_state(struct hav_vcpu *vcpu, struct hav_x86_state *st, uint32_t mask);
int kvm_x86_set_state(struct hav_vcpu *vcpu, const struct hav_x86_state *st, uint32_t mask);
int kvm_x86_load_supported_cpuid(struct kvm_backend *k);
int kvm_x86_supported_cpuid(struct hav_backend *b, struct hav_cpuid_entry *e, unsigned max);
int kvm_x86_set_cpuid(struct hav_vcpu *vcpu, const struct hav_cpuid_entry *e, unsigned count);
int kvm_x86_default_cpuid(struct hav_vcpu *vcpu);
void kvm_x86_sregs_from_hav(struct kvm_sregs *s, const struct hav_x86_state *st, uint32_t mask);
void kvm_x86_regs_from_hav(struct kvm_regs *k, const struct hav_x86_state *st);

#endif
