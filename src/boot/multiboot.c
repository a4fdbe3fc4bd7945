/* SPDX-License-Identifier: MIT */
/* Multiboot v1 loader (Multiboot Specification 0.6.96): ELF or a.out-kludge kernels. */
#include "boot_internal.h"

#include <errno.h>
#include <string.h>

/* Section 3.1: the header. */
#define MB_SEARCH 8192u
#define MB_HDR_FLAGS 4u
#define MB_HDR_HEADER_ADDR 12u /* the five address fields exist when flag bit 16 is set */
#define MB_HDR_LOAD_ADDR 16u
#define MB_HDR_LOAD_END_ADDR 20u
#define MB_HDR_BSS_END_ADDR 24u
#define MB_HDR_ENTRY_ADDR 28u
#define MB_HDR_AOUT_END 32u

#define MB_FLAG_PAGE_ALIGN (1u << 0) /* modules page aligned: always true here */
#define MB_FLAG_MEMORY (1u << 1)     /* mem_* (and mmap): always provided */
#define MB_FLAG_VIDEO (1u << 2)      /* video mode table: no display, so refused */
#define MB_FLAG_AOUT (1u << 16)      /* use the address fields, not the ELF headers */
#define MB_FLAGS_REQUIRED 0xffffu    /* bits 0-15: the loader must fail on any it lacks */

/* Section 3.2: machine state. */
#define MB_BOOTLOADER_MAGIC 0x2badb002u

/* Section 3.3: boot information. */
#define MBI_FLAGS 0u
#define MBI_MEM_LOWER 4u
#define MBI_MEM_UPPER 8u
#define MBI_CMDLINE 16u
#define MBI_MODS_COUNT 20u
#define MBI_MODS_ADDR 24u
#define MBI_MMAP_LENGTH 44u
#define MBI_MMAP_ADDR 48u
#define MBI_BOOT_LOADER_NAME 64u
#define MBI_SIZE 116u /* through the framebuffer fields */
#define MBI_F_MEMORY (1u << 0)
#define MBI_F_CMDLINE (1u << 2)
#define MBI_F_MODS (1u << 3)
#define MBI_F_MMAP (1u << 6)
#define MBI_F_LOADER_NAME (1u << 9)
#define MMAP_ENTRY_SIZE 24u /* size (= 20, not counting itself), base_addr, length, type */
#define MOD_ENTRY_SIZE 16u  /* mod_start, mod_end (exclusive), string, reserved */

/* Where the module list's strings go inside the BOOT_MODS_ADDR page. */
#define MODS_STRING_OFF 0x100u
#define LOADER_NAME_OFF 0x200u
static const char mod_string[] = "initrd";
static const char loader_name[] = "revirter";

/* Load the image by the header's address fields (section 3.1.3, flag bit 16). */
static int load_aout(struct boot_ctx *ctx, uint64_t off, uint64_t *lo, uint64_t *hi,
                     uint64_t *entry)
{
    const struct boot_config *cfg = ctx->cfg;
    const uint8_t *h = cfg->kernel + off;
    const uint64_t size = cfg->kernel_size;
    const uint64_t header_addr = le_get32(h + MB_HDR_HEADER_ADDR);
    const uint64_t load_addr = le_get32(h + MB_HDR_LOAD_ADDR);
    const uint64_t load_end_addr = le_get32(h + MB_HDR_LOAD_END_ADDR);
    const uint64_t bss_end_addr = le_get32(h + MB_HDR_BSS_END_ADDR);
    const uint64_t entry_addr = le_get32(h + MB_HDR_ENTRY_ADDR);

    /* header_addr is where the header itself lands, so the text starts in the file at
     * off - (header_addr - load_addr). */
    if (load_addr > header_addr)
        return boot_fail(ctx, -ENOEXEC, "multiboot: load_addr 0x%llx is above header_addr 0x%llx",
                         (unsigned long long)load_addr, (unsigned long long)header_addr);
    if (header_addr - load_addr > off)
        return boot_fail(ctx, -ENOEXEC,
                         "multiboot: header_addr - load_addr = 0x%llx reaches "
                         "before the start of the file (header at offset 0x%llx)",
                         (unsigned long long)(header_addr - load_addr), (unsigned long long)off);
    const uint64_t file_off = off - (header_addr - load_addr);
    /* load_end_addr 0: the text and data run to the end of the file. */
    if (load_end_addr && load_end_addr <= load_addr)
        return boot_fail(ctx, -ENOEXEC,
                         "multiboot: load_end_addr 0x%llx is not above load_addr 0x%llx",
                         (unsigned long long)load_end_addr, (unsigned long long)load_addr);
    const uint64_t text_len = load_end_addr ? load_end_addr - load_addr : size - file_off;
    if (text_len > size - file_off)
        return boot_fail(ctx, -ENOEXEC,
                         "multiboot: truncated: load_end_addr asks for 0x%llx "
                         "bytes from offset 0x%llx but the file has %llu",
                         (unsigned long long)text_len, (unsigned long long)file_off,
                         (unsigned long long)size);
    const uint64_t load_end = load_addr + text_len;
    /* bss_end_addr 0: no bss. */
    const uint64_t bss_end = bss_end_addr ? bss_end_addr : load_end;
    if (bss_end < load_end)
        return boot_fail(ctx, -ENOEXEC,
                         "multiboot: bss_end_addr 0x%llx is below the end of the "
                         "loaded image 0x%llx",
                         (unsigned long long)bss_end, (unsigned long long)load_end);
    if (load_addr < BOOT_HIGH_START || bss_end > BOOT_4G)
        return boot_fail(ctx, -ENOEXEC,
                         "multiboot: image at [0x%llx, 0x%llx) is not between 1 MiB and 4 GiB",
                         (unsigned long long)load_addr, (unsigned long long)bss_end);
    if (!boot_e820_is_ram(cfg, load_addr, bss_end - load_addr))
        return boot_fail(ctx, -ENOMEM, "multiboot: image at [0x%llx, 0x%llx) is outside guest RAM",
                         (unsigned long long)load_addr, (unsigned long long)bss_end);
    if (entry_addr < load_addr || entry_addr >= load_end)
        return boot_fail(ctx, -ENOEXEC,
                         "multiboot: entry_addr 0x%llx is outside the loaded "
                         "image [0x%llx, 0x%llx)",
                         (unsigned long long)entry_addr, (unsigned long long)load_addr,
                         (unsigned long long)load_end);

    uint8_t *dst = guest_mem_ptr(cfg->mem, load_addr, bss_end - load_addr);
    if (!dst)
        return boot_fail(ctx, -EFAULT, "multiboot: e820 RAM at 0x%llx is not guest memory",
                         (unsigned long long)load_addr);
    memcpy(dst, cfg->kernel + file_off, text_len);
    memset(dst + text_len, 0, bss_end - load_end);
    *lo = load_addr;
    *hi = bss_end;
    *entry = entry_addr;
    return 0;
}

static int load_elf(struct boot_ctx *ctx, uint64_t *lo, uint64_t *hi, uint64_t *entry)
{
    struct boot_elf elf;
    if (!boot_elf_is_elf(ctx->cfg->kernel, ctx->cfg->kernel_size))
        return boot_fail(ctx, -ENOEXEC,
                         "multiboot: header flag bit 16 is clear, so the kernel "
                         "must be ELF, but it has no ELF magic");
    int rc = boot_elf_open(ctx, "multiboot", &elf, ctx->cfg->kernel, ctx->cfg->kernel_size);
    if (rc)
        return rc;
    rc = boot_elf_load(ctx, "multiboot", &elf, lo, hi);
    if (rc)
        return rc;
    /* Segments go to p_paddr; an e_entry given as a virtual address inside a segment is
     * translated by that segment's offset, as GRUB does for kernels linked high. */
    uint64_t e = elf.entry;
    for (uint32_t i = 0; i < elf.phnum; i++) {
        struct boot_elf_phdr ph;
        boot_elf_phdr(&elf, i, &ph);
        if (ph.type == BOOT_PT_LOAD && e >= ph.vaddr && e - ph.vaddr < ph.memsz) {
            e = e - ph.vaddr + ph.paddr;
            break;
        }
    }
    if (!boot_elf_paddr_loaded(&elf, e))
        return boot_fail(ctx, -ENOEXEC,
                         "multiboot: ELF entry 0x%llx is not inside a loaded segment",
                         (unsigned long long)elf.entry);
    *entry = e;
    return 0;
}

/* mem_lower / mem_upper in KiB: RAM from 0 (at most 640 KiB) and RAM contiguous from 1 MiB
 * (section 3.3, "mem_lower" and "mem_upper"). */
static void mem_sizes(const struct boot_config *cfg, uint32_t *lower, uint32_t *upper)
{
    uint64_t lo = 0, up = 0;

    for (unsigned i = 0; i < cfg->e820_count; i++) {
        const struct boot_e820_entry *e = &cfg->e820[i];
        uint64_t end = e->addr + e->size;
        if (e->type != BOOT_E820_RAM)
            continue;
        if (e->addr == 0)
            lo = end < 0xa0000 ? end : 0xa0000;
        if (e->addr <= BOOT_HIGH_START && end > BOOT_HIGH_START)
            up = end - BOOT_HIGH_START;
    }
    *lower = (uint32_t)(lo >> 10);
    *upper = (up >> 10) > UINT32_MAX ? UINT32_MAX : (uint32_t)(up >> 10);
}

int boot_multiboot_run(struct boot_ctx *ctx, struct hav_x86_state *st, struct boot_result *res)
{
    const struct boot_config *cfg = ctx->cfg;
    const uint64_t size = cfg->kernel_size;
    int rc;

    long found = boot_multiboot_find(cfg->kernel, size);
    if (found < 0)
        return boot_fail(ctx, -ENOEXEC,
                         "multiboot: no header with a valid checksum in the first 8 KiB");
    const uint64_t off = (uint64_t)found;
    const uint32_t flags = le_get32(cfg->kernel + off + MB_HDR_FLAGS);
    if (flags & MB_FLAG_VIDEO)
        return boot_fail(ctx, -ENOTSUP,
                         "multiboot: kernel requires video mode information "
                         "(flag bit 2); revirter has no display");
    if (flags & MB_FLAGS_REQUIRED & ~(MB_FLAG_PAGE_ALIGN | MB_FLAG_MEMORY))
        return boot_fail(ctx, -ENOTSUP,
                         "multiboot: header flags 0x%x require features this "
                         "loader does not know (bits 3-15)",
                         flags);

    uint64_t lo = 0, hi = 0, entry = 0;
    if (flags & MB_FLAG_AOUT) {
        /* "The Multiboot header must be contained completely within the first 8192 bytes". */
        uint64_t end = size < MB_SEARCH ? size : MB_SEARCH;
        if (off + MB_HDR_AOUT_END > end)
            return boot_fail(ctx, -ENOEXEC,
                             "multiboot: truncated: the address fields of the "
                             "header at 0x%llx end past byte %llu",
                             (unsigned long long)off, (unsigned long long)end);
        rc = load_aout(ctx, off, &lo, &hi, &entry);
    } else {
        rc = load_elf(ctx, &lo, &hi, &entry);
    }
    if (rc)
        return rc;

    rc = boot_put_cmdline(ctx, "multiboot", BOOT_CMDLINE_MAX - 1);
    if (rc)
        return rc;
    /* Module fields are 32-bit, mod_end included: the initrd ends below 4 GiB, page aligned
     * (flag bit 0). */
    const struct boot_range kernel = {lo, hi};
    uint64_t initrd;
    rc = boot_put_initrd(ctx, "multiboot", BOOT_4G - 1, &kernel, 1, &initrd);
    if (rc)
        return rc;

    uint8_t mmap[BOOT_E820_MAX * MMAP_ENTRY_SIZE];
    memset(mmap, 0, sizeof(mmap));
    for (unsigned i = 0; i < cfg->e820_count; i++) {
        uint8_t *e = mmap + i * MMAP_ENTRY_SIZE;
        le_put32(e, MMAP_ENTRY_SIZE - 4);
        le_put64(e + 4, cfg->e820[i].addr);
        le_put64(e + 12, cfg->e820[i].size);
        le_put32(e + 20, cfg->e820[i].type);
    }
    uint8_t mods[LOADER_NAME_OFF + sizeof(loader_name)];
    memset(mods, 0, sizeof(mods));
    le_put32(mods, (uint32_t)initrd);
    le_put32(mods + 4, initrd ? (uint32_t)(initrd + cfg->initrd_size) : 0);
    le_put32(mods + 8, (uint32_t)(BOOT_MODS_ADDR + MODS_STRING_OFF));
    memcpy(mods + MODS_STRING_OFF, mod_string, sizeof(mod_string));
    memcpy(mods + LOADER_NAME_OFF, loader_name, sizeof(loader_name));

    uint8_t mbi[MBI_SIZE];
    uint32_t mem_lower, mem_upper;
    mem_sizes(cfg, &mem_lower, &mem_upper);
    memset(mbi, 0, sizeof(mbi));
    le_put32(mbi + MBI_FLAGS,
             MBI_F_MEMORY | MBI_F_CMDLINE | MBI_F_MODS | MBI_F_MMAP | MBI_F_LOADER_NAME);
    le_put32(mbi + MBI_MEM_LOWER, mem_lower);
    le_put32(mbi + MBI_MEM_UPPER, mem_upper);
    le_put32(mbi + MBI_CMDLINE, (uint32_t)BOOT_CMDLINE_ADDR);
    le_put32(mbi + MBI_MODS_COUNT, initrd ? 1 : 0);
    le_put32(mbi + MBI_MODS_ADDR, (uint32_t)BOOT_MODS_ADDR);
    le_put32(mbi + MBI_MMAP_LENGTH, cfg->e820_count * MMAP_ENTRY_SIZE);
    le_put32(mbi + MBI_MMAP_ADDR, (uint32_t)BOOT_MMAP_ADDR);
    le_put32(mbi + MBI_BOOT_LOADER_NAME, (uint32_t)(BOOT_MODS_ADDR + LOADER_NAME_OFF));
    if (guest_mem_write(cfg->mem, BOOT_MMAP_ADDR, mmap, cfg->e820_count * MMAP_ENTRY_SIZE) ||
        guest_mem_write(cfg->mem, BOOT_MODS_ADDR, mods, sizeof(mods)) ||
        guest_mem_write(cfg->mem, BOOT_PARAMS_ADDR, mbi, sizeof(mbi)))
        return boot_fail(ctx, -EFAULT, "multiboot: cannot write the boot information");

    /* Section 3.2: EAX = 0x2BADB002, EBX = multiboot_info, flat 32-bit segments, PE on, PG
     * off, IF clear. */
    rc = boot_setup_cpu(ctx, false, entry, st);
    if (rc)
        return rc;
    st->gprs.rax = MB_BOOTLOADER_MAGIC;
    st->gprs.rbx = BOOT_PARAMS_ADDR;

    boot_result_init(res, cfg, BOOT_FORMAT_MULTIBOOT, false, entry, lo, hi, initrd);
    return 0;
}

int boot_multiboot_load(const struct boot_config *cfg, struct hav_x86_state *st,
                        struct boot_result *res, char *err, size_t err_len)
{
    struct boot_ctx ctx;
    int rc = boot_begin(&ctx, cfg, err, err_len);
    if (rc)
        return rc;
    return boot_multiboot_run(&ctx, st, res);
}
