/* SPDX-License-Identifier: MIT */
/* The generic HAV layer: argument checks, region bookkeeping, the hypercall ABI and portable
 * notifier fallbacks, so each backend only translates to its kernel's interface. */
#include "hav_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct hav_backend_ops *const backends[] = {&hav_kvm_ops};
static const char *const backend_names[] = {"kvm", NULL};

static _Thread_local char last_error[256];

const char *hav_last_error(void)
{
    return last_error[0] ? last_error : "no error";
}

int hav_set_error(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return err;
}

const char *const *hav_backend_list(void)
{
    return backend_names;
}

static int open_one(const struct hav_backend_ops *ops, struct hav_backend **out)
{
    struct hav_backend *b = calloc(1, ops->backend_size);
    if (!b)
        return hav_set_error(-ENOMEM, "%s: out of memory", ops->name);
    b->ops = ops;
    int r = ops->open(b);
    if (r < 0) {
        free(b);
        return r;
    }
    if (b->max_slots > HAV_MAX_REGIONS)
        b->max_slots = HAV_MAX_REGIONS;
    *out = b;
    return 0;
}

int hav_open(const char *name, struct hav_backend **out)
{
    *out = NULL;
    if (!name || !strcmp(name, "auto")) {
        const char *env = getenv("REVIRT_HAV");
        if (env && *env && strcmp(env, "auto"))
            return hav_open(env, out);
        char why[sizeof(last_error)] = "";
        for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
            if (open_one(backends[i], out) == 0)
                return 0;
            snprintf(why, sizeof(why), "%s", last_error);
        }
        return hav_set_error(-ENODEV, "no HAV backend works on this machine (%s)", why);
    }
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
        if (!strcmp(backends[i]->name, name))
            return open_one(backends[i], out);
    char list[128] = "";
    for (size_t i = 0; backend_names[i]; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                 backend_names[i]);
    return hav_set_error(-ENOENT, "no HAV backend named '%s' (built in: %s)", name, list);
}

void hav_close(struct hav_backend *b)
{
    if (!b)
        return;
    b->ops->close(b);
    free(b);
}

const char *hav_backend_name(const struct hav_backend *b)
{
    return b->ops->name;
}

uint32_t hav_caps(const struct hav_backend *b)
{
    return b->caps & ~b->caps_mask;
}

void hav_mask_caps(struct hav_backend *b, uint32_t caps)
{
    b->caps_mask |= caps;
}

unsigned hav_max_vcpus(const struct hav_backend *b)
{
    return b->max_vcpus;
}

int hav_supported_cpuid(struct hav_backend *b, struct hav_cpuid_entry *entries, unsigned max)
{
    return b->ops->supported_cpuid(b, entries, max);
}

/* ---------------------------------------------------------------- VMs and memory */

int hav_vm_create(struct hav_backend *b, const struct hav_vm_config *config, struct hav_vm **out)
{
    static const struct hav_vm_config none = {.irqchip = HAV_IRQCHIP_NONE};
    const struct hav_vm_config *c = config ? config : &none;
    uint32_t caps = hav_caps(b);
    *out = NULL;
    if (c->irqchip == HAV_IRQCHIP_KERNEL && !(caps & HAV_CAP_IRQCHIP))
        return hav_set_error(-ENOTSUP, "%s: no in-kernel interrupt controller", b->ops->name);
    if (c->irqchip != HAV_IRQCHIP_NONE && c->irqchip != HAV_IRQCHIP_KERNEL)
        return hav_set_error(-EINVAL, "unknown irqchip model %d", (int)c->irqchip);
    if (c->pit && (!(caps & HAV_CAP_PIT) || c->irqchip != HAV_IRQCHIP_KERNEL))
        return hav_set_error(-ENOTSUP,
                             "%s: an in-kernel PIT needs HAV_CAP_PIT and the in-kernel "
                             "irqchip",
                             b->ops->name);
    struct hav_vm *vm = calloc(1, b->ops->vm_size);
    if (!vm)
        return hav_set_error(-ENOMEM, "out of memory");
    vm->b = b;
    vm->caps = caps;
    vm->irqchip = c->irqchip;
    vm->irq_wake[0] = vm->irq_wake[1] = -1;
    pthread_mutex_init(&vm->lock, NULL);
    int r = b->ops->vm_create(vm, c);
    if (r < 0) {
        pthread_mutex_destroy(&vm->lock);
        free(vm);
        return r;
    }
    *out = vm;
    return 0;
}

static void irq_thread_stop(struct hav_vm *vm);

void hav_vm_destroy(struct hav_vm *vm)
{
    if (!vm)
        return;
    irq_thread_stop(vm);
    vm->b->ops->vm_destroy(vm);
    pthread_mutex_destroy(&vm->lock);
    free(vm);
}

static bool page_aligned(uint64_t v)
{
    return (v & (HAV_PAGE_SIZE - 1)) == 0;
}

int hav_vm_attach_memory(struct hav_vm *vm, uint64_t gpa, void *host, uint64_t size, uint32_t flags)
{
    if (!size || !page_aligned(gpa) || !page_aligned(size) || !page_aligned((uintptr_t)host))
        return hav_set_error(-EINVAL,
                             "memory at 0x%llx (+0x%llx, host %p): not page aligned "
                             "or empty",
                             (unsigned long long)gpa, (unsigned long long)size, host);
    if (gpa + size < gpa)
        return hav_set_error(-EINVAL, "memory at 0x%llx: range wraps", (unsigned long long)gpa);
    if (flags & ~(uint32_t)(HAV_MEM_READONLY | HAV_MEM_DIRTY_LOG))
        return hav_set_error(-EINVAL, "unknown memory flags 0x%x", flags);
    if ((flags & HAV_MEM_READONLY) && !(vm->caps & HAV_CAP_READONLY_MEM))
        return hav_set_error(-ENOTSUP, "%s: no read-only memory", vm->b->ops->name);
    if ((flags & HAV_MEM_DIRTY_LOG) && !(vm->caps & HAV_CAP_DIRTY_LOG))
        return hav_set_error(-ENOTSUP, "%s: no dirty tracking", vm->b->ops->name);

    int r = 0;
    pthread_mutex_lock(&vm->lock);
    bool used[HAV_MAX_REGIONS] = {false};
    for (unsigned i = 0; i < vm->nregions; i++) {
        const struct hav_region *o = &vm->regions[i];
        used[o->slot] = true;
        if (gpa < o->gpa + o->size && o->gpa < gpa + size) {
            r = hav_set_error(-EEXIST, "memory at 0x%llx (+0x%llx) overlaps 0x%llx (+0x%llx)",
                              (unsigned long long)gpa, (unsigned long long)size,
                              (unsigned long long)o->gpa, (unsigned long long)o->size);
            goto out;
        }
    }
    unsigned slot = 0;
    while (slot < vm->b->max_slots && used[slot])
        slot++;
    if (slot == vm->b->max_slots) {
        r = hav_set_error(-ENOSPC, "no free memory slot (%u in use)", vm->nregions);
        goto out;
    }
    struct hav_region reg = {gpa, size, host, flags, slot};
    r = vm->b->ops->set_region(vm, &reg, true);
    if (r == 0)
        vm->regions[vm->nregions++] = reg;
out:
    pthread_mutex_unlock(&vm->lock);
    return r;
}

static struct hav_region *region_at(struct hav_vm *vm, uint64_t gpa)
{
    for (unsigned i = 0; i < vm->nregions; i++)
        if (vm->regions[i].gpa == gpa)
            return &vm->regions[i];
    return NULL;
}

int hav_vm_detach_memory(struct hav_vm *vm, uint64_t gpa)
{
    int r;
    pthread_mutex_lock(&vm->lock);
    struct hav_region *reg = region_at(vm, gpa);
    if (!reg) {
        r = hav_set_error(-ENOENT, "no memory region starts at 0x%llx", (unsigned long long)gpa);
    } else {
        r = vm->b->ops->set_region(vm, reg, false);
        if (r == 0)
            *reg = vm->regions[--vm->nregions];
    }
    pthread_mutex_unlock(&vm->lock);
    return r;
}

int hav_vm_dirty_log(struct hav_vm *vm, uint64_t gpa, uint64_t *bitmap, size_t words)
{
    int r;
    pthread_mutex_lock(&vm->lock);
    struct hav_region *reg = region_at(vm, gpa);
    uint64_t pages = reg ? reg->size / HAV_PAGE_SIZE : 0;
    if (!reg)
        r = hav_set_error(-ENOENT, "no memory region starts at 0x%llx", (unsigned long long)gpa);
    else if (!(reg->flags & HAV_MEM_DIRTY_LOG))
        r = hav_set_error(-EINVAL, "region 0x%llx is not dirty-tracked", (unsigned long long)gpa);
    else if (words < (pages + 63) / 64)
        r = hav_set_error(-ENOSPC, "dirty bitmap needs %llu words, got %zu",
                          (unsigned long long)((pages + 63) / 64), words);
    else
        r = vm->b->ops->dirty_log(vm, reg, bitmap);
    pthread_mutex_unlock(&vm->lock);
    return r;
}

/* ---------------------------------------------------------------- interrupts */

static int need_irqchip(const struct hav_vm *vm, const char *what)
{
    if (vm->irqchip != HAV_IRQCHIP_KERNEL)
        return hav_set_error(-ENODEV, "%s needs the in-kernel irqchip (HAV_IRQCHIP_KERNEL)", what);
    return 0;
}

int hav_vm_irq_line(struct hav_vm *vm, unsigned gsi, bool level)
{
    int r = need_irqchip(vm, "hav_vm_irq_line");
    return r ? r : vm->b->ops->irq_line(vm, gsi, level);
}

int hav_vm_signal_msi(struct hav_vm *vm, uint64_t address, uint32_t data)
{
    int r = need_irqchip(vm, "MSI");
    if (!r && !(vm->caps & HAV_CAP_MSI))
        r = hav_set_error(-ENOTSUP, "%s: no MSI", vm->b->ops->name);
    return r ? r : vm->b->ops->signal_msi(vm, address, data);
}

static int check_msi_route(struct hav_vm *vm, unsigned gsi)
{
    int r = need_irqchip(vm, "an MSI route");
    if (!r && !(vm->caps & HAV_CAP_MSI))
        r = hav_set_error(-ENOTSUP, "%s: no MSI", vm->b->ops->name);
    if (!r && (gsi < 24 || gsi >= HAV_MAX_GSI))
        r = hav_set_error(-EINVAL, "MSI route GSI %u outside [24, %u)", gsi, HAV_MAX_GSI);
    return r;
}

int hav_vm_set_msi_route(struct hav_vm *vm, unsigned gsi, uint64_t address, uint32_t data)
{
    int r = check_msi_route(vm, gsi);
    if (r)
        return r;
    pthread_mutex_lock(&vm->lock);
    r = vm->b->ops->set_msi_route(vm, gsi, true, address, data);
    pthread_mutex_unlock(&vm->lock);
    return r;
}

int hav_vm_clear_msi_route(struct hav_vm *vm, unsigned gsi)
{
    int r = check_msi_route(vm, gsi);
    if (r)
        return r;
    pthread_mutex_lock(&vm->lock);
    r = vm->b->ops->set_msi_route(vm, gsi, false, 0, 0);
    pthread_mutex_unlock(&vm->lock);
    return r;
}

/* ---------------------------------------------------------------- irq notifiers */

/* The portable irq notifier: one thread per VM polls every registered fd (and a wake pipe for
 * changes) and turns each eventfd count into an edge on its GSI. */
static void *irq_thread_main(void *arg)
{
    struct hav_vm *vm = arg;
    for (;;) {
        struct pollfd fds[HAV_MAX_IRQ_NOTIFIERS + 1];
        unsigned gsis[HAV_MAX_IRQ_NOTIFIERS];
        pthread_mutex_lock(&vm->lock);
        unsigned n = vm->nirqfds;
        for (unsigned i = 0; i < n; i++) {
            fds[i] = (struct pollfd){.fd = vm->irqfds[i].fd, .events = POLLIN};
            gsis[i] = vm->irqfds[i].gsi;
        }
        pthread_mutex_unlock(&vm->lock);
        fds[n] = (struct pollfd){.fd = vm->irq_wake[0], .events = POLLIN};
        if (poll(fds, n + 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (fds[n].revents) {
            char c;
            if (read(vm->irq_wake[0], &c, 1) <= 0 || c == 'q')
                return NULL;
        }
        for (unsigned i = 0; i < n; i++) {
            uint64_t count;
            if (!(fds[i].revents & POLLIN) || read(fds[i].fd, &count, 8) != 8)
                continue;
            if (vm->b->ops->irq_line(vm, gsis[i], true) == 0)
                (void)vm->b->ops->irq_line(vm, gsis[i], false);
        }
    }
}

static void irq_thread_wake(struct hav_vm *vm, char why)
{
    if (vm->irq_wake[1] >= 0 && write(vm->irq_wake[1], &why, 1) != 1)
        perror("hav: irq notifier wake");
}

static void irq_thread_stop(struct hav_vm *vm)
{
    if (vm->irq_thread_running) {
        irq_thread_wake(vm, 'q');
        pthread_join(vm->irq_thread, NULL);
        vm->irq_thread_running = false;
    }
    for (int i = 0; i < 2; i++)
        if (vm->irq_wake[i] >= 0)
            close(vm->irq_wake[i]);
    vm->irq_wake[0] = vm->irq_wake[1] = -1;
}

static bool irq_emulated(const struct hav_vm *vm)
{
    return !(vm->caps & HAV_CAP_IRQ_NOTIFIER);
}

/* Registrations are tracked here for every backend, so duplicates and unknown removals get the
 * same answer everywhere; only the delivery differs. */
int hav_vm_irq_notifier(struct hav_vm *vm, int fd, unsigned gsi)
{
    int r = need_irqchip(vm, "an irq notifier");
    if (r)
        return r;
    if (fd < 0 || gsi >= HAV_MAX_GSI)
        return hav_set_error(-EINVAL, "irq notifier: bad fd %d or GSI %u", fd, gsi);
    pthread_mutex_lock(&vm->lock);
    for (unsigned i = 0; i < vm->nirqfds && !r; i++)
        if (vm->irqfds[i].fd == fd)
            r = hav_set_error(-EEXIST, "irq notifier: fd %d already registered", fd);
    if (!r && vm->nirqfds == HAV_MAX_IRQ_NOTIFIERS)
        r = hav_set_error(-ENOSPC, "irq notifier: all %u in use", HAV_MAX_IRQ_NOTIFIERS);
    if (!r && !irq_emulated(vm))
        r = vm->b->ops->irq_notifier(vm, fd, gsi, true);
    if (!r && irq_emulated(vm) && !vm->irq_thread_running) {
        if (pipe2(vm->irq_wake, O_CLOEXEC) < 0)
            r = hav_set_error(-errno, "irq notifier: pipe: %s", strerror(errno));
        else if ((r = -pthread_create(&vm->irq_thread, NULL, irq_thread_main, vm)) < 0)
            hav_set_error(r, "irq notifier: thread: %s", strerror(-r));
        else
            vm->irq_thread_running = true;
    }
    if (!r)
        vm->irqfds[vm->nirqfds++] = (struct hav_irq_fallback){fd, gsi};
    pthread_mutex_unlock(&vm->lock);
    if (!r && irq_emulated(vm))
        irq_thread_wake(vm, 'c');
    return r;
}

int hav_vm_remove_irq_notifier(struct hav_vm *vm, int fd, unsigned gsi)
{
    int r = hav_set_error(-ENOENT, "irq notifier: fd %d for GSI %u not registered", fd, gsi);
    pthread_mutex_lock(&vm->lock);
    for (unsigned i = 0; i < vm->nirqfds; i++) {
        if (vm->irqfds[i].fd == fd && vm->irqfds[i].gsi == gsi) {
            r = irq_emulated(vm) ? 0 : vm->b->ops->irq_notifier(vm, fd, gsi, false);
            if (!r)
                vm->irqfds[i] = vm->irqfds[--vm->nirqfds];
            break;
        }
    }
    pthread_mutex_unlock(&vm->lock);
    if (!r && irq_emulated(vm))
        irq_thread_wake(vm, 'c');
    return r;
}

/* ---------------------------------------------------------------- io notifiers */

static bool same_io_notifier(const struct hav_io_notifier *a, const struct hav_io_notifier *b)
{
    return a->space == b->space && a->addr == b->addr && a->len == b->len &&
           a->has_match == b->has_match && (!a->has_match || a->match == b->match);
}

int hav_vm_io_notifier(struct hav_vm *vm, const struct hav_io_notifier *n)
{
    bool len_ok =
        n->len == 1 || n->len == 2 || n->len == 4 || (n->len == 8 && n->space == HAV_IO_MMIO);
    if (!len_ok || n->fd < 0 || (n->space != HAV_IO_PIO && n->space != HAV_IO_MMIO) ||
        (n->space == HAV_IO_PIO && n->addr > 0xffff))
        return hav_set_error(-EINVAL, "io notifier: bad space, address 0x%llx, length %u or fd",
                             (unsigned long long)n->addr, n->len);
    int r = 0;
    pthread_mutex_lock(&vm->lock);
    unsigned count = vm->nio_total;
    for (unsigned i = 0; i < count && !r; i++)
        if (same_io_notifier(&vm->io[i], n))
            r = hav_set_error(-EEXIST, "io notifier at 0x%llx already registered",
                              (unsigned long long)n->addr);
    if (!r && count == HAV_MAX_IO_NOTIFIERS)
        r = hav_set_error(-ENOSPC, "io notifier: all %u in use", HAV_MAX_IO_NOTIFIERS);
    if (!r && (vm->caps & HAV_CAP_IO_NOTIFIER))
        r = vm->b->ops->io_notifier(vm, n, true);
    if (!r) {
        vm->io[count] = *n;
        vm->nio_total = count + 1;
        if (!(vm->caps & HAV_CAP_IO_NOTIFIER))
            atomic_store(&vm->nio, count + 1);
    }
    pthread_mutex_unlock(&vm->lock);
    return r;
}

int hav_vm_remove_io_notifier(struct hav_vm *vm, const struct hav_io_notifier *n)
{
    int r =
        hav_set_error(-ENOENT, "io notifier at 0x%llx not registered", (unsigned long long)n->addr);
    pthread_mutex_lock(&vm->lock);
    unsigned count = vm->nio_total;
    for (unsigned i = 0; i < count; i++) {
        if (same_io_notifier(&vm->io[i], n) && vm->io[i].fd == n->fd) {
            r = (vm->caps & HAV_CAP_IO_NOTIFIER) ? vm->b->ops->io_notifier(vm, n, false) : 0;
            if (r)
                break;
            vm->io[i] = vm->io[count - 1];
            vm->nio_total = count - 1;
            if (!(vm->caps & HAV_CAP_IO_NOTIFIER))
                atomic_store(&vm->nio, count - 1);
            break;
        }
    }
    pthread_mutex_unlock(&vm->lock);
    return r;
}

/* True (and the fd signalled) when an emulated io notifier takes this write exit. */
static bool io_fallback(struct hav_vm *vm, const struct hav_exit *e)
{
    enum hav_io_space space;
    uint64_t addr, value = 0;
    uint32_t len;
    if (e->reason == HAV_EXIT_IO && e->u.io.write && e->u.io.count == 1) {
        space = HAV_IO_PIO;
        addr = e->u.io.port;
        len = e->u.io.size;
        memcpy(&value, e->u.io.data, len);
    } else if (e->reason == HAV_EXIT_MMIO && e->u.mmio.write) {
        space = HAV_IO_MMIO;
        addr = e->u.mmio.addr;
        len = e->u.mmio.len;
        memcpy(&value, e->u.mmio.data, len > 8 ? 8 : len);
    } else {
        return false;
    }
    int fd = -1;
    pthread_mutex_lock(&vm->lock);
    unsigned count = atomic_load(&vm->nio);
    for (unsigned i = 0; i < count && fd < 0; i++) {
        const struct hav_io_notifier *n = &vm->io[i];
        if (n->space == space && n->addr == addr && n->len == len &&
            (!n->has_match || n->match == value))
            fd = n->fd;
    }
    pthread_mutex_unlock(&vm->lock);
    if (fd < 0)
        return false;
    uint64_t one = 1;
    if (write(fd, &one, 8) != 8)
        perror("hav: io notifier write");
    return true;
}

/* ---------------------------------------------------------------- vCPUs */

int hav_vcpu_create(struct hav_vm *vm, unsigned id, struct hav_vcpu **out)
{
    *out = NULL;
    if (id >= vm->b->max_vcpus)
        return hav_set_error(-EINVAL, "vCPU id %u: the backend allows ids below %u", id,
                             vm->b->max_vcpus);
    struct hav_vcpu *v = calloc(1, vm->b->ops->vcpu_size);
    if (!v)
        return hav_set_error(-ENOMEM, "out of memory");
    v->vm = vm;
    v->id = id;
    int r = vm->b->ops->vcpu_create(v);
    if (r < 0) {
        free(v);
        return r;
    }
    *out = v;
    return 0;
}

void hav_vcpu_destroy(struct hav_vcpu *vcpu)
{
    if (!vcpu)
        return;
    vcpu->vm->b->ops->vcpu_destroy(vcpu);
    free(vcpu);
}

unsigned hav_vcpu_id(const struct hav_vcpu *vcpu)
{
    return vcpu->id;
}

static int check_state_mask(struct hav_vcpu *v, const struct hav_x86_state *st, uint32_t mask)
{
    if (!v || !st)
        return hav_set_error(-EINVAL, "vCPU state: %s is NULL", v ? "the state" : "vcpu");
    if (mask & ~(uint32_t)HAV_X86_ALL)
        return hav_set_error(-EINVAL, "unknown state groups 0x%x", mask & ~(uint32_t)HAV_X86_ALL);
    if ((mask & HAV_X86_MSRS) && st->msrs.count > HAV_X86_MSRS_MAX)
        return hav_set_error(-EINVAL, "%u MSRs asked, at most %u", st->msrs.count,
                             HAV_X86_MSRS_MAX);
    if (mask & HAV_X86_LAPIC)
        return need_irqchip(v->vm, "HAV_X86_LAPIC");
    return 0;
}

int hav_vcpu_get_state(struct hav_vcpu *vcpu, struct hav_x86_state *st, uint32_t mask)
{
    int r = check_state_mask(vcpu, st, mask);
    return r ? r : vcpu->vm->b->ops->get_state(vcpu, st, mask);
}

int hav_vcpu_set_state(struct hav_vcpu *vcpu, const struct hav_x86_state *st, uint32_t mask)
{
    int r = check_state_mask(vcpu, st, mask);
    return r ? r : vcpu->vm->b->ops->set_state(vcpu, st, mask);
}

int hav_vcpu_set_cpuid(struct hav_vcpu *vcpu, const struct hav_cpuid_entry *entries, unsigned count)
{
    if (!vcpu || (!entries && count))
        return hav_set_error(-EINVAL, "hav_vcpu_set_cpuid: %s is NULL", vcpu ? "entries" : "vcpu");
    if (count > HAV_CPUID_MAX)
        return hav_set_error(-EINVAL, "%u CPUID entries, at most %u", count, HAV_CPUID_MAX);
    return vcpu->vm->b->ops->set_cpuid(vcpu, entries, count);
}

/* The checks every vCPU-thread call for a user-space platform makes: a vCPU, no in-kernel
 * irqchip, and the thread that last ran it (any thread before its first run). */
static int check_user_platform(const struct hav_vcpu *vcpu, const char *what, const char *instead)
{
    if (!vcpu)
        return hav_set_error(-EINVAL, "%s: vcpu is NULL", what);
    if (vcpu->vm->irqchip != HAV_IRQCHIP_NONE)
        return hav_set_error(-EINVAL, "%s: the VM has the in-kernel irqchip (%s)", what, instead);
    if (atomic_load_explicit(&vcpu->has_owner, memory_order_acquire) &&
        !pthread_equal(vcpu->owner, pthread_self()))
        return hav_set_error(-EPERM,
                             "%s: vCPU %u belongs to the thread that runs it; call it from "
                             "there (hav_vcpu_kick to get that thread's attention)",
                             what, vcpu->id);
    return 0;
}

int hav_vcpu_inject_irq(struct hav_vcpu *vcpu, uint8_t vector)
{
    int r = check_user_platform(vcpu, "hav_vcpu_inject_irq",
                                "it delivers interrupts; raise a line or send an MSI instead");
    return r ? r : vcpu->vm->b->ops->inject_irq(vcpu, vector);
}

int hav_vcpu_inject_nmi(struct hav_vcpu *vcpu)
{
    int r = check_user_platform(vcpu, "hav_vcpu_inject_nmi",
                                "send an MSI with delivery mode NMI instead");
    if (!r && !(vcpu->vm->caps & HAV_CAP_NMI))
        r = hav_set_error(-ENOTSUP, "hav_vcpu_inject_nmi: %s cannot inject NMIs",
                          vcpu->vm->b->ops->name);
    return r ? r : vcpu->vm->b->ops->inject_nmi(vcpu);
}

int hav_vcpu_set_cr8(struct hav_vcpu *vcpu, uint8_t cr8)
{
    int r = check_user_platform(vcpu, "hav_vcpu_set_cr8",
                                "its local APIC owns the TPR; set HAV_X86_LAPIC instead");
    if (!r && cr8 > 15)
        r = hav_set_error(-EINVAL, "hav_vcpu_set_cr8: %u is not a priority class (0-15)", cr8);
    return r ? r : vcpu->vm->b->ops->set_cr8(vcpu, cr8);
}

/* The state after INIT and a STARTUP IPI (Intel SDM vol. 3 §9.1.1 table 9-1, §8.4.4). */
int hav_x86_sipi_state(struct hav_x86_state *st, uint8_t vector)
{
    if (!st)
        return hav_set_error(-EINVAL, "hav_x86_sipi_state: st is NULL");
    uint64_t apic_base = st->crs.apic_base;
    memset(&st->gprs, 0, sizeof(st->gprs));
    memset(&st->segs, 0, sizeof(st->segs));
    memset(&st->crs, 0, sizeof(st->crs));
    st->gprs.rflags = 0x2;
    st->gprs.rip = 0;
    const struct hav_x86_segment data = {
        .limit = 0xffff, .type = 0x3, .s = 1, .present = 1}; /* read/write, accessed */
    st->segs.ds = st->segs.es = st->segs.fs = st->segs.gs = st->segs.ss = data;
    st->segs.cs = data;
    st->segs.cs.type = 0xb; /* execute/read, accessed */
    st->segs.cs.selector = (uint16_t)(vector << 8);
    st->segs.cs.base = (uint64_t)vector << 12;
    st->segs.tr = (struct hav_x86_segment){.limit = 0xffff, .type = 0xb, .present = 1};
    st->segs.ldtr = (struct hav_x86_segment){.limit = 0xffff, .type = 0x2, .present = 1};
    st->segs.gdt = st->segs.idt = (struct hav_x86_table){.base = 0, .limit = 0xffff};
    st->crs.cr0 = 0x60000010;
    st->crs.apic_base = apic_base;
    return 0;
}

void hav_vcpu_request_irq_window(struct hav_vcpu *vcpu, bool on)
{
    vcpu->vm->b->ops->request_irq_window(vcpu, on);
}

bool hav_vcpu_irq_ready(const struct hav_vcpu *vcpu)
{
    return vcpu->vm->b->ops->irq_ready(vcpu);
}

/* The HAV hypercall ABI on top of a port write: see "Guest ABI" in hav.h. */
static int hypercall_enter(struct hav_vcpu *v, struct hav_exit *e)
{
    struct hav_x86_state st;
    uint32_t nr;
    memcpy(&nr, e->u.io.data, 4);
    int r = v->vm->b->ops->get_state(v, &st, HAV_X86_GPRS);
    if (r < 0)
        return r;
    e->reason = HAV_EXIT_HYPERCALL;
    e->u.hypercall.nr = nr;
    e->u.hypercall.args[0] = st.gprs.rdi;
    e->u.hypercall.args[1] = st.gprs.rsi;
    e->u.hypercall.args[2] = st.gprs.r8;
    e->u.hypercall.args[3] = st.gprs.r9;
    e->u.hypercall.args[4] = st.gprs.r10;
    e->u.hypercall.args[5] = st.gprs.r11;
    e->u.hypercall.ret = 0;
    v->hypercall_exit = e;
    v->hypercall_pending = true;
    return 0;
}

static int hypercall_complete(struct hav_vcpu *v)
{
    struct hav_x86_state st;
    v->hypercall_pending = false;
    int r = v->vm->b->ops->get_state(v, &st, HAV_X86_GPRS);
    if (r < 0)
        return r;
    st.gprs.rax = v->hypercall_exit->u.hypercall.ret;
    return v->vm->b->ops->set_state(v, &st, HAV_X86_GPRS);
}

int hav_vcpu_run(struct hav_vcpu *vcpu, struct hav_exit *exit)
{
    if (!vcpu || !exit)
        return hav_set_error(-EINVAL, "hav_vcpu_run: %s is NULL", vcpu ? "exit" : "vcpu");
    if (!atomic_load_explicit(&vcpu->has_owner, memory_order_relaxed) ||
        !pthread_equal(vcpu->owner, pthread_self())) {
        vcpu->owner = pthread_self();
        atomic_store_explicit(&vcpu->has_owner, true, memory_order_release);
    }
    for (;;) {
        if (vcpu->hypercall_pending) {
            int r = hypercall_complete(vcpu);
            if (r < 0)
                return r;
        }
        if (vcpu->msr_pending) {
            vcpu->msr_pending = false;
            vcpu->vm->b->ops->msr_complete(vcpu, vcpu->msr_exit);
        }
        int r = vcpu->vm->b->ops->run(vcpu, exit);
        if (r < 0)
            return r;
        if (exit->reason == HAV_EXIT_MSR) {
            vcpu->msr_exit = exit;
            vcpu->msr_pending = true;
            return 0;
        }
        if (exit->reason == HAV_EXIT_IO && exit->u.io.port == HAV_HYPERCALL_PORT &&
            exit->u.io.write && exit->u.io.size == 4 && exit->u.io.count == 1)
            return hypercall_enter(vcpu, exit);
        if (atomic_load_explicit(&vcpu->vm->nio, memory_order_relaxed) &&
            io_fallback(vcpu->vm, exit))
            continue;
        return 0;
    }
}

void hav_vcpu_kick(struct hav_vcpu *vcpu)
{
    vcpu->vm->b->ops->kick(vcpu);
}
