/* SPDX-License-Identifier: MIT */
/* A byte sink: where a device's output goes (a terminal, a file) without the device seeing fds
 * or threads. */
#ifndef REVIRT_CORE_SINK_H
#define REVIRT_CORE_SINK_H

#include <stddef.h>
#include <stdint.h>

struct byte_sink {
    /* Take up to len bytes and return how many were taken. It may be called on a vCPU thread
     * with the device's lock held, so it never waits for the host side and never calls back
     * into the device: taking fewer than len means "full for now", and the sink's owner calls
     * the device's own "room again" entry point (serial_tx_ready, virtio_console_tx_ready)
     * once it can take more. NULL discards everything. */
    size_t (*write)(void *opaque, const uint8_t *buf, size_t len);
    void *opaque;
};

#endif
