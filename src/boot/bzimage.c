/* SPDX-License-Identifier: MIT */
/* bzImage loader: Linux x86 boot protocol (Documentation/arch/x86/boot.rst), 64-bit entry. */
#include "boot_internal.h"

#include <errno.h>
#include <string.h>

/*
 * Setup header fields, as offsets in the kernel file. The zero page (struct boot_params)
 * carries the header at the same offsets, which is why one set of names serves both.
 */
#define HDR_START 0x1f1u /* setup_sects: the header proper starts here */
#define HDR_SETUP_SECTS 0x1f1u
#define HDR_SYSSIZE 0x1f4u
#define HDR_JUMP 0x200u /* EB xx: xx + 0x202 is the end of the header */
#define HDR_MAGIC 0x202u
#define HDR_VERSION 0x206u
#define HDR_TYPE_OF_LOADER 0x210u
#define HDR_LOADFLAGS 0x211u
#define HDR_CODE32_START 0x214u
#define HDR_RAMDISK_IMAGE 0x218u
#define HDR_RAMDISK_SIZE 0x21cu
#define HDR_CMD_LINE_PTR 0x228u
#define HDR_INITRD_ADDR_MAX 0x22cu  /* 2.03+ */
#define HDR_KERNEL_ALIGNMENT 0x230u /* 2.05+ */
#define HDR_RELOCATABLE 0x234u      /* 2.05+ */
#define HDR_XLOADFLAGS 0x236u       /* 2.12+ */
#define HDR_CMDLINE_SIZE 0x238u     /* 2.06+ */
#define HDR_SETUP_DATA 0x250u       /* 2.09+ */
#define HDR_PREF_ADDRESS 0x258u     /* 2.10+ */
#define HDR_INIT_SIZE 0x260u        /* 2.10+ */
#define ZP_HDR_END 0x290u           /* boot_params: edd_mbr_sig_buffer follows the header */

/* struct boot_params (arch/x86/include/uapi/asm/bootparam.h, Documentation/arch/x86/
 * zero-page.rst) outside the setup header. */
#define ZP_SIZE 0x1000u
#define ZP_ACPI_RSDP_ADDR 0x070u
#define ZP_EXT_RAMDISK_IMAGE 0x0c0u
#define ZP_EXT_RAMDISK_SIZE 0x0c4u
#define ZP_EXT_CMD_LINE_PTR 0x0c8u
#define ZP_E820_ENTRIES 0x1e8u
#define ZP_E820_TABLE 0x2d0u
#define ZP_E820_ENTRY_SIZE 20u

#define LOADED_HIGH 0x01u
#define XLF_KERNEL_64 0x01u
#define XLF_CAN_BE_LOADED_ABOVE_4G 0x02u

/* Protocol 2.06 is the oldest accepted: it is the first with cmdline_size, so the command line
 * can be checked against what the kernel really accepts rather than guessed at 255 bytes, and
 * it implies initrd_addr_max (2.03) and relocatable_kernel / kernel_alignment (2.05). Linux
 * has spoken 2.06 or newer since 2.6.22 (2007). */
#define MIN_VERSION 0x0206u
#define V_2_10 0x020au /* pref_address, init_size */
#define V_2_12 0x020cu /* xloadflags */
#define V_2_14 0x020eu /* acpi_rsdp_addr in the zero page */

/* initrd_addr_max when the header does not give one (boot protocol, "initrd_addr_max"). */
#define OLD_INITRD_ADDR_MAX 0x37ffffffu

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* Where the kernel goes and what memory it claims: the load address, and up to two ranges the
 * initrd must avoid (the loaded image, and a non-relocatable kernel's run-time range). */
struct bz_place {
    uint64_t load;
    struct boot_range avoid[2];
    unsigned navoid;
};

static bool fits_below_4g(const struct boot_config *cfg, uint64_t addr, uint64_t len)
{
    return addr >= BOOT_HIGH_START && addr <= BOOT_4G && len <= BOOT_4G - addr &&
           boot_e820_is_ram(cfg, addr, len);
}

static int place_kernel(struct boot_ctx *ctx, const uint8_t *k, uint16_t version,
                        uint64_t image_len, struct bz_place *p)
{
    const struct boot_config *cfg = ctx->cfg;
    const bool relocatable = k[HDR_RELOCATABLE] != 0;
    const uint64_t pref = version >= V_2_10 ? le_get64(k + HDR_PREF_ADDRESS) : BOOT_HIGH_START;
    const uint64_t init_size = version >= V_2_10 ? le_get32(k + HDR_INIT_SIZE) : 0;
    /* init_size counts from the kernel's run-time start and covers what it needs before it
     * reads the memory map (boot protocol, "init_size"). */
    const uint64_t need = init_size > image_len ? init_size : image_len;

    if (relocatable) {
        uint64_t align = le_get32(k + HDR_KERNEL_ALIGNMENT);
        if (align == 0 || (align & (align - 1)) || align > (1ull << 30))
            return boot_fail(ctx, -ENOEXEC,
                             "bzImage: kernel_alignment 0x%llx is not a power of two up to 1 GiB",
                             (unsigned long long)align);
        /* "A relocating bootloader should attempt to load at [pref_address]"; if RAM is too
         * small there, any aligned address works, so fall back to the lowest one. */
        uint64_t cand[2] = {0, align_up(BOOT_HIGH_START, align)};
        if (pref <= BOOT_4G)
            cand[0] = align_up(pref < BOOT_HIGH_START ? BOOT_HIGH_START : pref, align);
        for (unsigned i = 0; i < 2; i++) {
            if (cand[i] && fits_below_4g(cfg, cand[i], need)) {
                p->load = cand[i];
                p->avoid[0] = (struct boot_range){p->load, p->load + need};
                p->navoid = 1;
                return 0;
            }
        }
        return boot_fail(ctx, -ENOMEM,
                         "bzImage: kernel needs 0x%llx bytes (image 0x%llx, "
                         "init_size 0x%llx) at 0x%llx, more than guest RAM there below 4 GiB",
                         (unsigned long long)need, (unsigned long long)image_len,
                         (unsigned long long)init_size,
                         (unsigned long long)(cand[0] ? cand[0] : cand[1]));
    }

    /* A non-relocatable bzImage is loaded at 1 MiB ("Loading The Rest of The Kernel") and,
     * from 2.10 on, moves itself to pref_address and runs there. */
    p->load = BOOT_HIGH_START;
    if (!fits_below_4g(cfg, p->load, image_len))
        return boot_fail(ctx, -ENOMEM,
                         "bzImage: kernel image of 0x%llx bytes at 0x%llx does "
                         "not fit guest RAM below 4 GiB",
                         (unsigned long long)image_len, (unsigned long long)p->load);
    p->avoid[0] = (struct boot_range){p->load, p->load + image_len};
    p->navoid = 1;
    if (version >= V_2_10) {
        if (!fits_below_4g(cfg, pref, init_size))
            return boot_fail(ctx, -ENOMEM,
                             "bzImage: non-relocatable kernel runs at "
                             "[0x%llx, +0x%llx), which is not guest RAM between 1 MiB and 4 GiB",
                             (unsigned long long)pref, (unsigned long long)init_size);
        p->avoid[1] = (struct boot_range){pref, pref + init_size};
        p->navoid = 2;
    }
    return 0;
}

static int place_initrd(struct boot_ctx *ctx, const uint8_t *k, uint16_t version,
                        const struct bz_place *p, uint64_t *addr)
{
    const struct boot_config *cfg = ctx->cfg;
    uint32_t max = le_get32(k + HDR_INITRD_ADDR_MAX);
    uint16_t xlf = version >= V_2_12 ? le_get16(k + HDR_XLOADFLAGS) : 0;

    *addr = 0;
    if (!cfg->initrd || cfg->initrd_size == 0)
        return 0;
    if (max == 0)
        max = OLD_INITRD_ADDR_MAX;
    /* initrd_addr_max is the highest address the initrd may occupy, so the limit is one
     * above it; it is a 32-bit field, so the limit is never above 4 GiB. */
    uint64_t limit = (uint64_t)max + 1;
    uint64_t a = boot_place_high(cfg, cfg->initrd_size, 0, limit, p->avoid, p->navoid);
    /* XLF_CAN_BE_LOADED_ABOVE_4G: the kernel reads the high halves from ext_ramdisk_image /
     * ext_ramdisk_size, so RAM above 4 GiB is a fallback when the initrd is too big for the
     * room below initrd_addr_max. */
    if (!a && (xlf & XLF_CAN_BE_LOADED_ABOVE_4G))
        a = boot_place_high(cfg, cfg->initrd_size, BOOT_4G, UINT64_MAX, p->avoid, p->navoid);
    if (!a)
        return boot_fail(ctx, -ENOMEM,
                         "bzImage: initrd of %zu bytes does not fit in guest RAM "
                         "below 0x%llx (initrd_addr_max)%s",
                         cfg->initrd_size, (unsigned long long)limit,
                         (xlf & XLF_CAN_BE_LOADED_ABOVE_4G) ? " nor above 4 GiB" : "");
    if (guest_mem_write(cfg->mem, a, cfg->initrd, cfg->initrd_size))
        return boot_fail(ctx, -EFAULT, "bzImage: e820 RAM at 0x%llx is not guest memory",
                         (unsigned long long)a);
    *addr = a;
    return 0;
}

int boot_bzimage_run(struct boot_ctx *ctx, struct hav_x86_state *st, struct boot_result *res)
{
    const struct boot_config *cfg = ctx->cfg;
    const uint8_t *k = cfg->kernel;
    const uint64_t size = cfg->kernel_size;
    int rc;

    if (size < HDR_VERSION + 2)
        return boot_fail(ctx, -ENOEXEC,
                         "bzImage: truncated: %llu bytes end before the setup "
                         "header version at 0x206",
                         (unsigned long long)size);
    if (memcmp(k + HDR_MAGIC, "HdrS", 4) != 0)
        return boot_fail(ctx, -ENOEXEC, "bzImage: no \"HdrS\" setup header magic at 0x202");
    const uint16_t version = le_get16(k + HDR_VERSION);
    if (version < MIN_VERSION)
        return boot_fail(ctx, -ENOTSUP, "bzImage: setup header version %u.%02u is older than 2.06",
                         version >> 8, version & 0xff);

    /* "The 32-bit (non-real-mode) kernel starts at offset (setup_sects+1)*512 in the kernel
     * file (again, if setup_sects == 0 the real value is 4.)" At least 2 sectors, so every
     * header field up to 0x290 read below lies inside the file once this holds. */
    const unsigned setup_sects = k[HDR_SETUP_SECTS] ? k[HDR_SETUP_SECTS] : 4;
    const uint64_t setup_size = (uint64_t)(setup_sects + 1) * 512;
    if (size < setup_size)
        return boot_fail(ctx, -ENOEXEC,
                         "bzImage: truncated: setup_sects says %u sectors but file has %llu bytes",
                         setup_sects, (unsigned long long)size);
    if (!(k[HDR_LOADFLAGS] & LOADED_HIGH))
        return boot_fail(ctx, -ENOTSUP,
                         "bzImage: loadflags lacks LOADED_HIGH: a zImage "
                         "(loaded at 0x10000) is not supported");

    /* syssize is the protected-mode code in 16-byte units (32 bits wide since 2.04). Files
     * may carry more after it (a PE signature); the whole rest is loaded, as other loaders
     * do. */
    const uint64_t image_len = size - setup_size;
    const uint64_t syssize = le_get32(k + HDR_SYSSIZE);
    if (syssize == 0)
        return boot_fail(ctx, -ENOEXEC, "bzImage: syssize is 0: no protected-mode kernel");
    if (syssize * 16 > image_len)
        return boot_fail(ctx, -ENOEXEC,
                         "bzImage: truncated: syssize says 0x%llx bytes of "
                         "kernel but the file has 0x%llx after the setup",
                         (unsigned long long)(syssize * 16), (unsigned long long)image_len);

    /* XLF_KERNEL_64: "This kernel has the legacy 64-bit entry point at 0x200." Without it
     * (or before 2.12, which introduced xloadflags) use the 32-bit entry at the start. */
    const uint16_t xlf = version >= V_2_12 ? le_get16(k + HDR_XLOADFLAGS) : 0;
    const bool long_mode = (xlf & XLF_KERNEL_64) != 0;
    if (long_mode && image_len <= 0x200)
        return boot_fail(ctx, -ENOEXEC,
                         "bzImage: 64-bit entry at +0x200 lies past the 0x%llx-byte kernel",
                         (unsigned long long)image_len);

    struct bz_place place;
    rc = place_kernel(ctx, k, version, image_len, &place);
    if (rc)
        return rc;
    rc = boot_put_cmdline(ctx, "bzImage", le_get32(k + HDR_CMDLINE_SIZE));
    if (rc)
        return rc;
    uint64_t initrd = 0;
    rc = place_initrd(ctx, k, version, &place, &initrd);
    if (rc)
        return rc;
    if (guest_mem_write(cfg->mem, place.load, k + setup_size, image_len))
        return boot_fail(ctx, -EFAULT, "bzImage: e820 RAM at 0x%llx is not guest memory",
                         (unsigned long long)place.load);

    /* The zero page: all zero, then the setup header copied from 0x1f1 up to
     * "0x0202 + byte value at offset 0x0201" (capped at the header's room in boot_params),
     * then the fields a boot loader writes. */
    uint8_t zp[ZP_SIZE];
    memset(zp, 0, sizeof(zp));
    uint64_t hdr_end = HDR_MAGIC + (uint64_t)k[HDR_JUMP + 1];
    if (hdr_end > ZP_HDR_END)
        hdr_end = ZP_HDR_END;
    memcpy(zp + HDR_START, k + HDR_START, hdr_end - HDR_START);

    zp[HDR_TYPE_OF_LOADER] = 0xff; /* "undefined" boot loader: no assigned ID */
    le_put32(zp + HDR_CODE32_START, (uint32_t)place.load);
    le_put32(zp + HDR_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE_ADDR);
    le_put32(zp + ZP_EXT_CMD_LINE_PTR, (uint32_t)(BOOT_CMDLINE_ADDR >> 32));
    le_put32(zp + HDR_RAMDISK_IMAGE, (uint32_t)initrd);
    le_put32(zp + HDR_RAMDISK_SIZE, initrd ? (uint32_t)cfg->initrd_size : 0);
    le_put32(zp + ZP_EXT_RAMDISK_IMAGE, (uint32_t)(initrd >> 32));
    le_put32(zp + ZP_EXT_RAMDISK_SIZE, initrd ? (uint32_t)((uint64_t)cfg->initrd_size >> 32) : 0);
    /* The loader owns the setup_data list; revirter passes none. */
    le_put64(zp + HDR_SETUP_DATA, 0);
    if (version >= V_2_14)
        le_put64(zp + ZP_ACPI_RSDP_ADDR, cfg->rsdp_addr);
    zp[ZP_E820_ENTRIES] = (uint8_t)cfg->e820_count; /* <= 128, checked by boot_begin */
    for (unsigned i = 0; i < cfg->e820_count; i++) {
        uint8_t *e = zp + ZP_E820_TABLE + i * ZP_E820_ENTRY_SIZE;
        le_put64(e, cfg->e820[i].addr);
        le_put64(e + 8, cfg->e820[i].size);
        le_put32(e + 16, cfg->e820[i].type);
    }
    if (guest_mem_write(cfg->mem, BOOT_PARAMS_ADDR, zp, sizeof(zp)))
        return boot_fail(ctx, -EFAULT, "bzImage: cannot write the zero page");

    /* 64-bit entry: load address + 0x200, %rsi = boot_params. 32-bit entry: the load
     * address, %esi = boot_params, %ebp = %edi = %ebx = 0 (boot protocol, "32-bit Boot
     * Protocol"). boot_setup_cpu zeroes all the others. */
    const uint64_t entry = long_mode ? place.load + 0x200 : place.load;
    rc = boot_setup_cpu(ctx, long_mode, entry, st);
    if (rc)
        return rc;
    st->gprs.rsi = BOOT_PARAMS_ADDR;

    uint64_t start = place.avoid[0].start, end = place.avoid[0].end;
    for (unsigned i = 1; i < place.navoid; i++) {
        if (place.avoid[i].start < start)
            start = place.avoid[i].start;
        if (place.avoid[i].end > end)
            end = place.avoid[i].end;
    }
    boot_result_init(res, cfg, BOOT_FORMAT_BZIMAGE, long_mode, entry, start, end, initrd);
    res->protocol = version;
    res->pref_address = version >= V_2_10 ? le_get64(k + HDR_PREF_ADDRESS) : 0;
    res->init_size = version >= V_2_10 ? le_get32(k + HDR_INIT_SIZE) : 0;
    return 0;
}

int boot_bzimage_load(const struct boot_config *cfg, struct hav_x86_state *st,
                      struct boot_result *res, char *err, size_t err_len)
{
    struct boot_ctx ctx;
    int rc = boot_begin(&ctx, cfg, err, err_len);
    if (rc)
        return rc;
    return boot_bzimage_run(&ctx, st, res);
}
