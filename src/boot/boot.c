/* SPDX-License-Identifier: MIT */
/* Kernel format detection and dispatch, plus what every loader shares: e820, placement, CPU. */
#include "boot_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int boot_fail(struct boot_ctx *ctx, int errnum, const char *fmt, ...)
{
    if (ctx->err && ctx->err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->err, ctx->err_len, fmt, ap);
        va_end(ap);
    }
    return errnum;
}

/* ---------------------------------------------------------------- e820 */

int boot_e820_default(uint64_t ram_size, struct boot_e820_entry *map, unsigned max)
{
    const uint64_t low_top = ram_size < BOOT_PCI_HOLE_START ? ram_size : BOOT_PCI_HOLE_START;
    const uint64_t high = ram_size - low_top;

    /* Below 2 MiB there would be (almost) no RAM above 1 MiB for a kernel; the top of high RAM
     * (4 GiB + high) must not wrap. */
    if (ram_size < 2 * BOOT_HIGH_START || ram_size % BOOT_PAGE || high > UINT64_MAX - BOOT_4G)
        return -EINVAL;
    unsigned n = high ? 4 : 3;
    if (!map || max < n)
        return -ENOSPC;
    /* The classic PC map: 639 KiB of conventional memory, then the EBDA / VGA / ROM / BIOS
     * range (where ACPI tables are found by scanning), then extended memory up to the PCI
     * hole, and the remainder remapped above 4 GiB. */
    map[0] = (struct boot_e820_entry){0, BOOT_EBDA_START, BOOT_E820_RAM};
    map[1] = (struct boot_e820_entry){BOOT_EBDA_START, BOOT_HIGH_START - BOOT_EBDA_START,
                                      BOOT_E820_RESERVED};
    map[2] = (struct boot_e820_entry){BOOT_HIGH_START, low_top - BOOT_HIGH_START, BOOT_E820_RAM};
    if (high)
        map[3] = (struct boot_e820_entry){BOOT_4G, high, BOOT_E820_RAM};
    return (int)n;
}

bool boot_e820_is_ram(const struct boot_config *cfg, uint64_t addr, uint64_t len)
{
    if (len > UINT64_MAX - addr)
        return false;
    const uint64_t end = addr + len;
    uint64_t cur = addr;

    /* Walk from entry to entry so that adjacent RAM entries count as one range; cur strictly
     * grows, so this ends after at most e820_count rounds. */
    for (;;) {
        uint64_t next = cur;
        for (unsigned i = 0; i < cfg->e820_count; i++) {
            const struct boot_e820_entry *e = &cfg->e820[i];
            uint64_t e_end = e->addr + e->size; /* checked not to wrap in boot_begin */
            if (e->type != BOOT_E820_RAM)
                continue;
            if (len == 0 && e->addr <= cur && cur <= e_end)
                return true;
            if (e->addr <= cur && cur < e_end && e_end > next)
                next = e_end;
        }
        if (next == cur)
            return false;
        cur = next;
        if (cur >= end)
            return true;
    }
}

uint64_t boot_place_high(const struct boot_config *cfg, uint64_t size, uint64_t floor,
                         uint64_t limit, const struct boot_range *avoid, unsigned navoid)
{
    uint64_t best = 0;

    if (size == 0)
        return 0;
    for (unsigned i = 0; i < cfg->e820_count; i++) {
        const struct boot_e820_entry *e = &cfg->e820[i];
        if (e->type != BOOT_E820_RAM)
            continue;
        uint64_t lo = e->addr;
        if (lo < BOOT_HIGH_START)
            lo = BOOT_HIGH_START;
        if (lo < floor)
            lo = floor;
        uint64_t hi = e->addr + e->size;
        if (hi > limit)
            hi = limit;
        /* Each retry lowers hi to the start of a range that overlapped, below which that range
         * cannot overlap again: at most navoid + 1 rounds. */
        for (;;) {
            if (hi < lo || hi - lo < size)
                break;
            uint64_t a = (hi - size) & ~(BOOT_PAGE - 1);
            if (a < lo)
                break;
            bool clash = false;
            for (unsigned j = 0; j < navoid; j++) {
                if (a < avoid[j].end && avoid[j].start < a + size) {
                    hi = avoid[j].start;
                    clash = true;
                    break;
                }
            }
            if (!clash) {
                if (a > best)
                    best = a;
                break;
            }
        }
    }
    return best;
}

/* ---------------------------------------------------------------- common steps */

int boot_begin(struct boot_ctx *ctx, const struct boot_config *cfg, char *err, size_t err_len)
{
    ctx->cfg = cfg;
    ctx->err = err;
    ctx->err_len = err_len;
    if (err && err_len)
        err[0] = '\0';

    if (!cfg->mem)
        return boot_fail(ctx, -EINVAL, "boot: no guest memory");
    if (!cfg->kernel && cfg->kernel_size)
        return boot_fail(ctx, -EINVAL, "boot: kernel size %zu but no kernel", cfg->kernel_size);
    if (!cfg->initrd && cfg->initrd_size)
        return boot_fail(ctx, -EINVAL, "boot: initrd size %zu but no initrd", cfg->initrd_size);
    if (!cfg->e820 || cfg->e820_count == 0)
        return boot_fail(ctx, -EINVAL, "e820: empty memory map");
    if (cfg->e820_count > BOOT_E820_MAX)
        return boot_fail(ctx, -EINVAL, "e820: %u entries, at most %u can be passed",
                         cfg->e820_count, BOOT_E820_MAX);
    for (unsigned i = 0; i < cfg->e820_count; i++) {
        const struct boot_e820_entry *e = &cfg->e820[i];
        if (e->size == 0 || e->size > UINT64_MAX - e->addr)
            return boot_fail(ctx, -EINVAL, "e820: entry %u [0x%llx + 0x%llx) is empty or wraps", i,
                             (unsigned long long)e->addr, (unsigned long long)e->size);
    }
    if (!boot_e820_is_ram(cfg, BOOT_LOW_START, BOOT_LOW_END - BOOT_LOW_START))
        return boot_fail(ctx, -EINVAL, "e820: [0x%llx, 0x%llx) must be RAM for boot structures",
                         BOOT_LOW_START, BOOT_LOW_END);
    if (cfg->kernel_size == 0)
        return boot_fail(ctx, -ENOEXEC, "kernel: empty file");

    /* Start from a clean low area so that nothing left from an earlier load (or garbage)
     * reads as a boot structure; the zero page must start all-zero (Linux boot protocol,
     * "64-bit boot protocol"), as must hvm_start_info's reserved fields. */
    uint8_t *low = guest_mem_ptr(cfg->mem, BOOT_LOW_START, BOOT_LOW_END - BOOT_LOW_START);
    if (!low)
        return boot_fail(ctx, -EFAULT, "boot: e820 RAM [0x%llx, 0x%llx) is not guest memory",
                         BOOT_LOW_START, BOOT_LOW_END);
    memset(low, 0, BOOT_LOW_END - BOOT_LOW_START);
    return 0;
}

int boot_put_cmdline(struct boot_ctx *ctx, const char *who, uint64_t max)
{
    const char *s = ctx->cfg->cmdline ? ctx->cfg->cmdline : "";
    uint64_t len = strlen(s);

    if (len > max)
        return boot_fail(ctx, -E2BIG, "%s: command line is %llu bytes, the kernel accepts %llu",
                         who, (unsigned long long)len, (unsigned long long)max);
    if (len >= BOOT_CMDLINE_MAX)
        return boot_fail(ctx, -E2BIG, "%s: command line is %llu bytes, revirter passes %llu", who,
                         (unsigned long long)len, BOOT_CMDLINE_MAX - 1);
    if (guest_mem_write(ctx->cfg->mem, BOOT_CMDLINE_ADDR, s, len + 1))
        return boot_fail(ctx, -EFAULT, "%s: cannot write the command line", who);
    return 0;
}

int boot_put_initrd(struct boot_ctx *ctx, const char *who, uint64_t limit,
                    const struct boot_range *avoid, unsigned navoid, uint64_t *addr)
{
    const struct boot_config *cfg = ctx->cfg;

    *addr = 0;
    if (!cfg->initrd || cfg->initrd_size == 0)
        return 0;
    /* As high as possible, the convention every Linux boot loader follows (boot protocol,
     * "initrd_addr_max"): the kernel's own early allocations grow up from its image. */
    uint64_t a = boot_place_high(cfg, cfg->initrd_size, 0, limit, avoid, navoid);
    if (!a)
        return boot_fail(ctx, -ENOMEM,
                         "%s: initrd of %zu bytes does not fit in guest RAM below 0x%llx", who,
                         cfg->initrd_size, (unsigned long long)limit);
    if (guest_mem_write(cfg->mem, a, cfg->initrd, cfg->initrd_size))
        return boot_fail(ctx, -EFAULT, "%s: e820 RAM at 0x%llx is not guest memory", who,
                         (unsigned long long)a);
    *addr = a;
    return 0;
}

/* ---------------------------------------------------------------- entry state */

/* Descriptor fields (Intel SDM vol. 3, 3.4.5 "Segment Descriptors"). */
#define DESC_CODE 0x9bu /* present, DPL 0, code, execute/read, accessed */
#define DESC_DATA 0x93u /* present, DPL 0, data, read/write, accessed */
#define DESC_TSS 0x8bu  /* present, DPL 0, system, 32/64-bit TSS busy */
#define DESC_G 0x8u
#define DESC_DB 0x4u
#define DESC_L 0x2u

static uint64_t gdt_entry(uint8_t access, uint8_t flags, uint32_t base, uint32_t limit)
{
    return (uint64_t)(limit & 0xffff) | (uint64_t)(base & 0xffffff) << 16 | (uint64_t)access << 40 |
           (uint64_t)((limit >> 16) & 0xf) << 48 | (uint64_t)(flags & 0xf) << 52 |
           (uint64_t)(base >> 24) << 56;
}

/* The cached part of a segment register matching gdt_entry(access, flags, base, limit). */
static struct hav_x86_segment seg_cache(uint16_t sel, uint8_t access, uint8_t flags, uint32_t base,
                                        uint32_t limit)
{
    return (struct hav_x86_segment){
        .base = base,
        .limit = (flags & DESC_G) ? (limit << 12 | 0xfff) : limit,
        .selector = sel,
        .type = access & 0xf,
        .s = (access >> 4) & 1,
        .dpl = (access >> 5) & 3,
        .present = (access >> 7) & 1,
        .avl = 0,
        .l = (flags & DESC_L) ? 1 : 0,
        .db = (flags & DESC_DB) ? 1 : 0,
        .g = (flags & DESC_G) ? 1 : 0,
    };
}

#define CR0_PE 0x1ull
#define CR0_ET 0x10ull
#define CR0_PG 0x80000000ull
#define CR4_PAE 0x20ull
#define EFER_LME 0x100ull
#define EFER_LMA 0x400ull
#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_PS 0x80ull

static int write_page_tables(struct boot_ctx *ctx)
{
    const struct guest_mem *mem = ctx->cfg->mem;
    uint8_t *pml4 = guest_mem_ptr(mem, BOOT_PML4_ADDR, BOOT_PAGE);
    uint8_t *pdpt = guest_mem_ptr(mem, BOOT_PDPT_ADDR, BOOT_PAGE);
    uint8_t *pd = guest_mem_ptr(mem, BOOT_PD_ADDR, BOOT_PD_COUNT * BOOT_PAGE);

    if (!pml4 || !pdpt || !pd)
        return boot_fail(ctx, -EFAULT, "boot: page tables are not in guest memory");
    /* Identity map [0, 4 GiB) with 2 MiB pages: the 64-bit Linux entry needs the kernel's
     * init_size range, the zero page and the command line identity mapped (boot protocol,
     * "64-bit Boot Protocol"); all of them are below 4 GiB here. 2 MiB pages need no CPUID
     * feature, unlike 1 GiB pages. */
    memset(pml4, 0, BOOT_PAGE);
    memset(pdpt, 0, BOOT_PAGE);
    le_put64(pml4, BOOT_PDPT_ADDR | PTE_P | PTE_RW);
    for (unsigned i = 0; i < BOOT_PD_COUNT; i++) {
        le_put64(pdpt + 8 * i, (BOOT_PD_ADDR + i * BOOT_PAGE) | PTE_P | PTE_RW);
        for (unsigned j = 0; j < 512; j++) {
            uint64_t addr = ((uint64_t)i * 512 + j) << 21;
            le_put64(pd + i * BOOT_PAGE + 8 * j, addr | PTE_P | PTE_RW | PTE_PS);
        }
    }
    return 0;
}

int boot_setup_cpu(struct boot_ctx *ctx, bool long_mode, uint64_t rip, struct hav_x86_state *st)
{
    const uint8_t code_flags = long_mode ? (DESC_G | DESC_L) : (DESC_G | DESC_DB);
    const uint8_t data_flags = DESC_G | DESC_DB;
    uint8_t gdt[5 * 8];

    /* Flat 4 GiB segments at the selectors the Linux boot protocol names (__BOOT_CS 0x10,
     * __BOOT_DS 0x18), and a TSS for TR: VMX refuses to enter without a usable TR. PVH asks
     * for a 32-bit TSS with base 0 and limit 0x67 (Xen docs/misc/pvh.pandoc), so all formats
     * get that; nothing uses it before the kernel loads its own. */
    memset(gdt, 0, sizeof(gdt));
    le_put64(gdt + BOOT_SEL_CODE, gdt_entry(DESC_CODE, code_flags, 0, 0xfffff));
    le_put64(gdt + BOOT_SEL_DATA, gdt_entry(DESC_DATA, data_flags, 0, 0xfffff));
    le_put64(gdt + BOOT_SEL_TSS, gdt_entry(DESC_TSS, 0, 0, 0x67));
    if (guest_mem_write(ctx->cfg->mem, BOOT_GDT_ADDR, gdt, sizeof(gdt)))
        return boot_fail(ctx, -EFAULT, "boot: GDT is not in guest memory");
    if (long_mode) {
        int rc = write_page_tables(ctx);
        if (rc)
            return rc;
    }

    memset(&st->gprs, 0, sizeof(st->gprs));
    memset(&st->segs, 0, sizeof(st->segs));
    memset(&st->crs, 0, sizeof(st->crs));

    st->gprs.rip = rip;
    st->gprs.rflags = 0x2; /* bit 1 is reserved as one; IF clear as every protocol demands */
    st->gprs.rsp = BOOT_STACK_TOP;

    struct hav_x86_segment data = seg_cache(BOOT_SEL_DATA, DESC_DATA, data_flags, 0, 0xfffff);
    st->segs.cs = seg_cache(BOOT_SEL_CODE, DESC_CODE, code_flags, 0, 0xfffff);
    st->segs.ds = data;
    st->segs.es = data;
    st->segs.fs = data;
    st->segs.gs = data;
    st->segs.ss = data;
    st->segs.tr = seg_cache(BOOT_SEL_TSS, DESC_TSS, 0, 0, 0x67);
    st->segs.ldtr = (struct hav_x86_segment){.type = 0x2, .unusable = 1};
    st->segs.gdt = (struct hav_x86_table){.base = BOOT_GDT_ADDR, .limit = sizeof(gdt) - 1};
    /* No IDT: interrupts are off and an exception this early should stop the VM (triple
     * fault -> HAV_EXIT_SHUTDOWN) rather than run a handler that is not there. */
    st->segs.idt = (struct hav_x86_table){.base = 0, .limit = 0};

    st->crs.apic_base = BOOT_APIC_BASE;
    if (long_mode) {
        st->crs.cr0 = CR0_PE | CR0_ET | CR0_PG;
        st->crs.cr3 = BOOT_PML4_ADDR;
        st->crs.cr4 = CR4_PAE;
        st->crs.efer = EFER_LME | EFER_LMA;
    } else {
        /* PVH: "cr0: bit 0 (PE) must be set. All the other writeable bits are cleared", cr4
         * all clear; multiboot and the 32-bit Linux entry only need PG clear. ET reads as one
         * on every x86-64 CPU. */
        st->crs.cr0 = CR0_PE | CR0_ET;
    }
    return 0;
}

/* ---------------------------------------------------------------- detection */

#define MB_MAGIC 0x1badb002u
#define MB_SEARCH 8192u

/* Multiboot 0.6.96 section 3.1.1: the header lies 32-bit aligned in the first 8192 bytes and
 * magic + flags + checksum == 0. */
long boot_multiboot_find(const uint8_t *k, uint64_t size)
{
    uint64_t end = size < MB_SEARCH ? size : MB_SEARCH;
    for (uint64_t off = 0; end >= 12 && off <= end - 12; off += 4) {
        uint32_t magic = le_get32(k + off);
        uint32_t sum = magic + le_get32(k + off + 4) + le_get32(k + off + 8);
        if (magic == MB_MAGIC && sum == 0)
            return (long)off;
    }
    return -1;
}

static bool has_setup_header(const uint8_t *k, uint64_t size)
{
    return size >= 0x206 && memcmp(k + 0x202, "HdrS", 4) == 0;
}

static bool has_pvh_note(const uint8_t *k, uint64_t size)
{
    struct boot_config none = {0};
    struct boot_ctx ctx = {.cfg = &none};
    struct boot_elf elf;
    const uint8_t *desc;
    uint32_t descsz;

    if (!boot_elf_is_elf(k, size) || boot_elf_open(&ctx, "PVH", &elf, k, size))
        return false;
    return boot_elf_find_note(&ctx, "PVH", &elf, "Xen", 18, &desc, &descsz) == 0;
}

enum boot_format boot_detect(const uint8_t *kernel, size_t kernel_size)
{
    if (!kernel)
        return BOOT_FORMAT_UNKNOWN;
    if (has_setup_header(kernel, kernel_size))
        return BOOT_FORMAT_BZIMAGE;
    /* A PVH note wins over a multiboot header in the same ELF (as in Xen's own binary): it
     * is the interface made for a VMM that has no firmware. */
    if (has_pvh_note(kernel, kernel_size))
        return BOOT_FORMAT_PVH;
    if (boot_multiboot_find(kernel, kernel_size) >= 0)
        return BOOT_FORMAT_MULTIBOOT;
    return BOOT_FORMAT_UNKNOWN;
}

const char *boot_format_name(enum boot_format format)
{
    switch (format) {
    case BOOT_FORMAT_BZIMAGE:
        return "bzImage";
    case BOOT_FORMAT_PVH:
        return "PVH";
    case BOOT_FORMAT_MULTIBOOT:
        return "multiboot";
    case BOOT_FORMAT_UNKNOWN:
        break;
    }
    return "unknown";
}

int boot_load(const struct boot_config *cfg, struct hav_x86_state *st, struct boot_result *res,
              char *err, size_t err_len)
{
    struct boot_ctx ctx;
    int rc = boot_begin(&ctx, cfg, err, err_len);
    if (rc)
        return rc;

    switch (boot_detect(cfg->kernel, cfg->kernel_size)) {
    case BOOT_FORMAT_BZIMAGE:
        return boot_bzimage_run(&ctx, st, res);
    case BOOT_FORMAT_PVH:
        return boot_pvh_run(&ctx, st, res);
    case BOOT_FORMAT_MULTIBOOT:
        return boot_multiboot_run(&ctx, st, res);
    case BOOT_FORMAT_UNKNOWN:
        break;
    }

    /* Say as precisely as possible why nothing matched. */
    const uint8_t *k = cfg->kernel;
    uint64_t size = cfg->kernel_size;
    if (boot_elf_is_elf(k, size)) {
        /* Let the PVH loader explain what is wrong with the ELF or its notes. */
        rc = boot_pvh_run(&ctx, st, res);
        if (rc)
            return rc;
        return boot_fail(&ctx, -ENOEXEC, "kernel: ELF without a usable PVH note");
    }
    for (uint64_t off = 0; size >= 4 && off <= size - 4 && off < MB_SEARCH; off += 4)
        if (le_get32(k + off) == MB_MAGIC)
            return boot_fail(&ctx, -ENOEXEC,
                             "multiboot: header at offset 0x%llx has a bad checksum",
                             (unsigned long long)off);
    if (size >= 0x200 && le_get16(k + 0x1fe) == 0xaa55)
        return boot_fail(&ctx, -ENOTSUP,
                         "kernel: boot sector without a \"HdrS\" setup header (zImage, boot "
                         "protocol < 2.00) is not supported");
    return boot_fail(&ctx, -ENOEXEC,
                     "kernel: unknown format: no bzImage setup header, no ELF PVH note, no "
                     "multiboot header in the first 8 KiB (%zu bytes)",
                     cfg->kernel_size);
}

void boot_result_init(struct boot_result *res, const struct boot_config *cfg,
                      enum boot_format format, bool long_mode, uint64_t entry, uint64_t start,
                      uint64_t end, uint64_t initrd)
{
    memset(res, 0, sizeof(*res));
    res->format = format;
    res->mask = HAV_X86_GPRS | HAV_X86_SEGS | HAV_X86_CRS;
    res->long_mode = long_mode;
    res->entry = entry;
    res->kernel_start = start;
    res->kernel_end = end;
    res->initrd_addr = initrd;
    res->initrd_size = initrd ? cfg->initrd_size : 0;
    res->params_addr = BOOT_PARAMS_ADDR;
    res->cmdline_addr = BOOT_CMDLINE_ADDR;
}
