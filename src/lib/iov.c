/* SPDX-License-Identifier: MIT */
/* Segment lists read and written as one stream of bytes. */
#include "iov.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static size_t copy(const struct iovec *iov, unsigned n, size_t off, uint8_t *buf, size_t len,
                   bool to_iov)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        size_t seg = iov[i].iov_len;
        if (off >= seg) {
            off -= seg;
            continue;
        }
        size_t k = seg - off < len - done ? seg - off : len - done;
        uint8_t *p = (uint8_t *)iov[i].iov_base + off;
        if (to_iov)
            memcpy(p, buf + done, k);
        else
            memcpy(buf + done, p, k);
        done += k;
        off = 0;
    }
    return done;
}

size_t iov_read(const struct iovec *iov, unsigned n, size_t off, void *dst, size_t len)
{
    return copy(iov, n, off, dst, len, false);
}

size_t iov_write(const struct iovec *iov, unsigned n, size_t off, const void *src, size_t len)
{
    /* Writing to the segments, copy only reads from buf. */
    return copy(iov, n, off, (uint8_t *)src, len, true);
}

unsigned iov_slice(const struct iovec *iov, unsigned n, size_t off, size_t len, struct iovec *out)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n && len; i++) {
        size_t seg = iov[i].iov_len;
        if (off >= seg) {
            off -= seg;
            continue;
        }
        size_t take = seg - off < len ? seg - off : len;
        out[k].iov_base = (uint8_t *)iov[i].iov_base + off;
        out[k].iov_len = take;
        k++;
        len -= take;
        off = 0;
    }
    return k;
}
