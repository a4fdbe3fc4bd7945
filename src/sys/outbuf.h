/* SPDX-License-Identifier: MIT */
/* Output buffer: a bounded byte ring that a thread of its own writes to an fd, so that the
 * producers (devices on vCPU threads) never wait on a slow or stopped reader. */
#ifndef REVIRT_SYS_OUTBUF_H
#define REVIRT_SYS_OUTBUF_H

#include <stddef.h>
#include <stdint.h>

struct outbuf;

/* fd stays the caller's; blocking or not, only the outbuf's thread writes to it. room(opaque)
 * runs on that thread, with no outbuf lock held, when outbuf_write has refused bytes and at
 * least half the ring is free again; it may call outbuf_write. name is the thread's. */
__attribute__((warn_unused_result)) int outbuf_create(const char *name, int fd, size_t capacity,
                                                      void (*room)(void *opaque), void *opaque,
                                                      struct outbuf **out);
/* Copy up to len bytes in and return how many fitted; never waits (until outbuf_finish). Any
 * thread. Once fd has failed for good (a closed pipe, EIO) everything is taken and dropped:
 * nothing would ever read it. */
size_t outbuf_write(struct outbuf *o, const uint8_t *buf, size_t len);
/* outbuf_write taking the outbuf as a void pointer: a struct byte_sink's write. */
size_t outbuf_sink_write(void *o, const uint8_t *buf, size_t len);
/* The producers' end (their vCPUs are stopped): from now on outbuf_write waits for room
 * instead of refusing, so what devices still hold gets out, and room is not called again
 * (outbuf_finish waits for a call in progress). */
void outbuf_finish(struct outbuf *o);
/* Finish, write everything still buffered (waiting for fd as long as it takes), stop the
 * thread and free. NULL is ignored. */
void outbuf_destroy(struct outbuf *o);

#endif
