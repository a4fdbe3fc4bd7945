/* SPDX-License-Identifier: MIT */
/* The seam between the generic HAV layer (hav.c) and one backend (kvm*.c): an ops table. */
#ifndef REVIRT_HAV_BACKEND_H
#define REVIRT_HAV_BACKEND_H

#include <revirt/hav.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>

#define HAV_MAX_REGIONS 64
#define HAV_MAX_IO_NOTIFIERS 64
#define HAV_MAX_IRQ_NOTIFIERS 64

struct hav_region {
    uint64_t gpa, size;
    void *host;
    uint32_t flags;
    unsigned slot;
};

/* A registered irq notifier; a HAV thread delivers it on backends without
 * HAV_CAP_IRQ_NOTIFIER. */
struct hav_irq_fallback {
    int fd;
    unsigned gsi;
};

/*
 * A backend allocates nothing itself for VMs and vCPUs: the generic layer allocates
 * vm_size / vcpu_size bytes (the backend's struct, with the generic one as first member), fills
 * the generic part, then calls the backend's create hook. Every hook returns 0 or -errno and
 * sets the message with hav_set_error on failure. Region bookkeeping, argument checks, the
 * hypercall ABI and notifier fallbacks live in hav.c, so a backend only translates.
 */
struct hav_backend_ops {
    const char *name;
    size_t backend_size, vm_size, vcpu_size;

    int (*open)(struct hav_backend *b);
    void (*close)(struct hav_backend *b);
    int (*supported_cpuid)(struct hav_backend *b, struct hav_cpuid_entry *e, unsigned max);

    int (*vm_create)(struct hav_vm *vm, const struct hav_vm_config *config);
    void (*vm_destroy)(struct hav_vm *vm);
    int (*set_region)(struct hav_vm *vm, const struct hav_region *r, bool add);
    int (*dirty_log)(struct hav_vm *vm, const struct hav_region *r, uint64_t *bitmap);
    int (*irq_line)(struct hav_vm *vm, unsigned gsi, bool level);
    int (*signal_msi)(struct hav_vm *vm, uint64_t address, uint32_t data);
    int (*set_msi_route)(struct hav_vm *vm, unsigned gsi, bool add, uint64_t address,
                         uint32_t data);
    int (*irq_notifier)(struct hav_vm *vm, int fd, unsigned gsi, bool add);
    int (*io_notifier)(struct hav_vm *vm, const struct hav_io_notifier *n, bool add);

    int (*vcpu_create)(struct hav_vcpu *vcpu);
    void (*vcpu_destroy)(struct hav_vcpu *vcpu);
    int (*get_state)(struct hav_vcpu *vcpu, struct hav_x86_state *st, uint32_t mask);
    int (*set_state)(struct hav_vcpu *vcpu, const struct hav_x86_state *st, uint32_t mask);
    int (*set_cpuid)(struct hav_vcpu *vcpu, const struct hav_cpuid_entry *e, unsigned count);
    int (*inject_irq)(struct hav_vcpu *vcpu, uint8_t vector);
    void (*request_irq_window)(struct hav_vcpu *vcpu, bool on);
    bool (*irq_ready)(const struct hav_vcpu *vcpu);
    int (*inject_nmi)(struct hav_vcpu *vcpu);
    /* HAV_IRQCHIP_NONE only: CR8 as the next run loads it. */
    int (*set_cr8)(struct hav_vcpu *vcpu, uint8_t cr8);
    /* Before the run after a HAV_EXIT_MSR: hand the caller's answer (value, gp) to the kernel. */
    void (*msr_complete)(struct hav_vcpu *vcpu, const struct hav_exit *exit);
    /* Enter the guest once; fill *exit. Returns -EINTR-free results: a kick is an exit. */
    int (*run)(struct hav_vcpu *vcpu, struct hav_exit *exit);
    void (*kick)(struct hav_vcpu *vcpu);
};

struct hav_backend {
    const struct hav_backend_ops *ops;
    uint32_t caps;      /* what the backend really has */
    uint32_t caps_mask; /* hidden by hav_mask_caps */
    unsigned max_vcpus, max_slots;
};

struct hav_vm {
    struct hav_backend *b;
    uint32_t caps; /* effective capabilities, fixed at creation */
    enum hav_irqchip irqchip;
    pthread_mutex_t lock;
    struct hav_region regions[HAV_MAX_REGIONS];
    unsigned nregions;
    /* Registered io notifiers; nio counts them only when they are emulated, so hav_vcpu_run
     * looks at the list only then. */
    struct hav_io_notifier io[HAV_MAX_IO_NOTIFIERS];
    unsigned nio_total;
    atomic_uint nio;
    /* Emulated irq notifiers: one thread polls all fds; a pipe wakes it on changes. */
    struct hav_irq_fallback irqfds[HAV_MAX_IRQ_NOTIFIERS];
    unsigned nirqfds;
    pthread_t irq_thread;
    bool irq_thread_running;
    int irq_wake[2];
};

struct hav_vcpu {
    struct hav_vm *vm;
    unsigned id;
    bool hypercall_pending; /* RAX gets exit->u.hypercall.ret on the next run */
    struct hav_exit *hypercall_exit;
    bool msr_pending; /* msr_exit holds the caller's answer to a HAV_EXIT_MSR */
    struct hav_exit *msr_exit;
    /* The thread of the latest hav_vcpu_run (for the thread checks of inject and CR8). */
    pthread_t owner;
    atomic_bool has_owner;
};

/* Record this thread's error message; returns err so callers can `return hav_set_error(...)`. */
int hav_set_error(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

extern const struct hav_backend_ops hav_kvm_ops;

#endif
