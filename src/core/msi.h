/* SPDX-License-Identifier: MIT */
/* Message-signalled interrupts and guest-write notifiers as devices see them: small tables of
 * callbacks the VMM fills from the HAV API, so PCI and virtio code never sees HAV types. */
#ifndef REVIRT_CORE_MSI_H
#define REVIRT_CORE_MSI_H

#include <stdint.h>

/* MSI vectors backed by eventfds: once bound, an 8-byte write to the fd delivers the message
 * last routed to that vector, from any thread and without the VMM in the path when the backend
 * has native irq notifiers. */
struct msi_ops {
    void *opaque;
    /* Reserve a vector raised by writes to fd; returns its handle (>= 0) or a negative errno. */
    int (*bind)(void *opaque, int fd);
    /* Point the vector at an MSI message (address/data as written by the guest). */
    int (*route)(void *opaque, int handle, uint64_t address, uint32_t data);
    /* Release the vector; fd stays the caller's. */
    void (*unbind)(void *opaque, int handle, int fd);
};

/* MMIO write notifiers: a guest write of len bytes at addr adds 1 to eventfd fd instead of
 * exiting to a device handler (virtio queue notifications). */
struct ioevent_ops {
    void *opaque;
    int (*add)(void *opaque, uint64_t addr, uint32_t len, int fd);
    int (*del)(void *opaque, uint64_t addr, uint32_t len, int fd);
};

#endif
