/* SPDX-License-Identifier: MIT */
/* What the user asked revirter for: one place the CLI (and later the REST API) fills. */
#ifndef REVIRT_BOARD_PC_CONFIG_H
#define REVIRT_BOARD_PC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/vsock.h"

#define VMM_MAX_CPUS 254u /* xAPIC IDs; the IOAPIC takes the next one */

#define VMM_MAX_DISKS 16u
#define VMM_MAX_NICS 4u

enum vmm_on_reboot { VMM_REBOOT_EXIT, VMM_REBOOT_RESTART };
enum vmm_console { VMM_CONSOLE_SERIAL, VMM_CONSOLE_VIRTIO };
/* Where the interrupt controllers and the PIT live: AUTO picks KERNEL when the backend has them
 * (HAV_CAP_IRQCHIP and HAV_CAP_PIT), else USER (revirter's own models, src/dev). */
enum vmm_irqchip { VMM_IRQCHIP_AUTO, VMM_IRQCHIP_KERNEL, VMM_IRQCHIP_USER };

struct vmm_config {
    const char *kernel;
    const char *initrd;  /* NULL: none */
    const char *cmdline; /* NULL: the default */
    unsigned cpus;
    uint64_t memory; /* bytes */
    enum vmm_on_reboot on_reboot;
    bool debug_exit;
    const char *hav; /* backend name, NULL for auto */
    enum vmm_irqchip irqchip;
    const char *serial2; /* COM2's output file (truncated at start), NULL: no COM2 */
    /* virtio devices on PCI, in command-line order */
    struct virtio_blk_config disks[VMM_MAX_DISKS];
    unsigned ndisks;
    struct virtio_net_config nics[VMM_MAX_NICS];
    unsigned nnics;
    bool rng;
    enum vmm_console console;
    bool has_vsock;
    struct virtio_vsock_config vsock;
    /* Storage for strings cut out of option lists (e.g. the path in "--disk PATH,ro"). */
    char strings[4096];
    size_t strings_used;
};

#define VMM_DEFAULT_CMDLINE "console=ttyS0 panic=-1"
#define VMM_DEFAULT_CMDLINE_HVC "console=hvc0 panic=-1" /* with --console virtio */

#endif
