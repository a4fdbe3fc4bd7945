/* SPDX-License-Identifier: MIT */
/* The PC board revirter builds: guest RAM, buses, legacy devices, PCI with the virtio functions,
 * ACPI tables, the kernel in RAM, and the HAV VM they are put on. */
#ifndef REVIRT_BOARD_PC_PC_H
#define REVIRT_BOARD_PC_PC_H

#include <revirt/hav.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "board/pc/config.h"
#include "core/bus.h"
#include "core/guest_mem.h"
#include "core/msi.h"

/* Every virtio device of the board, whatever its kind: its PCI function and how to free it. */
#define PC_MAX_VIRTIO (VMM_MAX_DISKS + VMM_MAX_NICS + 3)

/* What the board reports to the application that runs it. Called from vCPU or device threads. */
struct pc_events {
    void *opaque;
    void (*power_off)(void *opaque);
    void (*reset)(void *opaque);
    void (*debug_exit)(void *opaque, int status);
    void (*input_room)(void *opaque); /* the guest's console can take input again */
};

struct pc_virtio {
    struct virtio_pci *pci;
    void *dev;
    void (*destroy)(void *dev);
};

struct pc {
    const struct vmm_config *cfg;
    struct pc_events ev;
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
    struct pci_host *pci;
    struct pc_virtio virtio[PC_MAX_VIRTIO];
    unsigned nvirtio;
    struct virtio_console *vcon;
    struct msi_ops msi;
    struct ioevent_ops ioevent;
    /* Queue notifiers the devices asked for before the backend was opened (the PCI functions
     * are placed while the board is built); registered by pc_start. */
    struct hav_io_notifier *early_ioevents;
    unsigned nearly_ioevents;
    pthread_mutex_t gsi_lock;
    uint64_t gsi_used[HAV_MAX_GSI / 64]; /* MSI vectors: GSIs from 24 up */
    struct hav_x86_state *boot;          /* vCPU 0's start state, set by the kernel loader */
    bool bad_input;                      /* set-up failed on something named on the command line */
    bool user_irqchip;            /* revirter's own interrupt controllers and PIT (src/dev) */
    struct pc_platform *platform; /* with user_irqchip */
};

/* Build everything that needs no backend: images, guest RAM in host memory, devices with their
 * host resources (files, TAPs, sockets), ACPI tables and the kernel in RAM, so that bad input
 * is reported the same way on a machine with or without a hypervisor. restarted: this boot
 * follows a guest reboot in the same process (files the board writes are continued). A
 * negative errno after a message on stderr; pc->bad_input tells whether the command line was at
 * fault. pc_free undoes a partial build. */
int pc_build(struct pc *pc, const struct vmm_config *cfg, bool restarted,
             const struct pc_events *ev);
/* Open the backend, create the VM and attach RAM and the devices' notifiers. */
int pc_start(struct pc *pc);
/* The CPUID table and start state of vCPU index, created by the caller with hav_vcpu_create. */
int pc_vcpu_setup(struct pc *pc, struct hav_vcpu *v, unsigned index);
/* The vCPU side, called by the thread that runs vCPU index, in this order: bind once, then
 * wait_start once (false: the VM ended before this AP was started), then pre_run before every
 * hav_vcpu_run and exit after it. exit handles what the board owns: port I/O and MMIO (the
 * device it belongs to), MSR and HLT and interrupt windows (revirter's own platform); it
 * returns false for exits that are the application's (shutdown, system events, failures). */
void pc_vcpu_bind(struct pc *pc, unsigned index, struct hav_vcpu *vcpu);
bool pc_vcpu_wait_start(struct pc *pc, unsigned index);
void pc_vcpu_pre_run(struct pc *pc, unsigned index);
bool pc_vcpu_exit(struct pc *pc, unsigned index, struct hav_exit *e);
/* The VM is ending: wake vCPU threads that wait in the board (HLT, APs not started). */
void pc_stop(struct pc *pc);
/* Terminal input for the guest's console; returns how much was taken. */
size_t pc_console_feed(struct pc *pc, const uint8_t *buf, size_t len);
/* Once the vCPUs are stopped: write out what the devices still buffer (console output). */
void pc_flush(struct pc *pc);
/* Free everything pc_build and pc_start made (vCPUs destroyed first by the caller). */
void pc_free(struct pc *pc);

/* One line "revirter: ..." on stderr. */
void pc_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
