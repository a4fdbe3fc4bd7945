/* SPDX-License-Identifier: MIT */
/* isa-debug-exit compatible port: a guest write ends the VM with status (value << 1) | 1. */
#include "debug_exit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/le.h"

struct debug_exit {
    struct bus *pio;
    struct debug_exit_config cfg;
};

static void debug_exit_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
                              bool write)
{
    struct debug_exit *d = opaque;
    if (!write) {
        memset(data, 0, len); /* nothing to read; answer 0 rather than float the bus */
        return;
    }
    /* The value is the bytes written, little-endian, placed at their offset in the port. */
    uint64_t v = le_get(data, len) << (8 * offset);
    d->cfg.exit(d->cfg.opaque, (v << 1) | 1);
}

int debug_exit_create(struct bus *pio, const struct debug_exit_config *cfg, struct debug_exit **out)
{
    if (!pio || !cfg || !out || !cfg->exit)
        return -EINVAL;
    uint8_t size = cfg->size ? cfg->size : 1;
    if (size != 1 && size != 2 && size != 4)
        return -EINVAL;
    struct debug_exit *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->pio = pio;
    d->cfg = *cfg;
    d->cfg.size = size;
    int ret = bus_register(pio, cfg->port, size, debug_exit_access, d, "debug-exit");
    if (ret) {
        free(d);
        return ret;
    }
    *out = d;
    return 0;
}

void debug_exit_destroy(struct debug_exit *d)
{
    if (!d)
        return;
    bus_unregister(d->pio, d->cfg.port, d);
    free(d);
}
