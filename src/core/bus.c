/* SPDX-License-Identifier: MIT */
/* Sorted range table behind the port I/O and MMIO buses. */
#include "bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *bus, const char *name)
{
    memset(bus, 0, sizeof(*bus));
    bus->name = name;
    pthread_rwlock_init(&bus->lock, NULL);
}

void bus_free(struct bus *bus)
{
    free(bus->ranges);
    pthread_rwlock_destroy(&bus->lock);
    bus->ranges = NULL;
    bus->count = bus->cap = 0;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t size, bus_access_fn access, void *opaque,
                 const char *name)
{
    if (size == 0 || base + size - 1 < base || !access)
        return -EINVAL;
    int ret = 0;
    pthread_rwlock_wrlock(&bus->lock);
    unsigned pos = 0;
    while (pos < bus->count && bus->ranges[pos].base < base)
        pos++;
    /* Only the neighbours can overlap in a sorted, non-overlapping table. */
    if ((pos > 0 && bus->ranges[pos - 1].base + bus->ranges[pos - 1].size - 1 >= base) ||
        (pos < bus->count && bus->ranges[pos].base <= base + size - 1)) {
        ret = -EEXIST;
        goto out;
    }
    if (bus->count == bus->cap) {
        unsigned cap = bus->cap ? bus->cap * 2 : 16;
        struct bus_range *r = realloc(bus->ranges, cap * sizeof(*r));
        if (!r) {
            ret = -ENOMEM;
            goto out;
        }
        bus->ranges = r;
        bus->cap = cap;
    }
    memmove(&bus->ranges[pos + 1], &bus->ranges[pos], (bus->count - pos) * sizeof(*bus->ranges));
    bus->ranges[pos] = (struct bus_range){base, size, access, opaque, name};
    bus->count++;
out:
    pthread_rwlock_unlock(&bus->lock);
    return ret;
}

int bus_unregister(struct bus *bus, uint64_t base, void *opaque)
{
    int ret = -ENOENT;
    pthread_rwlock_wrlock(&bus->lock);
    for (unsigned i = 0; i < bus->count; i++) {
        if (bus->ranges[i].base == base && bus->ranges[i].opaque == opaque) {
            memmove(&bus->ranges[i], &bus->ranges[i + 1],
                    (bus->count - i - 1) * sizeof(*bus->ranges));
            bus->count--;
            ret = 0;
            break;
        }
    }
    pthread_rwlock_unlock(&bus->lock);
    return ret;
}

bool bus_dispatch(struct bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool write)
{
    pthread_rwlock_rdlock(&bus->lock);
    unsigned lo = 0, hi = bus->count;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (bus->ranges[mid].base + bus->ranges[mid].size - 1 < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < bus->count) {
        struct bus_range r = bus->ranges[lo];
        uint64_t off = addr - r.base;
        if (addr >= r.base && len <= r.size && off <= r.size - len) {
            pthread_rwlock_unlock(&bus->lock);
            r.access(r.opaque, off, data, len, write);
            return true;
        }
    }
    pthread_rwlock_unlock(&bus->lock);
    if (!write)
        memset(data, 0xff, len);
    return false;
}
