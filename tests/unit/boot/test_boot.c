/* SPDX-License-Identifier: MIT */
/* Boot dispatcher tests: the default e820 map, format detection, and caller errors. */
#include "../check.h"
#include "fixture.h"

#include <errno.h>

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)

static uint8_t img[0x10000];
static struct hav_x86_state st;
static struct boot_result res;
static char err[256];
static struct fx_vm vm;

static bool err_has(const char *s)
{
    return strstr(err, s) != NULL;
}

static void e820_default_map(void)
{
    struct boot_e820_entry map[BOOT_E820_DEFAULT_MAX];

    CHECK_EQ(boot_e820_default(256 * MiB, map, BOOT_E820_DEFAULT_MAX), 3);
    CHECK_EQ(map[0].addr, 0);
    CHECK_EQ(map[0].size, 0x9fc00);
    CHECK_EQ(map[0].type, BOOT_E820_RAM);
    CHECK_EQ(map[1].addr, 0x9fc00);
    CHECK_EQ(map[1].size, 0x100000 - 0x9fc00);
    CHECK_EQ(map[1].type, BOOT_E820_RESERVED);
    CHECK_EQ(map[2].addr, 0x100000);
    CHECK_EQ(map[2].size, 255 * MiB);
    CHECK_EQ(map[2].type, BOOT_E820_RAM);

    /* Exactly 3 GiB: still no high RAM. */
    CHECK_EQ(boot_e820_default(3 * GiB, map, BOOT_E820_DEFAULT_MAX), 3);
    CHECK_EQ(map[2].addr + map[2].size, 3 * GiB);

    /* 8 GiB: the PCI hole [3 GiB, 4 GiB) is skipped, 5 GiB go above 4 GiB. */
    CHECK_EQ(boot_e820_default(8 * GiB, map, BOOT_E820_DEFAULT_MAX), 4);
    CHECK_EQ(map[2].size, 3 * GiB - MiB);
    CHECK_EQ(map[3].addr, 4 * GiB);
    CHECK_EQ(map[3].size, 5 * GiB);
    CHECK_EQ(map[3].type, BOOT_E820_RAM);

    CHECK_EQ(boot_e820_default(MiB, map, BOOT_E820_DEFAULT_MAX), -EINVAL);
    CHECK_EQ(boot_e820_default(64 * MiB + 1, map, BOOT_E820_DEFAULT_MAX), -EINVAL);
    CHECK_EQ(boot_e820_default(0xfffffffffffff000ull, map, BOOT_E820_DEFAULT_MAX), -EINVAL);
    CHECK_EQ(boot_e820_default(8 * GiB, map, 3), -ENOSPC);
    CHECK_EQ(boot_e820_default(64 * MiB, map, 2), -ENOSPC);
    CHECK_EQ(boot_e820_default(64 * MiB, NULL, 4), -ENOSPC);
}

static void detection(void)
{
    struct fx_bz b = fx_bz_default();
    size_t size = fx_bz_build(img, sizeof(img), &b);
    CHECK_EQ(boot_detect(img, size), BOOT_FORMAT_BZIMAGE);
    CHECK_EQ(boot_detect(img, 0x205), BOOT_FORMAT_UNKNOWN);

    struct fx_elf e = fx_pvh_default();
    size = fx_elf_build(img, sizeof(img), &e);
    CHECK_EQ(boot_detect(img, size), BOOT_FORMAT_PVH);

    /* An ELF with both a PVH note and a multiboot header is booted through PVH. */
    e.multiboot = true;
    e.mb_flags = 3;
    size = fx_elf_build(img, sizeof(img), &e);
    CHECK_EQ(boot_detect(img, size), BOOT_FORMAT_PVH);

    e = fx_mb_elf_default();
    size = fx_elf_build(img, sizeof(img), &e);
    CHECK_EQ(boot_detect(img, size), BOOT_FORMAT_MULTIBOOT);

    struct fx_aout a = fx_aout_default();
    size = fx_aout_build(img, sizeof(img), &a);
    CHECK_EQ(boot_detect(img, size), BOOT_FORMAT_MULTIBOOT);

    memset(img, 0, 4096);
    CHECK_EQ(boot_detect(img, 4096), BOOT_FORMAT_UNKNOWN);
    CHECK_EQ(boot_detect(NULL, 0), BOOT_FORMAT_UNKNOWN);
    CHECK_EQ(boot_detect(img, 0), BOOT_FORMAT_UNKNOWN);

    CHECK(strcmp(boot_format_name(BOOT_FORMAT_BZIMAGE), "bzImage") == 0, "name");
    CHECK(strcmp(boot_format_name(BOOT_FORMAT_PVH), "PVH") == 0, "name");
    CHECK(strcmp(boot_format_name(BOOT_FORMAT_MULTIBOOT), "multiboot") == 0, "name");
    CHECK(strcmp(boot_format_name(BOOT_FORMAT_UNKNOWN), "unknown") == 0, "name");
}

static void dispatch(void)
{
    struct boot_config cfg;
    size_t size;

    struct fx_bz b = fx_bz_default();
    size = fx_bz_build(img, sizeof(img), &b);
    cfg = fx_config(&vm, img, size);
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), 0);
    CHECK_EQ(res.format, BOOT_FORMAT_BZIMAGE);

    struct fx_elf e = fx_pvh_default();
    size = fx_elf_build(img, sizeof(img), &e);
    cfg = fx_config(&vm, img, size);
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), 0);
    CHECK_EQ(res.format, BOOT_FORMAT_PVH);

    e = fx_mb_elf_default();
    size = fx_elf_build(img, sizeof(img), &e);
    cfg = fx_config(&vm, img, size);
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), 0);
    CHECK_EQ(res.format, BOOT_FORMAT_MULTIBOOT);

    /* Each per-format loader refuses the others. */
    CHECK_EQ(boot_bzimage_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    struct fx_bz b2 = fx_bz_default();
    size = fx_bz_build(img, sizeof(img), &b2);
    cfg = fx_config(&vm, img, size);
    CHECK_EQ(boot_multiboot_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    CHECK_EQ(boot_pvh_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
}

static void unknown_formats(void)
{
    struct boot_config cfg;

    memset(img, 0x90, 4096);
    cfg = fx_config(&vm, img, 4096);
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    CHECK(err_has("kernel: unknown format") && err_has("(4096 bytes)"), "%s", err);

    cfg = fx_config(&vm, img, 0);
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    CHECK(strcmp(err, "kernel: empty file") == 0, "%s", err);

    /* A gzip file, a PE file: still "unknown", never a crash. */
    static const uint8_t gz[] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    cfg = fx_config(&vm, gz, sizeof(gz));
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    static const uint8_t elf_only[] = {0x7f, 'E', 'L', 'F'};
    cfg = fx_config(&vm, elf_only, sizeof(elf_only));
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), -ENOEXEC);
    CHECK(err_has("truncated"), "%s", err);

    /* A short err buffer still gets a NUL-terminated prefix; NULL err is allowed. */
    char tiny[8];
    cfg = fx_config(&vm, img, 4096);
    CHECK_EQ(boot_load(&cfg, &st, &res, tiny, sizeof(tiny)), -ENOEXEC);
    CHECK(strcmp(tiny, "kernel:") == 0, "%s", tiny);
    CHECK_EQ(boot_load(&cfg, &st, &res, NULL, 0), -ENOEXEC);
}

static void caller_errors(void)
{
    struct fx_bz b = fx_bz_default();
    size_t size = fx_bz_build(img, sizeof(img), &b);
    struct boot_config cfg;
    struct boot_e820_entry map[4];

    cfg = fx_config(&vm, img, size);
    cfg.mem = NULL;
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), -EINVAL);
    CHECK(err_has("no guest memory"), "%s", err);

    cfg = fx_config(&vm, NULL, 10);
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), -EINVAL);
    cfg = fx_config(&vm, img, size);
    cfg.initrd_size = 10;
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), -EINVAL);

    cfg = fx_config(&vm, img, size);
    cfg.e820_count = 0;
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), -EINVAL);
    CHECK(err_has("empty memory map"), "%s", err);

    /* An entry that wraps around the address space. */
    memcpy(map, vm.e820, 3 * sizeof(map[0]));
    map[3] = (struct boot_e820_entry){0xfffffffffffff000ull, 0x2000, BOOT_E820_RESERVED};
    cfg = fx_config(&vm, img, size);
    cfg.e820 = map;
    cfg.e820_count = 4;
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), -EINVAL);
    CHECK(err_has("entry 3") && err_has("wraps"), "%s", err);

    /* The loader's low area must be RAM. */
    map[0] = (struct boot_e820_entry){0, 0x9000, BOOT_E820_RAM};
    map[1] = (struct boot_e820_entry){0x9000, 0x100000 - 0x9000, BOOT_E820_RESERVED};
    cfg.e820_count = 3;
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), -EINVAL);
    CHECK(err_has("must be RAM for boot structures"), "%s", err);

    /* e820 RAM that guest_mem does not back: found while writing. */
    memcpy(map, vm.e820, 3 * sizeof(map[0]));
    map[2].size = 1 * GiB;
    struct boot_config c2 = fx_config(&vm, img, size);
    c2.e820 = map;
    c2.e820_count = 3;
    static const uint8_t initrd[4096];
    c2.initrd = initrd;
    c2.initrd_size = sizeof(initrd);
    CHECK_EQ(boot_load(&c2, &st, &res, err, sizeof(err)), -EFAULT);
    CHECK(err_has("is not guest memory"), "%s", err);

    /* Adjacent RAM entries count as one range. */
    map[0] = (struct boot_e820_entry){0, 0x50000, BOOT_E820_RAM};
    map[1] = (struct boot_e820_entry){0x50000, 0x9fc00 - 0x50000, BOOT_E820_RAM};
    map[2] = (struct boot_e820_entry){0x100000, 16 * MiB, BOOT_E820_RAM};
    map[3] = (struct boot_e820_entry){17 * MiB, 47 * MiB, BOOT_E820_RAM};
    c2 = fx_config(&vm, img, size);
    c2.e820 = map;
    c2.e820_count = 4;
    CHECK_EQ(boot_load(&c2, &st, &res, err, sizeof(err)), 0); /* kernel [16, 20) MiB spans */
    CHECK_EQ(res.kernel_start, 0x1000000);
}

static void low_area_is_cleared(void)
{
    /* Stale bytes from an earlier load must not survive into a new one. */
    memset(fx_gpa(&vm, BOOT_LOW_START, BOOT_LOW_END - BOOT_LOW_START), 0xcc,
           BOOT_LOW_END - BOOT_LOW_START);
    struct fx_elf e = fx_mb_elf_default();
    size_t size = fx_elf_build(img, sizeof(img), &e);
    struct boot_config cfg = fx_config(&vm, img, size);
    CHECK_EQ(boot_load(&cfg, &st, &res, err, sizeof(err)), 0);
    const uint8_t *mbi = fx_gpa(&vm, BOOT_PARAMS_ADDR, 0x1000);
    bool zero = true;
    for (unsigned i = 116; i < 0x1000; i++)
        zero &= mbi[i] == 0;
    CHECK(zero, "rest of the info page is zero");
    CHECK_EQ(fx_gpa(&vm, BOOT_LOW_END - 1, 1)[0], 0);
}

int main(void)
{
    if (fx_vm_create(&vm, 64 * MiB)) {
        printf("Bail out! cannot map guest RAM\n");
        return 1;
    }
    RUN(e820_default_map);
    RUN(detection);
    RUN(dispatch);
    RUN(unknown_formats);
    RUN(caller_errors);
    RUN(low_area_is_cleared);
    fx_vm_destroy(&vm);
    return check_done();
}
