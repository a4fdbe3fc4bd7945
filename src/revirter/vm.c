/* SPDX-License-Identifier: MIT */
/* revirter's VM run: the PC board on a HAV VM, one thread per vCPU, the exit loop, and how the
 * run ends (power-off, reboot, crash, debug exit, the user's escape key). */
#include "vm.h"

#include "board/pc/pc.h"
#include "console.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct vm;

struct vcpu_thread {
    struct vm *vm;
    struct hav_vcpu *vcpu;
    unsigned index;
    pthread_t thread;
    bool started;
};

struct vm {
    struct pc pc;
    struct console *console;
    struct vcpu_thread vcpus[VMM_MAX_CPUS];
    unsigned nvcpus;
    /* The first reason to stop wins; every vCPU is then kicked out. */
    atomic_int ended; /* 0 running, else enum vm_end + 1 */
    int status;
};

#define vm_error pc_error

/* Record how the VM ends (first caller wins) and kick every vCPU out of the guest. */
static void vm_stop(struct vm *vm, enum vm_end why, int status)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&vm->ended, &expected, (int)why + 1))
        return;
    vm->status = status;
    pc_stop(&vm->pc);
    for (unsigned i = 0; i < vm->nvcpus; i++)
        if (vm->vcpus[i].vcpu)
            hav_vcpu_kick(vm->vcpus[i].vcpu);
}

/* ---------------------------------------------------------------- board events */

static void on_power_off(void *opaque)
{
    vm_stop(opaque, VM_END_POWEROFF, 0);
}

static void on_reset(void *opaque)
{
    vm_stop(opaque, VM_END_REBOOT, 0);
}

static void on_debug_exit(void *opaque, int status)
{
    vm_stop(opaque, VM_END_DEBUG_EXIT, status);
}

static void on_input_room(void *opaque)
{
    console_kick(((struct vm *)opaque)->console);
}

static size_t console_feed(void *opaque, const uint8_t *buf, size_t len)
{
    return pc_console_feed(&((struct vm *)opaque)->pc, buf, len);
}

static void console_quit(void *opaque)
{
    vm_stop(opaque, VM_END_QUIT, 0);
}

/* ---------------------------------------------------------------- running */

static void dump_state(struct hav_vcpu *v, unsigned index)
{
    struct hav_x86_state *st = calloc(1, sizeof(*st));
    if (!st || hav_vcpu_get_state(v, st, HAV_X86_GPRS | HAV_X86_SEGS | HAV_X86_CRS) < 0) {
        free(st);
        return;
    }
    fprintf(stderr,
            "vCPU %u: rip %016llx rsp %016llx rflags %08llx\n"
            "  rax %016llx rbx %016llx rcx %016llx rdx %016llx\n"
            "  rsi %016llx rdi %016llx rbp %016llx\n"
            "  cr0 %08llx cr2 %016llx cr3 %016llx cr4 %08llx efer %llx\n"
            "  cs %04x (base %llx, l %u) ss %04x idt %llx/%x gdt %llx/%x\n",
            index, (unsigned long long)st->gprs.rip, (unsigned long long)st->gprs.rsp,
            (unsigned long long)st->gprs.rflags, (unsigned long long)st->gprs.rax,
            (unsigned long long)st->gprs.rbx, (unsigned long long)st->gprs.rcx,
            (unsigned long long)st->gprs.rdx, (unsigned long long)st->gprs.rsi,
            (unsigned long long)st->gprs.rdi, (unsigned long long)st->gprs.rbp,
            (unsigned long long)st->crs.cr0, (unsigned long long)st->crs.cr2,
            (unsigned long long)st->crs.cr3, (unsigned long long)st->crs.cr4,
            (unsigned long long)st->crs.efer, st->segs.cs.selector,
            (unsigned long long)st->segs.cs.base, st->segs.cs.l, st->segs.ss.selector,
            (unsigned long long)st->segs.idt.base, st->segs.idt.limit,
            (unsigned long long)st->segs.gdt.base, st->segs.gdt.limit);
    free(st);
}

static void *vcpu_main(void *arg)
{
    struct vcpu_thread *t = arg;
    struct vm *vm = t->vm;
    struct hav_exit e;
    pc_vcpu_bind(&vm->pc, t->index, t->vcpu);
    if (!pc_vcpu_wait_start(&vm->pc, t->index))
        return NULL;
    while (!atomic_load(&vm->ended)) {
        pc_vcpu_pre_run(&vm->pc, t->index);
        if (hav_vcpu_run(t->vcpu, &e) < 0) {
            vm_error("vCPU %u: %s", t->index, hav_last_error());
            vm_stop(vm, VM_END_ERROR, 1);
            break;
        }
        if (pc_vcpu_exit(&vm->pc, t->index, &e))
            continue;
        switch (e.reason) {
        case HAV_EXIT_SYSTEM_EVENT:
            vm_stop(vm,
                    e.u.system.type == HAV_SYSTEM_RESET   ? VM_END_REBOOT
                    : e.u.system.type == HAV_SYSTEM_CRASH ? VM_END_CRASH
                                                          : VM_END_POWEROFF,
                    e.u.system.type == HAV_SYSTEM_CRASH);
            break;
        case HAV_EXIT_SHUTDOWN:
            vm_error("vCPU %u: triple fault (the guest crashed)", t->index);
            dump_state(t->vcpu, t->index);
            vm_stop(vm, VM_END_CRASH, 1);
            break;
        case HAV_EXIT_HYPERCALL:
            e.u.hypercall.ret = (uint64_t)-38; /* -ENOSYS: revirter offers none yet */
            break;
        case HAV_EXIT_ENTRY_FAILED:
        case HAV_EXIT_INTERNAL_ERROR:
            vm_error("vCPU %u: %s", t->index, e.u.failure.why);
            dump_state(t->vcpu, t->index);
            vm_stop(vm, VM_END_CRASH, 1);
            break;
        default:
            /* An exit the board does not handle in this mode (HLT, MSR or an interrupt window
             * with the backend's irqchip) means the backend broke its contract. */
            vm_error("vCPU %u: unexpected exit %d", t->index, (int)e.reason);
            vm_stop(vm, VM_END_CRASH, 1);
            break;
        }
    }
    return NULL;
}

static int create_vcpus(struct vm *vm)
{
    int r = 0;
    for (unsigned i = 0; i < vm->pc.cfg->cpus && r == 0; i++) {
        struct vcpu_thread *t = &vm->vcpus[i];
        *t = (struct vcpu_thread){.vm = vm, .index = i};
        if ((r = hav_vcpu_create(vm->pc.hvm, i, &t->vcpu)) < 0 ||
            (r = pc_vcpu_setup(&vm->pc, t->vcpu, i)) < 0)
            vm_error("vCPU %u: %s", i, hav_last_error());
        if (t->vcpu)
            vm->nvcpus = i + 1;
    }
    return r;
}

static void vm_free(struct vm *vm)
{
    pc_flush(&vm->pc);
    for (unsigned i = 0; i < vm->nvcpus; i++)
        hav_vcpu_destroy(vm->vcpus[i].vcpu);
    pc_free(&vm->pc);
    free(vm);
}

enum vm_end vm_run(const struct vmm_config *cfg, bool restarted, int *status)
{
    struct vm *vm = calloc(1, sizeof(*vm));
    if (!vm) {
        vm_error("out of memory");
        return VM_END_ERROR;
    }
    enum vm_end end = VM_END_ERROR;
    struct pc_events ev = {.opaque = vm,
                           .power_off = on_power_off,
                           .reset = on_reset,
                           .debug_exit = on_debug_exit,
                           .input_room = on_input_room};
    if (pc_build(&vm->pc, cfg, restarted, &ev) < 0) {
        if (vm->pc.bad_input)
            end = VM_END_BAD_INPUT;
        goto out;
    }
    if (pc_start(&vm->pc) < 0 || create_vcpus(vm) < 0)
        goto out;

    vm->console = console_start(STDIN_FILENO, console_feed, console_quit, vm);
    for (unsigned i = 0; i < vm->nvcpus; i++) {
        if (pthread_create(&vm->vcpus[i].thread, NULL, vcpu_main, &vm->vcpus[i]) != 0) {
            vm_error("cannot start the thread of vCPU %u", i);
            vm_stop(vm, VM_END_ERROR, 1);
            break;
        }
        vm->vcpus[i].started = true;
    }
    for (unsigned i = 0; i < vm->nvcpus; i++)
        if (vm->vcpus[i].started)
            pthread_join(vm->vcpus[i].thread, NULL);
    console_stop(vm->console);
    end = (enum vm_end)(atomic_load(&vm->ended) - 1);
    *status = vm->status;
out:
    vm_free(vm);
    return end;
}
