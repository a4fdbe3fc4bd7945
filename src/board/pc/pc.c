/* SPDX-License-Identifier: MIT */
/* The PC board: build it without a backend (RAM, devices, ACPI, kernel), then put it on a HAV VM;
 * the exit dispatch to its buses; and freeing it. */
#include "pc_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acpi/aml.h"
#include "board/pc/acpi_tables.h"
#include "board/pc/cpuid.h"
#include "board/pc/pc_platform.h"
#include "boot/boot.h"
#include "dev/acpi_pm.h"
#include "dev/debug_exit.h"
#include "dev/i8042.h"
#include "dev/rtc.h"
#include "dev/serial.h"
#include "pci/pci.h"
#include "sys/outbuf.h"
#include "virtio/virtio_pci.h"

/* Where the two RAM ranges start: 0, and 4 GiB for what does not fit below the PCI hole. */
static const uint64_t ram_gpa[2] = {0, BOOT_4G};

void pc_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("revirter: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
}

static void *map_file(const char *what, const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        pc_error("--%s: %s: %s", what, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    void *p = NULL;
    if (fstat(fd, &st) < 0) {
        pc_error("--%s: %s: %s", what, path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        pc_error("--%s: %s: not a regular file", what, path);
    } else if (st.st_size == 0) {
        pc_error("--%s: %s: empty file", what, path);
    } else {
        p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            pc_error("--%s: %s: %s", what, path, strerror(errno));
            p = NULL;
        } else {
            *size = (size_t)st.st_size;
        }
    }
    close(fd);
    return p;
}

/* RAM below the PCI hole at 0, the rest at 4 GiB: the layout boot_e820_default describes. Host
 * memory only: it is attached to the VM by attach_ram once the backend is open. */
static int map_ram(struct pc *pc)
{
    uint64_t total = pc->cfg->memory;
    pc->ram_size[0] = total < BOOT_PCI_HOLE_START ? total : BOOT_PCI_HOLE_START;
    pc->ram_size[1] = total - pc->ram_size[0];
    for (int i = 0; i < 2 && pc->ram_size[i]; i++) {
        /* NORESERVE: guest RAM costs only what the guest touches. */
        pc->ram[i] = mmap(NULL, pc->ram_size[i], PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (pc->ram[i] == MAP_FAILED) {
            pc->ram[i] = NULL;
            pc_error("--memory: cannot map %llu MiB: %s",
                     (unsigned long long)(pc->ram_size[i] >> 20), strerror(errno));
            return -ENOMEM;
        }
        madvise(pc->ram[i], pc->ram_size[i], MADV_HUGEPAGE);
        int r = guest_mem_add(&pc->mem, ram_gpa[i], pc->ram[i], pc->ram_size[i]);
        if (r < 0) {
            pc_error("guest RAM at 0x%llx: %s", (unsigned long long)ram_gpa[i], strerror(-r));
            return r;
        }
    }
    return 0;
}

static int attach_ram(struct pc *pc)
{
    for (int i = 0; i < 2 && pc->ram[i]; i++) {
        if (hav_vm_attach_memory(pc->hvm, ram_gpa[i], pc->ram[i], pc->ram_size[i], 0) < 0) {
            pc_error("guest RAM at 0x%llx: %s", (unsigned long long)ram_gpa[i], hav_last_error());
            return -EINVAL;
        }
    }
    return 0;
}

/* Read the kernel and initrd named on the command line (first of all: a bad file is bad input
 * whatever the machine). */
static int map_images(struct pc *pc)
{
    if (!(pc->kernel = map_file("kernel", pc->cfg->kernel, &pc->kernel_size)))
        return -ENOENT;
    if (pc->cfg->initrd && !(pc->initrd = map_file("initrd", pc->cfg->initrd, &pc->initrd_size)))
        return -ENOENT;
    return 0;
}

static void unmap_images(struct pc *pc)
{
    if (pc->kernel)
        munmap(pc->kernel, pc->kernel_size);
    if (pc->initrd)
        munmap(pc->initrd, pc->initrd_size);
    pc->kernel = pc->initrd = NULL;
}

/* Parse the kernel image and lay it out in guest RAM with its boot information; an image that
 * is not a kernel revirter can boot is bad input. */
static int load_kernel(struct pc *pc, uint64_t rsdp, struct hav_x86_state *st)
{
    struct boot_e820_entry e820[BOOT_E820_DEFAULT_MAX];
    int n = boot_e820_default(pc->cfg->memory, e820, BOOT_E820_DEFAULT_MAX);
    if (n < 0) {
        pc_error("--memory: %s", strerror(-n));
        pc->bad_input = true;
        return n;
    }
    struct boot_config bc = {
        .kernel = pc->kernel,
        .kernel_size = pc->kernel_size,
        .initrd = pc->initrd,
        .initrd_size = pc->initrd_size,
        .cmdline = pc->cfg->cmdline                         ? pc->cfg->cmdline
                   : pc->cfg->console == VMM_CONSOLE_VIRTIO ? VMM_DEFAULT_CMDLINE_HVC
                                                            : VMM_DEFAULT_CMDLINE,
        .mem = &pc->mem,
        .e820 = e820,
        .e820_count = (unsigned)n,
        .rsdp_addr = rsdp,
    };
    struct boot_result res;
    char err[256];
    int r = boot_load(&bc, st, &res, err, sizeof(err));
    unmap_images(pc); /* copied into guest RAM, or refused */
    if (r < 0) {
        pc_error("--kernel %s: %s", pc->cfg->kernel, err);
        pc->bad_input = true;
    }
    return r;
}

int pc_build(struct pc *pc, const struct vmm_config *cfg, bool restarted,
             const struct pc_events *ev)
{
    pc->cfg = cfg;
    pc->ev = *ev;
    pc->serial2_fd = -1;
    pthread_mutex_init(&pc->gsi_lock, NULL);
    bus_init(&pc->pio, "pio");
    bus_init(&pc->mmio, "mmio");
    if (!(pc->boot = calloc(1, sizeof(*pc->boot)))) {
        pc_error("out of memory");
        return -ENOMEM;
    }
    int r;
    if ((r = map_images(pc)) < 0 || (r = pc_open_serial2(pc, restarted)) < 0) {
        pc->bad_input = true;
        return r;
    }
    if ((r = map_ram(pc)) < 0 || (r = pc_create_devices(pc)) < 0 || (r = pc_create_virtio(pc)) < 0)
        return r;
    uint8_t aml_buf[4096];
    struct acpi_aml aml;
    size_t aml_len = 0;
    acpi_aml_init(&aml, aml_buf, sizeof(aml_buf));
    pci_host_aml(pc->pci, &aml);
    if ((r = acpi_aml_finish(&aml, &aml_len)) < 0) {
        pc_error("ACPI description of PCI: %s", strerror(-r));
        return r;
    }
    struct acpi_config ac = {
        .vcpus = cfg->cpus, .ports = ACPI_PORTS_DEFAULT, .sb_aml = aml_buf, .sb_aml_len = aml_len};
    uint64_t rsdp = 0;
    if ((r = acpi_tables_write(&pc->mem, &ac, &rsdp)) < 0) {
        pc_error("ACPI tables for %u vCPUs: %s", cfg->cpus, strerror(-r));
        return r;
    }
    return load_kernel(pc, rsdp, pc->boot);
}

int pc_start(struct pc *pc)
{
    const struct vmm_config *cfg = pc->cfg;
    if (hav_open(cfg->hav, &pc->b) < 0) {
        pc_error("%s", hav_last_error());
        return -ENODEV;
    }
    if (cfg->cpus > hav_max_vcpus(pc->b)) {
        pc_error("--cpus: %u is more than the %s backend allows (%u)", cfg->cpus,
                 hav_backend_name(pc->b), hav_max_vcpus(pc->b));
        return -ENOTSUP;
    }
    bool has_kernel_chip =
        (hav_caps(pc->b) & (HAV_CAP_IRQCHIP | HAV_CAP_PIT)) == (HAV_CAP_IRQCHIP | HAV_CAP_PIT);
    if (cfg->irqchip == VMM_IRQCHIP_KERNEL && !has_kernel_chip) {
        pc_error("--irqchip=kernel: the %s backend has no in-kernel interrupt controllers and PIT",
                 hav_backend_name(pc->b));
        return -ENOTSUP;
    }
    pc->user_irqchip = cfg->irqchip == VMM_IRQCHIP_USER || !has_kernel_chip;
    struct hav_vm_config vc = {.irqchip = HAV_IRQCHIP_KERNEL, .pit = true};
    if (pc->user_irqchip)
        vc = (struct hav_vm_config){.irqchip = HAV_IRQCHIP_NONE};
    if (hav_vm_create(pc->b, &vc, &pc->hvm) < 0) {
        pc_error("%s", hav_last_error());
        return -ENODEV;
    }
    int r = attach_ram(pc);
    if (r == 0 && pc->user_irqchip && (r = pc_platform_create(pc, cfg->cpus, &pc->platform)) < 0)
        pc_error("interrupt controllers and PIT: %s", strerror(-r));
    for (unsigned i = 0; r == 0 && i < pc->nearly_ioevents; i++)
        if ((r = hav_vm_io_notifier(pc->hvm, &pc->early_ioevents[i])) < 0)
            pc_error("queue notifier at 0x%llx: %s", (unsigned long long)pc->early_ioevents[i].addr,
                     hav_last_error());
    return r;
}

int pc_vcpu_setup(struct pc *pc, struct hav_vcpu *v, unsigned index)
{
    struct hav_cpuid_entry *cpuid = calloc(HAV_CPUID_MAX, sizeof(*cpuid));
    if (!cpuid)
        return -ENOMEM;
    int n, r;
    if ((n = r = vmm_cpuid_build(pc->b, index, pc->cfg->cpus, pc->user_irqchip, cpuid)) >= 0 &&
        (r = hav_vcpu_set_cpuid(v, cpuid, (unsigned)n)) == 0 && index == 0)
        r = hav_vcpu_set_state(v, pc->boot, HAV_X86_GPRS | HAV_X86_SEGS | HAV_X86_CRS);
    free(cpuid);
    return r;
}

void pc_vcpu_bind(struct pc *pc, unsigned index, struct hav_vcpu *vcpu)
{
    if (pc->platform)
        pc_platform_vcpu_bind(pc->platform, index, vcpu);
}

bool pc_vcpu_wait_start(struct pc *pc, unsigned index)
{
    /* The backend's local APICs hold application processors until INIT/SIPI themselves. */
    return pc->platform ? pc_platform_vcpu_wait_start(pc->platform, index) : true;
}

void pc_vcpu_pre_run(struct pc *pc, unsigned index)
{
    if (pc->platform)
        pc_platform_vcpu_pre_run(pc->platform, index);
}

bool pc_vcpu_exit(struct pc *pc, unsigned index, struct hav_exit *e)
{
    switch (e->reason) {
    case HAV_EXIT_IO:
        for (uint32_t i = 0; i < e->u.io.count; i++)
            bus_dispatch(&pc->pio, e->u.io.port, e->u.io.data + i * e->u.io.size, e->u.io.size,
                         e->u.io.write);
        break;
    case HAV_EXIT_MMIO:
        bus_dispatch(&pc->mmio, e->u.mmio.addr, e->u.mmio.data, e->u.mmio.len, e->u.mmio.write);
        break;
    case HAV_EXIT_KICKED:
        break;
    case HAV_EXIT_MSR:
        /* With the backend's irqchip, only MSRs nobody models exit: #GP, as on hardware
         * without them (Linux probes optional MSRs with rdmsr_safe). */
        if (!pc->platform)
            e->u.msr.gp = true;
        break;
    case HAV_EXIT_HLT:
    case HAV_EXIT_IRQ_WINDOW:
        /* Only without the backend's irqchip. */
        if (!pc->platform)
            return false;
        break;
    default:
        return false;
    }
    if (pc->platform)
        pc_platform_vcpu_exit(pc->platform, index, e);
    return true;
}

void pc_stop(struct pc *pc)
{
    if (pc->platform)
        pc_platform_stop(pc->platform);
}

void pc_flush(struct pc *pc)
{
    /* The vCPUs are stopped: from here on the devices' last bytes wait for the terminal (or
     * file) instead of being refused, and everything buffered is written before we return. */
    if (pc->out)
        outbuf_finish(pc->out);
    if (pc->out2)
        outbuf_finish(pc->out2);
}

void pc_free(struct pc *pc)
{
    pc_flush(pc);
    pci_host_destroy(pc->pci);
    for (unsigned i = 0; i < pc->nvirtio; i++) {
        virtio_pci_destroy(pc->virtio[i].pci);
        pc->virtio[i].destroy(pc->virtio[i].dev);
    }
    pthread_mutex_destroy(&pc->gsi_lock);
    debug_exit_destroy(pc->dbg);
    acpi_pm_destroy(pc->pm);
    rtc_destroy(pc->rtc);
    i8042_destroy(pc->i8042);
    serial_destroy(pc->serial);
    serial_destroy(pc->serial2);
    outbuf_destroy(pc->out);
    outbuf_destroy(pc->out2);
    if (pc->serial2_fd >= 0)
        close(pc->serial2_fd);
    /* After every device that could still raise an interrupt line or MSI. */
    pc_platform_destroy(pc->platform);
    bus_free(&pc->pio);
    bus_free(&pc->mmio);
    hav_vm_destroy(pc->hvm);
    for (int i = 0; i < 2; i++)
        if (pc->ram[i])
            munmap(pc->ram[i], pc->ram_size[i]);
    hav_close(pc->b);
    free(pc->early_ioevents);
    free(pc->boot);
    unmap_images(pc);
}
