/* SPDX-License-Identifier: MIT */
/* HAV: Revirt's kernel-agnostic interface to hardware-assisted virtualization (x86-64). */
#ifndef REVIRT_HAV_H
#define REVIRT_HAV_H

/*
 * Contract
 * --------
 * Objects: a backend (one open hypervisor, e.g. Linux KVM), VMs created on it, guest memory
 * regions attached to a VM, and vCPUs created in a VM. Each is an opaque pointer; the caller
 * owns what it creates and destroys it in reverse order (vCPUs, then the VM, then the backend).
 * Destroying a VM drops its memory mappings, routes and notifiers (the fds stay the caller's).
 *
 * Errors: every fallible call returns 0 (or a non-negative value where documented) on success
 * and a negative errno on failure, and leaves a one-line human-readable reason in a per-thread
 * buffer read with hav_last_error(). Nothing is half-done on failure.
 *
 * Threads: a vCPU belongs to the thread that runs it. hav_vcpu_run, hav_vcpu_get_state,
 * hav_vcpu_set_state, hav_vcpu_set_cpuid, hav_vcpu_inject_irq, hav_vcpu_inject_nmi and
 * hav_vcpu_set_cr8 must be called from that one thread (the backend may bind the vCPU to it);
 * the HAV layer refuses the last three with -EPERM from any thread but the one that ran the
 * vCPU last (before its first run, any thread may prepare it). hav_vcpu_kick is the exception:
 * any thread may call it at any time while the vCPU exists, and the thread that runs the vCPU
 * must not exit before the vCPU is destroyed (a kick may signal it). Backends may use SIGUSR2
 * to interrupt a running vCPU; the VMM must leave that signal alone. VM-level calls (memory,
 * interrupt lines, MSI, notifiers, dirty log) may be made from any thread; the backend
 * serialises them, but the caller must not detach memory a device is still using.
 *
 * Guest ABI fixed by HAV (the same on every backend):
 *  - Hypercall: `out %eax, %dx` with EAX = call number and DX = HAV_HYPERCALL_PORT. The
 *    call's arguments are in RDI, RSI, R8, R9, R10, R11 (RDX holds the port); the value the VMM
 *    places in exit->u.hypercall.ret is returned in RAX. The struct hav_exit that reported the
 *    call must stay valid until the next hav_vcpu_run. Works in any ring the guest lets do port
 *    I/O, and costs one exit like any port write.
 *  - Native hypercall, only with HAV_CAP_HYPERCALL_NATIVE: VMCALL (Intel) or VMMCALL (AMD) with
 *    RAX = call number and the arguments in RDI, RSI, RDX, R10, R8, R9 exits as
 *    HAV_EXIT_HYPERCALL (args[0..5] in that order); the VMM's ret becomes RAX and the
 *    instruction is complete at the next run. Without the capability the port form above is the
 *    one that works everywhere; what VMCALL does then is the backend's business (often #UD or an
 *    error code in RAX), so portable guests do not use it.
 *
 * The PC platform in user space (HAV_IRQCHIP_NONE): the VMM models the local APICs, IOAPIC, PIC
 * and PIT itself. HAV then gives it, on every backend:
 *  - Interrupts: hav_vcpu_inject_irq / hav_vcpu_request_irq_window (external interrupts) and,
 *    with HAV_CAP_NMI, hav_vcpu_inject_nmi. The TPR: every exit reports CR8 (struct hav_exit's
 *    cr8), and hav_vcpu_set_cr8 sets it for the next run, so the model keeps TPR/PPR right.
 *  - HLT: a guest HLT returns HAV_EXIT_HLT; the HLT is then complete (RIP is past it). The VMM
 *    does not run the vCPU again until its own models have something for it: it waits on its
 *    own condition (a condvar, an eventfd, ... signalled by the device or timer thread), then
 *    injects (hav_vcpu_inject_irq if hav_vcpu_irq_ready, else the interrupt window;
 *    hav_vcpu_inject_nmi needs no window) and runs the vCPU again on its own thread. A guest
 *    HLT with interrupts disabled and no NMI to come is a dead vCPU, which is the VMM's call.
 *  - MSRs: with HAV_CAP_MSR_EXIT, an MSR the backend does not virtualize itself exits as
 *    HAV_EXIT_MSR (see "MSRs" below); the local-APIC MSRs always do with HAV_IRQCHIP_NONE.
 *  - Application processors: every vCPU is created runnable in the reset state and runs only
 *    when its thread calls hav_vcpu_run; nothing in the backend starts or stops it. The VMM
 *    parks an AP simply by not running it until its local APIC model sees the INIT and
 *    STARTUP IPIs (ICR writes by another vCPU), then sets the start-up state (CS selector =
 *    vector << 8, CS base = vector << 12, IP 0, real mode; Intel SDM vol. 3 §8.4.4 / §9.1, AMD
 *    APM vol. 2 §16.5) with hav_x86_sipi_state and hav_vcpu_set_state, and runs it. INIT and
 *    STARTUP after that (an AP re-started by the guest) are the same: the VMM stops running the
 *    vCPU (hav_vcpu_kick) and sets the state again.
 *
 * MSRs: a backend virtualizes itself (holds them in the guest state, no exit, readable and
 * writable through HAV_X86_MSRS) at least IA32_TSC (0x10), IA32_SYSENTER_CS/ESP/EIP
 * (0x174-0x176), IA32_PAT (0x277), the MTRRs (IA32_MTRRCAP 0xfe, the variable and fixed ranges
 * 0x200-0x26f, IA32_MTRR_DEF_TYPE 0x2ff), IA32_EFER, STAR, LSTAR, CSTAR, SFMASK
 * (0xc0000080-0xc0000084), FS_BASE, GS_BASE, KERNEL_GS_BASE (0xc0000100-0xc0000102) and
 * TSC_AUX (0xc0000103). It may virtualize more MSRs that belong to CPU features it exposes in
 * CPUID (misc-enable, machine check, performance counters, speculation control, XSS, its own
 * paravirtual MSRs, ...); docs/hav.md lists them per backend. The local-APIC MSRs,
 * IA32_APIC_BASE (0x1b), IA32_TSC_DEADLINE (0x6e0) and the x2APIC range 0x800-0x8ff, belong to
 * the interrupt controller: with HAV_IRQCHIP_KERNEL the backend handles them, with
 * HAV_IRQCHIP_NONE it never does. With HAV_CAP_MSR_EXIT every RDMSR or WRMSR of an MSR the
 * backend does not handle exits as HAV_EXIT_MSR, under either irqchip model; so may an access
 * the backend refuses (say a reserved bit set in EFER), which the VMM normally answers with
 * #GP. Without HAV_CAP_MSR_EXIT (or with it masked before the VM was created) such accesses
 * never reach the VMM: the backend raises #GP in the guest.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAV_MUST_CHECK __attribute__((warn_unused_result))

#define HAV_PAGE_SIZE 4096u
#define HAV_HYPERCALL_PORT 0x0599u
#define HAV_MAX_GSI 1024u  /* interrupt lines 0 .. HAV_MAX_GSI-1; 0-23 are the IOAPIC's pins */
#define HAV_CPUID_MAX 256u /* entries in one CPUID table */
/* Guest-physical pages a backend may need for itself (Intel VT-x real-mode TSS and identity
 * map); never attach memory there and mark it reserved in the guest's memory map. */
#define HAV_X86_RESERVED_GPA 0xfffbc000u
#define HAV_X86_RESERVED_SIZE 0x4000u

struct hav_backend;
struct hav_vm;
struct hav_vcpu;

/* ---------------------------------------------------------------- errors */

/* The reason for this thread's last failed HAV call. Never NULL; valid until the next HAV call
 * on this thread. */
const char *hav_last_error(void);

/* ---------------------------------------------------------------- backends */

enum hav_cap {
    HAV_CAP_IRQCHIP = 1u << 0,      /* in-kernel PIC + IOAPIC + local APICs */
    HAV_CAP_PIT = 1u << 1,          /* in-kernel i8254 timer */
    HAV_CAP_MSI = 1u << 2,          /* hav_vm_signal_msi and MSI routes */
    HAV_CAP_READONLY_MEM = 1u << 3, /* HAV_MEM_READONLY: writes exit as MMIO */
    HAV_CAP_DIRTY_LOG = 1u << 4,    /* HAV_MEM_DIRTY_LOG */
    HAV_CAP_IRQ_NOTIFIER = 1u << 5, /* native: a write to an fd raises a GSI, no VMM thread */
    HAV_CAP_IO_NOTIFIER = 1u << 6,  /* native: a guest write signals an fd without an exit */
    HAV_CAP_XSAVE = 1u << 7,        /* HAV_X86_FPU carries the full XSAVE area and XCR0 */
    HAV_CAP_MSR_EXIT = 1u << 8,     /* MSRs the backend does not virtualize exit (HAV_EXIT_MSR) */
    HAV_CAP_NMI = 1u << 9,          /* hav_vcpu_inject_nmi */
    HAV_CAP_HYPERCALL_NATIVE = 1u << 10, /* VMCALL/VMMCALL exit as HAV_EXIT_HYPERCALL */
};

/* Open a backend. name is "kvm", or NULL / "auto" for the first one that works on this machine.
 * The environment variable REVIRT_HAV, when set, overrides NULL / "auto".
 * -ENOENT: no backend of that name is built in; -ENODEV: it exists but cannot run here (the
 * message says why, e.g. "/dev/kvm: No such file or directory"). */
HAV_MUST_CHECK int hav_open(const char *name, struct hav_backend **out);
void hav_close(struct hav_backend *b);

const char *hav_backend_name(const struct hav_backend *b);
/* Names of all built-in backends, NULL-terminated. */
const char *const *hav_backend_list(void);

/* Capabilities (enum hav_cap bits). Missing notifier capabilities are still usable: the HAV layer
 * then emulates them portably (see hav_vm_irq_notifier / hav_vm_io_notifier). */
uint32_t hav_caps(const struct hav_backend *b);
/* Hide capabilities from everything opened later on b (for tests of fallbacks and for users
 * who want a backend to behave like a smaller one). */
void hav_mask_caps(struct hav_backend *b, uint32_t caps);
/* Largest vCPU count a VM may have on this backend. */
unsigned hav_max_vcpus(const struct hav_backend *b);

/* ---------------------------------------------------------------- VMs */

enum hav_irqchip {
    HAV_IRQCHIP_NONE,   /* the VMM models the interrupt controllers and injects (see above) */
    HAV_IRQCHIP_KERNEL, /* PIC, IOAPIC and local APICs in the backend (needs HAV_CAP_IRQCHIP) */
};

struct hav_vm_config {
    enum hav_irqchip irqchip;
    bool pit; /* in-kernel PIT on ports 0x40-0x43 (needs HAV_CAP_PIT and HAV_IRQCHIP_KERNEL) */
};

/* Create a VM. config may be NULL for no irqchip and no PIT. Capabilities masked on b before
 * this call are not used by the VM (e.g. no MSR exits without HAV_CAP_MSR_EXIT). */
HAV_MUST_CHECK int hav_vm_create(struct hav_backend *b, const struct hav_vm_config *config,
                                 struct hav_vm **out);
void hav_vm_destroy(struct hav_vm *vm);

/* ---------------------------------------------------------------- guest memory */

enum hav_mem_flags {
    HAV_MEM_READONLY = 1u << 0,  /* guest writes are not stored; they exit as HAV_EXIT_MMIO */
    HAV_MEM_DIRTY_LOG = 1u << 1, /* track pages the guest writes, see hav_vm_dirty_log */
};

/* Map size bytes of host memory at host into the guest at gpa. gpa, host and size must be
 * multiples of HAV_PAGE_SIZE and size non-zero (-EINVAL); the range must not overlap an
 * attached region (-EEXIST). The caller owns the host memory and keeps it mapped until the
 * region is detached or the VM destroyed. */
HAV_MUST_CHECK int hav_vm_attach_memory(struct hav_vm *vm, uint64_t gpa, void *host, uint64_t size,
                                        uint32_t flags);
/* Detach the region that starts exactly at gpa (-ENOENT if none). */
HAV_MUST_CHECK int hav_vm_detach_memory(struct hav_vm *vm, uint64_t gpa);

/* Fetch and clear the dirty bitmap of the HAV_MEM_DIRTY_LOG region starting at gpa: bit i of
 * word i/64 is set when page i of the region was written since the last call (or the attach).
 * bitmap must hold ceil(pages / 64) words; words is its length (-ENOSPC if too short). */
HAV_MUST_CHECK int hav_vm_dirty_log(struct hav_vm *vm, uint64_t gpa, uint64_t *bitmap,
                                    size_t words);

/* ---------------------------------------------------------------- interrupts */

/* Drive the level of interrupt line gsi of the in-kernel PIC/IOAPIC (HAV_IRQCHIP_KERNEL).
 * An edge-triggered device raises then lowers the line. */
HAV_MUST_CHECK int hav_vm_irq_line(struct hav_vm *vm, unsigned gsi, bool level);
/* Deliver one message-signalled interrupt (address/data as written by the guest). */
HAV_MUST_CHECK int hav_vm_signal_msi(struct hav_vm *vm, uint64_t address, uint32_t data);
/* Route gsi to an MSI message, so that raising gsi (by hav_vm_irq_line or an irq notifier)
 * delivers that message. gsi must be >= 24 (lower ones are the IOAPIC's pins). Calling it again
 * for the same gsi changes the message (what a guest's MSI-X table write needs). */
HAV_MUST_CHECK int hav_vm_set_msi_route(struct hav_vm *vm, unsigned gsi, uint64_t address,
                                        uint32_t data);
HAV_MUST_CHECK int hav_vm_clear_msi_route(struct hav_vm *vm, unsigned gsi);

/* ---------------------------------------------------------------- notifiers */

/* Each 8-byte write (eventfd semantics) to fd raises gsi as an edge. Natively with
 * HAV_CAP_IRQ_NOTIFIER; otherwise a HAV thread waits on fd and calls hav_vm_irq_line. The
 * caller owns fd and keeps it open until hav_vm_remove_irq_notifier or VM destruction. */
HAV_MUST_CHECK int hav_vm_irq_notifier(struct hav_vm *vm, int fd, unsigned gsi);
HAV_MUST_CHECK int hav_vm_remove_irq_notifier(struct hav_vm *vm, int fd, unsigned gsi);

enum hav_io_space { HAV_IO_PIO, HAV_IO_MMIO };

/* A guest write of len bytes (1, 2, 4 or 8) to addr in space signals fd (adds 1 to the
 * eventfd) instead of exiting. With match, only writes of the value match do; others exit as
 * usual. Natively with HAV_CAP_IO_NOTIFIER; otherwise hav_vcpu_run consumes the exit itself.
 * -EEXIST if the same address, length and match are already registered. */
struct hav_io_notifier {
    enum hav_io_space space;
    uint64_t addr;
    uint32_t len;
    bool has_match;
    uint64_t match;
    int fd;
};
HAV_MUST_CHECK int hav_vm_io_notifier(struct hav_vm *vm, const struct hav_io_notifier *n);
HAV_MUST_CHECK int hav_vm_remove_io_notifier(struct hav_vm *vm, const struct hav_io_notifier *n);

/* ---------------------------------------------------------------- vCPU state */

/* Register groups. get/set transfer only the groups named in mask; other fields of the state
 * are neither read nor written, so an exit handler pays only for what it touches. */
enum hav_x86_group {
    HAV_X86_GPRS = 1u << 0,   /* rax..r15, rip, rflags */
    HAV_X86_SEGS = 1u << 1,   /* cs..gs, ss, tr, ldtr, gdt, idt */
    HAV_X86_CRS = 1u << 2,    /* cr0, cr2, cr3, cr4, cr8, efer, apic_base */
    HAV_X86_DEBUG = 1u << 3,  /* dr0-dr3, dr6, dr7 */
    HAV_X86_FPU = 1u << 4,    /* XSAVE area (legacy FXSAVE layout in its first 512 bytes), xcr0 */
    HAV_X86_MSRS = 1u << 5,   /* the MSRs listed in msrs.entries[0..count) */
    HAV_X86_EVENTS = 1u << 6, /* pending exception/interrupt/NMI, interrupt shadow */
    HAV_X86_LAPIC = 1u << 7,  /* local APIC register page (HAV_IRQCHIP_KERNEL only) */
    HAV_X86_ALL = (1u << 8) - 1,
};

struct hav_x86_segment {
    uint64_t base;
    uint32_t limit; /* in bytes - 1, already scaled by granularity */
    uint16_t selector;
    uint8_t type; /* descriptor type nibble */
    uint8_t s, dpl, present, avl, l, db, g;
    uint8_t unusable; /* null / not loaded */
};

struct hav_x86_table {
    uint64_t base;
    uint16_t limit;
};

#define HAV_X86_XSAVE_SIZE 4096u
#define HAV_X86_MSRS_MAX 64u
#define HAV_X86_LAPIC_SIZE 1024u

struct hav_x86_msr {
    uint32_t index;
    uint64_t value;
};

struct hav_x86_state {
    struct {
        uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
        uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
        uint64_t rip, rflags;
    } gprs;
    struct {
        struct hav_x86_segment cs, ds, es, fs, gs, ss, tr, ldtr;
        struct hav_x86_table gdt, idt;
    } segs;
    struct {
        uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
    } crs;
    struct {
        uint64_t dr[4], dr6, dr7;
    } debug;
    struct {
        uint64_t xcr0;
        _Alignas(64) uint8_t xsave[HAV_X86_XSAVE_SIZE];
    } fpu;
    struct {
        uint32_t count; /* in: how many entries; entries[i].index names the MSR */
        struct hav_x86_msr entries[HAV_X86_MSRS_MAX];
    } msrs;
    struct {
        bool exception_pending;
        uint8_t exception_vector;
        bool exception_has_error;
        uint32_t exception_error;
        bool interrupt_pending; /* injected, not yet delivered */
        uint8_t interrupt_vector;
        bool nmi_pending, nmi_masked;
        bool interrupt_shadow; /* after STI or MOV SS */
    } events;
    struct {
        uint8_t regs[HAV_X86_LAPIC_SIZE];
    } lapic;
};

/* ---------------------------------------------------------------- vCPUs */

/* Create vCPU id (0 .. hav_max_vcpus-1; also its initial APIC ID). It starts in the
 * architectural reset state (real mode at F000:FFF0) and does not run until hav_vcpu_run;
 * with HAV_IRQCHIP_NONE it is runnable from the start (no wait-for-SIPI state in the backend:
 * an AP waits by not being run, see "Application processors" above). */
HAV_MUST_CHECK int hav_vcpu_create(struct hav_vm *vm, unsigned id, struct hav_vcpu **out);
void hav_vcpu_destroy(struct hav_vcpu *vcpu);
unsigned hav_vcpu_id(const struct hav_vcpu *vcpu);

HAV_MUST_CHECK int hav_vcpu_get_state(struct hav_vcpu *vcpu, struct hav_x86_state *st,
                                      uint32_t mask);
HAV_MUST_CHECK int hav_vcpu_set_state(struct hav_vcpu *vcpu, const struct hav_x86_state *st,
                                      uint32_t mask);

struct hav_cpuid_entry {
    uint32_t function, index;
    bool indexed; /* index (ECX) selects a sub-leaf */
    uint32_t eax, ebx, ecx, edx;
};
/* Fill up to max entries with what the backend can expose to a guest; returns the count
 * (-ENOSPC if max is too small). */
HAV_MUST_CHECK int hav_supported_cpuid(struct hav_backend *b, struct hav_cpuid_entry *entries,
                                       unsigned max);
/* The CPUID table the guest sees on this vCPU; set before the first run. */
HAV_MUST_CHECK int hav_vcpu_set_cpuid(struct hav_vcpu *vcpu, const struct hav_cpuid_entry *entries,
                                      unsigned count);

/* Queue external interrupt vector for delivery (HAV_IRQCHIP_NONE only, -EINVAL otherwise;
 * -EPERM from a thread that is not the vCPU's). -EBUSY if one is still pending; if the guest
 * cannot take it now, ask for HAV_EXIT_IRQ_WINDOW with hav_vcpu_request_irq_window and inject
 * then. */
HAV_MUST_CHECK int hav_vcpu_inject_irq(struct hav_vcpu *vcpu, uint8_t vector);
/* Ask for one HAV_EXIT_IRQ_WINDOW as soon as the guest can take an external interrupt. */
void hav_vcpu_request_irq_window(struct hav_vcpu *vcpu, bool on);
/* True when the guest can take an external interrupt now (RFLAGS.IF, no shadow, none queued). */
bool hav_vcpu_irq_ready(const struct hav_vcpu *vcpu);

/* Queue a non-maskable interrupt (HAV_IRQCHIP_NONE and HAV_CAP_NMI; -EINVAL / -ENOTSUP
 * otherwise; -EPERM from a thread that is not the vCPU's). It needs no window: it is delivered
 * through IDT vector 2 at the next instruction boundary of the next run, whatever RFLAGS.IF
 * and CR8 say, and ends a HLT. While NMIs are blocked (from the delivery of one until the
 * next IRET, or by HAV_X86_EVENTS' nmi_masked), one further NMI stays pending (nmi_pending)
 * and is delivered after that IRET; NMIs queued beyond that one merge into it, as on hardware.
 * "After": right at the IRET where the backend can see it; a backend that cannot (docs/hav.md
 * says which) delivers it at the vCPU's next entry after the IRET, i.e. after its next exit of
 * any kind, which hav_vcpu_kick forces. An NMI is never lost, nested or duplicated. */
HAV_MUST_CHECK int hav_vcpu_inject_nmi(struct hav_vcpu *vcpu);

/* Set the guest's CR8 (the task-priority class, 0-15; -EINVAL above) for the next run, as a
 * user-space local APIC does when the guest writes its TPR register by MMIO (HAV_IRQCHIP_NONE
 * only, -EINVAL otherwise; -EPERM from a thread that is not the vCPU's). The value read by
 * HAV_X86_CRS and reported in the next exit's cr8 is this one until the guest changes it. A
 * later hav_vcpu_set_state of HAV_X86_CRS before the run replaces it with crs.cr8. */
HAV_MUST_CHECK int hav_vcpu_set_cr8(struct hav_vcpu *vcpu, uint8_t cr8);

/* Fill the HAV_X86_GPRS, HAV_X86_SEGS and HAV_X86_CRS groups of *st with the state an x86
 * processor has after INIT followed by a STARTUP IPI with vector: real mode, CS selector
 * vector << 8, CS base vector << 12, limit 0xffff, IP 0, RFLAGS 0x2, the other segments 0
 * with limit 0xffff, CR0 0x60000010 (CD, NW, ET), CR2-CR4, CR8 and EFER 0, every GPR 0. It
 * leaves crs.apic_base as it was (INIT does not change IA32_APIC_BASE: read it first with
 * hav_vcpu_get_state), and EDX is 0, not the processor signature a real CPU leaves there.
 * Backend-neutral, no vCPU involved; -EINVAL if st is NULL. Then
 * hav_vcpu_set_state(ap, st, HAV_X86_GPRS | HAV_X86_SEGS | HAV_X86_CRS). */
HAV_MUST_CHECK int hav_x86_sipi_state(struct hav_x86_state *st, uint8_t vector);

/* ---------------------------------------------------------------- running */

enum hav_exit_reason {
    HAV_EXIT_IO,             /* port I/O */
    HAV_EXIT_MMIO,           /* access to unbacked or read-only guest memory */
    HAV_EXIT_HLT,            /* HLT, always without an in-kernel irqchip; complete (see above) */
    HAV_EXIT_SHUTDOWN,       /* triple fault or shutdown: the vCPU cannot continue */
    HAV_EXIT_HYPERCALL,      /* see "Guest ABI" above */
    HAV_EXIT_SYSTEM_EVENT,   /* the guest asked for reset or power-off through the backend */
    HAV_EXIT_IRQ_WINDOW,     /* the guest can take an interrupt (after request_irq_window) */
    HAV_EXIT_ENTRY_FAILED,   /* the hardware refused to enter the guest (bad state) */
    HAV_EXIT_INTERNAL_ERROR, /* the backend could not handle something the guest did */
    HAV_EXIT_KICKED,         /* hav_vcpu_kick, or a signal, interrupted the run */
    HAV_EXIT_MSR,            /* RDMSR/WRMSR the backend does not handle (HAV_CAP_MSR_EXIT) */
};

enum hav_system_event { HAV_SYSTEM_RESET, HAV_SYSTEM_POWEROFF, HAV_SYSTEM_CRASH };

/* One exit, as plain values. For HAV_EXIT_IO and HAV_EXIT_MMIO, data points to a buffer owned
 * by the vCPU holding size*count (io) or len (mmio) bytes, little-endian: for a write it holds
 * what the guest wrote; for a read the caller stores the result there before the next
 * hav_vcpu_run, which completes the instruction. The pointer is valid until that run.
 *
 * HAV_EXIT_MSR: index and write say which access; for a write, value is what the guest wrote
 * (EDX:EAX). For a read the caller stores the result in value (it is 0 at the exit); gp = true
 * refuses either access with #GP(0) instead. The record is read at the next hav_vcpu_run,
 * which completes the instruction (RIP past it, or the #GP delivered), so it must stay valid
 * until then; a caller that changes nothing gives reads of 0 and ignored writes.
 *
 * cr8, if_flag and irq_ready are filled on every exit, whatever the reason: the guest's CR8,
 * its RFLAGS.IF, and what hav_vcpu_irq_ready would answer then (meaningful with
 * HAV_IRQCHIP_NONE). */
struct hav_exit {
    enum hav_exit_reason reason;
    uint8_t cr8; /* task priority, 0-15 */
    bool if_flag;
    bool irq_ready;
    union {
        struct {
            uint16_t port;
            uint8_t size;   /* 1, 2 or 4 */
            bool write;     /* OUT / OUTS */
            uint32_t count; /* > 1 for REP INS/OUTS: count consecutive items in data */
            uint8_t *data;
        } io;
        struct {
            uint64_t addr;
            uint32_t len; /* 1 .. 8 */
            bool write;
            uint8_t *data;
        } mmio;
        struct {
            uint64_t nr;
            uint64_t args[6];
            uint64_t ret; /* set by the caller; becomes RAX */
        } hypercall;
        struct {
            enum hav_system_event type;
        } system;
        struct {
            uint32_t index; /* ECX */
            bool write;     /* WRMSR */
            bool gp;        /* set by the caller: #GP instead of completing the access */
            uint64_t value; /* write: what the guest wrote; read: set by the caller */
        } msr;
        struct {
            uint64_t code; /* hardware reason, as the backend reports it */
            char why[96];
        } failure; /* ENTRY_FAILED and INTERNAL_ERROR */
    } u;
};

/* Run the vCPU until it needs the VMM. Fills *exit and returns 0, or a negative errno when the
 * backend itself failed (the vCPU is then unusable). Exits of notifiers the HAV layer emulates
 * are handled inside and never returned. */
HAV_MUST_CHECK int hav_vcpu_run(struct hav_vcpu *vcpu, struct hav_exit *exit);

/* Make the vCPU's current or next hav_vcpu_run return HAV_EXIT_KICKED promptly. Any thread,
 * any time; kicks do not queue: several before a run yield one HAV_EXIT_KICKED. */
void hav_vcpu_kick(struct hav_vcpu *vcpu);

#ifdef __cplusplus
}
#endif

#endif
