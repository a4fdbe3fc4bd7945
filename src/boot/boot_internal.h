/* SPDX-License-Identifier: MIT */
/* Helpers shared by the loaders: errors, e820 queries, placement, ELF parsing, entry state. */
#ifndef REVIRT_BOOT_BOOT_INTERNAL_H
#define REVIRT_BOOT_BOOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot.h"
#include "lib/le.h" /* le_get16 .. le_put64 for the images' headers */

#define BOOT_PAGE 0x1000ull

/* One loader call: its inputs and where its error message goes. */
struct boot_ctx {
    const struct boot_config *cfg;
    char *err;
    size_t err_len;
};

/* Format the reason into ctx->err and return errnum (a negative errno). */
__attribute__((format(printf, 3, 4))) int boot_fail(struct boot_ctx *ctx, int errnum,
                                                    const char *fmt, ...);

/* Check cfg (memory, e820 map, low area) and zero the loader's low area. */
HAV_MUST_CHECK int boot_begin(struct boot_ctx *ctx, const struct boot_config *cfg, char *err,
                              size_t err_len);

/* The loaders proper, run after boot_begin succeeded (boot_load calls them directly so the
 * checks and the zeroing happen once). */
HAV_MUST_CHECK int boot_bzimage_run(struct boot_ctx *ctx, struct hav_x86_state *st,
                                    struct boot_result *res);
HAV_MUST_CHECK int boot_pvh_run(struct boot_ctx *ctx, struct hav_x86_state *st,
                                struct boot_result *res);
HAV_MUST_CHECK int boot_multiboot_run(struct boot_ctx *ctx, struct hav_x86_state *st,
                                      struct boot_result *res);

/* Offset of the first valid multiboot v1 header in the first 8 KiB, or -1. */
long boot_multiboot_find(const uint8_t *img, uint64_t size);

/* True when [addr, addr + len) is covered by e820 RAM entries (len 0: addr is in RAM or at the
 * end of an entry). Never wraps. */
bool boot_e820_is_ram(const struct boot_config *cfg, uint64_t addr, uint64_t len);

/* A guest-physical range [start, end) the initrd must not overlap. */
struct boot_range {
    uint64_t start, end;
};

/* Highest page-aligned address A with [A, A + size) inside one e820 RAM entry, at or above
 * BOOT_HIGH_START, at or above floor, ending at or below limit, and overlapping none of avoid.
 * 0 when there is none (0 is never a valid answer: it is below BOOT_HIGH_START). */
uint64_t boot_place_high(const struct boot_config *cfg, uint64_t size, uint64_t floor,
                         uint64_t limit, const struct boot_range *avoid, unsigned navoid);

/* Copy the command line to BOOT_CMDLINE_ADDR. max is the longest string (without NUL) the
 * kernel accepts; the reason names who. */
HAV_MUST_CHECK int boot_put_cmdline(struct boot_ctx *ctx, const char *who, uint64_t max);

/* Copy the initrd (if any) to the highest place below limit that avoids the kernel and fill
 * *addr (0 when there is no initrd). */
HAV_MUST_CHECK int boot_put_initrd(struct boot_ctx *ctx, const char *who, uint64_t limit,
                                   const struct boot_range *avoid, unsigned navoid, uint64_t *addr);

/* Write the GDT (and for long mode the identity page tables) and fill the GPRS, SEGS and CRS
 * groups of *st for a flat entry at rip: 64-bit long mode with paging when long_mode, else
 * 32-bit protected mode with paging off. Other registers are zero, RFLAGS is 0x2 (IF clear),
 * RSP is BOOT_STACK_TOP; the caller then sets the protocol's argument registers. */
HAV_MUST_CHECK int boot_setup_cpu(struct boot_ctx *ctx, bool long_mode, uint64_t rip,
                                  struct hav_x86_state *st);

/* Start *res with what every format reports: format, mask, long mode, entry, kernel range,
 * initrd (none when initrd is 0) and where the parameter block and command line went. */
void boot_result_init(struct boot_result *res, const struct boot_config *cfg,
                      enum boot_format format, bool long_mode, uint64_t entry, uint64_t start,
                      uint64_t end, uint64_t initrd);

/* ---------------------------------------------------------------- ELF (elf.c) */

struct boot_elf {
    const uint8_t *img;
    uint64_t size;
    bool is64;
    uint16_t machine;
    uint64_t entry;
    uint64_t phoff;
    uint32_t phentsize, phnum;
    uint64_t shoff;
    uint32_t shentsize, shnum;
};

struct boot_elf_phdr {
    uint32_t type;
    uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

#define BOOT_PT_LOAD 1u
#define BOOT_PT_NOTE 4u
#define BOOT_SHT_NOTE 7u

/* True when img starts with the ELF magic. */
bool boot_elf_is_elf(const uint8_t *img, uint64_t size);

/* Validate the ELF header and the program header table bounds (class, endianness, x86 machine,
 * ET_EXEC). who prefixes the error message. */
HAV_MUST_CHECK int boot_elf_open(struct boot_ctx *ctx, const char *who, struct boot_elf *elf,
                                 const uint8_t *img, uint64_t size);

/* Program header i (< elf->phnum) of an opened ELF; bounds were checked by boot_elf_open. */
void boot_elf_phdr(const struct boot_elf *elf, uint32_t i, struct boot_elf_phdr *ph);

/* Find the note (name, type) in PT_NOTE segments, else in SHT_NOTE sections. On success
 * *desc / *descsz point into the image. -ENOENT: no such note (no message); -ENOEXEC: a note
 * area is malformed (message set). */
HAV_MUST_CHECK int boot_elf_find_note(struct boot_ctx *ctx, const char *who,
                                      const struct boot_elf *elf, const char *name, uint32_t type,
                                      const uint8_t **desc, uint32_t *descsz);

/* Check every PT_LOAD segment (inside the file, inside e820 RAM, at or above 1 MiB and below
 * 4 GiB for a 32-bit entry), then copy them to p_paddr and zero their bss. *lo / *hi get the
 * hull of the loaded ranges. */
HAV_MUST_CHECK int boot_elf_load(struct boot_ctx *ctx, const char *who, const struct boot_elf *elf,
                                 uint64_t *lo, uint64_t *hi);

/* True when [paddr, paddr + memsz) of some PT_LOAD segment contains addr. */
bool boot_elf_paddr_loaded(const struct boot_elf *elf, uint64_t addr);

#endif
