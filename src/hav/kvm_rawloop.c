/* SPDX-License-Identifier: MIT */
/* The benchmark's reference: the smallest correct KVM_RUN loop, as a VMM without HAV would have. */
#include "hav_rawloop.h"
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int hav_kvm_rawloop(void *ram, uint64_t ram_size, const struct hav_x86_state *st,
                    uint16_t done_port, uint64_t *exits, double *seconds, double *launch)
{
    int r = -EIO, kvm = -1, vm = -1, cpu = -1;
    struct kvm_run *run = MAP_FAILED;
    int size = 0;
    double start = now();
    if ((kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0 ||
        (vm = ioctl(kvm, KVM_CREATE_VM, 0)) < 0 ||
        ioctl(vm, KVM_SET_TSS_ADDR, (unsigned long)HAV_X86_RESERVED_GPA + 0x1000) < 0)
        goto fail;
    struct kvm_userspace_memory_region m = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = ram_size, .userspace_addr = (uintptr_t)ram};
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &m) < 0 ||
        (cpu = ioctl(vm, KVM_CREATE_VCPU, 0)) < 0 ||
        (size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)) <= 0)
        goto fail;
    run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, cpu, 0);
    if (run == MAP_FAILED)
        goto fail;
    /* Any real VMM sets CPUID; so does HAV's vCPU creation: give both the same table. */
    struct {
        struct kvm_cpuid2 head;
        struct kvm_cpuid_entry2 e[HAV_CPUID_MAX];
    } cpuid = {.head.nent = HAV_CPUID_MAX};
    if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cpuid) < 0 || ioctl(cpu, KVM_SET_CPUID2, &cpuid) < 0)
        goto fail;
    struct kvm_sregs s;
    struct kvm_regs regs;
    if (ioctl(cpu, KVM_GET_SREGS, &s) < 0)
        goto fail;
    kvm_x86_sregs_from_hav(&s, st, HAV_X86_SEGS | HAV_X86_CRS);
    kvm_x86_regs_from_hav(&regs, st);
    if (ioctl(cpu, KVM_SET_SREGS, &s) < 0 || ioctl(cpu, KVM_SET_REGS, &regs) < 0)
        goto fail;

    uint64_t n = 0;
    *launch = 0;
    double t0 = now();
    for (;;) {
        if (ioctl(cpu, KVM_RUN, 0) < 0)
            goto fail;
        if (n == 0 && !*launch)
            *launch = now() - start;
        if (run->exit_reason != KVM_EXIT_IO) {
            r = hav_set_error(-EIO, "rawloop: unexpected KVM exit %u", run->exit_reason);
            goto out;
        }
        if (run->io.port == done_port && run->io.size == 4)
            break;
        n++;
    }
    *seconds = now() - t0;
    *exits = n;
    r = 0;
    goto out;
fail:
    r = hav_set_error(-errno, "rawloop: %s", strerror(errno));
out:
    if (run != MAP_FAILED)
        munmap(run, size);
    if (cpu >= 0)
        close(cpu);
    if (vm >= 0)
        close(vm);
    if (kvm >= 0)
        close(kvm);
    return r;
}
