/* SPDX-License-Identifier: MIT */
/* Guest-physical memory accessor: every guest address is checked here, with overflow checks. */
#include "guest_mem.h"

#include <errno.h>
#include <string.h>

int guest_mem_add(struct guest_mem *m, uint64_t gpa, void *host, uint64_t size)
{
    if (size == 0 || gpa + size < gpa || !host)
        return -EINVAL;
    for (unsigned i = 0; i < m->count; i++) {
        const struct guest_mem_region *r = &m->regions[i];
        if (gpa < r->gpa + r->size && r->gpa < gpa + size)
            return -EEXIST;
    }
    if (m->count == GUEST_MEM_MAX_REGIONS)
        return -ENOSPC;
    m->regions[m->count++] = (struct guest_mem_region){.gpa = gpa, .size = size, .host = host};
    return 0;
}

void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < m->count; i++) {
        const struct guest_mem_region *r = &m->regions[i];
        /* Written so that no sum can wrap: offset is in range, then len fits what is left. */
        if (gpa < r->gpa || gpa - r->gpa >= r->size)
            continue;
        uint64_t off = gpa - r->gpa;
        if (len > r->size - off)
            return NULL;
        return r->host + off;
    }
    return NULL;
}

int guest_mem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len)
{
    const void *p = guest_mem_ptr(m, gpa, len);
    if (!p)
        return -EFAULT;
    memcpy(dst, p, len);
    return 0;
}

int guest_mem_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len)
{
    void *p = guest_mem_ptr(m, gpa, len);
    if (!p)
        return -EFAULT;
    memcpy(p, src, len);
    return 0;
}

uint64_t guest_mem_end(const struct guest_mem *m)
{
    uint64_t end = 0;
    for (unsigned i = 0; i < m->count; i++)
        if (m->regions[i].gpa + m->regions[i].size > end)
            end = m->regions[i].gpa + m->regions[i].size;
    return end;
}
