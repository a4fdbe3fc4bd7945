/* SPDX-License-Identifier: MIT */
/* Boot loader test fixtures: guest RAM as the VMM maps it, and builders of tiny kernel images. */
#include "fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void *map_ram(uint64_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int fx_vm_create(struct fx_vm *vm, uint64_t ram_size)
{
    int n;

    memset(vm, 0, sizeof(*vm));
    n = boot_e820_default(ram_size, vm->e820, BOOT_E820_MAX);
    if (n < 0)
        return n;
    vm->e820_count = (unsigned)n;
    vm->low_size = ram_size < BOOT_PCI_HOLE_START ? ram_size : BOOT_PCI_HOLE_START;
    vm->high_size = ram_size - vm->low_size;
    vm->low = map_ram(vm->low_size);
    if (!vm->low)
        return -ENOMEM;
    if (guest_mem_add(&vm->mem, 0, vm->low, vm->low_size))
        return -EINVAL;
    if (vm->high_size) {
        vm->high = map_ram(vm->high_size);
        if (!vm->high)
            return -ENOMEM;
        if (guest_mem_add(&vm->mem, BOOT_4G, vm->high, vm->high_size))
            return -EINVAL;
    }
    return 0;
}

void fx_vm_destroy(struct fx_vm *vm)
{
    if (vm->low)
        munmap(vm->low, vm->low_size);
    if (vm->high)
        munmap(vm->high, vm->high_size);
    memset(vm, 0, sizeof(*vm));
}

uint8_t *fx_gpa(const struct fx_vm *vm, uint64_t gpa, uint64_t len)
{
    uint8_t *p = guest_mem_ptr(&vm->mem, gpa, len);
    if (!p) {
        printf("Bail out! guest range [0x%llx, +0x%llx) is not RAM\n", (unsigned long long)gpa,
               (unsigned long long)len);
        exit(1);
    }
    return p;
}

struct boot_config fx_config(const struct fx_vm *vm, const uint8_t *kernel, size_t size)
{
    return (struct boot_config){
        .kernel = kernel,
        .kernel_size = size,
        .mem = &vm->mem,
        .e820 = vm->e820,
        .e820_count = vm->e820_count,
    };
}

bool fx_clean_result(int rc, const char *err)
{
    if (rc == 0)
        return true;
    switch (rc) {
    case -ENOEXEC:
    case -ENOTSUP:
    case -ENOMEM:
    case -E2BIG:
    case -EINVAL:
    case -EFAULT:
        return err[0] != '\0' && strchr(err, '\n') == NULL;
    default:
        return false;
    }
}

unsigned fx_prefixes(const struct fx_vm *vm, const uint8_t *img, size_t size, fx_load_fn load,
                     size_t *ok, size_t *first_ok)
{
    static struct hav_x86_state st;
    unsigned bad = 0;

    *ok = 0;
    *first_ok = size + 1;
    for (size_t len = 0; len <= size; len++) {
        /* malloc(0) may return NULL; give it one byte but pass length 0. */
        uint8_t *copy = malloc(len ? len : 1);
        struct boot_result res;
        char err[256];
        if (!copy)
            abort();
        memcpy(copy, img, len);
        struct boot_config cfg = fx_config(vm, copy, len);
        cfg.cmdline = "console=ttyS0";
        int rc = load(&cfg, &st, &res, err, sizeof(err));
        if (!fx_clean_result(rc, err)) {
            if (bad++ < 5)
                printf("# prefix %zu: rc %d, err \"%s\"\n", len, rc, err);
        }
        if (rc == 0) {
            ++*ok;
            if (len < *first_ok)
                *first_ok = len;
        }
        free(copy);
    }
    return bad;
}

/* ---------------------------------------------------------------- bzImage */

struct fx_bz fx_bz_default(void)
{
    return (struct fx_bz){
        .version = 0x020f,
        .setup_sects = 4,
        .payload = 0x1000,
        .loadflags = 0x01,
        .xloadflags = 0x03,
        .relocatable = 1,
        .kernel_alignment = 0x200000,
        .pref_address = 0x1000000,
        .init_size = 0x400000,
        .cmdline_size = 2047,
        .initrd_addr_max = 0x7fffffff,
    };
}

size_t fx_bz_build(uint8_t *buf, size_t cap, const struct fx_bz *o)
{
    const unsigned sects = o->setup_sects ? o->setup_sects : 4;
    const size_t setup = (size_t)(sects + 1) * 512;
    const size_t size = setup + o->payload + o->trailer;

    if (size > cap || setup < 0x290)
        return 0;
    memset(buf, 0, size);
    /* The fields a real arch/x86/boot/header.S lays out, at their boot.rst offsets. */
    buf[0x1f1] = o->setup_sects;
    le_put32(buf + 0x1f4, o->syssize ? o->syssize : (o->payload + 15) / 16);
    le_put16(buf + 0x1fa, 0xffff); /* vid_mode "normal" */
    le_put16(buf + 0x1fe, 0xaa55);
    buf[0x200] = 0xeb;
    buf[0x201] = 0x6a; /* header ends at 0x26c, as in 2.15 */
    memcpy(buf + 0x202, "HdrS", 4);
    le_put16(buf + 0x206, o->version);
    buf[0x211] = o->loadflags;
    le_put32(buf + 0x214, 0x100000);
    le_put32(buf + 0x22c, o->initrd_addr_max);
    le_put32(buf + 0x230, o->kernel_alignment);
    buf[0x234] = o->relocatable;
    le_put16(buf + 0x236, o->xloadflags);
    le_put32(buf + 0x238, o->cmdline_size);
    le_put64(buf + 0x258, o->pref_address);
    le_put32(buf + 0x260, o->init_size);
    for (size_t i = 0; i < (size_t)o->payload + o->trailer; i++)
        buf[setup + i] = fx_pattern(i);
    return size;
}

/* ---------------------------------------------------------------- ELF */

struct fx_elf fx_pvh_default(void)
{
    return (struct fx_elf){
        .is64 = true,
        .machine = 62,
        .type = 2,
        .vaddr = 0xffffffff81000000ull,
        .paddr = 0x100000,
        .filesz = 0x800,
        .memsz = 0x2000,
        .e_entry = 0xffffffff81000000ull,
        .pvh_descsz = 8,
        .pvh_entry = 0x100100,
    };
}

struct fx_elf fx_mb_elf_default(void)
{
    return (struct fx_elf){
        .is64 = false,
        .machine = 3,
        .type = 2,
        .vaddr = 0x100000,
        .paddr = 0x100000,
        .filesz = 0x800,
        .memsz = 0x2000,
        .e_entry = 0x100040,
        .multiboot = true,
        .mb_flags = 0x3,
    };
}

static void put_mb_header(uint8_t *p, uint32_t flags)
{
    le_put32(p, 0x1badb002u);
    le_put32(p + 4, flags);
    le_put32(p + 8, (uint32_t)(0u - 0x1badb002u - flags));
}

size_t fx_elf_build(uint8_t *buf, size_t cap, const struct fx_elf *o)
{
    const bool pt_note = o->pvh_descsz && !o->note_in_section;
    const unsigned phent = o->is64 ? 56 : 32, shent = o->is64 ? 64 : 40;
    const unsigned phnum = pt_note ? 2 : 1;
    const size_t note_len = o->pvh_descsz ? 12 + 4 + ((o->pvh_descsz + 3) & ~3u) : 0;
    const size_t payload_end = FX_ELF_PAYLOAD_OFF + o->filesz;
    const size_t shoff = (payload_end + 7) & ~(size_t)7;
    const size_t size = o->note_in_section ? shoff + 2 * shent : payload_end;
    const uint8_t *const magic = (const uint8_t *)"\177ELF";

    if (size > cap || o->filesz > cap)
        return 0;
    memset(buf, 0, size);
    memcpy(buf, magic, 4);
    buf[4] = o->is64 ? 2 : 1;
    buf[5] = 1; /* little-endian */
    buf[6] = 1;
    le_put16(buf + 16, o->type);
    le_put16(buf + 18, o->machine);
    le_put32(buf + 20, 1);
    if (o->is64) {
        le_put64(buf + 24, o->e_entry);
        le_put64(buf + 32, FX_ELF_PHOFF);
        le_put64(buf + 40, o->note_in_section ? shoff : 0);
        le_put16(buf + 52, 64);
        le_put16(buf + 54, (uint16_t)phent);
        le_put16(buf + 56, (uint16_t)phnum);
        le_put16(buf + 58, (uint16_t)shent);
        le_put16(buf + 60, o->note_in_section ? 2 : 0);
    } else {
        le_put32(buf + 24, (uint32_t)o->e_entry);
        le_put32(buf + 28, 52);
        le_put32(buf + 32, o->note_in_section ? (uint32_t)shoff : 0);
        le_put16(buf + 40, 52);
        le_put16(buf + 42, (uint16_t)phent);
        le_put16(buf + 44, (uint16_t)phnum);
        le_put16(buf + 46, (uint16_t)shent);
        le_put16(buf + 48, o->note_in_section ? 2 : 0);
    }

    /* PT_LOAD, then PT_NOTE. */
    const uint64_t phoff = o->is64 ? FX_ELF_PHOFF : 52;
    for (unsigned i = 0; i < phnum; i++) {
        uint8_t *ph = buf + phoff + i * phent;
        uint32_t type = i == 0 ? 1 : 4;
        uint64_t off = i == 0 ? FX_ELF_PAYLOAD_OFF : FX_ELF_NOTE_OFF;
        uint64_t va = i == 0 ? o->vaddr : 0, pa = i == 0 ? o->paddr : 0;
        uint64_t fsz = i == 0 ? o->filesz : note_len, msz = i == 0 ? o->memsz : note_len;
        uint64_t align = i == 0 ? 0x1000 : 4;
        if (o->is64) {
            le_put32(ph, type);
            le_put32(ph + 4, i == 0 ? 7 : 4);
            le_put64(ph + 8, off);
            le_put64(ph + 16, va);
            le_put64(ph + 24, pa);
            le_put64(ph + 32, fsz);
            le_put64(ph + 40, msz);
            le_put64(ph + 48, align);
        } else {
            le_put32(ph, type);
            le_put32(ph + 4, (uint32_t)off);
            le_put32(ph + 8, (uint32_t)va);
            le_put32(ph + 12, (uint32_t)pa);
            le_put32(ph + 16, (uint32_t)fsz);
            le_put32(ph + 20, (uint32_t)msz);
            le_put32(ph + 24, i == 0 ? 7 : 4);
            le_put32(ph + 28, (uint32_t)align);
        }
    }

    if (o->pvh_descsz) {
        /* Elf_Nhdr, then "Xen\0", then the entry (XEN_ELFNOTE_PHYS32_ENTRY = 18). */
        uint8_t *n = buf + FX_ELF_NOTE_OFF;
        le_put32(n, 4);
        le_put32(n + 4, o->pvh_descsz);
        le_put32(n + 8, 18);
        memcpy(n + 12, "Xen", 4);
        if (o->pvh_descsz >= 8)
            le_put64(n + 16, o->pvh_entry);
        else if (o->pvh_descsz >= 4)
            le_put32(n + 16, (uint32_t)o->pvh_entry);
    }

    for (uint64_t i = 0; i < o->filesz; i++)
        buf[FX_ELF_PAYLOAD_OFF + i] = fx_pattern(i);
    if (o->multiboot && o->filesz >= 12)
        put_mb_header(buf + FX_ELF_PAYLOAD_OFF, o->mb_flags);

    if (o->note_in_section) {
        /* Section 0 is the null section; section 1 is the note. */
        uint8_t *sh = buf + shoff + shent;
        le_put32(sh + 4, 7); /* SHT_NOTE */
        if (o->is64) {
            le_put64(sh + 24, FX_ELF_NOTE_OFF);
            le_put64(sh + 32, note_len);
            le_put64(sh + 48, 4);
        } else {
            le_put32(sh + 16, FX_ELF_NOTE_OFF);
            le_put32(sh + 20, (uint32_t)note_len);
            le_put32(sh + 32, 4);
        }
    }
    return size;
}

/* ---------------------------------------------------------------- a.out kludge */

struct fx_aout fx_aout_default(void)
{
    return (struct fx_aout){
        .hdr_off = 0x40,
        .file_size = 0x1000,
        .header_addr = 0x100040,
        .load_addr = 0x100000,
        .load_end_addr = 0,
        .bss_end_addr = 0x103000,
        .entry_addr = 0x100080,
    };
}

size_t fx_aout_build(uint8_t *buf, size_t cap, const struct fx_aout *o)
{
    if (o->file_size > cap || o->hdr_off + 32 > o->file_size)
        return 0;
    for (size_t i = 0; i < o->file_size; i++)
        buf[i] = fx_pattern(i);
    uint8_t *h = buf + o->hdr_off;
    put_mb_header(h, (1u << 16) | 0x3 | o->extra_flags);
    le_put32(h + 12, o->header_addr);
    le_put32(h + 16, o->load_addr);
    le_put32(h + 20, o->load_end_addr);
    le_put32(h + 24, o->bss_end_addr);
    le_put32(h + 28, o->entry_addr);
    return o->file_size;
}
