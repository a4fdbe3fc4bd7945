/* SPDX-License-Identifier: MIT */
/* isa-debug-exit: a port a test guest writes to end the VM with a status, as QEMU's device. */
#ifndef REVIRT_DEV_DEBUG_EXIT_H
#define REVIRT_DEV_DEBUG_EXIT_H

#include <stdint.h>

#include "core/bus.h"

#define DEBUG_EXIT_PORT 0xf4

struct debug_exit;

struct debug_exit_config {
    uint16_t port; /* DEBUG_EXIT_PORT by convention */
    uint8_t size;  /* port width in bytes: 1 (QEMU's default), 2 or 4; 0 means 1 */
    /* Called on the writing vCPU thread with (value << 1) | 1, so that a guest can never
     * produce status 0 (success of the VMM itself); a process exit code is status & 0xff. */
    void (*exit)(void *opaque, uint64_t status);
    void *opaque;
};

/* -EINVAL (bad size or no exit callback), -EEXIST, -ENOMEM. */
__attribute__((warn_unused_result)) int
debug_exit_create(struct bus *pio, const struct debug_exit_config *cfg, struct debug_exit **out);
/* Unregister and free; vCPUs must be stopped. NULL is ignored. */
void debug_exit_destroy(struct debug_exit *d);

#endif
