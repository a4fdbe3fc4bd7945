/* SPDX-License-Identifier: MIT */
/* PVH loader tests: ELF parsing, the Xen note, hvm_start_info, and malformed ELF files. */
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
    cfg.rsdp_addr = 0xf0000;
    err[0] = '\0';
    return boot_load(&cfg, &st, &res, err, sizeof(err));
}

static int load_elf(const struct fx_elf *o)
{
    size_t size = fx_elf_build(img, sizeof(img), o);
    CHECK(size > 0, "image builds");
    return load_raw(img, size, "console=hvc0", NULL, 0);
}

/* Build, let the test poke the image, then load it. */
static size_t build(const struct fx_elf *o)
{
    size_t size = fx_elf_build(img, sizeof(img), o);
    CHECK(size > 0, "image builds");
    return size;
}

static bool err_has(const char *s)
{
    return strstr(err, s) != NULL;
}

static void check_loaded(uint64_t paddr, uint64_t filesz, uint64_t memsz)
{
    const uint8_t *p = fx_gpa(&vm, paddr, memsz);
    bool same = true, zero = true;
    for (uint64_t i = 0; i < filesz; i++)
        same &= p[i] == fx_pattern(i);
    for (uint64_t i = filesz; i < memsz; i++)
        zero &= p[i] == 0;
    CHECK(same, "segment bytes copied");
    CHECK(zero, "bss zeroed");
}

static void valid_pvh_vmlinux(void)
{
    static uint8_t initrd[0x1800];
    memset(initrd, 0x77, sizeof(initrd));
    /* Dirty the bss so zeroing is visible. */
    memset(fx_gpa(&vm, 0x100000, 0x2000), 0xee, 0x2000);

    struct fx_elf o = fx_pvh_default();
    size_t size = build(&o);
    CHECK_EQ(boot_detect(img, size), BOOT_FORMAT_PVH);
    CHECK_EQ(load_raw(img, size, "console=hvc0", initrd, sizeof(initrd)), 0);
    CHECK(err[0] == '\0', "no message: %s", err);
    CHECK_EQ(res.format, BOOT_FORMAT_PVH);
    CHECK(!res.long_mode, "32-bit entry");
    CHECK_EQ(res.entry, 0x100100);
    CHECK_EQ(res.kernel_start, 0x100000);
    CHECK_EQ(res.kernel_end, 0x102000);
    check_loaded(0x100000, 0x800, 0x2000);

    /* Xen docs/misc/pvh.pandoc: EBX = start_info, PE only, flat 32-bit segments, TR. */
    CHECK_EQ(st.gprs.rip, 0x100100);
    CHECK_EQ(st.gprs.rbx, BOOT_PARAMS_ADDR);
    CHECK_EQ(st.gprs.rflags, 0x2);
    CHECK_EQ(st.crs.cr0, 0x11);
    CHECK_EQ(st.crs.cr4, 0);
    CHECK_EQ(st.crs.efer, 0);
    CHECK_EQ(st.segs.cs.db, 1);
    CHECK_EQ(st.segs.cs.l, 0);
    CHECK_EQ(st.segs.cs.limit, 0xffffffff);
    CHECK_EQ(st.segs.cs.base, 0);
    CHECK_EQ(st.segs.ds.limit, 0xffffffff);
    CHECK_EQ(st.segs.tr.base, 0);
    CHECK_EQ(st.segs.tr.limit, 0x67);
    CHECK_EQ(st.segs.tr.type, 0xb);

    const uint8_t *si = fx_gpa(&vm, BOOT_PARAMS_ADDR, 56);
    CHECK_EQ(le_get32(si), 0x336ec578);
    CHECK_EQ(le_get32(si + 4), 1);
    CHECK_EQ(le_get32(si + 8), 0);
    CHECK_EQ(le_get32(si + 12), 1);
    CHECK_EQ(le_get64(si + 16), BOOT_MODS_ADDR);
    CHECK_EQ(le_get64(si + 24), BOOT_CMDLINE_ADDR);
    CHECK_EQ(le_get64(si + 32), 0xf0000);
    CHECK_EQ(le_get64(si + 40), BOOT_MMAP_ADDR);
    CHECK_EQ(le_get32(si + 48), 3);
    CHECK_EQ(le_get32(si + 52), 0);
    CHECK(strcmp((const char *)fx_gpa(&vm, BOOT_CMDLINE_ADDR, 13), "console=hvc0") == 0, "cmdline");

    const uint8_t *mod = fx_gpa(&vm, BOOT_MODS_ADDR, 32);
    CHECK_EQ(le_get64(mod), 64 * MiB - 0x2000);
    CHECK_EQ(le_get64(mod + 8), sizeof(initrd));
    CHECK_EQ(le_get64(mod + 16), 0);
    CHECK_EQ(res.initrd_addr, 64 * MiB - 0x2000);
    CHECK_EQ(fx_gpa(&vm, 64 * MiB - 0x2000 + 0x17ff, 1)[0], 0x77);

    const uint8_t *mm = fx_gpa(&vm, BOOT_MMAP_ADDR, 3 * 24);
    CHECK_EQ(le_get64(mm), 0);
    CHECK_EQ(le_get64(mm + 8), 0x9fc00);
    CHECK_EQ(le_get32(mm + 16), 1);
    CHECK_EQ(le_get32(mm + 20), 0);
    CHECK_EQ(le_get64(mm + 24), 0x9fc00);
    CHECK_EQ(le_get32(mm + 24 + 16), 2);
    CHECK_EQ(le_get64(mm + 48), 0x100000);
    CHECK_EQ(le_get64(mm + 48 + 8), 63 * MiB);

    /* Without an initrd there are no modules. */
    CHECK_EQ(load_elf(&o), 0);
    CHECK_EQ(le_get32(si + 12), 0);
    CHECK_EQ(le_get64(si + 16), 0);
    CHECK_EQ(res.initrd_addr, 0);
}

static void note_variants(void)
{
    struct fx_elf o = fx_pvh_default();
    o.pvh_descsz = 4; /* a 32-bit kernel's note */
    CHECK_EQ(load_elf(&o), 0);
    CHECK_EQ(st.gprs.rip, 0x100100);

    o = fx_pvh_default();
    o.note_in_section = true; /* no PT_NOTE: found through the section headers */
    CHECK_EQ(load_elf(&o), 0);
    CHECK_EQ(st.gprs.rip, 0x100100);

    o = fx_pvh_default();
    o.is64 = false;
    o.machine = 3;
    o.vaddr = 0xc1000000;
    CHECK_EQ(load_elf(&o), 0); /* ELF32 vmlinux */
    CHECK_EQ(st.gprs.rip, 0x100100);

    /* 8-byte descriptor with high bits: not inside any segment. */
    o = fx_pvh_default();
    o.pvh_entry = 0x100000100100ull;
    CHECK_EQ(load_elf(&o), -ENOEXEC);
    CHECK(err_has("PVH: entry 0x100000100100 is not inside a loaded segment"), "%s", err);

    o = fx_pvh_default();
    o.pvh_entry = 0x103000; /* past memsz */
    CHECK_EQ(load_elf(&o), -ENOEXEC);

    o = fx_pvh_default();
    o.pvh_descsz = 2;
    CHECK_EQ(load_elf(&o), -ENOEXEC);
    CHECK(err_has("2-byte descriptor"), "%s", err);
}

static void missing_note(void)
{
    struct fx_elf o = fx_pvh_default();
    o.pvh_descsz = 0;
    size_t size = build(&o);
    CHECK_EQ(boot_detect(img, size), BOOT_FORMAT_UNKNOWN);
    CHECK_EQ(load_raw(img, size, "", NULL, 0), -ENOEXEC);
    CHECK(strcmp(err, "PVH: ELF has no XEN_ELFNOTE_PHYS32_ENTRY note (kernel built without "
                      "CONFIG_PVH?)") == 0,
          "%s", err);

    /* A note of the right type under another name does not count. */
    o = fx_pvh_default();
    size = build(&o);
    memcpy(img + FX_ELF_NOTE_OFF + 12, "Xyz", 4);
    CHECK_EQ(load_raw(img, size, "", NULL, 0), -ENOEXEC);
    CHECK(err_has("no XEN_ELFNOTE_PHYS32_ENTRY"), "%s", err);
}

static void note_size_overflow(void)
{
    struct fx_elf o = fx_pvh_default();
    size_t size = build(&o);
    struct boot_config cfg = fx_config(&vm, img, size);

    le_put32(img + FX_ELF_NOTE_OFF, 0xffffffff); /* namesz */
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    CHECK(err_has("namesz 4294967295") && err_has("runs past its area"), "%s", err);

    size = build(&o);
    le_put32(img + FX_ELF_NOTE_OFF + 4, 0xfffffffd); /* descsz */
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    CHECK(err_has("descsz 4294967293"), "%s", err);

    /* The PT_NOTE segment itself runs past the file. */
    size = build(&o);
    le_put64(img + FX_ELF_PHOFF + 56 + 32, 0xfffffffffffffff0ull); /* p_filesz of PT_NOTE */
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    CHECK(err_has("note area"), "%s", err);
    /* p_offset + p_filesz would wrap. */
    size = build(&o);
    le_put64(img + FX_ELF_PHOFF + 56 + 8, 0xffffffffffffff00ull);
    le_put64(img + FX_ELF_PHOFF + 56 + 32, 0x200);
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    CHECK(err_has("note area"), "%s", err);
}

static void bad_segments(void)
{
    struct fx_elf o = fx_pvh_default();
    size_t size;
    const unsigned load_ph = FX_ELF_PHOFF; /* program header 0 is the PT_LOAD */

    /* File bytes past EOF. */
    o.filesz = 0x800;
    size = build(&o);
    le_put64(img + load_ph + 32, 0x900);
    CHECK_EQ(load_raw(img, size, "", NULL, 0), -ENOEXEC);
    CHECK(err_has("PVH: truncated: segment 0 needs file bytes [0x100, 0xa00) but the file "
                  "has 2304"),
          "%s", err);

    /* p_offset + p_filesz overflows. */
    size = build(&o);
    le_put64(img + load_ph + 8, 0xfffffffffffff000ull);
    le_put64(img + load_ph + 32, 0x1000);
    CHECK_EQ(load_raw(img, size, "", NULL, 0), -ENOEXEC);
    CHECK(err_has("p_offset 0xfffffffffffff000 + p_filesz 0x1000 overflows"), "%s", err);

    /* p_filesz > p_memsz. */
    o = fx_pvh_default();
    o.memsz = 0x400;
    o.pvh_entry = 0x100010;
    CHECK_EQ(load_elf(&o), -ENOEXEC);
    CHECK(err_has("p_filesz 0x800 > p_memsz 0x400"), "%s", err);

    /* Past guest RAM (64 MiB). */
    o = fx_pvh_default();
    o.paddr = 0x10000000;
    o.pvh_entry = 0x10000100;
    CHECK_EQ(load_elf(&o), -ENOMEM);
    CHECK(err_has("outside guest RAM"), "%s", err);
    /* Straddling the end of RAM. */
    o.paddr = 64 * MiB - 0x1000;
    o.pvh_entry = o.paddr + 0x100;
    CHECK_EQ(load_elf(&o), -ENOMEM);

    /* Into the low area and BIOS range, or past 4 GiB. */
    o = fx_pvh_default();
    o.paddr = 0x9000;
    o.pvh_entry = 0x9100;
    CHECK_EQ(load_elf(&o), -ENOEXEC);
    CHECK(err_has("is not between 1 MiB and 4 GiB"), "%s", err);
    o.paddr = 0xfffff000;
    o.pvh_entry = 0xfffff100;
    CHECK_EQ(load_elf(&o), -ENOEXEC);

    /* p_paddr + p_memsz wraps. */
    o = fx_pvh_default();
    size = build(&o);
    le_put64(img + load_ph + 24, 0xfffffffffffff000ull);
    CHECK_EQ(load_raw(img, size, "", NULL, 0), -ENOEXEC);
    CHECK(err_has("overflows"), "%s", err);

    /* No PT_LOAD with memory at all. */
    size = build(&o);
    le_put64(img + load_ph + 40, 0);
    le_put64(img + load_ph + 32, 0);
    CHECK_EQ(load_raw(img, size, "", NULL, 0), -ENOEXEC);
    CHECK(err_has("no loadable segment"), "%s", err);
}

static void bad_elf_headers(void)
{
    struct fx_elf o = fx_pvh_default();
    size_t size;
    struct boot_config cfg;

    size = build(&o);
    cfg = fx_config(&vm, img, size);
    le_put64(img + 32, 0x100000); /* e_phoff past EOF */
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    CHECK(err_has("2 program headers at 0x100000 run past"), "%s", err);
    le_put64(img + 32, 0xffffffffffffffc0ull); /* e_phoff + table wraps */
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);

    size = build(&o);
    le_put16(img + 56, 0); /* e_phnum */
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    le_put16(img + 56, 0xffff); /* PN_XNUM */
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    size = build(&o);
    le_put16(img + 54, 8); /* e_phentsize too small */
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);

    o.machine = 40; /* ARM */
    CHECK_EQ(load_elf(&o), -ENOTSUP);
    CHECK(err_has("ELF machine 40 is not x86"), "%s", err);
    o = fx_pvh_default();
    o.type = 3; /* ET_DYN */
    CHECK_EQ(load_elf(&o), -ENOEXEC);
    CHECK(err_has("not an executable"), "%s", err);

    o = fx_pvh_default();
    size = build(&o);
    img[5] = 2; /* big-endian */
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    size = build(&o);
    img[4] = 3; /* bad class */
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    size = build(&o);
    img[6] = 0; /* bad version */
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);

    /* Section table past EOF is ignored when a PT_NOTE exists, and is not a crash without. */
    o = fx_pvh_default();
    o.note_in_section = true;
    size = build(&o);
    cfg = fx_config(&vm, img, size);
    le_put64(img + 40, size - 8); /* e_shoff: the table no longer fits */
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    CHECK(err_has("no XEN_ELFNOTE_PHYS32_ENTRY"), "%s", err);
    size = build(&o);
    le_put64(img + size - 64 + 24, 0xfffffffffffffff0ull); /* the note section's sh_offset */
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    CHECK(err_has("note area"), "%s", err);

    /* Not an ELF at all. */
    memset(img, 0, 64);
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    CHECK(err_has("no ELF magic"), "%s", err);
}

static void cmdline_and_initrd_limits(void)
{
    static char longline[BOOT_CMDLINE_MAX + 1];
    struct fx_elf o = fx_pvh_default();
    size_t size = build(&o);

    memset(longline, 'y', BOOT_CMDLINE_MAX);
    CHECK_EQ(load_raw(img, size, longline, NULL, 0), -E2BIG);
    CHECK(err_has("PVH: command line is 65536 bytes"), "%s", err);

    /* An initrd as large as RAM above the kernel cannot fit. */
    const size_t big = 63 * MiB;
    uint8_t *initrd = calloc(1, big);
    CHECK(initrd != NULL, "calloc");
    CHECK_EQ(load_raw(img, size, "", initrd, big), -ENOMEM);
    CHECK(err_has("PVH: initrd of 66060288 bytes does not fit"), "%s", err);
    /* Slightly smaller fits above the kernel's 8 KiB. */
    CHECK_EQ(load_raw(img, size, "", initrd, big - 0x2000), 0);
    CHECK_EQ(res.initrd_addr, 0x102000);
    free(initrd);
}

static void every_prefix_fails_cleanly(void)
{
    struct fx_elf o = fx_pvh_default();
    o.filesz = 0x200;
    size_t size = build(&o), ok, first_ok;
    CHECK_EQ(fx_prefixes(&vm, img, size, boot_load, &ok, &first_ok), 0);
    CHECK_EQ(ok, 1);
    CHECK_EQ(fx_prefixes(&vm, img, size, boot_pvh_load, &ok, &first_ok), 0);
    CHECK_EQ(ok, 1);

    o.note_in_section = true;
    size = build(&o);
    CHECK_EQ(fx_prefixes(&vm, img, size, boot_pvh_load, &ok, &first_ok), 0);
    CHECK_EQ(ok, 1);
}

int main(void)
{
    if (fx_vm_create(&vm, 64 * MiB)) {
        printf("Bail out! cannot map guest RAM\n");
        return 1;
    }
    RUN(valid_pvh_vmlinux);
    RUN(note_variants);
    RUN(missing_note);
    RUN(note_size_overflow);
    RUN(bad_segments);
    RUN(bad_elf_headers);
    RUN(cmdline_and_initrd_limits);
    RUN(every_prefix_fails_cleanly);
    fx_vm_destroy(&vm);
    return check_done();
}
