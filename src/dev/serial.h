/* SPDX-License-Identifier: MIT */
/* A 16550A UART on the port-I/O bus: the guest's serial console. */
#ifndef REVIRT_DEV_SERIAL_H
#define REVIRT_DEV_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/bus.h"
#include "core/irq.h"
#include "core/sink.h"

#define SERIAL_COM1_PORT 0x3f8
#define SERIAL_COM1_IRQ 4
#define SERIAL_COM2_PORT 0x2f8
#define SERIAL_COM2_IRQ 3
#define SERIAL_FIFO_SIZE 16

struct serial;

struct serial_config {
    uint16_t port;       /* first of the 8 registers: SERIAL_COM1_PORT for COM1 */
    struct irq_line irq; /* ISA IRQ 4 for COM1, 3 for COM2; driven as a level, see serial.c */
    /* Transmitted bytes go here. What it refuses stays in the transmit FIFO, with LSR THRE and
     * TEMT clear, until its owner calls serial_tx_ready. */
    struct byte_sink out;
    /* Optional: called (on a vCPU thread, no device lock held) when the guest has made room in
     * the receive FIFO after serial_receive turned bytes away, so the input thread may feed
     * more (e.g. by writing an eventfd it polls). */
    void (*rx_ready)(void *opaque);
    void *opaque;
};

/* Register the UART's 8 ports on pio. The device does not own out_fd. -EINVAL, -EEXIST (port
 * clash), -ENOMEM. */
__attribute__((warn_unused_result)) int
serial_create(struct bus *pio, const struct serial_config *cfg, struct serial **out);
/* Feed input bytes as if they arrived on the line. Thread-safe (any thread). Returns how many
 * were taken: the receive FIFO holds SERIAL_FIFO_SIZE bytes (1 with FIFOs off) and bytes that
 * do not fit are refused rather than lost, so the caller keeps them and retries after
 * rx_ready. In loopback mode the line is disconnected and all bytes are taken and dropped. */
size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len);
/* The sink has room again: hand it what waits in the transmit FIFO; once that is empty THRE
 * is set and its interrupt raised again. Thread-safe (any thread, not from inside out.write). */
void serial_tx_ready(struct serial *s);
/* Offer what waits in the transmit FIFO to the sink once more (a sink that waits now, at the
 * end of the VM, takes it all), unregister and free; vCPUs and the input thread must be
 * stopped. NULL is ignored. */
void serial_destroy(struct serial *s);

#endif
