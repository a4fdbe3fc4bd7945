/* SPDX-License-Identifier: MIT */
/* Boot loader test fixtures: guest RAM laid out like the VMM's, and synthetic kernel images. */
#ifndef REVIRT_TESTS_BOOT_FIXTURE_H
#define REVIRT_TESTS_BOOT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot/boot.h"
#include "lib/le.h" /* le_get16 .. le_put64 for the images' headers */

/* ---------------------------------------------------------------- guest RAM */

/* Guest RAM mapped as the VMM maps it for boot_e820_default: [0, min(ram, 3 GiB)) and the
 * rest at 4 GiB. The host memory is reserved lazily (MAP_NORESERVE), so a 5 GiB guest costs
 * only the pages a test touches. */
struct fx_vm {
    struct guest_mem mem;
    struct boot_e820_entry e820[BOOT_E820_MAX];
    unsigned e820_count;
    uint8_t *low, *high;
    uint64_t low_size, high_size;
};

/* 0 or -errno. */
int fx_vm_create(struct fx_vm *vm, uint64_t ram_size);
void fx_vm_destroy(struct fx_vm *vm);
/* Host pointer to guest [gpa, gpa + len); aborts the test program if it is not RAM. */
uint8_t *fx_gpa(const struct fx_vm *vm, uint64_t gpa, uint64_t len);
/* A config for kernel bytes with no initrd, no cmdline, no RSDP. */
struct boot_config fx_config(const struct fx_vm *vm, const uint8_t *kernel, size_t size);

/* The byte a payload holds at offset i, so tests can check what was copied. */
static inline uint8_t fx_pattern(uint64_t i)
{
    return (uint8_t)(i * 7 + 3);
}

/* A loader entry point: boot_load or one of the per-format ones. */
typedef int (*fx_load_fn)(const struct boot_config *cfg, struct hav_x86_state *st,
                          struct boot_result *res, char *err, size_t err_len);

/* True when rc is 0, or one of the documented errnos with a non-empty message. */
bool fx_clean_result(int rc, const char *err);

/* Load every prefix of img, 0 .. size bytes, each copied into a heap buffer of exactly that
 * size so that a sanitizer sees any read past it. Returns how many results were not clean
 * (see fx_clean_result); *ok gets how many lengths loaded and *first_ok the shortest one that
 * did (size + 1 if none). */
unsigned fx_prefixes(const struct fx_vm *vm, const uint8_t *img, size_t size, fx_load_fn load,
                     size_t *ok, size_t *first_ok);

/* ---------------------------------------------------------------- bzImage */

struct fx_bz {
    uint16_t version;    /* setup header version, 0x020f = 2.15 */
    uint8_t setup_sects; /* the raw field (0 means 4) */
    uint32_t payload;    /* bytes of protected-mode kernel after the setup */
    uint32_t syssize;    /* 0: payload / 16 rounded up */
    uint8_t loadflags;   /* LOADED_HIGH = 1 */
    uint16_t xloadflags; /* XLF_KERNEL_64 = 1, XLF_CAN_BE_LOADED_ABOVE_4G = 2 */
    uint8_t relocatable;
    uint32_t kernel_alignment;
    uint64_t pref_address;
    uint32_t init_size;
    uint32_t cmdline_size;
    uint32_t initrd_addr_max;
    uint32_t trailer; /* bytes after syssize * 16 (like a PE signature) */
};

/* A 2.15, 64-bit, relocatable kernel: 4 setup sectors, 0x1000 payload bytes, pref_address
 * 16 MiB, init_size 4 MiB, alignment 2 MiB, cmdline_size 2047, initrd_addr_max 0x7fffffff. */
struct fx_bz fx_bz_default(void);
/* Build into buf (cap bytes); returns the image size, or 0 if cap is too small. */
size_t fx_bz_build(uint8_t *buf, size_t cap, const struct fx_bz *o);

/* ---------------------------------------------------------------- ELF (PVH, multiboot) */

struct fx_elf {
    bool is64;
    uint16_t machine; /* 62 x86-64, 3 i386 */
    uint16_t type;    /* 2 ET_EXEC */
    uint64_t vaddr, paddr;
    uint64_t filesz, memsz; /* the one PT_LOAD; its file bytes are fx_pattern(0..filesz) */
    uint64_t e_entry;
    /* PVH note: pvh_descsz 0 for none, else 4 or 8 bytes holding pvh_entry. */
    uint32_t pvh_descsz;
    uint64_t pvh_entry;
    bool note_in_section; /* put the note in a SHT_NOTE section only, with no PT_NOTE */
    /* Multiboot header at the start of the PT_LOAD bytes when mb_flags_set. */
    bool multiboot;
    uint32_t mb_flags;
};

/* A 64-bit PVH vmlinux: PT_LOAD of 0x800 file bytes and 0x2000 memory at 1 MiB (paddr) /
 * 0xffffffff81000000 (vaddr), note entry at 1 MiB + 0x100, descsz 8. */
struct fx_elf fx_pvh_default(void);
/* A 32-bit multiboot ELF: PT_LOAD of 0x800 / 0x2000 bytes at 1 MiB, e_entry 1 MiB + 0x40,
 * multiboot header (flags 3) at the start of the segment. */
struct fx_elf fx_mb_elf_default(void);
/* Byte offsets inside a built ELF, for tests that corrupt them. */
#define FX_ELF_PHOFF 64u          /* 64-bit; 52 for 32-bit */
#define FX_ELF_NOTE_OFF 0xc0u     /* the note (PT_NOTE or section) */
#define FX_ELF_PAYLOAD_OFF 0x100u /* PT_LOAD bytes */
size_t fx_elf_build(uint8_t *buf, size_t cap, const struct fx_elf *o);

/* ---------------------------------------------------------------- multiboot a.out kludge */

struct fx_aout {
    uint32_t hdr_off; /* where the header sits in the file */
    uint32_t file_size;
    uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
    uint32_t extra_flags;
};

/* A flat image of 0x1000 bytes with the header at 0x40 loaded at 1 MiB: header_addr 1 MiB +
 * 0x40, load_end_addr 0 (whole file), bss_end_addr 1 MiB + 0x3000, entry 1 MiB + 0x80. */
struct fx_aout fx_aout_default(void);
size_t fx_aout_build(uint8_t *buf, size_t cap, const struct fx_aout *o);

#endif
