/* SPDX-License-Identifier: MIT */
/* Segment lists (struct iovec) read and written as one stream of bytes: a virtqueue chain's
 * buffers, whose layout the driver chooses, so a field may start in any segment and span several.
 */
#ifndef REVIRT_LIB_IOV_H
#define REVIRT_LIB_IOV_H

#include <stddef.h>
#include <sys/uio.h>

/* Copy bytes [off, off + len) of iov[0..n) to dst; returns how many there were (fewer when the
 * segments end first). */
size_t iov_read(const struct iovec *iov, unsigned n, size_t off, void *dst, size_t len);
/* Copy src[0..len) to bytes [off, off + len) of iov[0..n); returns how many fitted. */
size_t iov_write(const struct iovec *iov, unsigned n, size_t off, const void *src, size_t len);
/* Point out[] at bytes [off, off + len) of iov[0..n) (SIZE_MAX: to the end), for a readv or
 * writev; out has room for n. Returns how many segments it used; empty ones are left out. */
unsigned iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len, struct iovec *out);

#endif
