/* SPDX-License-Identifier: MIT */
/* Address buses (port I/O and MMIO): devices register ranges, vCPU exits are dispatched here. */
#ifndef REVIRT_CORE_BUS_H
#define REVIRT_CORE_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Called for a guest access at offset inside the device's range. For a read the device fills
 * data[0..len); for a write it consumes it. Runs on the vCPU thread that exited. */
typedef void (*bus_access_fn)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
                              bool write);

struct bus_range {
    uint64_t base, size;
    bus_access_fn access;
    void *opaque;
    const char *name;
};

/* Ranges kept sorted by base; lookups take a read lock so PCI BARs may move at run time. */
struct bus {
    const char *name;
    struct bus_range *ranges;
    unsigned count, cap;
    pthread_rwlock_t lock;
};

void bus_init(struct bus *bus, const char *name);
void bus_free(struct bus *bus);
/* -EINVAL for an empty or wrapping range, -EEXIST (with the clashing name in *clash if given)
 * when it overlaps a registered one. */
__attribute__((warn_unused_result)) int bus_register(struct bus *bus, uint64_t base, uint64_t size,
                                                     bus_access_fn access, void *opaque,
                                                     const char *name);
/* Remove the range registered at base for opaque; -ENOENT if none. */
int bus_unregister(struct bus *bus, uint64_t base, void *opaque);
/* Deliver an access. Returns false when no device claims addr..addr+len-1; a read is then
 * answered with all ones, as on real buses. */
bool bus_dispatch(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool write);

#endif
