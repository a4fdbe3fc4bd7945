/* SPDX-License-Identifier: MIT */
/* Multiboot v1 loader tests: header search, ELF and a.out-kludge loading, multiboot_info. */
#include "../check.h"
#include "fixture.h"

#include <errno.h>

#define MiB (1024ull * 1024)

static uint8_t img[0x10000];
static struct hav_x86_state st;
static struct boot_result res;
static char err[256];
static struct fx_vm vm;

static int load_raw(const uint8_t *k, size_t size, const char *cmdline, const uint8_t *initrd,
                    size_t initrd_size)
{
    struct boot_config cfg = fx_config(&vm, k, size);
    cfg.cmdline = cmdline;
    cfg.initrd = initrd;
    cfg.initrd_size = initrd_size;
    err[0] = '\0';
    return boot_load(&cfg, &st, &res, err, sizeof(err));
}

static int load_mb(const uint8_t *k, size_t size)
{
    struct boot_config cfg = fx_config(&vm, k, size);
    err[0] = '\0';
    return boot_multiboot_load(&cfg, &st, &res, err, sizeof(err));
}

static size_t build_elf(const struct fx_elf *o)
{
    size_t size = fx_elf_build(img, sizeof(img), o);
    CHECK(size > 0, "image builds");
    return size;
}

static size_t build_aout(const struct fx_aout *o)
{
    size_t size = fx_aout_build(img, sizeof(img), o);
    CHECK(size > 0, "image builds");
    return size;
}

static bool err_has(const char *s)
{
    return strstr(err, s) != NULL;
}

static void check_mbi(bool with_initrd, uint64_t initrd_size)
{
    const uint8_t *mbi = fx_gpa(&vm, BOOT_PARAMS_ADDR, 116);
    CHECK_EQ(le_get32(mbi), (1u << 0) | (1u << 2) | (1u << 3) | (1u << 6) | (1u << 9));
    CHECK_EQ(le_get32(mbi + 4), 639);       /* [0, 0x9fc00) in KiB */
    CHECK_EQ(le_get32(mbi + 8), 63 * 1024); /* [1 MiB, 64 MiB) in KiB */
    CHECK_EQ(le_get32(mbi + 16), BOOT_CMDLINE_ADDR);
    CHECK_EQ(le_get32(mbi + 20), with_initrd ? 1 : 0);
    CHECK_EQ(le_get32(mbi + 24), BOOT_MODS_ADDR);
    CHECK_EQ(le_get32(mbi + 44), 3 * 24);
    CHECK_EQ(le_get32(mbi + 48), BOOT_MMAP_ADDR);
    const char *name = (const char *)fx_gpa(&vm, le_get32(mbi + 64), 9);
    CHECK(strcmp(name, "revirter") == 0, "boot_loader_name %s", name);

    const uint8_t *mm = fx_gpa(&vm, BOOT_MMAP_ADDR, 3 * 24);
    CHECK_EQ(le_get32(mm), 20); /* size excludes itself */
    CHECK_EQ(le_get64(mm + 4), 0);
    CHECK_EQ(le_get64(mm + 12), 0x9fc00);
    CHECK_EQ(le_get32(mm + 20), 1);
    CHECK_EQ(le_get32(mm + 24 + 20), 2);
    CHECK_EQ(le_get64(mm + 48 + 4), 0x100000);
    CHECK_EQ(le_get64(mm + 48 + 12), 63 * MiB);

    if (with_initrd) {
        const uint8_t *mod = fx_gpa(&vm, BOOT_MODS_ADDR, 16);
        uint32_t start = le_get32(mod);
        CHECK_EQ(start % 4096, 0);
        CHECK_EQ(start, (64 * MiB - initrd_size) & ~0xfffull);
        CHECK_EQ(le_get32(mod + 4), start + initrd_size); /* mod_end is exclusive */
        const char *s = (const char *)fx_gpa(&vm, le_get32(mod + 8), 7);
        CHECK(strcmp(s, "initrd") == 0, "module string %s", s);
    }
}

static void valid_elf32(void)
{
    static uint8_t initrd[0x1234];
    memset(initrd, 0x42, sizeof(initrd));
    memset(fx_gpa(&vm, 0x100000, 0x2000), 0xee, 0x2000);

    struct fx_elf o = fx_mb_elf_default();
    size_t size = build_elf(&o);
    CHECK_EQ(boot_detect(img, size), BOOT_FORMAT_MULTIBOOT);
    CHECK_EQ(load_raw(img, size, "quiet", initrd, sizeof(initrd)), 0);
    CHECK(err[0] == '\0', "no message: %s", err);
    CHECK_EQ(res.format, BOOT_FORMAT_MULTIBOOT);
    CHECK_EQ(res.entry, 0x100040);
    CHECK_EQ(res.kernel_start, 0x100000);
    CHECK_EQ(res.kernel_end, 0x102000);

    /* Segment copied (the header overwrote the first 12 pattern bytes), bss zeroed. */
    const uint8_t *p = fx_gpa(&vm, 0x100000, 0x2000);
    CHECK_EQ(le_get32(p), 0x1badb002);
    bool same = true, zero = true;
    for (unsigned i = 12; i < 0x800; i++)
        same &= p[i] == fx_pattern(i);
    for (unsigned i = 0x800; i < 0x2000; i++)
        zero &= p[i] == 0;
    CHECK(same && zero, "segment loaded");

    /* Multiboot 3.2 machine state. */
    CHECK_EQ(st.gprs.rax, 0x2badb002);
    CHECK_EQ(st.gprs.rbx, BOOT_PARAMS_ADDR);
    CHECK_EQ(st.gprs.rip, 0x100040);
    CHECK_EQ(st.gprs.rflags, 0x2);
    CHECK_EQ(st.crs.cr0 & 0x80000001, 1);
    CHECK_EQ(st.segs.cs.db, 1);
    CHECK_EQ(st.segs.cs.limit, 0xffffffff);
    CHECK_EQ(st.segs.fs.limit, 0xffffffff);
    CHECK_EQ(st.segs.gs.selector, 0x18);

    check_mbi(true, sizeof(initrd));
    CHECK(strcmp((const char *)fx_gpa(&vm, BOOT_CMDLINE_ADDR, 6), "quiet") == 0, "cmdline");
    CHECK_EQ(fx_gpa(&vm, res.initrd_addr + sizeof(initrd) - 1, 1)[0], 0x42);

    CHECK_EQ(load_raw(img, size, NULL, NULL, 0), 0);
    check_mbi(false, 0);
}

static void elf_entry_is_translated(void)
{
    /* Linked at 0xc0100000, loaded at 1 MiB: e_entry is virtual. */
    struct fx_elf o = fx_mb_elf_default();
    o.vaddr = 0xc0100000;
    o.e_entry = 0xc0100040;
    CHECK_EQ(load_mb(img, build_elf(&o)), 0);
    CHECK_EQ(st.gprs.rip, 0x100040);

    /* ELF64 multiboot kernels load the same way. */
    o = fx_mb_elf_default();
    o.is64 = true;
    o.machine = 62;
    CHECK_EQ(load_mb(img, build_elf(&o)), 0);
    CHECK_EQ(st.gprs.rip, 0x100040);

    o = fx_mb_elf_default();
    o.e_entry = 0x200000;
    CHECK_EQ(load_mb(img, build_elf(&o)), -ENOEXEC);
    CHECK(err_has("ELF entry 0x200000 is not inside a loaded segment"), "%s", err);
}

static void valid_aout_kludge(void)
{
    memset(fx_gpa(&vm, 0x100000, 0x3000), 0xee, 0x3000);
    struct fx_aout o = fx_aout_default();
    size_t size = build_aout(&o);
    CHECK_EQ(boot_detect(img, size), BOOT_FORMAT_MULTIBOOT);
    CHECK_EQ(load_raw(img, size, "", NULL, 0), 0);
    CHECK_EQ(res.kernel_start, 0x100000);
    CHECK_EQ(res.kernel_end, 0x103000);
    CHECK_EQ(st.gprs.rip, 0x100080);
    CHECK_EQ(st.gprs.rax, 0x2badb002);
    const uint8_t *p = fx_gpa(&vm, 0x100000, 0x3000);
    CHECK(memcmp(p, img, 0x1000) == 0, "text copied from the start of the file");
    bool zero = true;
    for (unsigned i = 0x1000; i < 0x3000; i++)
        zero &= p[i] == 0;
    CHECK(zero, "bss zeroed");

    /* load_end_addr limits what is read; header_addr > load_addr skips file bytes. */
    o = fx_aout_default();
    o.load_end_addr = 0x100800;
    CHECK_EQ(load_mb(img, build_aout(&o)), 0);
    CHECK_EQ(res.kernel_end, 0x103000);
    o = fx_aout_default();
    o.header_addr = 0x100000; /* the file's text starts at the header, offset 0x40 */
    o.entry_addr = 0x100040;
    o.bss_end_addr = 0;
    CHECK_EQ(load_mb(img, build_aout(&o)), 0);
    CHECK_EQ(res.kernel_end, 0x100000 + 0x1000 - 0x40);
    CHECK_EQ(fx_gpa(&vm, 0x100000, 1)[0], img[0x40]);
}

static void bad_aout_fields(void)
{
    struct fx_aout o;

    o = fx_aout_default();
    o.load_addr = 0x100080; /* above header_addr */
    CHECK_EQ(load_mb(img, build_aout(&o)), -ENOEXEC);
    CHECK(err_has("load_addr 0x100080 is above header_addr 0x100040"), "%s", err);

    o = fx_aout_default();
    o.load_addr = 0xf0000; /* would start 0x10040 bytes before the header: before the file */
    CHECK_EQ(load_mb(img, build_aout(&o)), -ENOEXEC);
    CHECK(err_has("before the start of the file"), "%s", err);

    o = fx_aout_default();
    o.load_end_addr = 0x102000; /* 0x2000 bytes from a 0x1000-byte file */
    CHECK_EQ(load_mb(img, build_aout(&o)), -ENOEXEC);
    CHECK(err_has("multiboot: truncated: load_end_addr asks for 0x2000 bytes"), "%s", err);
    o.load_end_addr = 0x100000;
    CHECK_EQ(load_mb(img, build_aout(&o)), -ENOEXEC);
    CHECK(err_has("not above load_addr"), "%s", err);

    o = fx_aout_default();
    o.bss_end_addr = 0x100800;
    CHECK_EQ(load_mb(img, build_aout(&o)), -ENOEXEC);
    CHECK(err_has("bss_end_addr 0x100800 is below"), "%s", err);

    o = fx_aout_default();
    o.entry_addr = 0x102000; /* in the bss */
    CHECK_EQ(load_mb(img, build_aout(&o)), -ENOEXEC);
    CHECK(err_has("entry_addr 0x102000 is outside"), "%s", err);

    o = fx_aout_default();
    o.bss_end_addr = 0x8000000; /* 128 MiB, past RAM */
    CHECK_EQ(load_mb(img, build_aout(&o)), -ENOMEM);
    CHECK(err_has("outside guest RAM"), "%s", err);
    o.bss_end_addr = 0xffffffff;
    CHECK_EQ(load_mb(img, build_aout(&o)), -ENOMEM);

    o = fx_aout_default();
    o.header_addr = 0x8040;
    o.load_addr = 0x8000;
    o.entry_addr = 0x8080;
    o.bss_end_addr = 0;
    CHECK_EQ(load_mb(img, build_aout(&o)), -ENOEXEC);
    CHECK(err_has("is not between 1 MiB and 4 GiB"), "%s", err);

    /* Header at the very end of the file: the address fields are cut off. */
    o = fx_aout_default();
    size_t size = build_aout(&o);
    memmove(img + size - 12, img + o.hdr_off, 12);
    memset(img + o.hdr_off, 0, 12);
    CHECK_EQ(load_mb(img, size), -ENOEXEC);
    CHECK(err_has("address fields"), "%s", err);
}

static void header_search_and_flags(void)
{
    struct fx_aout o = fx_aout_default();
    size_t size;

    /* Bad checksum. */
    size = build_aout(&o);
    img[o.hdr_off + 8] ^= 1;
    CHECK_EQ(boot_detect(img, size), BOOT_FORMAT_UNKNOWN);
    CHECK_EQ(load_raw(img, size, "", NULL, 0), -ENOEXEC);
    CHECK(strcmp(err, "multiboot: header at offset 0x40 has a bad checksum") == 0, "%s", err);
    CHECK_EQ(load_mb(img, size), -ENOEXEC);
    CHECK(err_has("no header with a valid checksum"), "%s", err);

    /* Not 4-byte aligned: not a header. */
    size = build_aout(&o);
    memmove(img + o.hdr_off + 2, img + o.hdr_off, 32);
    memset(img + o.hdr_off, 0, 2);
    CHECK_EQ(boot_detect(img, size), BOOT_FORMAT_UNKNOWN);

    /* Beyond the first 8 KiB: not searched. */
    o = fx_aout_default();
    o.file_size = 0x3000;
    o.hdr_off = 0x2000;
    o.header_addr = 0x102000;
    o.bss_end_addr = 0;
    size = build_aout(&o);
    CHECK_EQ(boot_detect(img, size), BOOT_FORMAT_UNKNOWN);
    /* Just inside. */
    o.hdr_off = 0x2000 - 32;
    o.header_addr = 0x100000 + o.hdr_off;
    size = build_aout(&o);
    CHECK_EQ(load_mb(img, size), 0);

    o = fx_aout_default();
    o.extra_flags = 1u << 2; /* video mode */
    CHECK_EQ(load_mb(img, build_aout(&o)), -ENOTSUP);
    CHECK(err_has("video"), "%s", err);
    o.extra_flags = 1u << 5; /* unknown requirement */
    CHECK_EQ(load_mb(img, build_aout(&o)), -ENOTSUP);
    CHECK(err_has("bits 3-15"), "%s", err);
    o.extra_flags = 1u << 20; /* unknown optional bit: fine */
    CHECK_EQ(load_mb(img, build_aout(&o)), 0);

    /* Without bit 16 the image must be ELF. */
    struct fx_elf e = fx_mb_elf_default();
    size = build_elf(&e);
    memcpy(img, "JUNK", 4);
    CHECK_EQ(load_mb(img, size), -ENOEXEC);
    CHECK(err_has("must be ELF"), "%s", err);

    /* ELF problems are reported as multiboot's. */
    e.filesz = 0x800;
    size = build_elf(&e);
    le_put32(img + 52 + 16, 0x900); /* p_filesz past EOF */
    CHECK_EQ(load_mb(img, size), -ENOEXEC);
    CHECK(err_has("multiboot: truncated: segment 0"), "%s", err);
}

static void initrd_and_cmdline_limits(void)
{
    static char longline[BOOT_CMDLINE_MAX + 1];
    struct fx_aout o = fx_aout_default();
    size_t size = build_aout(&o);

    memset(longline, 'z', BOOT_CMDLINE_MAX);
    CHECK_EQ(load_raw(img, size, longline, NULL, 0), -E2BIG);
    CHECK(err_has("multiboot: command line is 65536 bytes"), "%s", err);

    const size_t big = 64 * MiB;
    uint8_t *initrd = calloc(1, big);
    CHECK(initrd != NULL, "calloc");
    CHECK_EQ(load_raw(img, size, "", initrd, big), -ENOMEM);
    CHECK(err_has("multiboot: initrd of 67108864 bytes does not fit"), "%s", err);
    free(initrd);
}

static void every_prefix_fails_cleanly(void)
{
    size_t ok, first_ok, size;

    struct fx_elf e = fx_mb_elf_default();
    e.filesz = 0x100;
    size = build_elf(&e);
    CHECK_EQ(fx_prefixes(&vm, img, size, boot_load, &ok, &first_ok), 0);
    CHECK_EQ(ok, 1);
    CHECK_EQ(fx_prefixes(&vm, img, size, boot_multiboot_load, &ok, &first_ok), 0);
    CHECK_EQ(ok, 1);

    /* With load_end_addr 0 the whole file is the text, so every prefix that still holds the
     * header and the entry point loads. */
    struct fx_aout o = fx_aout_default();
    o.file_size = 0x400;
    o.bss_end_addr = 0;
    size = build_aout(&o);
    CHECK_EQ(fx_prefixes(&vm, img, size, boot_load, &ok, &first_ok), 0);
    CHECK_EQ(first_ok, 0x81);
    CHECK_EQ(ok, size - 0x81 + 1);
    o.load_end_addr = 0x100400;
    size = build_aout(&o);
    CHECK_EQ(fx_prefixes(&vm, img, size, boot_multiboot_load, &ok, &first_ok), 0);
    CHECK_EQ(ok, 1);
}

int main(void)
{
    if (fx_vm_create(&vm, 64 * MiB)) {
        printf("Bail out! cannot map guest RAM\n");
        return 1;
    }
    RUN(valid_elf32);
    RUN(elf_entry_is_translated);
    RUN(valid_aout_kludge);
    RUN(bad_aout_fields);
    RUN(header_search_and_flags);
    RUN(initrd_and_cmdline_limits);
    RUN(every_prefix_fails_cleanly);
    fx_vm_destroy(&vm);
    return check_done();
}
