/* SPDX-License-Identifier: MIT */
/* Kernel loaders: put a bzImage, PVH vmlinux or multiboot kernel into guest RAM, ready to run. */
#ifndef REVIRT_BOOT_BOOT_H
#define REVIRT_BOOT_BOOT_H

/*
 * Contract
 * --------
 * The VMM maps guest RAM, builds the e820 map that describes it (boot_e820_default gives the
 * standard one), then calls boot_load once, before any vCPU runs. boot_load reads the kernel
 * (and initrd) from caller memory, writes the kernel, initrd, command line and every structure
 * the kernel's boot protocol needs into guest RAM, and describes the boot vCPU's first
 * instruction in a struct hav_x86_state. The caller then applies that state with
 * hav_vcpu_set_state(vcpu, st, res.mask) and runs the vCPU. Application processors are not
 * touched: they are brought up by the guest (INIT-SIPI-SIPI).
 *
 * Trust: every byte of the kernel and initrd is untrusted input. Header offsets, sizes, counts
 * and addresses are checked (including for overflow) before use; nothing is read outside
 * [kernel, kernel + kernel_size) or [initrd, initrd + initrd_size), and every guest write goes
 * through guest_mem (vmm/guest_mem.h), so nothing outside guest RAM is ever written.
 *
 * Ownership: the loader keeps no pointer to anything after it returns. It owns the guest range
 * [BOOT_LOW_START, BOOT_LOW_END) during the call and zeroes all of it; other components must
 * put nothing there (ACPI tables go to [BOOT_ACPI_START, BOOT_HIGH_START), which the loader
 * never writes). The kernel is loaded at or above BOOT_HIGH_START (1 MiB), the initrd as high
 * as the kernel's limits allow, both only inside e820 RAM entries.
 *
 * Errors: 0 on success; on failure a negative errno and a one-line reason in err (when err is
 * not NULL; truncated to err_len, always NUL-terminated), e.g.
 * "bzImage: setup header version 2.02 is older than 2.06". Guest RAM may then hold a partly
 * loaded kernel: the caller must not run the VM. The errno says whose fault it is:
 *   -ENOEXEC  the kernel image is not one of the formats, or is corrupt or truncated: a header
 *             field points outside the file, sizes overflow, a magic or checksum is wrong.
 *   -ENOTSUP  the image is well formed but asks for something revirter does not do (a boot
 *             protocol older than 2.06, a zImage, multiboot video modes, a non-x86 ELF).
 *   -ENOMEM   the kernel or initrd does not fit where the protocol allows in guest RAM.
 *   -E2BIG    the command line is longer than the kernel accepts or than BOOT_CMDLINE_MAX.
 *   -EINVAL   the caller's configuration is wrong (no guest memory, bad e820 map, e820 RAM
 *             missing under the loader's low area).
 *   -EFAULT   e820 says RAM where guest_mem has none (a caller bug found while writing).
 *
 * Boot vCPU state (groups HAV_X86_GPRS | HAV_X86_SEGS | HAV_X86_CRS, all fields of them set):
 * flat 4 GiB segments from the loader's GDT (CS 0x10, DS = ES = FS = GS = SS 0x18, TR 0x20 a
 * busy TSS with base 0 and limit 0x67, LDTR unusable), IDT base 0 limit 0, RFLAGS 0x2
 * (interrupts off), RSP BOOT_STACK_TOP, IA32_APIC_BASE BOOT_APIC_BASE, other registers 0.
 *   bzImage, 64-bit (XLF_KERNEL_64): long mode, CR0 PE|ET|PG, CR4 PAE, EFER LME|LMA, CR3 the
 *            identity map of [0, 4 GiB); RIP load address + 0x200, RSI zero page.
 *   bzImage, 32-bit (no XLF_KERNEL_64 or protocol < 2.12): CR0 PE|ET, paging off; RIP load
 *            address, ESI zero page, EBX = EBP = EDI = 0.
 *   PVH:     CR0 PE|ET, CR4 0, paging off; RIP the PHYS32_ENTRY note, EBX hvm_start_info.
 *   multiboot: CR0 PE|ET, paging off; RIP the entry, EAX 0x2badb002, EBX multiboot_info.
 * The caller sets whatever else it wants (FPU, MSRs, CPUID) on its own.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "revirt/hav.h"
#include "core/guest_mem.h"

/*
 * Guest-physical layout
 * ---------------------
 *   [0, 0x1000)              untouched (real-mode IVT / BIOS data area; Linux reserves it)
 *   [0x1000, 0x9f000)        the loader's area, BOOT_LOW_START .. BOOT_LOW_END:
 *       0x1000               GDT (5 descriptors: null, null, code 0x10, data 0x18, TSS 0x20)
 *       0x2000               PML4        } identity map of [0, 4 GiB) with 2 MiB pages,
 *       0x3000               PDPT        } only for the 64-bit Linux entry
 *       0x4000 .. 0x8000     4 page directories
 *       0x8000 .. 0x9000     boot stack (RSP starts at BOOT_STACK_TOP)
 *       0x9000               zero page (bzImage) / hvm_start_info (PVH) / multiboot_info
 *       0xa000               memory map (PVH memmap / multiboot mmap)
 *       0xb000               module list and its strings, boot loader name
 *       0x20000 .. 0x30000   kernel command line (BOOT_CMDLINE_MAX bytes with the NUL)
 *   [0x9f000, 0x9fc00)       RAM left alone
 *   [0x9fc00, 0x100000)      reserved: EBDA, VGA hole, option ROMs, BIOS; ACPI tables at
 *                            [0xe0000, 0x100000) are written by another component
 *   [0x100000, 3 GiB)        RAM: kernel, initrd (e820 RAM up to min(ram_size, 3 GiB))
 *   [3 GiB, 4 GiB)           32-bit PCI / MMIO hole, never RAM
 *   [4 GiB, ...)             RAM beyond the first 3 GiB (ram_size - 3 GiB of it)
 */
#define BOOT_LOW_START 0x1000ull
#define BOOT_GDT_ADDR 0x1000ull
#define BOOT_PML4_ADDR 0x2000ull
#define BOOT_PDPT_ADDR 0x3000ull
#define BOOT_PD_ADDR 0x4000ull /* BOOT_PD_COUNT pages */
#define BOOT_PD_COUNT 4u
#define BOOT_STACK_TOP 0x9000ull
#define BOOT_PARAMS_ADDR 0x9000ull
#define BOOT_MMAP_ADDR 0xa000ull
#define BOOT_MODS_ADDR 0xb000ull
#define BOOT_CMDLINE_ADDR 0x20000ull
#define BOOT_CMDLINE_MAX 0x10000ull /* bytes including the terminating NUL */
#define BOOT_LOW_END 0x9f000ull
#define BOOT_EBDA_START 0x9fc00ull
#define BOOT_ACPI_START 0xe0000ull
#define BOOT_HIGH_START 0x100000ull
#define BOOT_PCI_HOLE_START 0xc0000000ull
#define BOOT_4G 0x100000000ull

/* Selectors of the loader's GDT. The Linux boot protocol needs code at 0x10 and data at 0x18
 * (__BOOT_CS, __BOOT_DS); PVH and multiboot accept any flat segments, so all formats use
 * these. */
#define BOOT_SEL_CODE 0x10u
#define BOOT_SEL_DATA 0x18u
#define BOOT_SEL_TSS 0x20u

/* Value given to IA32_APIC_BASE (CRS group): the reset value of the bootstrap processor,
 * xAPIC enabled at 0xfee00000 with the BSP flag. */
#define BOOT_APIC_BASE 0xfee00900ull

/* ---------------------------------------------------------------- e820 */

enum boot_e820_type {
    BOOT_E820_RAM = 1,
    BOOT_E820_RESERVED = 2,
    BOOT_E820_ACPI = 3, /* ACPI tables, reclaimable after they are read */
    BOOT_E820_NVS = 4,
    BOOT_E820_UNUSABLE = 5,
};

/* The most entries boot_load accepts: what the Linux zero page holds (e820_table[128]). */
#define BOOT_E820_MAX 128u
/* The most entries boot_e820_default produces. */
#define BOOT_E820_DEFAULT_MAX 4u

struct boot_e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type; /* enum boot_e820_type */
};

/* Fill map with the standard PC map for ram_size bytes of guest RAM and return the number of
 * entries (3 or 4):
 *   RAM [0, 0x9fc00), reserved [0x9fc00, 1 MiB), RAM [1 MiB, min(ram_size, 3 GiB)),
 *   and when ram_size > 3 GiB, RAM [4 GiB, 4 GiB + ram_size - 3 GiB).
 * The VMM maps guest RAM to match: one region at 0 of min(ram_size, 3 GiB) bytes (which also
 * backs the reserved BIOS range), and a second at 4 GiB for the rest.
 * -EINVAL if ram_size is below 2 MiB, not a multiple of 4 KiB, or so large that the top
 * overflows; -ENOSPC if max is smaller than the entries needed. */
HAV_MUST_CHECK int boot_e820_default(uint64_t ram_size, struct boot_e820_entry *map, unsigned max);

/* ---------------------------------------------------------------- loading */

enum boot_format {
    BOOT_FORMAT_UNKNOWN,
    BOOT_FORMAT_BZIMAGE,   /* Linux x86 boot protocol, 64-bit entry (or 32-bit if the kernel
                              lacks XLF_KERNEL_64) */
    BOOT_FORMAT_PVH,       /* ELF with XEN_ELFNOTE_PHYS32_ENTRY, 32-bit entry */
    BOOT_FORMAT_MULTIBOOT, /* multiboot v1, ELF or a.out kludge, 32-bit entry */
};

struct boot_config {
    const uint8_t *kernel; /* the whole kernel file */
    size_t kernel_size;
    const uint8_t *initrd; /* optional: NULL or initrd_size 0 for none */
    size_t initrd_size;
    const char *cmdline;                /* NUL-terminated; NULL means "" */
    const struct guest_mem *mem;        /* guest RAM; must back every e820 RAM entry */
    const struct boot_e820_entry *e820; /* the map the guest will see; at most BOOT_E820_MAX
                                           entries, [BOOT_LOW_START, BOOT_LOW_END) must be RAM */
    unsigned e820_count;
    uint64_t rsdp_addr; /* guest-physical ACPI RSDP, 0 when there is none */
};

/* What was loaded where; filled on success only. */
struct boot_result {
    enum boot_format format;
    uint32_t mask;     /* register groups boot_load filled in *st: HAV_X86_GPRS|SEGS|CRS */
    bool long_mode;    /* entered in 64-bit mode (bzImage with XLF_KERNEL_64) */
    uint16_t protocol; /* bzImage boot protocol version (0x020f is 2.15); 0 for others */
    uint64_t entry;    /* guest-physical first instruction (= st->gprs.rip) */
    uint64_t kernel_start, kernel_end; /* [start, end): the range the kernel occupies, for a
                                          bzImage up to load address + init_size */
    uint64_t pref_address;             /* bzImage: the kernel's preferred load address */
    uint32_t init_size;                /* bzImage: memory the kernel needs to start */
    uint64_t initrd_addr, initrd_size; /* 0, 0 when there is no initrd */
    uint64_t params_addr;              /* zero page, hvm_start_info or multiboot_info */
    uint64_t cmdline_addr;
};

/* Which format kernel looks like, from its magic numbers only (no validation). */
enum boot_format boot_detect(const uint8_t *kernel, size_t kernel_size);
/* "bzImage", "PVH", "multiboot" or "unknown". */
const char *boot_format_name(enum boot_format format);

/* Detect the format and load it (see the contract above). On success *st holds the boot vCPU's
 * registers for the groups in res->mask (its other fields are untouched) and *res says what
 * went where. On failure *st and *res are unspecified. All pointers except err must be
 * non-NULL. */
HAV_MUST_CHECK int boot_load(const struct boot_config *cfg, struct hav_x86_state *st,
                             struct boot_result *res, char *err, size_t err_len);

/* The per-format loaders boot_load dispatches to; same contract, for callers (and fuzzers)
 * that know the format. Each rejects other formats with -ENOEXEC. */
HAV_MUST_CHECK int boot_bzimage_load(const struct boot_config *cfg, struct hav_x86_state *st,
                                     struct boot_result *res, char *err, size_t err_len);
HAV_MUST_CHECK int boot_pvh_load(const struct boot_config *cfg, struct hav_x86_state *st,
                                 struct boot_result *res, char *err, size_t err_len);
HAV_MUST_CHECK int boot_multiboot_load(const struct boot_config *cfg, struct hav_x86_state *st,
                                       struct boot_result *res, char *err, size_t err_len);

#endif
