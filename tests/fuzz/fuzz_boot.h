/* SPDX-License-Identifier: MIT */
/* Shared body of the boot loader fuzz targets: one guest, two configurations, invariants. */
#ifndef REVIRT_TESTS_FUZZ_BOOT_H
#define REVIRT_TESTS_FUZZ_BOOT_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "boot/boot.h"

/* 32 MiB of guest RAM: enough for the seeds' kernels (1 MiB and 16 MiB load addresses) while
 * bounding what one input can make the loader copy or zero. */
#define FUZZ_RAM (32ull << 20)

typedef int (*fuzz_load_fn)(const struct boot_config *cfg, struct hav_x86_state *st,
                            struct boot_result *res, char *err, size_t err_len);

struct fuzz_guest {
    struct guest_mem mem;
    struct boot_e820_entry e820[BOOT_E820_DEFAULT_MAX];
    unsigned e820_count;
};

static struct fuzz_guest *fuzz_guest(void)
{
    static struct fuzz_guest g;
    static int ready;

    if (!ready) {
        void *ram = mmap(NULL, FUZZ_RAM, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        int n = boot_e820_default(FUZZ_RAM, g.e820, BOOT_E820_DEFAULT_MAX);
        if (ram == MAP_FAILED || n < 0 || guest_mem_add(&g.mem, 0, ram, FUZZ_RAM)) {
            fprintf(stderr, "fuzz: cannot set up guest RAM\n");
            abort();
        }
        g.e820_count = (unsigned)n;
        ready = 1;
    }
    return &g;
}

/* A failed invariant is a bug: stop like a sanitizer would, so the input is kept. */
static void fuzz_require(int cond, const char *what, int rc, const char *err)
{
    if (!cond) {
        fprintf(stderr, "fuzz: invariant broken: %s (rc %d, \"%s\")\n", what, rc, err);
        abort();
    }
}

static void fuzz_check(int rc, const char *err, const struct boot_result *res,
                       const struct hav_x86_state *st)
{
    if (rc != 0) {
        fuzz_require(rc == -ENOEXEC || rc == -ENOTSUP || rc == -ENOMEM || rc == -E2BIG ||
                         rc == -EINVAL || rc == -EFAULT,
                     "documented errno", rc, err);
        fuzz_require(err[0] != '\0' && strchr(err, '\n') == NULL, "one-line reason", rc, err);
        /* The e820 map matches guest memory, so a write can never miss it. */
        fuzz_require(rc != -EFAULT && rc != -EINVAL, "no caller error with a good config", rc, err);
        return;
    }
    fuzz_require(st->gprs.rip == res->entry, "rip is the entry", rc, err);
    fuzz_require(res->entry >= res->kernel_start && res->entry < res->kernel_end,
                 "entry inside the kernel", rc, err);
    fuzz_require(res->kernel_start >= BOOT_HIGH_START && res->kernel_end <= FUZZ_RAM,
                 "kernel inside RAM above 1 MiB", rc, err);
    fuzz_require(res->mask == (HAV_X86_GPRS | HAV_X86_SEGS | HAV_X86_CRS), "mask", rc, err);
    if (res->initrd_size) {
        fuzz_require(res->initrd_addr % 4096 == 0 && res->initrd_addr >= BOOT_HIGH_START &&
                         res->initrd_addr + res->initrd_size <= FUZZ_RAM,
                     "initrd page aligned in RAM", rc, err);
        /* A non-relocatable bzImage claims two ranges and the initrd may sit between them;
         * the other formats claim one. */
        if (res->format != BOOT_FORMAT_BZIMAGE)
            fuzz_require(res->initrd_addr + res->initrd_size <= res->kernel_start ||
                             res->initrd_addr >= res->kernel_end,
                         "initrd clear of the kernel", rc, err);
    }
}

/* Run one input through load twice: with an initrd and a command line, and bare. */
static int fuzz_boot_one(fuzz_load_fn load, const uint8_t *data, size_t size)
{
    static uint8_t initrd[0x3000];
    static struct hav_x86_state st;
    struct fuzz_guest *g = fuzz_guest();
    struct boot_result res;
    char err[256];

    struct boot_config cfg = {
        .kernel = data,
        .kernel_size = size,
        .initrd = initrd,
        .initrd_size = sizeof(initrd),
        .cmdline = "console=ttyS0 root=/dev/vda rw",
        .mem = &g->mem,
        .e820 = g->e820,
        .e820_count = g->e820_count,
        .rsdp_addr = 0xe0000,
    };
    err[0] = '\0';
    int rc = load(&cfg, &st, &res, err, sizeof(err));
    fuzz_check(rc, err, &res, &st);

    cfg.initrd = NULL;
    cfg.initrd_size = 0;
    cfg.cmdline = NULL;
    err[0] = '\0';
    rc = load(&cfg, &st, &res, err, sizeof(err));
    fuzz_check(rc, err, &res, &st);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
