/* SPDX-License-Identifier: MIT */
/* Linux KVM backend: VMs, memory slots, interrupt routing, notifiers, the run loop and kicks. */
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* Kicks interrupt KVM_RUN with this signal; its handler does nothing, the EINTR is the point. */
#define KICK_SIGNAL SIGUSR2

static int kvm_err(const char *what)
{
    int e = errno;
    return hav_set_error(-e, "kvm: %s: %s", what, strerror(e));
}

static void kick_handler(int sig)
{
    (void)sig;
}

static int kvm_open(struct hav_backend *b)
{
    struct kvm_backend *k = kvm_backend_of(b);
    k->fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (k->fd < 0)
        return hav_set_error(-ENODEV, "kvm: /dev/kvm: %s", strerror(errno));
    int api = ioctl(k->fd, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) {
        close(k->fd);
        return hav_set_error(-ENODEV, "kvm: API version %d, need %d", api, KVM_API_VERSION);
    }
    /* A kick must not be lost between the check and KVM_RUN: immediate_exit closes that gap. */
    if (ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT) <= 0) {
        close(k->fd);
        return hav_set_error(-ENODEV, "kvm: KVM_CAP_IMMEDIATE_EXIT missing (Linux < 4.11)");
    }
    k->run_size = ioctl(k->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (k->run_size < (int)sizeof(struct kvm_run)) {
        close(k->fd);
        return hav_set_error(-ENODEV, "kvm: bad vCPU mmap size %d", k->run_size);
    }
    static const struct {
        int cap;
        uint32_t hav;
    } caps[] = {
        {KVM_CAP_IRQCHIP, HAV_CAP_IRQCHIP},           {KVM_CAP_PIT2, HAV_CAP_PIT},
        {KVM_CAP_READONLY_MEM, HAV_CAP_READONLY_MEM}, {KVM_CAP_IRQFD, HAV_CAP_IRQ_NOTIFIER},
        {KVM_CAP_IOEVENTFD, HAV_CAP_IO_NOTIFIER},     {KVM_CAP_XSAVE, HAV_CAP_XSAVE},
    };
    b->caps = HAV_CAP_DIRTY_LOG;
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        if (ioctl(k->fd, KVM_CHECK_EXTENSION, caps[i].cap) > 0)
            b->caps |= caps[i].hav;
    /* MSR exits need both: the exits themselves, and a filter for the local-APIC MSRs KVM
     * would otherwise answer itself without an in-kernel APIC (Linux 5.10). */
    if (ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_USER_SPACE_MSR) > 0 &&
        ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_MSR_FILTER) > 0)
        b->caps |= HAV_CAP_MSR_EXIT;
    if (ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_NMI) > 0)
        b->caps |= HAV_CAP_NMI;
    /* No HAV_CAP_HYPERCALL_NATIVE: KVM hands VMCALL to user space only for the calls it
     * names in KVM_CAP_EXIT_HYPERCALL (KVM_HC_MAP_GPA_RANGE), or every one in Xen mode. */
    if (ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_SIGNAL_MSI) > 0 &&
        ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING) > 0)
        b->caps |= HAV_CAP_MSI;
    int n = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (n <= 0)
        n = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    b->max_vcpus = n > 0 ? (unsigned)n : 1;
    n = ioctl(k->fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
    b->max_slots = n > 0 ? (unsigned)n : 32;
    int r = kvm_x86_load_supported_cpuid(k);
    if (r < 0) {
        close(k->fd);
        return r;
    }

    struct sigaction sa = {.sa_handler = kick_handler, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(KICK_SIGNAL, &sa, NULL);
    return 0;
}

static void kvm_close(struct hav_backend *b)
{
    free(kvm_backend_of(b)->cpuid);
    close(kvm_backend_of(b)->fd);
}

/* KVM's default routing after KVM_CREATE_IRQCHIP: GSI 0-15 to the IOAPIC and the PICs, 16-23 to
 * the IOAPIC. KVM_SET_GSI_ROUTING replaces the table, so MSI routes are added to a copy of it. */
static void default_routes(struct kvm_vm *vm)
{
    for (unsigned gsi = 0; gsi < 24; gsi++) {
        vm->routes[vm->nroutes++] = (struct kvm_irq_routing_entry){
            .gsi = gsi,
            .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi},
        };
        if (gsi < 16)
            vm->routes[vm->nroutes++] = (struct kvm_irq_routing_entry){
                .gsi = gsi,
                .type = KVM_IRQ_ROUTING_IRQCHIP,
                .u.irqchip = {.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
                              .pin = gsi % 8},
            };
    }
}

/* HAV_CAP_MSR_EXIT: every MSR KVM does not know (UNKNOWN), refuses (INVAL: x2APIC MSRs without
 * an in-kernel APIC land here, KVM's filter cannot name them) or is told to leave alone
 * (FILTER) exits to user space. Without an in-kernel irqchip the filter names IA32_APIC_BASE
 * and IA32_TSC_DEADLINE, which KVM would otherwise answer from its own idea of an APIC. */
static int kvm_msr_exits(struct kvm_vm *vm, enum hav_irqchip irqchip)
{
    struct kvm_enable_cap cap = {
        .cap = KVM_CAP_X86_USER_SPACE_MSR,
        .args[0] =
            KVM_MSR_EXIT_REASON_INVAL | KVM_MSR_EXIT_REASON_UNKNOWN | KVM_MSR_EXIT_REASON_FILTER,
    };
    if (ioctl(vm->fd, KVM_ENABLE_CAP, &cap) < 0)
        return kvm_err("KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR)");
    if (irqchip != HAV_IRQCHIP_NONE)
        return 0;
    static uint8_t deny[1]; /* one MSR per range, its bit clear: deny, i.e. exit */
    struct kvm_msr_filter f = {.flags = KVM_MSR_FILTER_DEFAULT_ALLOW};
    const uint32_t apic_msrs[] = {0x1b /* IA32_APIC_BASE */, 0x6e0 /* IA32_TSC_DEADLINE */};
    for (unsigned i = 0; i < sizeof(apic_msrs) / sizeof(apic_msrs[0]); i++)
        f.ranges[i] = (struct kvm_msr_filter_range){
            .flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
            .nmsrs = 1,
            .base = apic_msrs[i],
            .bitmap = deny,
        };
    if (ioctl(vm->fd, KVM_X86_SET_MSR_FILTER, &f) < 0)
        return kvm_err("KVM_X86_SET_MSR_FILTER");
    return 0;
}

static int kvm_vm_create(struct hav_vm *hvm, const struct hav_vm_config *c)
{
    struct kvm_vm *vm = kvm_vm_of(hvm);
    int kfd = kvm_backend_of(hvm->b)->fd;
    vm->fd = ioctl(kfd, KVM_CREATE_VM, 0);
    if (vm->fd < 0)
        return kvm_err("KVM_CREATE_VM");
    fcntl(vm->fd, F_SETFD, FD_CLOEXEC);
    /* VT-x needs three pages for its real-mode TSS and one for an identity map; SVM ignores them.
     * Both sit at HAV_X86_RESERVED_GPA, inside the 32-bit PCI hole. */
    if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){HAV_X86_RESERVED_GPA}) < 0 ||
        ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)HAV_X86_RESERVED_GPA + 0x1000) < 0)
        goto fail_errno;
    if (c->irqchip == HAV_IRQCHIP_KERNEL) {
        if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
            goto fail_errno;
        vm->routes = calloc(KVM_ROUTES_MAX, sizeof(*vm->routes));
        if (!vm->routes) {
            close(vm->fd);
            return hav_set_error(-ENOMEM, "out of memory");
        }
        default_routes(vm);
    }
    if (hvm->caps & HAV_CAP_MSR_EXIT) {
        int r = kvm_msr_exits(vm, c->irqchip);
        if (r < 0) {
            free(vm->routes);
            close(vm->fd);
            return r;
        }
    }
    if (c->pit) {
        /* A dummy speaker port 0x61 keeps Linux's PIT calibration loop working. */
        struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
        if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0)
            goto fail_errno;
    }
    return 0;
fail_errno:;
    int r = kvm_err("creating the VM");
    free(vm->routes);
    close(vm->fd);
    return r;
}

static void kvm_vm_destroy(struct hav_vm *hvm)
{
    struct kvm_vm *vm = kvm_vm_of(hvm);
    free(vm->routes);
    close(vm->fd);
}

static int kvm_set_region(struct hav_vm *hvm, const struct hav_region *r, bool add)
{
    struct kvm_userspace_memory_region m = {
        .slot = r->slot,
        .flags = (r->flags & HAV_MEM_READONLY ? KVM_MEM_READONLY : 0) |
                 (r->flags & HAV_MEM_DIRTY_LOG ? KVM_MEM_LOG_DIRTY_PAGES : 0),
        .guest_phys_addr = r->gpa,
        .memory_size = add ? r->size : 0,
        .userspace_addr = (uintptr_t)r->host,
    };
    if (ioctl(kvm_vm_of(hvm)->fd, KVM_SET_USER_MEMORY_REGION, &m) < 0)
        return kvm_err("KVM_SET_USER_MEMORY_REGION");
    return 0;
}

static int kvm_dirty_log(struct hav_vm *hvm, const struct hav_region *r, uint64_t *bitmap)
{
    struct kvm_dirty_log log = {.slot = r->slot, .dirty_bitmap = bitmap};
    if (ioctl(kvm_vm_of(hvm)->fd, KVM_GET_DIRTY_LOG, &log) < 0)
        return kvm_err("KVM_GET_DIRTY_LOG");
    return 0;
}

static int kvm_irq_line(struct hav_vm *hvm, unsigned gsi, bool level)
{
    struct kvm_irq_level l = {.irq = gsi, .level = level};
    if (ioctl(kvm_vm_of(hvm)->fd, KVM_IRQ_LINE, &l) < 0)
        return kvm_err("KVM_IRQ_LINE");
    return 0;
}

static int kvm_signal_msi(struct hav_vm *hvm, uint64_t address, uint32_t data)
{
    struct kvm_msi msi = {
        .address_lo = (uint32_t)address,
        .address_hi = (uint32_t)(address >> 32),
        .data = data,
    };
    /* 0 means the guest masked or did not accept it, which is the guest's business. */
    if (ioctl(kvm_vm_of(hvm)->fd, KVM_SIGNAL_MSI, &msi) < 0)
        return kvm_err("KVM_SIGNAL_MSI");
    return 0;
}

static int kvm_set_msi_route(struct hav_vm *hvm, unsigned gsi, bool add, uint64_t address,
                             uint32_t data)
{
    struct kvm_vm *vm = kvm_vm_of(hvm);
    /* Build the new table aside and adopt it only once KVM has taken it. */
    struct kvm_irq_routing *t = malloc(sizeof(*t) + (vm->nroutes + 1) * sizeof(*vm->routes));
    if (!t)
        return hav_set_error(-ENOMEM, "out of memory");
    t->nr = 0;
    t->flags = 0;
    bool found = false;
    for (unsigned i = 0; i < vm->nroutes; i++) {
        if (vm->routes[i].gsi == gsi)
            found = true;
        else
            t->entries[t->nr++] = vm->routes[i];
    }
    int r = 0;
    if (!add && !found) {
        r = hav_set_error(-ENOENT, "kvm: no MSI route for GSI %u", gsi);
        goto out;
    }
    if (add)
        t->entries[t->nr++] = (struct kvm_irq_routing_entry){
            .gsi = gsi,
            .type = KVM_IRQ_ROUTING_MSI,
            .u.msi = {.address_lo = (uint32_t)address,
                      .address_hi = (uint32_t)(address >> 32),
                      .data = data},
        };
    if (ioctl(vm->fd, KVM_SET_GSI_ROUTING, t) < 0) {
        r = kvm_err("KVM_SET_GSI_ROUTING");
        goto out;
    }
    memcpy(vm->routes, t->entries, t->nr * sizeof(*vm->routes));
    vm->nroutes = t->nr;
out:
    free(t);
    return r;
}

static int kvm_irq_notifier(struct hav_vm *hvm, int fd, unsigned gsi, bool add)
{
    struct kvm_irqfd irqfd = {
        .fd = (uint32_t)fd, .gsi = gsi, .flags = add ? 0 : KVM_IRQFD_FLAG_DEASSIGN};
    if (ioctl(kvm_vm_of(hvm)->fd, KVM_IRQFD, &irqfd) < 0)
        return kvm_err("KVM_IRQFD");
    return 0;
}

static int kvm_io_notifier(struct hav_vm *hvm, const struct hav_io_notifier *n, bool add)
{
    struct kvm_ioeventfd io = {
        .datamatch = n->has_match ? n->match : 0,
        .addr = n->addr,
        .len = n->len,
        .fd = n->fd,
        .flags = (n->space == HAV_IO_PIO ? KVM_IOEVENTFD_FLAG_PIO : 0) |
                 (n->has_match ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
                 (add ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
    };
    if (ioctl(kvm_vm_of(hvm)->fd, KVM_IOEVENTFD, &io) < 0)
        return kvm_err("KVM_IOEVENTFD");
    return 0;
}

static int kvm_vcpu_create(struct hav_vcpu *hv)
{
    struct kvm_vcpu *v = kvm_vcpu_of(hv);
    struct kvm_vm *vm = kvm_vm_of(hv->vm);
    int size = kvm_backend_of(hv->vm->b)->run_size;
    v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)hv->id);
    if (v->fd < 0)
        return kvm_err("KVM_CREATE_VCPU");
    fcntl(v->fd, F_SETFD, FD_CLOEXEC);
    v->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        int r = kvm_err("mmap of kvm_run");
        close(v->fd);
        return r;
    }
    int r = kvm_x86_default_cpuid(hv);
    if (r < 0) {
        munmap(v->run, size);
        close(v->fd);
    }
    return r;
}

static void kvm_vcpu_destroy(struct hav_vcpu *hv)
{
    struct kvm_vcpu *v = kvm_vcpu_of(hv);
    munmap(v->run, kvm_backend_of(hv->vm->b)->run_size);
    close(v->fd);
}

static int kvm_inject_irq(struct hav_vcpu *hv, uint8_t vector)
{
    struct kvm_interrupt irq = {.irq = vector};
    if (ioctl(kvm_vcpu_of(hv)->fd, KVM_INTERRUPT, &irq) < 0) {
        if (errno == EEXIST)
            return hav_set_error(-EBUSY, "kvm: an interrupt is already queued");
        return kvm_err("KVM_INTERRUPT");
    }
    return 0;
}

static void kvm_request_irq_window(struct hav_vcpu *hv, bool on)
{
    kvm_vcpu_of(hv)->run->request_interrupt_window = on;
}

static bool kvm_irq_ready(const struct hav_vcpu *hv)
{
    const struct kvm_run *run = ((const struct kvm_vcpu *)hv)->run;
    return run->ready_for_interrupt_injection && run->if_flag;
}

static int kvm_inject_nmi(struct hav_vcpu *hv)
{
    /* KVM queues it (one pending behind one being handled, as the hardware does). */
    if (ioctl(kvm_vcpu_of(hv)->fd, KVM_NMI, 0) < 0)
        return kvm_err("KVM_NMI");
    return 0;
}

/* Without an in-kernel local APIC, KVM_RUN loads CR8 from kvm_run->cr8 on every entry (and
 * stores it there on every exit): that field is the TPR's home between runs. */
static int kvm_set_cr8(struct hav_vcpu *hv, uint8_t cr8)
{
    kvm_vcpu_of(hv)->run->cr8 = cr8;
    return 0;
}

static void kvm_msr_complete(struct hav_vcpu *hv, const struct hav_exit *e)
{
    struct kvm_run *run = kvm_vcpu_of(hv)->run;
    if (!e->u.msr.write)
        run->msr.data = e->u.msr.value;
    run->msr.error = e->u.msr.gp ? 1 : 0;
}

static void failure(struct hav_exit *e, enum hav_exit_reason why, uint64_t code, const char *fmt,
                    unsigned long long a)
{
    e->reason = why;
    e->u.failure.code = code;
    snprintf(e->u.failure.why, sizeof(e->u.failure.why), fmt, a);
}

static int kvm_run_once(struct hav_vcpu *hv, struct hav_exit *e)
{
    struct kvm_vcpu *v = kvm_vcpu_of(hv);
    struct kvm_run *run = v->run;

    /* Dekker-style with kvm_kick: either the kick sees in_run and signals, or this run sees
     * immediate_exit in the kernel. */
    v->thread = pthread_self();
    atomic_store(&v->in_run, true);
    int r = ioctl(v->fd, KVM_RUN, 0);
    int err = errno;
    atomic_store(&v->in_run, false);

    /* KVM fills these on every return from KVM_RUN, an interrupted one included. */
    e->cr8 = (uint8_t)run->cr8;
    e->if_flag = run->if_flag != 0;
    e->irq_ready = run->ready_for_interrupt_injection && run->if_flag;
    if (r < 0) {
        if (err == EINTR || err == EAGAIN) {
            __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
            e->reason = HAV_EXIT_KICKED;
            return 0;
        }
        return hav_set_error(-err, "kvm: KVM_RUN: %s", strerror(err));
    }
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        e->reason = HAV_EXIT_IO;
        e->u.io.port = run->io.port;
        e->u.io.size = run->io.size;
        e->u.io.write = run->io.direction == KVM_EXIT_IO_OUT;
        e->u.io.count = run->io.count;
        e->u.io.data = (uint8_t *)run + run->io.data_offset;
        break;
    case KVM_EXIT_MMIO:
        e->reason = HAV_EXIT_MMIO;
        e->u.mmio.addr = run->mmio.phys_addr;
        e->u.mmio.len = run->mmio.len;
        e->u.mmio.write = run->mmio.is_write;
        e->u.mmio.data = run->mmio.data;
        break;
    case KVM_EXIT_HLT:
        e->reason = HAV_EXIT_HLT;
        break;
    case KVM_EXIT_SHUTDOWN:
        e->reason = HAV_EXIT_SHUTDOWN;
        break;
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        e->reason = HAV_EXIT_IRQ_WINDOW;
        break;
    case KVM_EXIT_INTR:
        e->reason = HAV_EXIT_KICKED;
        break;
    case KVM_EXIT_SYSTEM_EVENT:
        e->reason = HAV_EXIT_SYSTEM_EVENT;
        e->u.system.type = run->system_event.type == KVM_SYSTEM_EVENT_RESET   ? HAV_SYSTEM_RESET
                           : run->system_event.type == KVM_SYSTEM_EVENT_CRASH ? HAV_SYSTEM_CRASH
                                                                              : HAV_SYSTEM_POWEROFF;
        break;
    case KVM_EXIT_X86_RDMSR:
    case KVM_EXIT_X86_WRMSR:
        e->reason = HAV_EXIT_MSR;
        e->u.msr.index = run->msr.index;
        e->u.msr.write = run->exit_reason == KVM_EXIT_X86_WRMSR;
        e->u.msr.gp = false;
        e->u.msr.value = e->u.msr.write ? run->msr.data : 0;
        run->msr.data = 0;
        run->msr.error = 0;
        break;
    case KVM_EXIT_FAIL_ENTRY:
        failure(e, HAV_EXIT_ENTRY_FAILED, run->fail_entry.hardware_entry_failure_reason,
                "hardware entry failure reason 0x%llx",
                (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        break;
    case KVM_EXIT_INTERNAL_ERROR:
        failure(e, HAV_EXIT_INTERNAL_ERROR, run->internal.suberror,
                run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                    ? "instruction emulation failed (suberror %llu)"
                    : "KVM internal error, suberror %llu",
                run->internal.suberror);
        break;
    default:
        failure(e, HAV_EXIT_INTERNAL_ERROR, run->exit_reason, "unexpected KVM exit reason %llu",
                run->exit_reason);
        break;
    }
    return 0;
}

static void kvm_kick(struct hav_vcpu *hv)
{
    struct kvm_vcpu *v = kvm_vcpu_of(hv);
    /* immediate_exit catches a run that has not entered the kernel yet; the signal catches one
     * that has. */
    __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (atomic_load(&v->in_run))
        pthread_kill(v->thread, KICK_SIGNAL);
}

const struct hav_backend_ops hav_kvm_ops = {
    .name = "kvm",
    .backend_size = sizeof(struct kvm_backend),
    .vm_size = sizeof(struct kvm_vm),
    .vcpu_size = sizeof(struct kvm_vcpu),
    .open = kvm_open,
    .close = kvm_close,
    .supported_cpuid = kvm_x86_supported_cpuid,
    .vm_create = kvm_vm_create,
    .vm_destroy = kvm_vm_destroy,
    .set_region = kvm_set_region,
    .dirty_log = kvm_dirty_log,
    .irq_line = kvm_irq_line,
    .signal_msi = kvm_signal_msi,
    .set_msi_route = kvm_set_msi_route,
    .irq_notifier = kvm_irq_notifier,
    .io_notifier = kvm_io_notifier,
    .vcpu_create = kvm_vcpu_create,
    .vcpu_destroy = kvm_vcpu_destroy,
    .get_state = kvm_x86_get_state,
    .set_state = kvm_x86_set_state,
    .set_cpuid = kvm_x86_set_cpuid,
    .inject_irq = kvm_inject_irq,
    .request_irq_window = kvm_request_irq_window,
    .irq_ready = kvm_irq_ready,
    .inject_nmi = kvm_inject_nmi,
    .set_cr8 = kvm_set_cr8,
    .msr_complete = kvm_msr_complete,
    .run = kvm_run_once,
    .kick = kvm_kick,
};
