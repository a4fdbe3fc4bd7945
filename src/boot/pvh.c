/* SPDX-License-Identifier: MIT */
/* PVH loader: an ELF vmlinux entered at XEN_ELFNOTE_PHYS32_ENTRY with an hvm_start_info. */
#include "boot_internal.h"

#include <errno.h>
#include <string.h>

/* xen/include/public/elfnote.h: the 32-bit physical entry point, in a note named "Xen". Linux
 * emits it with _ASM_PTR, so its descriptor is 8 bytes in a 64-bit vmlinux, 4 in a 32-bit
 * one. */
#define XEN_ELFNOTE_PHYS32_ENTRY 18u

/* xen/include/public/arch-x86/hvm/start_info.h, version 1 (adds the memory map). */
#define HVM_START_MAGIC 0x336ec578u
#define HVM_START_VERSION 1u
#define SI_MAGIC 0u
#define SI_VERSION 4u
#define SI_NR_MODULES 12u
#define SI_MODLIST_PADDR 16u
#define SI_CMDLINE_PADDR 24u
#define SI_RSDP_PADDR 32u
#define SI_MEMMAP_PADDR 40u
#define SI_MEMMAP_ENTRIES 48u
#define SI_SIZE 56u
#define MOD_PADDR 0u
#define MOD_SIZE 8u
#define MOD_ENTRY_SIZE 32u
#define MEMMAP_ENTRY_SIZE 24u /* addr, size, type, reserved: e820 types are reused */

int boot_pvh_run(struct boot_ctx *ctx, struct hav_x86_state *st, struct boot_result *res)
{
    const struct boot_config *cfg = ctx->cfg;
    struct boot_elf elf;
    int rc;

    rc = boot_elf_open(ctx, "PVH", &elf, cfg->kernel, cfg->kernel_size);
    if (rc)
        return rc;
    const uint8_t *desc;
    uint32_t descsz;
    rc = boot_elf_find_note(ctx, "PVH", &elf, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, &desc, &descsz);
    if (rc == -ENOENT)
        return boot_fail(ctx, -ENOEXEC,
                         "PVH: ELF has no XEN_ELFNOTE_PHYS32_ENTRY note (kernel "
                         "built without CONFIG_PVH?)");
    if (rc)
        return rc;
    uint64_t entry;
    if (descsz == 4)
        entry = le_get32(desc);
    else if (descsz == 8)
        entry = le_get64(desc);
    else
        return boot_fail(ctx, -ENOEXEC,
                         "PVH: PHYS32_ENTRY note has a %u-byte descriptor, expected 4 or 8",
                         descsz);

    uint64_t lo, hi;
    rc = boot_elf_load(ctx, "PVH", &elf, &lo, &hi);
    if (rc)
        return rc;
    /* Entered in 32-bit mode with paging off: the entry is a physical address that must hold
     * loaded code, or the guest would fault before printing a word. */
    if (!boot_elf_paddr_loaded(&elf, entry))
        return boot_fail(ctx, -ENOEXEC, "PVH: entry 0x%llx is not inside a loaded segment",
                         (unsigned long long)entry);

    /* Linux truncates at its COMMAND_LINE_SIZE; PVH itself sets no limit. */
    rc = boot_put_cmdline(ctx, "PVH", BOOT_CMDLINE_MAX - 1);
    if (rc)
        return rc;
    const struct boot_range kernel = {lo, hi};
    uint64_t initrd;
    rc = boot_put_initrd(ctx, "PVH", BOOT_4G, &kernel, 1, &initrd);
    if (rc)
        return rc;

    uint8_t mmap[BOOT_E820_MAX * MEMMAP_ENTRY_SIZE];
    memset(mmap, 0, sizeof(mmap));
    for (unsigned i = 0; i < cfg->e820_count; i++) {
        uint8_t *e = mmap + i * MEMMAP_ENTRY_SIZE;
        le_put64(e, cfg->e820[i].addr);
        le_put64(e + 8, cfg->e820[i].size);
        le_put32(e + 16, cfg->e820[i].type);
    }
    uint8_t mods[MOD_ENTRY_SIZE];
    memset(mods, 0, sizeof(mods));
    le_put64(mods + MOD_PADDR, initrd);
    le_put64(mods + MOD_SIZE, initrd ? cfg->initrd_size : 0);

    uint8_t si[SI_SIZE];
    memset(si, 0, sizeof(si));
    le_put32(si + SI_MAGIC, HVM_START_MAGIC);
    le_put32(si + SI_VERSION, HVM_START_VERSION);
    le_put32(si + SI_NR_MODULES, initrd ? 1 : 0);
    le_put64(si + SI_MODLIST_PADDR, initrd ? BOOT_MODS_ADDR : 0);
    le_put64(si + SI_CMDLINE_PADDR, BOOT_CMDLINE_ADDR);
    le_put64(si + SI_RSDP_PADDR, cfg->rsdp_addr);
    le_put64(si + SI_MEMMAP_PADDR, BOOT_MMAP_ADDR);
    le_put32(si + SI_MEMMAP_ENTRIES, cfg->e820_count);
    if (guest_mem_write(cfg->mem, BOOT_MMAP_ADDR, mmap, cfg->e820_count * MEMMAP_ENTRY_SIZE) ||
        guest_mem_write(cfg->mem, BOOT_MODS_ADDR, mods, sizeof(mods)) ||
        guest_mem_write(cfg->mem, BOOT_PARAMS_ADDR, si, sizeof(si)))
        return boot_fail(ctx, -EFAULT, "PVH: cannot write hvm_start_info");

    /* 32-bit flat protected mode, paging off, EBX = start_info (Xen docs/misc/pvh.pandoc). */
    rc = boot_setup_cpu(ctx, false, entry, st);
    if (rc)
        return rc;
    st->gprs.rbx = BOOT_PARAMS_ADDR;

    boot_result_init(res, cfg, BOOT_FORMAT_PVH, false, entry, lo, hi, initrd);
    return 0;
}

int boot_pvh_load(const struct boot_config *cfg, struct hav_x86_state *st, struct boot_result *res,
                  char *err, size_t err_len)
{
    struct boot_ctx ctx;
    int rc = boot_begin(&ctx, cfg, err, err_len);
    if (rc)
        return rc;
    return boot_pvh_run(&ctx, st, res);
}
