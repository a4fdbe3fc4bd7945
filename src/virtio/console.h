/* SPDX-License-Identifier: MIT */
/* virtio-console (virtio 1.2 §5.3): one port, the guest's hvc0, on the VMM's terminal. */
#ifndef REVIRT_VIRTIO_CONSOLE_H
#define REVIRT_VIRTIO_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "virtio.h"
#include "core/sink.h"

struct virtio_console_config {
    /* Where guest output goes (the terminal). Called on the device's loop thread, or on the
     * thread that stops the device, with no device lock held; what it refuses waits in the
     * guest's ring until virtio_console_tx_ready. */
    struct byte_sink out;
    /* Called (from the device thread) when the guest posted receive buffers after
     * virtio_console_receive took less than offered, so input can flow again. May be NULL. */
    void (*rx_ready)(void *opaque);
    void *opaque;
};

struct virtio_console;

__attribute__((warn_unused_result)) int
virtio_console_create(const struct virtio_console_config *cfg, const struct guest_mem *mem,
                      struct virtio_console **out);
struct virtio_device *virtio_console_device(struct virtio_console *c);
/* Input from the terminal: returns how many bytes the guest had buffers for (0 when the driver
 * is not ready; nothing is lost: the caller keeps the rest until rx_ready). Any thread. */
size_t virtio_console_receive(struct virtio_console *c, const uint8_t *buf, size_t len);
/* The sink has room again: go on with the output it refused. Any thread, not from inside
 * out.write. */
void virtio_console_tx_ready(struct virtio_console *c);
void virtio_console_destroy(struct virtio_console *c);

#endif
