/* SPDX-License-Identifier: MIT */
/* A bounds-checked reader for the few ELF parts kernels need: headers, notes, PT_LOAD. */
#include "boot_internal.h"

#include <errno.h>
#include <string.h>

/* Offsets and sizes from the System V gABI ("ELF Header", "Program Header", "Sections",
 * "Note Section"), for ELFCLASS32 and ELFCLASS64 little-endian files. */
#define EI_CLASS 4
#define EI_DATA 5
#define EI_VERSION 6
#define ELFCLASS32 1
#define ELFCLASS64 2
#define ELFDATA2LSB 1
#define ET_EXEC 2
#define EM_386 3
#define EM_X86_64 62
#define EHDR32_SIZE 52u
#define EHDR64_SIZE 64u
#define PHDR32_SIZE 32u
#define PHDR64_SIZE 56u
#define SHDR32_SIZE 40u
#define SHDR64_SIZE 64u
#define PN_XNUM 0xffffu
#define NHDR_SIZE 12u

bool boot_elf_is_elf(const uint8_t *img, uint64_t size)
{
    return img && size >= 4 && memcmp(img, "\177ELF", 4) == 0;
}

/* A table of num entries of entsize bytes at off lies inside the file. */
static bool table_fits(uint64_t size, uint64_t off, uint64_t num, uint64_t entsize)
{
    /* num and entsize are at most 0xffff each, so the product cannot overflow. */
    return off <= size && num * entsize <= size - off;
}

int boot_elf_open(struct boot_ctx *ctx, const char *who, struct boot_elf *elf, const uint8_t *img,
                  uint64_t size)
{
    memset(elf, 0, sizeof(*elf));
    if (!boot_elf_is_elf(img, size))
        return boot_fail(ctx, -ENOEXEC, "%s: no ELF magic", who);
    if (size < EI_VERSION + 1)
        return boot_fail(ctx, -ENOEXEC, "%s: truncated ELF identification", who);
    if (img[EI_CLASS] != ELFCLASS32 && img[EI_CLASS] != ELFCLASS64)
        return boot_fail(ctx, -ENOEXEC, "%s: ELF class %u is neither 32 nor 64-bit", who,
                         img[EI_CLASS]);
    elf->is64 = img[EI_CLASS] == ELFCLASS64;
    const uint64_t ehsize = elf->is64 ? EHDR64_SIZE : EHDR32_SIZE;
    if (size < ehsize)
        return boot_fail(ctx, -ENOEXEC, "%s: truncated: %llu bytes, the ELF header needs %llu", who,
                         (unsigned long long)size, (unsigned long long)ehsize);
    if (img[EI_DATA] != ELFDATA2LSB)
        return boot_fail(ctx, -ENOEXEC, "%s: ELF is not little-endian", who);
    if (img[EI_VERSION] != 1 || le_get32(img + 20) != 1)
        return boot_fail(ctx, -ENOEXEC, "%s: ELF version is not 1", who);
    uint16_t type = le_get16(img + 16);
    elf->machine = le_get16(img + 18);
    if (type != ET_EXEC)
        return boot_fail(ctx, -ENOEXEC, "%s: ELF type %u is not an executable (ET_EXEC)", who,
                         type);
    if (elf->machine != EM_X86_64 && elf->machine != EM_386)
        return boot_fail(ctx, -ENOTSUP, "%s: ELF machine %u is not x86", who, elf->machine);

    elf->img = img;
    elf->size = size;
    if (elf->is64) {
        elf->entry = le_get64(img + 24);
        elf->phoff = le_get64(img + 32);
        elf->shoff = le_get64(img + 40);
        elf->phentsize = le_get16(img + 54);
        elf->phnum = le_get16(img + 56);
        elf->shentsize = le_get16(img + 58);
        elf->shnum = le_get16(img + 60);
    } else {
        elf->entry = le_get32(img + 24);
        elf->phoff = le_get32(img + 28);
        elf->shoff = le_get32(img + 32);
        elf->phentsize = le_get16(img + 42);
        elf->phnum = le_get16(img + 44);
        elf->shentsize = le_get16(img + 46);
        elf->shnum = le_get16(img + 48);
    }

    /* PN_XNUM would move the real count into section 0; no kernel needs 65535 segments. */
    if (elf->phnum == 0 || elf->phnum == PN_XNUM)
        return boot_fail(ctx, -ENOEXEC, "%s: ELF has %u program headers", who, elf->phnum);
    if (elf->phentsize < (elf->is64 ? PHDR64_SIZE : PHDR32_SIZE))
        return boot_fail(ctx, -ENOEXEC, "%s: ELF e_phentsize %u is too small", who, elf->phentsize);
    if (!table_fits(size, elf->phoff, elf->phnum, elf->phentsize))
        return boot_fail(ctx, -ENOEXEC,
                         "%s: truncated: %u program headers at 0x%llx run past the %llu-byte file",
                         who, elf->phnum, (unsigned long long)elf->phoff, (unsigned long long)size);
    /* Section headers are optional (only consulted for notes); a table that does not fit is
     * treated as absent rather than trusted. */
    if (elf->shoff == 0 || elf->shentsize < (elf->is64 ? SHDR64_SIZE : SHDR32_SIZE) ||
        !table_fits(size, elf->shoff, elf->shnum, elf->shentsize))
        elf->shnum = 0;
    return 0;
}

void boot_elf_phdr(const struct boot_elf *elf, uint32_t i, struct boot_elf_phdr *ph)
{
    const uint8_t *p = elf->img + elf->phoff + (uint64_t)i * elf->phentsize;

    if (elf->is64) {
        *ph = (struct boot_elf_phdr){
            .type = le_get32(p),
            .offset = le_get64(p + 8),
            .vaddr = le_get64(p + 16),
            .paddr = le_get64(p + 24),
            .filesz = le_get64(p + 32),
            .memsz = le_get64(p + 40),
            .align = le_get64(p + 48),
        };
    } else {
        *ph = (struct boot_elf_phdr){
            .type = le_get32(p),
            .offset = le_get32(p + 4),
            .vaddr = le_get32(p + 8),
            .paddr = le_get32(p + 12),
            .filesz = le_get32(p + 16),
            .memsz = le_get32(p + 20),
            .align = le_get32(p + 28),
        };
    }
}

/* Search one note area [off, off + len) of the file. align is 4, or 8 when the segment or
 * section says so (the gABI asks 8 for ELF64, but most producers, Linux included, use 4). */
static int scan_notes(struct boot_ctx *ctx, const char *who, const struct boot_elf *elf,
                      uint64_t off, uint64_t len, uint64_t align, const char *name, uint32_t type,
                      const uint8_t **desc, uint32_t *descsz)
{
    const uint64_t name_len = strlen(name) + 1;

    if (off > elf->size || len > elf->size - off)
        return boot_fail(
            ctx, -ENOEXEC, "%s: note area [0x%llx, +0x%llx) runs past the %llu-byte file", who,
            (unsigned long long)off, (unsigned long long)len, (unsigned long long)elf->size);
    const uint8_t *p = elf->img + off;
    uint64_t left = len;
    while (left >= NHDR_SIZE) {
        uint64_t namesz = le_get32(p);
        uint64_t dsz = le_get32(p + 4);
        uint32_t ntype = le_get32(p + 8);
        /* 32-bit sizes padded in 64-bit arithmetic: no overflow is possible. */
        uint64_t name_pad = (namesz + align - 1) & ~(align - 1);
        uint64_t desc_pad = (dsz + align - 1) & ~(align - 1);
        if (name_pad > left - NHDR_SIZE || dsz > left - NHDR_SIZE - name_pad)
            return boot_fail(ctx, -ENOEXEC,
                             "%s: note at 0x%llx (namesz %llu, descsz %llu) runs past its area",
                             who, (unsigned long long)(off + (len - left)),
                             (unsigned long long)namesz, (unsigned long long)dsz);
        if (ntype == type && namesz == name_len && memcmp(p + NHDR_SIZE, name, name_len) == 0) {
            *desc = p + NHDR_SIZE + name_pad;
            *descsz = (uint32_t)dsz;
            return 0;
        }
        /* The last note's descriptor may lack its padding. */
        uint64_t step = NHDR_SIZE + name_pad + desc_pad;
        if (step > left)
            step = left;
        p += step;
        left -= step;
    }
    return -ENOENT;
}

int boot_elf_find_note(struct boot_ctx *ctx, const char *who, const struct boot_elf *elf,
                       const char *name, uint32_t type, const uint8_t **desc, uint32_t *descsz)
{
    bool any_pt_note = false;

    for (uint32_t i = 0; i < elf->phnum; i++) {
        struct boot_elf_phdr ph;
        boot_elf_phdr(elf, i, &ph);
        if (ph.type != BOOT_PT_NOTE)
            continue;
        any_pt_note = true;
        int rc = scan_notes(ctx, who, elf, ph.offset, ph.filesz, ph.align == 8 ? 8 : 4, name, type,
                            desc, descsz);
        if (rc != -ENOENT)
            return rc;
    }
    /* Section headers are the fallback for files whose notes are not in a PT_NOTE. */
    if (any_pt_note)
        return -ENOENT;
    for (uint32_t i = 0; i < elf->shnum; i++) {
        const uint8_t *s = elf->img + elf->shoff + (uint64_t)i * elf->shentsize;
        uint32_t sh_type = le_get32(s + 4);
        if (sh_type != BOOT_SHT_NOTE)
            continue;
        uint64_t off = elf->is64 ? le_get64(s + 24) : le_get32(s + 16);
        uint64_t len = elf->is64 ? le_get64(s + 32) : le_get32(s + 20);
        uint64_t al = elf->is64 ? le_get64(s + 48) : le_get32(s + 32);
        int rc = scan_notes(ctx, who, elf, off, len, al == 8 ? 8 : 4, name, type, desc, descsz);
        if (rc != -ENOENT)
            return rc;
    }
    return -ENOENT;
}

bool boot_elf_paddr_loaded(const struct boot_elf *elf, uint64_t addr)
{
    for (uint32_t i = 0; i < elf->phnum; i++) {
        struct boot_elf_phdr ph;
        boot_elf_phdr(elf, i, &ph);
        /* memsz was checked not to wrap by boot_elf_load. */
        if (ph.type == BOOT_PT_LOAD && addr >= ph.paddr && addr - ph.paddr < ph.memsz)
            return true;
    }
    return false;
}

int boot_elf_load(struct boot_ctx *ctx, const char *who, const struct boot_elf *elf, uint64_t *lo,
                  uint64_t *hi)
{
    const struct boot_config *cfg = ctx->cfg;
    uint64_t min = UINT64_MAX, max = 0;

    /* Check everything first so that a bad segment late in the table stops the load before
     * any byte is written. */
    for (uint32_t i = 0; i < elf->phnum; i++) {
        struct boot_elf_phdr ph;
        boot_elf_phdr(elf, i, &ph);
        if (ph.type != BOOT_PT_LOAD || ph.memsz == 0)
            continue;
        if (ph.filesz > ph.memsz)
            return boot_fail(ctx, -ENOEXEC, "%s: segment %u has p_filesz 0x%llx > p_memsz 0x%llx",
                             who, i, (unsigned long long)ph.filesz, (unsigned long long)ph.memsz);
        if (ph.filesz > UINT64_MAX - ph.offset)
            return boot_fail(ctx, -ENOEXEC,
                             "%s: segment %u: p_offset 0x%llx + p_filesz 0x%llx overflows", who, i,
                             (unsigned long long)ph.offset, (unsigned long long)ph.filesz);
        if (ph.offset + ph.filesz > elf->size)
            return boot_fail(ctx, -ENOEXEC,
                             "%s: truncated: segment %u needs file bytes "
                             "[0x%llx, 0x%llx) but the file has %llu",
                             who, i, (unsigned long long)ph.offset,
                             (unsigned long long)(ph.offset + ph.filesz),
                             (unsigned long long)elf->size);
        if (ph.memsz > UINT64_MAX - ph.paddr)
            return boot_fail(ctx, -ENOEXEC,
                             "%s: segment %u: p_paddr 0x%llx + p_memsz 0x%llx overflows", who, i,
                             (unsigned long long)ph.paddr, (unsigned long long)ph.memsz);
        /* The kernel is entered with paging off, so it must sit below 4 GiB; below 1 MiB is
         * where the loader's own structures and the BIOS area are. */
        if (ph.paddr < BOOT_HIGH_START || ph.paddr + ph.memsz > BOOT_4G)
            return boot_fail(
                ctx, -ENOEXEC, "%s: segment %u at [0x%llx, 0x%llx) is not between 1 MiB and 4 GiB",
                who, i, (unsigned long long)ph.paddr, (unsigned long long)(ph.paddr + ph.memsz));
        if (!boot_e820_is_ram(cfg, ph.paddr, ph.memsz))
            return boot_fail(
                ctx, -ENOMEM, "%s: segment %u at [0x%llx, 0x%llx) is outside guest RAM", who, i,
                (unsigned long long)ph.paddr, (unsigned long long)(ph.paddr + ph.memsz));
        if (ph.paddr < min)
            min = ph.paddr;
        if (ph.paddr + ph.memsz > max)
            max = ph.paddr + ph.memsz;
    }
    if (max == 0)
        return boot_fail(ctx, -ENOEXEC, "%s: ELF has no loadable segment", who);

    for (uint32_t i = 0; i < elf->phnum; i++) {
        struct boot_elf_phdr ph;
        boot_elf_phdr(elf, i, &ph);
        if (ph.type != BOOT_PT_LOAD || ph.memsz == 0)
            continue;
        uint8_t *dst = guest_mem_ptr(cfg->mem, ph.paddr, ph.memsz);
        if (!dst)
            return boot_fail(ctx, -EFAULT, "%s: e820 RAM at 0x%llx is not guest memory", who,
                             (unsigned long long)ph.paddr);
        memcpy(dst, elf->img + ph.offset, ph.filesz);
        memset(dst + ph.filesz, 0, ph.memsz - ph.filesz);
    }
    *lo = min;
    *hi = max;
    return 0;
}
