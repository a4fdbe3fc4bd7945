/* SPDX-License-Identifier: MIT */
/* Little-endian loads and stores on byte arrays, for everything the guest sees. */
#ifndef REVIRT_LIB_LE_H
#define REVIRT_LIB_LE_H

#include <stdint.h>

/* Guest-visible structures (boot protocol headers, ACPI tables, PCI configuration space, virtio
 * headers and configuration, bus accesses) are little-endian whatever the host's byte order.
 * The values are put together byte by byte: that is right on any host and never needs p to be
 * aligned (compilers usually merge it into one load or store). The caller has checked that
 * the bytes are inside its buffer. */

static inline uint16_t le_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t le_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t le_get64(const uint8_t *p)
{
    return (uint64_t)le_get32(p) | (uint64_t)le_get32(p + 4) << 32;
}

static inline void le_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void le_put32(uint8_t *p, uint32_t v)
{
    le_put16(p, (uint16_t)v);
    le_put16(p + 2, (uint16_t)(v >> 16));
}

static inline void le_put64(uint8_t *p, uint64_t v)
{
    le_put32(p, (uint32_t)v);
    le_put32(p + 4, (uint32_t)(v >> 32));
}

/* The value of a len-byte access (a bus access is 1, 2, 4 or 8 bytes); bytes past the eighth
 * do not fit and are ignored. */
static inline uint64_t le_get(const uint8_t *p, uint32_t len)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < len && i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Store the low len bytes of v; bytes past the eighth are written 0. */
static inline void le_put(uint8_t *p, uint32_t len, uint64_t v)
{
    for (uint32_t i = 0; i < len; i++)
        p[i] = i < 8 ? (uint8_t)(v >> (8 * i)) : 0;
}

#endif
