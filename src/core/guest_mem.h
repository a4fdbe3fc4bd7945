/* SPDX-License-Identifier: MIT */
/* Guest-physical memory as the VMM sees it: the one place guest addresses are bounds-checked. */
#ifndef REVIRT_CORE_GUEST_MEM_H
#define REVIRT_CORE_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 8

struct guest_mem_region {
    uint64_t gpa;
    uint64_t size;
    uint8_t *host;
};

/* A fixed set of RAM regions, filled at start-up and read-only afterwards, so vCPU and device
 * threads may use it without locks. */
struct guest_mem {
    struct guest_mem_region regions[GUEST_MEM_MAX_REGIONS];
    unsigned count;
};

/* Add host memory at gpa. -EINVAL for an empty or wrapping range, -EEXIST for an overlap,
 * -ENOSPC when full. */
__attribute__((warn_unused_result)) int guest_mem_add(struct guest_mem *m, uint64_t gpa, void *host,
                                                      uint64_t size);

/* Host pointer to [gpa, gpa + len) if that whole range lies in one region, else NULL. Every
 * guest-provided address and length goes through here (or the helpers below); len 0 is valid
 * inside a region. Overflow of gpa + len is a miss, never a wrap. */
void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* Copy to / from the guest; -EFAULT if any byte is outside guest RAM (nothing is copied then). */
__attribute__((warn_unused_result)) int guest_mem_read(const struct guest_mem *m, uint64_t gpa,
                                                       void *dst, uint64_t len);
__attribute__((warn_unused_result)) int guest_mem_write(const struct guest_mem *m, uint64_t gpa,
                                                        const void *src, uint64_t len);

/* Highest guest-physical address + 1 of any region (0 when empty). */
uint64_t guest_mem_end(const struct guest_mem *m);

#endif
