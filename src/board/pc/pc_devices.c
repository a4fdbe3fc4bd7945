/* SPDX-License-Identifier: MIT */
/* The PC board's devices: COM1/COM2, i8042, RTC, ACPI fixed hardware, debug exit, the PCI host
 * and the virtio functions the configuration asks for. */
#include "pc_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "dev/acpi_pm.h"
#include "dev/debug_exit.h"
#include "dev/i8042.h"
#include "dev/rtc.h"
#include "dev/serial.h"
#include "pci/pci.h"
#include "sys/outbuf.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "virtio/virtio_pci.h"
#include "virtio/vsock.h"

/* Console output waiting for the terminal (or the --serial2 file): large enough for a verbose
 * boot's log to go out in big writes, small enough that a stopped terminal soon shows the
 * guest a busy transmitter rather than queueing without bound. */
#define PC_OUTBUF_SIZE (64u << 10)

static void on_power_off(void *opaque)
{
    struct pc *pc = opaque;
    pc->ev.power_off(pc->ev.opaque);
}

static void on_reset(void *opaque)
{
    struct pc *pc = opaque;
    pc->ev.reset(pc->ev.opaque);
}

static void on_debug_exit(void *opaque, uint64_t status)
{
    struct pc *pc = opaque;
    pc->ev.debug_exit(pc->ev.opaque, (int)(status & 0xff));
}

static void serial_room(void *opaque)
{
    struct pc *pc = opaque;
    pc->ev.input_room(pc->ev.opaque);
}

/* stdout has room again: both its writers may go on. */
static void stdout_room(void *opaque)
{
    struct pc *pc = opaque;
    serial_tx_ready(pc->serial);
    if (pc->vcon)
        virtio_console_tx_ready(pc->vcon);
}

static void serial2_room(void *opaque)
{
    serial_tx_ready(((struct pc *)opaque)->serial2);
}

/* The --serial2 file, opened with the images: a path that cannot be written is bad input. A
 * reboot keeps what earlier boots wrote, as a serial line to a terminal would. */
int pc_open_serial2(struct pc *pc, bool restarted)
{
    pc->serial2_fd = -1;
    if (!pc->cfg->serial2)
        return 0;
    pc->serial2_fd = open(pc->cfg->serial2,
                          O_WRONLY | O_CREAT | O_CLOEXEC | (restarted ? O_APPEND : O_TRUNC), 0644);
    if (pc->serial2_fd < 0) {
        int err = errno;
        pc_error("--serial2: %s: %s", pc->cfg->serial2, strerror(err));
        return -err;
    }
    return 0;
}

/* A UART whose output an outbuf thread writes to fd, so that a slow reader shows the guest a
 * busy transmitter and never stalls a vCPU. */
static int add_uart(struct pc *pc, const char *what, int fd, void (*room)(void *),
                    struct serial_config sc, struct outbuf **out, struct serial **s)
{
    int r = outbuf_create(what, fd, PC_OUTBUF_SIZE, room, pc, out);
    if (r == 0) {
        sc.out = (struct byte_sink){outbuf_sink_write, *out};
        r = serial_create(&pc->pio, &sc, s);
    }
    if (r < 0)
        pc_error("%s: %s", what, strerror(-r));
    return r;
}

/* COM1 on the terminal (its outbuf shared with the virtio console); COM2, output only, on the
 * --serial2 file. */
static int create_serial(struct pc *pc)
{
    struct serial_config com1 = {
        .port = SERIAL_COM1_PORT,
        .irq = {pc_set_irq, pc, SERIAL_COM1_IRQ},
        .rx_ready = serial_room,
        .opaque = pc,
    };
    int r = add_uart(pc, "ttyS0", STDOUT_FILENO, stdout_room, com1, &pc->out, &pc->serial);
    if (r < 0 || pc->serial2_fd < 0)
        return r;
    struct serial_config com2 = {.port = SERIAL_COM2_PORT,
                                 .irq = {pc_set_irq, pc, SERIAL_COM2_IRQ}};
    return add_uart(pc, "ttyS1", pc->serial2_fd, serial2_room, com2, &pc->out2, &pc->serial2);
}

int pc_create_devices(struct pc *pc)
{
    struct acpi_ports ports = ACPI_PORTS_DEFAULT;
    int r;
    if ((r = create_serial(pc)) < 0)
        return r;
    struct i8042_config kc = {
        .kbd_irq = {pc_set_irq, pc, I8042_KBD_IRQ},
        .aux_irq = {pc_set_irq, pc, I8042_AUX_IRQ},
        .reset = on_reset,
        .opaque = pc,
    };
    if ((r = i8042_create(&pc->pio, &kc, &pc->i8042)) < 0) {
        pc_error("i8042: %s", strerror(-r));
        return r;
    }
    if ((r = rtc_create(&pc->pio, RTC_PORT, &pc->rtc)) < 0) {
        pc_error("RTC: %s", strerror(-r));
        return r;
    }
    struct acpi_pm_config pmc = {
        .ports = ports,
        .sci = {pc_set_irq, pc, ports.sci_irq},
        .power_off = on_power_off,
        .reset = on_reset,
        .opaque = pc,
    };
    if ((r = acpi_pm_create(&pc->pio, &pmc, &pc->pm)) < 0) {
        pc_error("ACPI PM: %s", strerror(-r));
        return r;
    }
    if (pc->cfg->debug_exit) {
        struct debug_exit_config dc = {
            .port = DEBUG_EXIT_PORT, .size = 4, .exit = on_debug_exit, .opaque = pc};
        if ((r = debug_exit_create(&pc->pio, &dc, &pc->dbg)) < 0) {
            pc_error("--debug-exit: %s", strerror(-r));
            return r;
        }
    }
    struct pci_host_config hc = {
        .pio = &pc->pio, .mmio = &pc->mmio, .set_irq = pc_set_irq, .irq_opaque = pc};
    if ((r = pci_host_create(&hc, &pc->pci)) < 0) {
        pc_error("PCI host bridge: %s", strerror(-r));
        return r;
    }
    return 0;
}

/* Put a virtio device on PCI; on failure the device is destroyed. */
static int add_virtio(struct pc *pc, const char *what, struct virtio_device *v, void *dev,
                      void (*destroy)(void *dev))
{
    struct pc_virtio *slot = &pc->virtio[pc->nvirtio];
    int r = virtio_pci_create(pc->pci, v, &pc->msi, &pc->ioevent, &slot->pci);
    if (r < 0) {
        pc_error("%s: cannot add it to PCI: %s", what, strerror(-r));
        destroy(dev);
        return r;
    }
    slot->dev = dev;
    slot->destroy = destroy;
    pc->nvirtio++;
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
 * (a missing image, an absent TAP): pc->bad_input is set. A message is printed either way. */
int pc_create_virtio(struct pc *pc)
{
    const struct vmm_config *cfg = pc->cfg;
    char err[256];
    int r;
    pc_plumbing_init(pc);
    for (unsigned i = 0; i < cfg->ndisks; i++) {
        struct virtio_blk *b;
        if ((r = virtio_blk_create(&cfg->disks[i], &pc->mem, &b, err, sizeof(err))) < 0) {
            pc_error("--disk %s: %s", cfg->disks[i].path, err);
            pc->bad_input = true;
            return -EINVAL;
        }
        if ((r = add_virtio(pc, "--disk", virtio_blk_device(b), b, destroy_blk)) < 0)
            return r;
    }
    for (unsigned i = 0; i < cfg->nnics; i++) {
        struct virtio_net *n;
        if ((r = virtio_net_create(&cfg->nics[i], &pc->mem, &n, err, sizeof(err))) < 0) {
            pc_error("--net: %s", err);
            pc->bad_input = true;
            return -EINVAL;
        }
        if ((r = add_virtio(pc, "--net", virtio_net_device(n), n, destroy_net)) < 0)
            return r;
    }
    if (cfg->rng) {
        struct virtio_rng *rng;
        if ((r = virtio_rng_create(&pc->mem, &rng)) < 0) {
            pc_error("--rng: %s", strerror(-r));
            return r;
        }
        if ((r = add_virtio(pc, "--rng", virtio_rng_device(rng), rng, destroy_rng)) < 0)
            return r;
    }
    if (cfg->console == VMM_CONSOLE_VIRTIO) {
        struct virtio_console_config cc = {
            .out = {outbuf_sink_write, pc->out}, .rx_ready = serial_room, .opaque = pc};
        struct virtio_console *c;
        if ((r = virtio_console_create(&cc, &pc->mem, &c)) < 0) {
            pc_error("--console virtio: %s", strerror(-r));
            return r;
        }
        if ((r = add_virtio(pc, "--console", virtio_console_device(c), c, destroy_vcon)) < 0)
            return r;
        pc->vcon = c;
    }
    if (cfg->has_vsock) {
        struct virtio_vsock *s;
        if ((r = virtio_vsock_create(&cfg->vsock, &pc->mem, &s, err, sizeof(err))) < 0) {
            pc_error("--vsock: %s", err);
            pc->bad_input = true;
            return -EINVAL;
        }
        if ((r = add_virtio(pc, "--vsock", virtio_vsock_device(s), s, destroy_vsock)) < 0)
            return r;
    }
    return 0;
}

size_t pc_console_feed(struct pc *pc, const uint8_t *buf, size_t len)
{
    if (pc->vcon)
        return virtio_console_receive(pc->vcon, buf, len);
    return serial_receive(pc->serial, buf, len);
}
