/* SPDX-License-Identifier: MIT */
/* bzImage loader tests: zero page, placement, entry state, and every malformed header. */
#include "../check.h"
#include "fixture.h"

#include <errno.h>
#include <sys/mman.h>

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)

static uint8_t img[0x40000];
static struct hav_x86_state st;
static struct boot_result res;
static char err[256];
static struct fx_vm vm64; /* 64 MiB guest, shared by most cases */

static int load(const uint8_t *k, size_t size, const char *cmdline, const uint8_t *initrd,
                size_t initrd_size)
{
    struct boot_config cfg = fx_config(&vm64, k, size);
    cfg.cmdline = cmdline;
    cfg.initrd = initrd;
    cfg.initrd_size = initrd_size;
    cfg.rsdp_addr = 0xe0000;
    err[0] = '\0';
    return boot_load(&cfg, &st, &res, err, sizeof(err));
}

static int load_opts(const struct fx_bz *o)
{
    size_t size = fx_bz_build(img, sizeof(img), o);
    CHECK(size > 0, "image builds");
    return load(img, size, "console=ttyS0", NULL, 0);
}

static bool err_has(const char *s)
{
    return strstr(err, s) != NULL;
}

static void valid_64bit_kernel(void)
{
    static const uint8_t initrd[0x3000] = {1, 2, 3};
    struct fx_bz o = fx_bz_default();
    size_t size = fx_bz_build(img, sizeof(img), &o);

    /* Mark the areas the loader must never write. */
    memset(fx_gpa(&vm64, 0, 0x1000), 0xaa, 0x1000);
    memset(fx_gpa(&vm64, BOOT_LOW_END, BOOT_HIGH_START - BOOT_LOW_END), 0xaa,
           BOOT_HIGH_START - BOOT_LOW_END);

    int rc = load(img, size, "console=ttyS0 root=/dev/vda", initrd, sizeof(initrd));
    CHECK_EQ(rc, 0);
    CHECK(err[0] == '\0', "no message on success: %s", err);
    CHECK_EQ(res.format, BOOT_FORMAT_BZIMAGE);
    CHECK_EQ(res.mask, HAV_X86_GPRS | HAV_X86_SEGS | HAV_X86_CRS);
    CHECK_EQ(res.protocol, 0x020f);
    CHECK(res.long_mode, "64-bit entry");
    CHECK_EQ(res.pref_address, 0x1000000);
    CHECK_EQ(res.init_size, 0x400000);
    CHECK_EQ(res.kernel_start, 0x1000000);
    CHECK_EQ(res.kernel_end, 0x1400000);

    /* The protected-mode kernel: the file after (4 + 1) * 512 setup bytes, at pref_address. */
    const uint8_t *k = fx_gpa(&vm64, 0x1000000, 0x1000);
    bool same = true;
    for (unsigned i = 0; i < 0x1000; i++)
        same &= k[i] == fx_pattern(i);
    CHECK(same, "kernel bytes copied");

    /* Entry: 64-bit at load + 0x200, RSI = zero page, flat long mode. */
    CHECK_EQ(res.entry, 0x1000200);
    CHECK_EQ(st.gprs.rip, 0x1000200);
    CHECK_EQ(st.gprs.rsi, BOOT_PARAMS_ADDR);
    CHECK_EQ(st.gprs.rflags, 0x2);
    CHECK_EQ(st.gprs.rax | st.gprs.rbx | st.gprs.rcx | st.gprs.rdx | st.gprs.rdi, 0);
    CHECK_EQ(st.crs.cr0, 0x80000011);
    CHECK_EQ(st.crs.cr3, BOOT_PML4_ADDR);
    CHECK_EQ(st.crs.cr4, 0x20);
    CHECK_EQ(st.crs.efer, 0x500);
    CHECK_EQ(st.crs.apic_base, BOOT_APIC_BASE);
    CHECK_EQ(st.segs.cs.selector, 0x10);
    CHECK_EQ(st.segs.cs.l, 1);
    CHECK_EQ(st.segs.cs.db, 0);
    CHECK_EQ(st.segs.cs.type, 0xb);
    CHECK_EQ(st.segs.cs.present, 1);
    CHECK_EQ(st.segs.cs.s, 1);
    CHECK_EQ(st.segs.ds.selector, 0x18);
    CHECK_EQ(st.segs.ss.selector, 0x18);
    CHECK_EQ(st.segs.es.selector, 0x18);
    CHECK_EQ(st.segs.ds.limit, 0xffffffff);
    CHECK_EQ(st.segs.ds.type, 0x3);
    CHECK_EQ(st.segs.tr.selector, 0x20);
    CHECK_EQ(st.segs.tr.type, 0xb);
    CHECK_EQ(st.segs.tr.limit, 0x67);
    CHECK_EQ(st.segs.gdt.base, BOOT_GDT_ADDR);
    CHECK_EQ(st.segs.gdt.limit, 39);

    /* The GDT in memory matches the cached segments. */
    const uint8_t *gdt = fx_gpa(&vm64, BOOT_GDT_ADDR, 40);
    CHECK_EQ(le_get64(gdt), 0);
    CHECK_EQ(le_get64(gdt + 0x10), 0x00af9b000000ffffull);
    CHECK_EQ(le_get64(gdt + 0x18), 0x00cf93000000ffffull);
    CHECK_EQ(le_get64(gdt + 0x20), 0x00008b0000000067ull);

    /* Identity map of 4 GiB with 2 MiB pages. */
    CHECK_EQ(le_get64(fx_gpa(&vm64, BOOT_PML4_ADDR, 8)), BOOT_PDPT_ADDR | 3);
    CHECK_EQ(le_get64(fx_gpa(&vm64, BOOT_PDPT_ADDR + 24, 8)), (BOOT_PD_ADDR + 0x3000) | 3);
    CHECK_EQ(le_get64(fx_gpa(&vm64, BOOT_PD_ADDR + 8, 8)), 0x200083);
    CHECK_EQ(le_get64(fx_gpa(&vm64, BOOT_PD_ADDR + 0x3ff8, 8)), 0xffe00083ull);

    /* The zero page. */
    const uint8_t *zp = fx_gpa(&vm64, BOOT_PARAMS_ADDR, 0x1000);
    CHECK(memcmp(zp + 0x202, "HdrS", 4) == 0, "setup header copied");
    CHECK_EQ(le_get16(zp + 0x206), 0x020f);
    CHECK_EQ(le_get16(zp + 0x1fe), 0xaa55);
    CHECK_EQ(le_get32(zp + 0x238), 2047);
    CHECK_EQ(zp[0x1ef], 0); /* sentinel stays zero: only the header was copied */
    CHECK_EQ(zp[0x210], 0xff);
    CHECK_EQ(le_get32(zp + 0x214), 0x1000000);
    CHECK_EQ(le_get32(zp + 0x228), BOOT_CMDLINE_ADDR);
    CHECK(strcmp((const char *)fx_gpa(&vm64, BOOT_CMDLINE_ADDR, 28),
                 "console=ttyS0 root=/dev/vda") == 0,
          "command line written");
    /* The initrd: as high as possible (end of the 64 MiB of RAM), page aligned. */
    CHECK_EQ(le_get32(zp + 0x218), 64 * MiB - 0x3000);
    CHECK_EQ(le_get32(zp + 0x21c), 0x3000);
    CHECK_EQ(le_get32(zp + 0x0c0), 0);
    CHECK_EQ(le_get32(zp + 0x0c4), 0);
    CHECK_EQ(res.initrd_addr, 64 * MiB - 0x3000);
    CHECK(memcmp(fx_gpa(&vm64, 64 * MiB - 0x3000, 0x3000), initrd, sizeof(initrd)) == 0,
          "initrd copied");
    CHECK_EQ(le_get64(zp + 0x070), 0xe0000); /* acpi_rsdp_addr: protocol 2.14+ */
    CHECK_EQ(zp[0x1e8], 3);
    CHECK_EQ(le_get64(zp + 0x2d0), 0);
    CHECK_EQ(le_get64(zp + 0x2d0 + 8), 0x9fc00);
    CHECK_EQ(le_get32(zp + 0x2d0 + 16), 1);
    CHECK_EQ(le_get64(zp + 0x2d0 + 20), 0x9fc00);
    CHECK_EQ(le_get32(zp + 0x2d0 + 36), 2);
    CHECK_EQ(le_get64(zp + 0x2d0 + 40), 0x100000);
    CHECK_EQ(le_get64(zp + 0x2d0 + 48), 63 * MiB);

    /* Nothing written below 0x1000 or in [0x9f000, 1 MiB), where ACPI tables live. */
    bool untouched = true;
    const uint8_t *p = fx_gpa(&vm64, 0, 0x1000);
    for (unsigned i = 0; i < 0x1000; i++)
        untouched &= p[i] == 0xaa;
    p = fx_gpa(&vm64, BOOT_LOW_END, BOOT_HIGH_START - BOOT_LOW_END);
    for (uint64_t i = 0; i < BOOT_HIGH_START - BOOT_LOW_END; i++)
        untouched &= p[i] == 0xaa;
    CHECK(untouched, "BIOS area and page 0 untouched");
}

static void trailer_after_syssize_is_loaded(void)
{
    struct fx_bz o = fx_bz_default();
    o.trailer = 0x5c0; /* a PE signature appended to a signed kernel */
    CHECK_EQ(load_opts(&o), 0);
    CHECK_EQ(fx_gpa(&vm64, 0x1000000 + 0x1000 + 0x5bf, 1)[0], fx_pattern(0x1000 + 0x5bf));
}

static void entry_32bit_without_xlf_kernel_64(void)
{
    struct fx_bz o = fx_bz_default();
    o.xloadflags = 0;
    CHECK_EQ(load_opts(&o), 0);
    CHECK(!res.long_mode, "32-bit entry");
    CHECK_EQ(st.gprs.rip, 0x1000000);
    CHECK_EQ(st.gprs.rsi, BOOT_PARAMS_ADDR);
    CHECK_EQ(st.gprs.rbx | st.gprs.rbp | st.gprs.rdi, 0);
    CHECK_EQ(st.crs.cr0, 0x11);
    CHECK_EQ(st.crs.cr4, 0);
    CHECK_EQ(st.crs.efer, 0);
    CHECK_EQ(st.segs.cs.l, 0);
    CHECK_EQ(st.segs.cs.db, 1);
    CHECK_EQ(le_get64(fx_gpa(&vm64, BOOT_GDT_ADDR + 0x10, 8)), 0x00cf9b000000ffffull);

    /* Before 2.12 there is no xloadflags: 32-bit even with the bit set in the image. */
    o = fx_bz_default();
    o.version = 0x020a;
    CHECK_EQ(load_opts(&o), 0);
    CHECK(!res.long_mode, "2.10 kernel enters in 32-bit mode");
}

static void version_2_06_uses_no_later_fields(void)
{
    struct fx_bz o = fx_bz_default();
    o.version = 0x0206; /* no pref_address / init_size / xloadflags / acpi_rsdp_addr */
    CHECK_EQ(load_opts(&o), 0);
    /* Relocatable without pref_address: 1 MiB rounded up to kernel_alignment. */
    CHECK_EQ(res.kernel_start, 0x200000);
    CHECK_EQ(res.init_size, 0);
    CHECK_EQ(le_get64(fx_gpa(&vm64, BOOT_PARAMS_ADDR + 0x70, 8)), 0);

    o.version = 0x020d; /* 2.13: still no acpi_rsdp_addr */
    CHECK_EQ(load_opts(&o), 0);
    CHECK_EQ(le_get64(fx_gpa(&vm64, BOOT_PARAMS_ADDR + 0x70, 8)), 0);
}

static void non_relocatable_loads_at_1mib(void)
{
    static const uint8_t initrd[0x2000];
    struct fx_bz o = fx_bz_default();
    o.relocatable = 0;
    o.pref_address = 0x3000000;
    o.init_size = 0x1000000; /* runs at [48 MiB, 64 MiB): the initrd must go below */
    size_t size = fx_bz_build(img, sizeof(img), &o);
    CHECK_EQ(load(img, size, "", initrd, sizeof(initrd)), 0);
    CHECK_EQ(res.kernel_start, 0x100000);
    CHECK_EQ(res.kernel_end, 0x4000000);
    CHECK_EQ(st.gprs.rip, 0x100200);
    CHECK_EQ(res.initrd_addr, 0x3000000 - 0x2000);

    /* Its run-time range must be RAM too. */
    o.pref_address = 0x3800000;
    CHECK_EQ(load_opts(&o), -ENOMEM);
    CHECK(err_has("non-relocatable"), "%s", err);
}

static void relocatable_falls_back_when_pref_does_not_fit(void)
{
    struct fx_vm small;
    CHECK_EQ(fx_vm_create(&small, 16 * MiB), 0);
    struct fx_bz o = fx_bz_default(); /* pref 16 MiB: no RAM there */
    size_t size = fx_bz_build(img, sizeof(img), &o);
    struct boot_config cfg = fx_config(&small, img, size);
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), 0);
    CHECK_EQ(res.kernel_start, 0x200000);
    CHECK_EQ(st.gprs.rip, 0x200200);

    /* init_size larger than all of RAM: nowhere to go. */
    o.init_size = 0x2000000;
    size = fx_bz_build(img, sizeof(img), &o);
    cfg = fx_config(&small, img, size);
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), -ENOMEM);
    CHECK(err_has("bzImage: kernel needs 0x2000000 bytes"), "%s", err);
    fx_vm_destroy(&small);
}

static void initrd_respects_initrd_addr_max(void)
{
    static const uint8_t initrd[0x5000];
    struct fx_bz o = fx_bz_default();
    o.initrd_addr_max = 0x1ffffff; /* highest byte 32 MiB - 1 */
    size_t size = fx_bz_build(img, sizeof(img), &o);
    CHECK_EQ(load(img, size, "", initrd, sizeof(initrd)), 0);
    CHECK_EQ(res.initrd_addr, 32 * MiB - 0x5000);
    CHECK_EQ(res.initrd_addr % 4096, 0);

    /* Odd sizes are placed page aligned, still ending below the limit. */
    CHECK_EQ(load(img, size, "", initrd, 0x4321), 0);
    CHECK_EQ(res.initrd_addr, 32 * MiB - 0x5000);
    CHECK_EQ(le_get32(fx_gpa(&vm64, BOOT_PARAMS_ADDR + 0x21c, 4)), 0x4321);

    /* The initrd never overlaps the kernel's init_size range [16 MiB, 20 MiB). */
    o.initrd_addr_max = 0x13fffff; /* 20 MiB - 1 */
    size = fx_bz_build(img, sizeof(img), &o);
    CHECK_EQ(load(img, size, "", initrd, sizeof(initrd)), 0);
    CHECK_EQ(res.initrd_addr, 16 * MiB - 0x5000);

    /* initrd_addr_max 0 means the pre-2.03 default 0x37ffffff. */
    o.initrd_addr_max = 0;
    size = fx_bz_build(img, sizeof(img), &o);
    CHECK_EQ(load(img, size, "", initrd, sizeof(initrd)), 0);
    CHECK_EQ(res.initrd_addr, 64 * MiB - 0x5000);
}

static void initrd_too_large_for_ram(void)
{
    /* 100 MiB of initrd in a 64 MiB guest; the source is never read, so reserve it only. */
    const size_t big = 100 * MiB;
    uint8_t *initrd =
        mmap(NULL, big, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(initrd != MAP_FAILED, "mmap");
    struct fx_bz o = fx_bz_default();
    size_t size = fx_bz_build(img, sizeof(img), &o);
    CHECK_EQ(load(img, size, "", initrd, big), -ENOMEM);
    CHECK(err_has("bzImage: initrd of 104857600 bytes does not fit in guest RAM below "
                  "0x80000000 (initrd_addr_max) nor above 4 GiB"),
          "%s", err);
    munmap(initrd, big);
}

static void initrd_above_4g_needs_ext_fields(void)
{
    /* 5 GiB guest: RAM [1 MiB, 3 GiB) and [4 GiB, 6 GiB). initrd_addr_max 32 MiB leaves less
     * than the 40 MiB initrd needs below it, so it goes to the top of high RAM. */
    const size_t size_initrd = 40 * MiB;
    struct fx_vm big;
    CHECK_EQ(fx_vm_create(&big, 5 * GiB), 0);
    CHECK_EQ(big.e820_count, 4);
    uint8_t *initrd = malloc(size_initrd);
    CHECK(initrd != NULL, "malloc");
    memset(initrd, 0x5a, size_initrd);
    struct fx_bz o = fx_bz_default();
    o.initrd_addr_max = 0x1ffffff;
    size_t size = fx_bz_build(img, sizeof(img), &o);
    struct boot_config cfg = fx_config(&big, img, size);
    cfg.initrd = initrd;
    cfg.initrd_size = size_initrd;
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), 0);
    const uint64_t want = 6 * GiB - size_initrd;
    CHECK_EQ(res.initrd_addr, want);
    const uint8_t *zp = fx_gpa(&big, BOOT_PARAMS_ADDR, 0x1000);
    CHECK_EQ(le_get32(zp + 0x218), (uint32_t)want);
    CHECK_EQ(le_get32(zp + 0x0c0), (uint32_t)(want >> 32));
    CHECK_EQ(le_get32(zp + 0x21c), (uint32_t)size_initrd);
    CHECK_EQ(le_get32(zp + 0x0c4), 0);
    CHECK_EQ(zp[0x1e8], 4);
    CHECK_EQ(fx_gpa(&big, want + size_initrd - 1, 1)[0], 0x5a);

    /* Without XLF_CAN_BE_LOADED_ABOVE_4G it must stay below initrd_addr_max: no room. */
    o.xloadflags = 0x1;
    size = fx_bz_build(img, sizeof(img), &o);
    cfg = fx_config(&big, img, size);
    cfg.initrd = initrd;
    cfg.initrd_size = size_initrd;
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), -ENOMEM);
    CHECK(err_has("below 0x2000000 (initrd_addr_max)") && !err_has("4 GiB"), "%s", err);
    free(initrd);
    fx_vm_destroy(&big);
}

static void cmdline_length_checked_against_cmdline_size(void)
{
    static char longline[BOOT_CMDLINE_MAX + 16];
    struct fx_bz o = fx_bz_default();
    o.cmdline_size = 16;
    size_t size = fx_bz_build(img, sizeof(img), &o);
    CHECK_EQ(load(img, size, "0123456789abcdef", NULL, 0), 0); /* exactly 16 */
    CHECK_EQ(load(img, size, "0123456789abcdefg", NULL, 0), -E2BIG);
    CHECK(strcmp(err, "bzImage: command line is 17 bytes, the kernel accepts 16") == 0, "%s", err);
    CHECK_EQ(load(img, size, NULL, NULL, 0), 0); /* NULL is the empty line */
    CHECK_EQ(fx_gpa(&vm64, BOOT_CMDLINE_ADDR, 1)[0], 0);

    /* Longer than the loader's own buffer, even if the kernel says it takes it. */
    o.cmdline_size = 0xffffffff;
    size = fx_bz_build(img, sizeof(img), &o);
    memset(longline, 'x', BOOT_CMDLINE_MAX);
    longline[BOOT_CMDLINE_MAX] = '\0';
    CHECK_EQ(load(img, size, longline, NULL, 0), -E2BIG);
    CHECK(err_has("revirter passes 65535"), "%s", err);
    longline[BOOT_CMDLINE_MAX - 1] = '\0';
    CHECK_EQ(load(img, size, longline, NULL, 0), 0);
}

static void corrupt_headers(void)
{
    struct fx_bz o = fx_bz_default();
    size_t size = fx_bz_build(img, sizeof(img), &o);

    /* Bad magic: not recognised at all by the dispatcher, rejected by the bzImage loader. */
    img[0x202] = 'X';
    CHECK_EQ(load(img, size, "", NULL, 0), -ENOTSUP);
    CHECK(err_has("boot sector without a \"HdrS\""), "%s", err);
    struct boot_config cfg = fx_config(&vm64, img, size);
    CHECK_EQ(boot_bzimage_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    CHECK(strcmp(err, "bzImage: no \"HdrS\" setup header magic at 0x202") == 0, "%s", err);

    o.version = 0x0202;
    CHECK_EQ(load_opts(&o), -ENOTSUP);
    CHECK(strcmp(err, "bzImage: setup header version 2.02 is older than 2.06") == 0, "%s", err);

    o = fx_bz_default();
    o.loadflags = 0;
    CHECK_EQ(load_opts(&o), -ENOTSUP);
    CHECK(err_has("LOADED_HIGH"), "%s", err);

    o = fx_bz_default();
    o.syssize = 0x101; /* 0x1010 bytes but only 0x1000 follow the setup */
    CHECK_EQ(load_opts(&o), -ENOEXEC);
    CHECK(strcmp(err, "bzImage: truncated: syssize says 0x1010 bytes of kernel but the file has "
                      "0x1000 after the setup") == 0,
          "%s", err);
    o.syssize = 0xffffffff;
    CHECK_EQ(load_opts(&o), -ENOEXEC);
    CHECK(err_has("syssize says 0xffffffff0 bytes"), "%s", err);

    /* syssize 0 in the header (the builder's 0 means "compute", so poke it). */
    o = fx_bz_default();
    size = fx_bz_build(img, sizeof(img), &o);
    le_put32(img + 0x1f4, 0);
    CHECK_EQ(load(img, size, "", NULL, 0), -ENOEXEC);
    CHECK(err_has("syssize is 0"), "%s", err);

    o = fx_bz_default();
    o.kernel_alignment = 0x300000;
    CHECK_EQ(load_opts(&o), -ENOEXEC);
    CHECK(err_has("kernel_alignment 0x300000 is not a power of two"), "%s", err);
    o.kernel_alignment = 0;
    CHECK_EQ(load_opts(&o), -ENOEXEC);

    /* A kernel whose 64-bit entry would lie past its end. */
    o = fx_bz_default();
    o.payload = 0x200;
    CHECK_EQ(load_opts(&o), -ENOEXEC);
    CHECK(err_has("64-bit entry at +0x200"), "%s", err);

    /* pref_address far outside RAM, relocatable: falls back to low RAM. */
    o = fx_bz_default();
    o.pref_address = 0xfffffffffffff000ull;
    CHECK_EQ(load_opts(&o), 0);
    CHECK_EQ(res.kernel_start, 0x200000);
    /* Non-relocatable with such a pref_address: its run-time range is not RAM. */
    o.relocatable = 0;
    CHECK_EQ(load_opts(&o), -ENOMEM);
    /* init_size beyond RAM. */
    o = fx_bz_default();
    o.init_size = 0xfffff000;
    CHECK_EQ(load_opts(&o), -ENOMEM);
}

static void huge_setup_sects(void)
{
    /* A real header with setup_sects 255 claims 128 KiB of setup; cut the file at 8000. */
    struct fx_bz o = fx_bz_default();
    o.setup_sects = 33;
    size_t size = fx_bz_build(img, sizeof(img), &o);
    CHECK(size > 8000, "built");
    CHECK_EQ(load(img, 8000, "", NULL, 0), -ENOEXEC);
    CHECK(strcmp(err, "bzImage: truncated: setup_sects says 33 sectors but file has 8000 "
                      "bytes") == 0,
          "%s", err);

    o = fx_bz_default();
    size = fx_bz_build(img, sizeof(img), &o);
    img[0x1f1] = 255;
    CHECK_EQ(load(img, size, "", NULL, 0), -ENOEXEC);
    CHECK(err_has("setup_sects says 255 sectors"), "%s", err);

    /* setup_sects 0 means 4. */
    o.setup_sects = 0;
    size = fx_bz_build(img, sizeof(img), &o);
    CHECK_EQ(load(img, size, "", NULL, 0), 0);
}

static void oversize_kernel(void)
{
    /* A 48 MiB payload with init_size smaller than the image: the image itself must fit. */
    struct fx_vm small;
    CHECK_EQ(fx_vm_create(&small, 32 * MiB), 0);
    const size_t big = 48 * MiB;
    uint8_t *k = calloc(1, big);
    CHECK(k != NULL, "calloc");
    struct fx_bz o = fx_bz_default();
    o.payload = (uint32_t)(big - 5 * 512);
    size_t size = fx_bz_build(k, big, &o);
    CHECK_EQ(size, big);
    struct boot_config cfg = fx_config(&small, k, size);
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), -ENOMEM);
    CHECK(err_has("image 0x2fff600"), "%s", err);
    free(k);
    fx_vm_destroy(&small);
}

static void every_prefix_fails_cleanly(void)
{
    struct fx_bz o = fx_bz_default();
    o.payload = 0x400;
    size_t size = fx_bz_build(img, sizeof(img), &o);
    size_t ok, first_ok;
    CHECK_EQ(fx_prefixes(&vm64, img, size, boot_load, &ok, &first_ok), 0);
    CHECK_EQ(ok, 1); /* only the whole image: syssize covers the payload exactly */
    CHECK_EQ(first_ok, size);
    CHECK_EQ(fx_prefixes(&vm64, img, size, boot_bzimage_load, &ok, &first_ok), 0);
    CHECK_EQ(ok, 1);
}

static void e820_limits(void)
{
    struct fx_bz o = fx_bz_default();
    size_t size = fx_bz_build(img, sizeof(img), &o);
    static struct boot_e820_entry map[BOOT_E820_MAX + 1];

    /* 128 entries fit the zero page; 129 do not. */
    unsigned n = vm64.e820_count;
    memcpy(map, vm64.e820, n * sizeof(map[0]));
    for (unsigned i = n; i < BOOT_E820_MAX + 1; i++)
        map[i] = (struct boot_e820_entry){0xd0000000ull + i * 0x1000, 0x1000, BOOT_E820_RESERVED};
    struct boot_config cfg = fx_config(&vm64, img, size);
    cfg.e820 = map;
    cfg.e820_count = BOOT_E820_MAX;
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), 0);
    CHECK_EQ(fx_gpa(&vm64, BOOT_PARAMS_ADDR + 0x1e8, 1)[0], 128);
    const uint8_t *last = fx_gpa(&vm64, BOOT_PARAMS_ADDR + 0x2d0 + 127 * 20, 20);
    CHECK_EQ(le_get64(last), 0xd0000000ull + 127 * 0x1000);
    cfg.e820_count = BOOT_E820_MAX + 1;
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), -EINVAL);
    CHECK(err_has("129 entries"), "%s", err);
}

int main(void)
{
    if (fx_vm_create(&vm64, 64 * MiB)) {
        printf("Bail out! cannot map guest RAM\n");
        return 1;
    }
    RUN(valid_64bit_kernel);
    RUN(trailer_after_syssize_is_loaded);
    RUN(entry_32bit_without_xlf_kernel_64);
    RUN(version_2_06_uses_no_later_fields);
    RUN(non_relocatable_loads_at_1mib);
    RUN(relocatable_falls_back_when_pref_does_not_fit);
    RUN(initrd_respects_initrd_addr_max);
    RUN(initrd_too_large_for_ram);
    RUN(initrd_above_4g_needs_ext_fields);
    RUN(cmdline_length_checked_against_cmdline_size);
    RUN(corrupt_headers);
    RUN(huge_setup_sects);
    RUN(oversize_kernel);
    RUN(every_prefix_fails_cleanly);
    RUN(e820_limits);
    fx_vm_destroy(&vm64);
    return check_done();
}
