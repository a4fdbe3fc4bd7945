/* SPDX-License-Identifier: MIT */
/* What the user asked revirter for: one place the CLI (and later the REST API) fills. */
#ifndef REVIRT_VMM_CONFIG_H
#define REVIRT_VMM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define VMM_MAX_CPUS 254u /* xAPIC IDs; the IOAPIC takes the next one */

enum vmm_on_reboot { VMM_REBOOT_EXIT, VMM_REBOOT_RESTART };

struct vmm_config {
    const char *kernel;
    const char *initrd;  /* NULL: none */
    const char *cmdline; /* NULL: the default */
    unsigned cpus;
    uint64_t memory; /* bytes */
    enum vmm_on_reboot on_reboot;
    bool debug_exit;
    const char *hav; /* backend name, NULL for auto */
};

#define VMM_DEFAULT_CMDLINE "console=ttyS0 panic=-1"

#endif
