/* SPDX-License-Identifier: MIT */
/* Linux KVM backend, x86-64 half: the unified vCPU state and CPUID tables to and from KVM's. */
#include "kvm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

static int vcpu_ioctl(struct hav_vcpu *hv, unsigned long req, void *arg, const char *name)
{
    if (ioctl(kvm_vcpu_of(hv)->fd, req, arg) < 0) {
        int e = errno;
        return hav_set_error(-e, "kvm: %s: %s", name, strerror(e));
    }
    return 0;
}

static void seg_from_kvm(struct hav_x86_segment *h, const struct kvm_segment *k)
{
    *h = (struct hav_x86_segment){
        .base = k->base,
        .limit = k->limit,
        .selector = k->selector,
        .type = k->type,
        .s = k->s,
        .dpl = k->dpl,
        .present = k->present,
        .avl = k->avl,
        .l = k->l,
        .db = k->db,
        .g = k->g,
        .unusable = k->unusable,
    };
}

static void seg_to_kvm(struct kvm_segment *k, const struct hav_x86_segment *h)
{
    *k = (struct kvm_segment){
        .base = h->base,
        .limit = h->limit,
        .selector = h->selector,
        .type = h->type,
        .s = h->s,
        .dpl = h->dpl,
        .present = h->present,
        .avl = h->avl,
        .l = h->l,
        .db = h->db,
        .g = h->g,
        .unusable = h->unusable,
    };
}

/* The GPR layout of struct kvm_regs and of the HAV state's gprs block match field for field;
 * copy by name anyway so a change in either is a compile error, not silent corruption. */
/* clang-format off */
#define GPRS(X) \
    X(rax) X(rbx) X(rcx) X(rdx) X(rsi) X(rdi) X(rsp) X(rbp) \
    X(r8) X(r9) X(r10) X(r11) X(r12) X(r13) X(r14) X(r15) X(rip) X(rflags)
/* clang-format on */

static void sregs_to_hav(struct hav_x86_state *st, const struct kvm_sregs *s, uint32_t mask)
{
    if (mask & HAV_X86_SEGS) {
        seg_from_kvm(&st->segs.cs, &s->cs);
        seg_from_kvm(&st->segs.ds, &s->ds);
        seg_from_kvm(&st->segs.es, &s->es);
        seg_from_kvm(&st->segs.fs, &s->fs);
        seg_from_kvm(&st->segs.gs, &s->gs);
        seg_from_kvm(&st->segs.ss, &s->ss);
        seg_from_kvm(&st->segs.tr, &s->tr);
        seg_from_kvm(&st->segs.ldtr, &s->ldt);
        st->segs.gdt = (struct hav_x86_table){s->gdt.base, s->gdt.limit};
        st->segs.idt = (struct hav_x86_table){s->idt.base, s->idt.limit};
    }
    if (mask & HAV_X86_CRS) {
        st->crs.cr0 = s->cr0;
        st->crs.cr2 = s->cr2;
        st->crs.cr3 = s->cr3;
        st->crs.cr4 = s->cr4;
        st->crs.cr8 = s->cr8;
        st->crs.efer = s->efer;
        st->crs.apic_base = s->apic_base;
    }
}

void kvm_x86_sregs_from_hav(struct kvm_sregs *s, const struct hav_x86_state *st, uint32_t mask)
{
    if (mask & HAV_X86_SEGS) {
        seg_to_kvm(&s->cs, &st->segs.cs);
        seg_to_kvm(&s->ds, &st->segs.ds);
        seg_to_kvm(&s->es, &st->segs.es);
        seg_to_kvm(&s->fs, &st->segs.fs);
        seg_to_kvm(&s->gs, &st->segs.gs);
        seg_to_kvm(&s->ss, &st->segs.ss);
        seg_to_kvm(&s->tr, &st->segs.tr);
        seg_to_kvm(&s->ldt, &st->segs.ldtr);
        s->gdt = (struct kvm_dtable){.base = st->segs.gdt.base, .limit = st->segs.gdt.limit};
        s->idt = (struct kvm_dtable){.base = st->segs.idt.base, .limit = st->segs.idt.limit};
    }
    if (mask & HAV_X86_CRS) {
        s->cr0 = st->crs.cr0;
        s->cr2 = st->crs.cr2;
        s->cr3 = st->crs.cr3;
        s->cr4 = st->crs.cr4;
        s->cr8 = st->crs.cr8;
        s->efer = st->crs.efer;
        s->apic_base = st->crs.apic_base;
    }
}

void kvm_x86_regs_from_hav(struct kvm_regs *k, const struct hav_x86_state *st)
{
#define SET(f) k->f = st->gprs.f;
    GPRS(SET)
#undef SET
}

struct msr_buf {
    struct kvm_msrs head;
    struct kvm_msr_entry entries[HAV_X86_MSRS_MAX];
};

static int msrs_io(struct hav_vcpu *hv, struct hav_x86_state *st, bool set)
{
    struct msr_buf b = {.head.nmsrs = st->msrs.count};
    for (uint32_t i = 0; i < st->msrs.count; i++)
        b.entries[i] = (struct kvm_msr_entry){.index = st->msrs.entries[i].index,
                                              .data = st->msrs.entries[i].value};
    int n = ioctl(kvm_vcpu_of(hv)->fd, set ? KVM_SET_MSRS : KVM_GET_MSRS, &b);
    if (n < 0) {
        int e = errno;
        return hav_set_error(-e, "kvm: %s: %s", set ? "KVM_SET_MSRS" : "KVM_GET_MSRS", strerror(e));
    }
    /* KVM stops at the first MSR it refuses and returns how many it did. */
    if ((uint32_t)n < st->msrs.count)
        return hav_set_error(-EINVAL, "kvm: MSR 0x%x cannot be %s", st->msrs.entries[n].index,
                             set ? "written" : "read");
    if (!set)
        for (uint32_t i = 0; i < st->msrs.count; i++)
            st->msrs.entries[i].value = b.entries[i].data;
    return 0;
}

int kvm_x86_get_state(struct hav_vcpu *hv, struct hav_x86_state *st, uint32_t mask)
{
    int r = 0;
    if (mask & HAV_X86_GPRS) {
        struct kvm_regs k;
        if ((r = vcpu_ioctl(hv, KVM_GET_REGS, &k, "KVM_GET_REGS")))
            return r;
#define GET(f) st->gprs.f = k.f;
        GPRS(GET)
#undef GET
    }
    if (mask & (HAV_X86_SEGS | HAV_X86_CRS)) {
        struct kvm_sregs s;
        if ((r = vcpu_ioctl(hv, KVM_GET_SREGS, &s, "KVM_GET_SREGS")))
            return r;
        sregs_to_hav(st, &s, mask);
        /* Without an in-kernel APIC the next entry loads CR8 from kvm_run (kvm_set_cr8). */
        if ((mask & HAV_X86_CRS) && hv->vm->irqchip == HAV_IRQCHIP_NONE)
            st->crs.cr8 = kvm_vcpu_of(hv)->run->cr8;
    }
    if (mask & HAV_X86_DEBUG) {
        struct kvm_debugregs d;
        if ((r = vcpu_ioctl(hv, KVM_GET_DEBUGREGS, &d, "KVM_GET_DEBUGREGS")))
            return r;
        memcpy(st->debug.dr, d.db, sizeof(st->debug.dr));
        st->debug.dr6 = d.dr6;
        st->debug.dr7 = d.dr7;
    }
    if (mask & HAV_X86_FPU) {
        _Static_assert(sizeof(struct kvm_xsave) >= HAV_X86_XSAVE_SIZE, "xsave area");
        struct kvm_xcrs x = {0};
        if ((r = vcpu_ioctl(hv, KVM_GET_XSAVE, st->fpu.xsave, "KVM_GET_XSAVE")) ||
            (r = vcpu_ioctl(hv, KVM_GET_XCRS, &x, "KVM_GET_XCRS")))
            return r;
        st->fpu.xcr0 = 0;
        for (uint32_t i = 0; i < x.nr_xcrs && i < KVM_MAX_XCRS; i++)
            if (x.xcrs[i].xcr == 0)
                st->fpu.xcr0 = x.xcrs[i].value;
    }
    if ((mask & HAV_X86_MSRS) && (r = msrs_io(hv, st, false)))
        return r;
    if (mask & HAV_X86_EVENTS) {
        struct kvm_vcpu_events ev;
        if ((r = vcpu_ioctl(hv, KVM_GET_VCPU_EVENTS, &ev, "KVM_GET_VCPU_EVENTS")))
            return r;
        st->events.exception_pending = ev.exception.injected || ev.exception.pending;
        st->events.exception_vector = ev.exception.nr;
        st->events.exception_has_error = ev.exception.has_error_code;
        st->events.exception_error = ev.exception.error_code;
        st->events.interrupt_pending = ev.interrupt.injected;
        st->events.interrupt_vector = ev.interrupt.nr;
        st->events.nmi_pending = ev.nmi.injected || ev.nmi.pending;
        st->events.nmi_masked = ev.nmi.masked;
        st->events.interrupt_shadow = ev.interrupt.shadow != 0;
    }
    if (mask & HAV_X86_LAPIC) {
        _Static_assert(sizeof(struct kvm_lapic_state) == HAV_X86_LAPIC_SIZE, "lapic page");
        if ((r = vcpu_ioctl(hv, KVM_GET_LAPIC, st->lapic.regs, "KVM_GET_LAPIC")))
            return r;
    }
    return 0;
}

int kvm_x86_set_state(struct hav_vcpu *hv, const struct hav_x86_state *st, uint32_t mask)
{
    int r = 0;
    /* Control registers first: the GPRs (RIP) and segments only make sense in their mode. */
    if (mask & (HAV_X86_SEGS | HAV_X86_CRS)) {
        struct kvm_sregs s;
        if ((r = vcpu_ioctl(hv, KVM_GET_SREGS, &s, "KVM_GET_SREGS")))
            return r;
        kvm_x86_sregs_from_hav(&s, st, mask);
        if ((r = vcpu_ioctl(hv, KVM_SET_SREGS, &s, "KVM_SET_SREGS")))
            return r;
        /* ...or the next KVM_RUN would load the CR8 of the last exit over this one. */
        if ((mask & HAV_X86_CRS) && hv->vm->irqchip == HAV_IRQCHIP_NONE)
            kvm_vcpu_of(hv)->run->cr8 = st->crs.cr8;
    }
    if (mask & HAV_X86_GPRS) {
        struct kvm_regs k;
        kvm_x86_regs_from_hav(&k, st);
        if ((r = vcpu_ioctl(hv, KVM_SET_REGS, &k, "KVM_SET_REGS")))
            return r;
    }
    if (mask & HAV_X86_DEBUG) {
        struct kvm_debugregs d = {.dr6 = st->debug.dr6, .dr7 = st->debug.dr7};
        memcpy(d.db, st->debug.dr, sizeof(d.db));
        if ((r = vcpu_ioctl(hv, KVM_SET_DEBUGREGS, &d, "KVM_SET_DEBUGREGS")))
            return r;
    }
    if (mask & HAV_X86_FPU) {
        struct kvm_xcrs x = {.nr_xcrs = 1, .xcrs[0] = {.xcr = 0, .value = st->fpu.xcr0}};
        /* XCR0 first: the XSAVE image may use components only it enables. */
        if ((r = vcpu_ioctl(hv, KVM_SET_XCRS, &x, "KVM_SET_XCRS")) ||
            (r = vcpu_ioctl(hv, KVM_SET_XSAVE, (void *)st->fpu.xsave, "KVM_SET_XSAVE")))
            return r;
    }
    if ((mask & HAV_X86_MSRS) && (r = msrs_io(hv, (struct hav_x86_state *)st, true)))
        return r;
    if (mask & HAV_X86_EVENTS) {
        struct kvm_vcpu_events ev = {
            .exception = {.injected = st->events.exception_pending,
                          .nr = st->events.exception_vector,
                          .has_error_code = st->events.exception_has_error,
                          .error_code = st->events.exception_error},
            .interrupt = {.injected = st->events.interrupt_pending,
                          .nr = st->events.interrupt_vector,
                          .shadow = st->events.interrupt_shadow ? 1 : 0},
            .nmi = {.injected = 0,
                    .pending = st->events.nmi_pending,
                    .masked = st->events.nmi_masked},
            .flags = KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_NMI_PENDING,
        };
        if ((r = vcpu_ioctl(hv, KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS")))
            return r;
    }
    if ((mask & HAV_X86_LAPIC) &&
        (r = vcpu_ioctl(hv, KVM_SET_LAPIC, (void *)st->lapic.regs, "KVM_SET_LAPIC")))
        return r;
    return 0;
}

struct cpuid_buf {
    struct kvm_cpuid2 head;
    struct kvm_cpuid_entry2 entries[HAV_CPUID_MAX];
};

/* KVM_GET_SUPPORTED_CPUID, once per backend: every vCPU's default table and every VMM query is
 * then a copy instead of an ioctl. */
int kvm_x86_load_supported_cpuid(struct kvm_backend *k)
{
    struct cpuid_buf *c = calloc(1, sizeof(*c));
    k->cpuid = calloc(HAV_CPUID_MAX, sizeof(*k->cpuid));
    if (!c || !k->cpuid) {
        free(c);
        free(k->cpuid);
        k->cpuid = NULL;
        return hav_set_error(-ENOMEM, "out of memory");
    }
    c->head.nent = HAV_CPUID_MAX;
    if (ioctl(k->fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
        int err = errno;
        free(c);
        free(k->cpuid);
        k->cpuid = NULL;
        return hav_set_error(-err, "kvm: KVM_GET_SUPPORTED_CPUID: %s", strerror(err));
    }
    for (unsigned i = 0; i < c->head.nent; i++) {
        const struct kvm_cpuid_entry2 *e = &c->entries[i];
        k->cpuid[i] = (struct hav_cpuid_entry){
            .function = e->function,
            .index = e->index,
            .indexed = (e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0,
            .eax = e->eax,
            .ebx = e->ebx,
            .ecx = e->ecx,
            .edx = e->edx,
        };
    }
    k->ncpuid = c->head.nent;
    free(c);
    return 0;
}

int kvm_x86_supported_cpuid(struct hav_backend *b, struct hav_cpuid_entry *e, unsigned max)
{
    const struct kvm_backend *k = kvm_backend_of(b);
    if (k->ncpuid > max)
        return hav_set_error(-ENOSPC, "CPUID table has %u entries, room for %u", k->ncpuid, max);
    memcpy(e, k->cpuid, k->ncpuid * sizeof(*e));
    return (int)k->ncpuid;
}

int kvm_x86_set_cpuid(struct hav_vcpu *hv, const struct hav_cpuid_entry *e, unsigned count)
{
    struct cpuid_buf *c = calloc(1, sizeof(*c));
    if (!c)
        return hav_set_error(-ENOMEM, "out of memory");
    c->head.nent = count;
    for (unsigned i = 0; i < count; i++)
        c->entries[i] = (struct kvm_cpuid_entry2){
            .function = e[i].function,
            .index = e[i].index,
            .flags = e[i].indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0,
            .eax = e[i].eax,
            .ebx = e[i].ebx,
            .ecx = e[i].ecx,
            .edx = e[i].edx,
        };
    int r = vcpu_ioctl(hv, KVM_SET_CPUID2, c, "KVM_SET_CPUID2");
    free(c);
    return r;
}

/* Without KVM_SET_CPUID2 a KVM vCPU reports no features at all; start every vCPU with what the
 * host supports and its own APIC ID, so a VMM only overrides what it cares about. */
int kvm_x86_default_cpuid(struct hav_vcpu *hv)
{
    struct hav_cpuid_entry *e = calloc(HAV_CPUID_MAX, sizeof(*e));
    if (!e)
        return hav_set_error(-ENOMEM, "out of memory");
    int n = kvm_x86_supported_cpuid(hv->vm->b, e, HAV_CPUID_MAX);
    if (n >= 0) {
        for (int i = 0; i < n; i++) {
            if (e[i].function == 1)
                e[i].ebx = (e[i].ebx & 0x00ffffffu) | (hv->id << 24);
            if (e[i].function == 0xb || e[i].function == 0x1f)
                e[i].edx = hv->id;
        }
        n = kvm_x86_set_cpuid(hv, e, (unsigned)n);
    }
    free(e);
    return n < 0 ? n : 0;
}
