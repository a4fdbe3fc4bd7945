/* SPDX-License-Identifier: MIT */
/* Writes the fuzz seed corpora: small valid kernels of every format, from the test fixtures. */

/*
 * Usage: fuzz_gen_corpus OUTDIR
 * Creates OUTDIR/<target>/<seed>.bin for the targets bzimage, pvh, multiboot and boot (the
 * dispatcher gets every seed). Seeds are kept small (a few KiB) so that random mutations land
 * on header fields often; they fit the fuzz targets' 32 MiB guest.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "fixture.h"

static uint8_t buf[0x10000];
static const char *outdir;

static int mkdir_p(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "fuzz_gen_corpus: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int put(const char *target, const char *name, size_t size)
{
    char path[4096];
    const char *dirs[] = {target, "boot"};

    if (size == 0) {
        fprintf(stderr, "fuzz_gen_corpus: %s/%s did not build\n", target, name);
        return -1;
    }
    for (unsigned i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", outdir, dirs[i]);
        if (mkdir_p(path))
            return -1;
        snprintf(path, sizeof(path), "%s/%s/%s-%s.bin", outdir, dirs[i], target, name);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, size, f) != size || fclose(f) != 0) {
            fprintf(stderr, "fuzz_gen_corpus: %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int bad = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_gen_corpus OUTDIR\n");
        return 2;
    }
    outdir = argv[1];
    if (mkdir_p(outdir))
        return 1;

    struct fx_bz bz = fx_bz_default();
    bz.payload = 0x400;
    bad |= put("bzimage", "64bit", fx_bz_build(buf, sizeof(buf), &bz));
    bz.xloadflags = 0;
    bad |= put("bzimage", "32bit", fx_bz_build(buf, sizeof(buf), &bz));
    bz = fx_bz_default();
    bz.payload = 0x400;
    bz.version = 0x0206;
    bad |= put("bzimage", "v2.06", fx_bz_build(buf, sizeof(buf), &bz));
    bz = fx_bz_default();
    bz.payload = 0x400;
    bz.relocatable = 0;
    bz.pref_address = 0x1000000;
    bz.trailer = 0x40;
    bad |= put("bzimage", "fixed", fx_bz_build(buf, sizeof(buf), &bz));

    struct fx_elf e = fx_pvh_default();
    e.filesz = 0x200;
    bad |= put("pvh", "elf64", fx_elf_build(buf, sizeof(buf), &e));
    e.note_in_section = true;
    bad |= put("pvh", "section-note", fx_elf_build(buf, sizeof(buf), &e));
    e = fx_pvh_default();
    e.filesz = 0x200;
    e.is64 = false;
    e.machine = 3;
    e.vaddr = 0xc1000000;
    e.pvh_descsz = 4;
    bad |= put("pvh", "elf32", fx_elf_build(buf, sizeof(buf), &e));

    e = fx_mb_elf_default();
    e.filesz = 0x200;
    bad |= put("multiboot", "elf32", fx_elf_build(buf, sizeof(buf), &e));
    e.is64 = true;
    e.machine = 62;
    e.vaddr = 0xffffffff80100000ull;
    e.e_entry = 0xffffffff80100040ull;
    bad |= put("multiboot", "elf64-high", fx_elf_build(buf, sizeof(buf), &e));
    struct fx_aout a = fx_aout_default();
    a.file_size = 0x400;
    bad |= put("multiboot", "aout", fx_aout_build(buf, sizeof(buf), &a));
    a.load_end_addr = 0x100300;
    a.bss_end_addr = 0x102000;
    bad |= put("multiboot", "aout-bss", fx_aout_build(buf, sizeof(buf), &a));
    /* Rewriting files does not change the directory's time; touch it so that build tools
     * comparing it with the generator see it as fresh. */
    if (!bad && utimes(outdir, NULL) != 0) {
        fprintf(stderr, "fuzz_gen_corpus: %s: %s\n", outdir, strerror(errno));
        bad = 1;
    }
    return bad ? 1 : 0;
}
