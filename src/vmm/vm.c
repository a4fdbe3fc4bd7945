/* SPDX-License-Identifier: MIT */
/* revirter's VM: guest RAM, buses, the PC platform, ACPI, one thread per vCPU, and the exit
 * dispatch that ties HAV exits to devices. */
#include "vm.h"

#include "acpi.h"
#include "boot/boot.h"
#include "bus.h"
#include "console.h"
#include "cpuid.h"
#include "dev/acpi_pm.h"
#include "dev/debug_exit.h"
#include "dev/i8042.h"
#include "dev/rtc.h"
#include "dev/serial.h"
#include "guest_mem.h"
#include "msi.h"
#include "pci/pci.h"
#include "sys/outbuf.h"
#include "sys/ratelimit.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "virtio/virtio_pci.h"
#include "virtio/vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct vm;

/* Where the two RAM ranges start: 0, and 4 GiB for what does not fit below the PCI hole. */
static const uint64_t ram_gpa[2] = {0, BOOT_4G};

/* Console output waiting for the terminal (or the --serial2 file): large enough for a verbose
 * boot's log to go out in big writes, small enough that a stopped terminal soon shows the
 * guest a busy transmitter rather than queueing without bound. */
#define VM_OUTBUF_SIZE (64u << 10)

/* Every virtio device of the VM, whatever its kind: its PCI function and how to free it. */
#define VM_MAX_VIRTIO (VMM_MAX_DISKS + VMM_MAX_NICS + 3)

struct vm_virtio {
    struct virtio_pci *pci;
    void *dev;
    void (*destroy)(void *dev);
};

struct vcpu_thread {
    struct vm *vm;
    struct hav_vcpu *vcpu;
    unsigned index;
    pthread_t thread;
    bool started;
};

struct vm {
    const struct vmm_config *cfg;
    struct hav_backend *b;
    struct hav_vm *hvm;
    struct guest_mem mem;
    void *ram[2];
    uint64_t ram_size[2];
    void *kernel, *initrd; /* the image files, mapped until they are loaded into guest RAM */
    size_t kernel_size, initrd_size;
    struct bus pio, mmio;
    struct serial *serial;
    struct serial *serial2; /* COM2, with --serial2 */
    struct outbuf *out;     /* stdout: COM1 and the virtio console */
    struct outbuf *out2;    /* the --serial2 file */
    int serial2_fd;
    struct i8042 *i8042;
    struct rtc *rtc;
    struct acpi_pm *pm;
    struct debug_exit *dbg;
    struct console *console;
    struct pci_host *pci;
    struct vm_virtio virtio[VM_MAX_VIRTIO];
    unsigned nvirtio;
    struct virtio_console *vcon;
    struct msi_ops msi;
    struct ioevent_ops ioevent;
    /* Queue notifiers the devices asked for before the backend was opened (the PCI functions
     * are placed while the machine is built); registered by start_backend. */
    struct hav_io_notifier *early_ioevents;
    unsigned nearly_ioevents;
    pthread_mutex_t gsi_lock;
    uint64_t gsi_used[HAV_MAX_GSI / 64]; /* MSI vectors: GSIs from 24 up */
    struct vcpu_thread vcpus[VMM_MAX_CPUS];
    unsigned nvcpus;
    bool bad_input; /* set-up failed on something named on the command line */
    /* The first reason to stop wins; every vCPU is then kicked out. */
    atomic_int ended; /* 0 running, else enum vm_end + 1 */
    int status;
};

static void vm_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("revirter: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
}

/* Record how the VM ends (first caller wins) and kick every vCPU out of the guest. */
static void vm_stop(struct vm *vm, enum vm_end why, int status)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&vm->ended, &expected, (int)why + 1))
        return;
    vm->status = status;
    for (unsigned i = 0; i < vm->nvcpus; i++)
        if (vm->vcpus[i].vcpu)
            hav_vcpu_kick(vm->vcpus[i].vcpu);
}

/* ---------------------------------------------------------------- device callbacks */

static void set_irq(void *opaque, unsigned gsi, bool level)
{
    struct vm *vm = opaque;
    /* Devices are made before the backend is opened; every line starts low, so a device that
     * sets its line while being made changes nothing the VM could see. */
    if (!vm->hvm)
        return;
    if (hav_vm_irq_line(vm->hvm, gsi, level) < 0)
        vm_error("interrupt line %u: %s", gsi, hav_last_error());
}

static void on_power_off(void *opaque)
{
    vm_stop(opaque, VM_END_POWEROFF, 0);
}

static void on_reset(void *opaque)
{
    vm_stop(opaque, VM_END_REBOOT, 0);
}

static void on_debug_exit(void *opaque, uint64_t status)
{
    vm_stop(opaque, VM_END_DEBUG_EXIT, (int)(status & 0xff));
}

static size_t console_feed(void *opaque, const uint8_t *buf, size_t len)
{
    struct vm *vm = opaque;
    if (vm->vcon)
        return virtio_console_receive(vm->vcon, buf, len);
    return serial_receive(vm->serial, buf, len);
}

static void console_quit(void *opaque)
{
    vm_stop(opaque, VM_END_QUIT, 0);
}

static void serial_room(void *opaque)
{
    console_kick(((struct vm *)opaque)->console);
}

/* stdout has room again: both its writers may go on. */
static void stdout_room(void *opaque)
{
    struct vm *vm = opaque;
    serial_tx_ready(vm->serial);
    if (vm->vcon)
        virtio_console_tx_ready(vm->vcon);
}

static void serial2_room(void *opaque)
{
    serial_tx_ready(((struct vm *)opaque)->serial2);
}

/* ---------------------------------------------------------------- MSI and ioevents via HAV */

/* These run when the guest enables or programs MSI-X or moves a BAR, as often as it likes, so
 * their failures share one rate-limited log (they are not start-up errors). */
static struct ratelimit plumbing_log = RATELIMIT_INIT;

static int msi_bind(void *opaque, int fd)
{
    struct vm *vm = opaque;
    int gsi = -ENOSPC;
    pthread_mutex_lock(&vm->gsi_lock);
    for (unsigned g = 24; g < HAV_MAX_GSI; g++) {
        if (!(vm->gsi_used[g / 64] & (1ull << (g % 64)))) {
            vm->gsi_used[g / 64] |= 1ull << (g % 64);
            gsi = (int)g;
            break;
        }
    }
    pthread_mutex_unlock(&vm->gsi_lock);
    if (gsi < 0)
        return gsi;
    /* A route must exist before the notifier fires; until the guest programs the vector it
     * points nowhere useful, and the device does not signal a vector MSI-X left masked. */
    int r = hav_vm_set_msi_route(vm->hvm, (unsigned)gsi, 0xfee00000u, 0);
    if (r == 0 && (r = hav_vm_irq_notifier(vm->hvm, fd, (unsigned)gsi)) < 0 &&
        hav_vm_clear_msi_route(vm->hvm, (unsigned)gsi) < 0)
        ratelimit_log(&plumbing_log, "revirter: MSI route %d: %s", gsi, hav_last_error());
    if (r < 0) {
        /* Not logged here: MSI-X refuses the enable and says so in one line. */
        pthread_mutex_lock(&vm->gsi_lock);
        vm->gsi_used[gsi / 64] &= ~(1ull << (gsi % 64));
        pthread_mutex_unlock(&vm->gsi_lock);
        return r;
    }
    return gsi;
}

static int msi_route(void *opaque, int gsi, uint64_t address, uint32_t data)
{
    struct vm *vm = opaque;
    int r = hav_vm_set_msi_route(vm->hvm, (unsigned)gsi, address, data);
    if (r < 0)
        ratelimit_log(&plumbing_log, "revirter: MSI route %d: %s", gsi, hav_last_error());
    return r;
}

static void msi_unbind(void *opaque, int gsi, int fd)
{
    struct vm *vm = opaque;
    if (hav_vm_remove_irq_notifier(vm->hvm, fd, (unsigned)gsi) < 0)
        ratelimit_log(&plumbing_log, "revirter: MSI vector %d: %s", gsi, hav_last_error());
    if (hav_vm_clear_msi_route(vm->hvm, (unsigned)gsi) < 0)
        ratelimit_log(&plumbing_log, "revirter: MSI route %d: %s", gsi, hav_last_error());
    pthread_mutex_lock(&vm->gsi_lock);
    vm->gsi_used[gsi / 64] &= ~(1ull << (gsi % 64));
    pthread_mutex_unlock(&vm->gsi_lock);
}

static int ioevent_add(void *opaque, uint64_t addr, uint32_t len, int fd)
{
    struct vm *vm = opaque;
    struct hav_io_notifier n = {.space = HAV_IO_MMIO, .addr = addr, .len = len, .fd = fd};
    if (!vm->hvm) {
        struct hav_io_notifier *a =
            realloc(vm->early_ioevents, (vm->nearly_ioevents + 1) * sizeof(*vm->early_ioevents));
        if (!a)
            return -ENOMEM;
        vm->early_ioevents = a;
        a[vm->nearly_ioevents++] = n;
        return 0;
    }
    int r = hav_vm_io_notifier(vm->hvm, &n);
    if (r < 0)
        ratelimit_log(&plumbing_log, "revirter: queue notifier at 0x%llx: %s",
                      (unsigned long long)addr, hav_last_error());
    return r;
}

static int ioevent_del(void *opaque, uint64_t addr, uint32_t len, int fd)
{
    struct vm *vm = opaque;
    struct hav_io_notifier n = {.space = HAV_IO_MMIO, .addr = addr, .len = len, .fd = fd};
    if (!vm->hvm) {
        for (unsigned i = 0; i < vm->nearly_ioevents; i++) {
            struct hav_io_notifier *e = &vm->early_ioevents[i];
            if (e->addr == addr && e->len == len && e->fd == fd) {
                *e = vm->early_ioevents[--vm->nearly_ioevents];
                return 0;
            }
        }
        return -ENOENT;
    }
    return hav_vm_remove_io_notifier(vm->hvm, &n);
}

/* ---------------------------------------------------------------- set-up */

static void *map_file(const char *what, const char *path, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        vm_error("--%s: %s: %s", what, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    void *p = NULL;
    if (fstat(fd, &st) < 0) {
        vm_error("--%s: %s: %s", what, path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        vm_error("--%s: %s: not a regular file", what, path);
    } else if (st.st_size == 0) {
        vm_error("--%s: %s: empty file", what, path);
    } else {
        p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            vm_error("--%s: %s: %s", what, path, strerror(errno));
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
static int map_ram(struct vm *vm)
{
    uint64_t total = vm->cfg->memory;
    vm->ram_size[0] = total < BOOT_PCI_HOLE_START ? total : BOOT_PCI_HOLE_START;
    vm->ram_size[1] = total - vm->ram_size[0];
    for (int i = 0; i < 2 && vm->ram_size[i]; i++) {
        /* NORESERVE: guest RAM costs only what the guest touches. */
        vm->ram[i] = mmap(NULL, vm->ram_size[i], PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (vm->ram[i] == MAP_FAILED) {
            vm->ram[i] = NULL;
            vm_error("--memory: cannot map %llu MiB: %s",
                     (unsigned long long)(vm->ram_size[i] >> 20), strerror(errno));
            return -ENOMEM;
        }
        madvise(vm->ram[i], vm->ram_size[i], MADV_HUGEPAGE);
        int r = guest_mem_add(&vm->mem, ram_gpa[i], vm->ram[i], vm->ram_size[i]);
        if (r < 0) {
            vm_error("guest RAM at 0x%llx: %s", (unsigned long long)ram_gpa[i], strerror(-r));
            return r;
        }
    }
    return 0;
}

static int attach_ram(struct vm *vm)
{
    for (int i = 0; i < 2 && vm->ram[i]; i++) {
        if (hav_vm_attach_memory(vm->hvm, ram_gpa[i], vm->ram[i], vm->ram_size[i], 0) < 0) {
            vm_error("guest RAM at 0x%llx: %s", (unsigned long long)ram_gpa[i], hav_last_error());
            return -EINVAL;
        }
    }
    return 0;
}

/* The --serial2 file, opened with the images: a path that cannot be written is bad input. A
 * reboot keeps what earlier boots wrote, as a serial line to a terminal would. */
static int open_serial2(struct vm *vm, bool restarted)
{
    vm->serial2_fd = -1;
    if (!vm->cfg->serial2)
        return 0;
    vm->serial2_fd = open(vm->cfg->serial2,
                          O_WRONLY | O_CREAT | O_CLOEXEC | (restarted ? O_APPEND : O_TRUNC), 0644);
    if (vm->serial2_fd < 0) {
        int err = errno;
        vm_error("--serial2: %s: %s", vm->cfg->serial2, strerror(err));
        return -err;
    }
    return 0;
}

/* A UART whose output an outbuf thread writes to fd, so that a slow reader shows the guest a
 * busy transmitter and never stalls a vCPU. */
static int add_uart(struct vm *vm, const char *what, int fd, void (*room)(void *),
                    struct serial_config sc, struct outbuf **out, struct serial **s)
{
    int r = outbuf_create(what, fd, VM_OUTBUF_SIZE, room, vm, out);
    if (r == 0) {
        sc.out = (struct byte_sink){outbuf_sink_write, *out};
        r = serial_create(&vm->pio, &sc, s);
    }
    if (r < 0)
        vm_error("%s: %s", what, strerror(-r));
    return r;
}

/* COM1 on the terminal (its outbuf shared with the virtio console); COM2, output only, on the
 * --serial2 file. */
static int create_serial(struct vm *vm)
{
    struct serial_config com1 = {
        .port = SERIAL_COM1_PORT,
        .irq = {set_irq, vm, SERIAL_COM1_IRQ},
        .rx_ready = serial_room,
        .opaque = vm,
    };
    int r = add_uart(vm, "ttyS0", STDOUT_FILENO, stdout_room, com1, &vm->out, &vm->serial);
    if (r < 0 || vm->serial2_fd < 0)
        return r;
    struct serial_config com2 = {.port = SERIAL_COM2_PORT, .irq = {set_irq, vm, SERIAL_COM2_IRQ}};
    return add_uart(vm, "ttyS1", vm->serial2_fd, serial2_room, com2, &vm->out2, &vm->serial2);
}

static int create_devices(struct vm *vm)
{
    struct acpi_ports ports = ACPI_PORTS_DEFAULT;
    int r;
    if ((r = create_serial(vm)) < 0)
        return r;
    struct i8042_config kc = {
        .kbd_irq = {set_irq, vm, I8042_KBD_IRQ},
        .aux_irq = {set_irq, vm, I8042_AUX_IRQ},
        .reset = on_reset,
        .opaque = vm,
    };
    if ((r = i8042_create(&vm->pio, &kc, &vm->i8042)) < 0) {
        vm_error("i8042: %s", strerror(-r));
        return r;
    }
    if ((r = rtc_create(&vm->pio, RTC_PORT, &vm->rtc)) < 0) {
        vm_error("RTC: %s", strerror(-r));
        return r;
    }
    struct acpi_pm_config pc = {
        .ports = ports,
        .sci = {set_irq, vm, ports.sci_irq},
        .power_off = on_power_off,
        .reset = on_reset,
        .opaque = vm,
    };
    if ((r = acpi_pm_create(&vm->pio, &pc, &vm->pm)) < 0) {
        vm_error("ACPI PM: %s", strerror(-r));
        return r;
    }
    if (vm->cfg->debug_exit) {
        struct debug_exit_config dc = {
            .port = DEBUG_EXIT_PORT, .size = 4, .exit = on_debug_exit, .opaque = vm};
        if ((r = debug_exit_create(&vm->pio, &dc, &vm->dbg)) < 0) {
            vm_error("--debug-exit: %s", strerror(-r));
            return r;
        }
    }
    struct pci_host_config hc = {
        .pio = &vm->pio, .mmio = &vm->mmio, .set_irq = set_irq, .irq_opaque = vm};
    if ((r = pci_host_create(&hc, &vm->pci)) < 0) {
        vm_error("PCI host bridge: %s", strerror(-r));
        return r;
    }
    return 0;
}

/* Put a virtio device on PCI; on failure the device is destroyed. */
static int add_virtio(struct vm *vm, const char *what, struct virtio_device *v, void *dev,
                      void (*destroy)(void *dev))
{
    struct vm_virtio *slot = &vm->virtio[vm->nvirtio];
    int r = virtio_pci_create(vm->pci, v, &vm->msi, &vm->ioevent, &slot->pci);
    if (r < 0) {
        vm_error("%s: cannot add it to PCI: %s", what, strerror(-r));
        destroy(dev);
        return r;
    }
    slot->dev = dev;
    slot->destroy = destroy;
    vm->nvirtio++;
    return 0;
}

static void destroy_blk(void *d)
{
    virtio_blk_destroy(d);
}
static void destroy_net(void *d)
{
    virtio_net_destroy(d);
}
static void destroy_rng(void *d)
{
    virtio_rng_destroy(d);
}
static void destroy_vcon(void *d)
{
    virtio_console_destroy(d);
}
static void destroy_vsock(void *d)
{
    virtio_vsock_destroy(d);
}

/* The virtio devices the command line asked for. A device that cannot be made is bad input
 * (a missing image, an absent TAP): vm->bad_input is set. A message is printed either way. */
static int create_virtio(struct vm *vm)
{
    const struct vmm_config *cfg = vm->cfg;
    char err[256];
    int r;
    vm->msi =
        (struct msi_ops){.opaque = vm, .bind = msi_bind, .route = msi_route, .unbind = msi_unbind};
    vm->ioevent = (struct ioevent_ops){.opaque = vm, .add = ioevent_add, .del = ioevent_del};
    for (unsigned i = 0; i < cfg->ndisks; i++) {
        struct virtio_blk *b;
        if ((r = virtio_blk_create(&cfg->disks[i], &vm->mem, &b, err, sizeof(err))) < 0) {
            vm_error("--disk %s: %s", cfg->disks[i].path, err);
            vm->bad_input = true;
            return -EINVAL;
        }
        if ((r = add_virtio(vm, "--disk", virtio_blk_device(b), b, destroy_blk)) < 0)
            return r;
    }
    for (unsigned i = 0; i < cfg->nnics; i++) {
        struct virtio_net *n;
        if ((r = virtio_net_create(&cfg->nics[i], &vm->mem, &n, err, sizeof(err))) < 0) {
            vm_error("--net: %s", err);
            vm->bad_input = true;
            return -EINVAL;
        }
        if ((r = add_virtio(vm, "--net", virtio_net_device(n), n, destroy_net)) < 0)
            return r;
    }
    if (cfg->rng) {
        struct virtio_rng *rng;
        if ((r = virtio_rng_create(&vm->mem, &rng)) < 0) {
            vm_error("--rng: %s", strerror(-r));
            return r;
        }
        if ((r = add_virtio(vm, "--rng", virtio_rng_device(rng), rng, destroy_rng)) < 0)
            return r;
    }
    if (cfg->console == VMM_CONSOLE_VIRTIO) {
        struct virtio_console_config cc = {
            .out = {outbuf_sink_write, vm->out}, .rx_ready = serial_room, .opaque = vm};
        struct virtio_console *c;
        if ((r = virtio_console_create(&cc, &vm->mem, &c)) < 0) {
            vm_error("--console virtio: %s", strerror(-r));
            return r;
        }
        if ((r = add_virtio(vm, "--console", virtio_console_device(c), c, destroy_vcon)) < 0)
            return r;
        vm->vcon = c;
    }
    if (cfg->has_vsock) {
        struct virtio_vsock *s;
        if ((r = virtio_vsock_create(&cfg->vsock, &vm->mem, &s, err, sizeof(err))) < 0) {
            vm_error("--vsock: %s", err);
            vm->bad_input = true;
            return -EINVAL;
        }
        if ((r = add_virtio(vm, "--vsock", virtio_vsock_device(s), s, destroy_vsock)) < 0)
            return r;
    }
    return 0;
}

/* Read the kernel and initrd named on the command line (first of all: a bad file is bad input
 * whatever the machine). */
static int map_images(struct vm *vm)
{
    if (!(vm->kernel = map_file("kernel", vm->cfg->kernel, &vm->kernel_size)))
        return -ENOENT;
    if (vm->cfg->initrd && !(vm->initrd = map_file("initrd", vm->cfg->initrd, &vm->initrd_size)))
        return -ENOENT;
    return 0;
}

static void unmap_images(struct vm *vm)
{
    if (vm->kernel)
        munmap(vm->kernel, vm->kernel_size);
    if (vm->initrd)
        munmap(vm->initrd, vm->initrd_size);
    vm->kernel = vm->initrd = NULL;
}

/* Parse the kernel image and lay it out in guest RAM with its boot information; an image that
 * is not a kernel revirter can boot is bad input. */
static int load_kernel(struct vm *vm, uint64_t rsdp, struct hav_x86_state *st)
{
    struct boot_e820_entry e820[BOOT_E820_DEFAULT_MAX];
    int n = boot_e820_default(vm->cfg->memory, e820, BOOT_E820_DEFAULT_MAX);
    if (n < 0) {
        vm_error("--memory: %s", strerror(-n));
        vm->bad_input = true;
        return n;
    }
    struct boot_config bc = {
        .kernel = vm->kernel,
        .kernel_size = vm->kernel_size,
        .initrd = vm->initrd,
        .initrd_size = vm->initrd_size,
        .cmdline = vm->cfg->cmdline                         ? vm->cfg->cmdline
                   : vm->cfg->console == VMM_CONSOLE_VIRTIO ? VMM_DEFAULT_CMDLINE_HVC
                                                            : VMM_DEFAULT_CMDLINE,
        .mem = &vm->mem,
        .e820 = e820,
        .e820_count = (unsigned)n,
        .rsdp_addr = rsdp,
    };
    struct boot_result res;
    char err[256];
    int r = boot_load(&bc, st, &res, err, sizeof(err));
    unmap_images(vm); /* copied into guest RAM, or refused */
    if (r < 0) {
        vm_error("--kernel %s: %s", vm->cfg->kernel, err);
        vm->bad_input = true;
    }
    return r;
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
    while (!atomic_load(&vm->ended)) {
        if (hav_vcpu_run(t->vcpu, &e) < 0) {
            vm_error("vCPU %u: %s", t->index, hav_last_error());
            vm_stop(vm, VM_END_ERROR, 1);
            break;
        }
        switch (e.reason) {
        case HAV_EXIT_IO:
            for (uint32_t i = 0; i < e.u.io.count; i++)
                bus_dispatch(&vm->pio, e.u.io.port, e.u.io.data + i * e.u.io.size, e.u.io.size,
                             e.u.io.write);
            break;
        case HAV_EXIT_MMIO:
            bus_dispatch(&vm->mmio, e.u.mmio.addr, e.u.mmio.data, e.u.mmio.len, e.u.mmio.write);
            break;
        case HAV_EXIT_KICKED:
            break;
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
        case HAV_EXIT_HLT:
        case HAV_EXIT_IRQ_WINDOW:
            /* Only without an in-kernel irqchip, which revirter always has. */
            break;
        case HAV_EXIT_ENTRY_FAILED:
        case HAV_EXIT_INTERNAL_ERROR:
            vm_error("vCPU %u: %s", t->index, e.u.failure.why);
            dump_state(t->vcpu, t->index);
            vm_stop(vm, VM_END_CRASH, 1);
            break;
        }
    }
    return NULL;
}

static int create_vcpus(struct vm *vm, const struct hav_x86_state *boot, uint32_t boot_mask)
{
    struct hav_cpuid_entry *cpuid = calloc(HAV_CPUID_MAX, sizeof(*cpuid));
    if (!cpuid)
        return -ENOMEM;
    int r = 0;
    for (unsigned i = 0; i < vm->cfg->cpus && r == 0; i++) {
        struct vcpu_thread *t = &vm->vcpus[i];
        *t = (struct vcpu_thread){.vm = vm, .index = i};
        int n;
        if ((r = hav_vcpu_create(vm->hvm, i, &t->vcpu)) < 0 ||
            (n = r = vmm_cpuid_build(vm->b, i, vm->cfg->cpus, cpuid)) < 0 ||
            (r = hav_vcpu_set_cpuid(t->vcpu, cpuid, (unsigned)n)) < 0 ||
            (i == 0 && (r = hav_vcpu_set_state(t->vcpu, boot, boot_mask)) < 0))
            vm_error("vCPU %u: %s", i, hav_last_error());
        if (t->vcpu)
            vm->nvcpus = i + 1;
    }
    free(cpuid);
    return r < 0 ? r : 0;
}

static void vm_free(struct vm *vm)
{
    /* The vCPUs are stopped: from here on the devices' last bytes wait for the terminal (or
     * file) instead of being refused, and everything buffered is written before we return. */
    if (vm->out)
        outbuf_finish(vm->out);
    if (vm->out2)
        outbuf_finish(vm->out2);
    for (unsigned i = 0; i < vm->nvcpus; i++)
        hav_vcpu_destroy(vm->vcpus[i].vcpu);
    pci_host_destroy(vm->pci);
    for (unsigned i = 0; i < vm->nvirtio; i++) {
        virtio_pci_destroy(vm->virtio[i].pci);
        vm->virtio[i].destroy(vm->virtio[i].dev);
    }
    pthread_mutex_destroy(&vm->gsi_lock);
    debug_exit_destroy(vm->dbg);
    acpi_pm_destroy(vm->pm);
    rtc_destroy(vm->rtc);
    i8042_destroy(vm->i8042);
    serial_destroy(vm->serial);
    serial_destroy(vm->serial2);
    outbuf_destroy(vm->out);
    outbuf_destroy(vm->out2);
    if (vm->serial2_fd >= 0)
        close(vm->serial2_fd);
    bus_free(&vm->pio);
    bus_free(&vm->mmio);
    hav_vm_destroy(vm->hvm);
    for (int i = 0; i < 2; i++)
        if (vm->ram[i])
            munmap(vm->ram[i], vm->ram_size[i]);
    hav_close(vm->b);
    free(vm->early_ioevents);
    unmap_images(vm);
    free(vm);
}

/* The machine without the backend: guest RAM (host memory), devices and their host resources
 * (images, TAPs, sockets), ACPI tables and the kernel in RAM. Everything named on the command
 * line is checked here, before any backend is opened, so that bad input is reported the same
 * way (status 2) on a machine with or without a hypervisor. A negative errno after a message;
 * vm->bad_input tells whether the command line was at fault. */
static int build_machine(struct vm *vm, bool restarted, struct hav_x86_state *boot)
{
    const struct vmm_config *cfg = vm->cfg;
    int r;
    if ((r = map_images(vm)) < 0 || (r = open_serial2(vm, restarted)) < 0) {
        vm->bad_input = true;
        return r;
    }
    if ((r = map_ram(vm)) < 0 || (r = create_devices(vm)) < 0 || (r = create_virtio(vm)) < 0)
        return r;
    uint8_t aml_buf[4096];
    struct acpi_aml aml;
    size_t aml_len = 0;
    acpi_aml_init(&aml, aml_buf, sizeof(aml_buf));
    pci_host_aml(vm->pci, &aml);
    if ((r = acpi_aml_finish(&aml, &aml_len)) < 0) {
        vm_error("ACPI description of PCI: %s", strerror(-r));
        return r;
    }
    struct acpi_config ac = {
        .vcpus = cfg->cpus, .ports = ACPI_PORTS_DEFAULT, .sb_aml = aml_buf, .sb_aml_len = aml_len};
    uint64_t rsdp = 0;
    if ((r = acpi_tables_write(&vm->mem, &ac, &rsdp)) < 0) {
        vm_error("ACPI tables for %u vCPUs: %s", cfg->cpus, strerror(-r));
        return r;
    }
    return load_kernel(vm, rsdp, boot);
}

/* The backend's part: the VM, its RAM and its vCPUs with the boot state. */
static int start_backend(struct vm *vm, const struct hav_x86_state *boot)
{
    const struct vmm_config *cfg = vm->cfg;
    struct hav_vm_config vc = {.irqchip = HAV_IRQCHIP_KERNEL, .pit = true};
    if (hav_open(cfg->hav, &vm->b) < 0) {
        vm_error("%s", hav_last_error());
        return -ENODEV;
    }
    if (cfg->cpus > hav_max_vcpus(vm->b)) {
        vm_error("--cpus: %u is more than the %s backend allows (%u)", cfg->cpus,
                 hav_backend_name(vm->b), hav_max_vcpus(vm->b));
        return -ENOTSUP;
    }
    if (hav_vm_create(vm->b, &vc, &vm->hvm) < 0) {
        vm_error("%s", hav_last_error());
        return -ENODEV;
    }
    int r = attach_ram(vm);
    for (unsigned i = 0; r == 0 && i < vm->nearly_ioevents; i++)
        if ((r = hav_vm_io_notifier(vm->hvm, &vm->early_ioevents[i])) < 0)
            vm_error("queue notifier at 0x%llx: %s", (unsigned long long)vm->early_ioevents[i].addr,
                     hav_last_error());
    if (r == 0)
        r = create_vcpus(vm, boot, HAV_X86_GPRS | HAV_X86_SEGS | HAV_X86_CRS);
    return r;
}

enum vm_end vm_run(const struct vmm_config *cfg, bool restarted, int *status)
{
    struct vm *vm = calloc(1, sizeof(*vm));
    if (!vm) {
        vm_error("out of memory");
        return VM_END_ERROR;
    }
    vm->cfg = cfg;
    vm->serial2_fd = -1;
    pthread_mutex_init(&vm->gsi_lock, NULL);
    bus_init(&vm->pio, "pio");
    bus_init(&vm->mmio, "mmio");
    enum vm_end end = VM_END_ERROR;
    struct hav_x86_state *boot = calloc(1, sizeof(*boot));
    if (!boot) {
        vm_error("out of memory");
        goto out;
    }
    if (build_machine(vm, restarted, boot) < 0) {
        if (vm->bad_input)
            end = VM_END_BAD_INPUT;
        goto out;
    }
    if (start_backend(vm, boot) < 0)
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
    free(boot);
    vm_free(vm);
    return end;
}
