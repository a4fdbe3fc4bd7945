/* SPDX-License-Identifier: MIT */
/* ACPI tables (RSDP, RSDT/XSDT, FADT, FACS, MADT, DSDT) generated into guest memory at start. */
#ifndef REVIRT_VMM_ACPI_H
#define REVIRT_VMM_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest_mem.h"

/* The tables live in the legacy BIOS area so that a kernel started without a boot-protocol RSDP
 * pointer still finds the RSDP by its scan of [0xE0000, 0x100000) on 16-byte boundaries
 * (ACPI 6.5 §5.2.5.1). The boot loader must leave this range out of the E820 RAM list. */
#define ACPI_AREA_START 0xe0000u
#define ACPI_AREA_END 0x100000u

#define ACPI_LAPIC_ADDR 0xfee00000u
#define ACPI_IOAPIC_ADDR 0xfec00000u
#define ACPI_IOAPIC_PINS 24u

/* SLP_TYP value of the \_S5_ package in the DSDT; acpi_pm powers off when the guest writes
 * SLP_EN with this SLP_TYP into PM1a_CNT (ACPI 6.5 §4.8.3.2.1, §7.4.2). */
#define ACPI_S5_SLP_TYP 5u

/* The fixed-hardware registers the FADT points at; src/dev/acpi_pm decodes the same ports. */
struct acpi_ports {
    uint16_t pm1a_evt;   /* 4 bytes: PM1 status (2) then PM1 enable (2) */
    uint16_t pm1a_cnt;   /* 2 bytes: PM1 control */
    uint16_t pm_tmr;     /* 4 bytes: 3.579545 MHz timer, 32-bit; 0 leaves it out */
    uint16_t reset;      /* 1 byte: RESET_REG; 0 leaves it out */
    uint8_t reset_value; /* what the OS writes to RESET_REG */
    uint8_t sci_irq;     /* ISA IRQ (and GSI) of the SCI */
};

/* PIIX4-like choices: PM block at 0x600 (free on a PC), SCI on IRQ 9. The reset register is the
 * byte right after the PM timer, 0x60C, written with 0x06 (system reset + CPU reset, the value
 * of PIIX/ICH's RST_CNT). Not 0xCF9 as on those chipsets: that byte lies inside the PCI host's
 * CONFIG_ADDRESS register (0xCF8-0xCFB), which the bus can only hand to one device; the guest
 * finds the port in the FADT's RESET_REG either way (ACPI 6.5 §4.8.3.6). */
#define ACPI_PORTS_DEFAULT                                                                         \
    ((struct acpi_ports){.pm1a_evt = 0x600,                                                        \
                         .pm1a_cnt = 0x604,                                                        \
                         .pm_tmr = 0x608,                                                          \
                         .reset = 0x60c,                                                           \
                         .reset_value = 0x06,                                                      \
                         .sci_irq = 9})

/* A complete extra table (e.g. an MCFG from the PCI host bridge) to list in the RSDT/XSDT. Its
 * header's length must equal len; the checksum byte is recomputed when it is copied. */
struct acpi_table {
    const void *data;
    size_t len;
};

struct acpi_config {
    unsigned vcpus; /* vCPU i gets ACPI processor UID i and APIC ID i */
    struct acpi_ports ports;
    /* AML term list placed inside Scope (\_SB) of the DSDT, built with acpi_aml_* below;
     * NULL/0 for none. */
    const uint8_t *sb_aml;
    size_t sb_aml_len;
    const struct acpi_table *extra;
    unsigned extra_count;
};

/* Bytes of [ACPI_AREA_START, ACPI_AREA_END) the tables take for cfg, alignment included; 0 for
 * an invalid cfg or AML larger than the area. With no extra AML or tables: 0x2a8 + 8 * N for
 * N <= 255 vCPUs; from APIC ID 255 on each vCPU takes 16 bytes (x2APIC entry), plus 12 once
 * for the x2APIC NMI entry. The 128 KiB area so holds up to 8276 vCPUs, far beyond what a
 * backend allows. */
size_t acpi_tables_size(const struct acpi_config *cfg);

/* Write all tables into guest memory and return the RSDP address in *rsdp (for boot_params
 * acpi_rsdp_addr or the PVH start_info rsdp_paddr). -EINVAL for vcpus == 0, a zero PM1 port or
 * a malformed extra table; -ENOSPC when the tables do not fit the area; -EFAULT when the area
 * is not guest RAM. Nothing is written on failure. */
__attribute__((warn_unused_result)) int
acpi_tables_write(const struct guest_mem *m, const struct acpi_config *cfg, uint64_t *rsdp);

/* ---------------------------------------------------------------- AML writer
 * Enough AML (ACPI 6.5 §20.2) to describe devices: scopes, devices, named integers, strings,
 * EISA IDs and resource templates. Errors are sticky: build everything, then check
 * acpi_aml_finish once. Nesting (scope, device, resource template) up to ACPI_AML_DEPTH. */

#define ACPI_AML_DEPTH 8

struct acpi_aml {
    uint8_t *buf;
    size_t cap, len;
    size_t open[ACPI_AML_DEPTH]; /* where each open construct's body starts */
    uint8_t kind[ACPI_AML_DEPTH];
    unsigned depth;
    int err;
};

void acpi_aml_init(struct acpi_aml *a, uint8_t *buf, size_t cap);
/* Scope (path) { ... } and Device (name) { ... }, closed by acpi_aml_end. A path is one or more
 * 1-4 character name segments separated by '.', optionally starting with '\'. */
void acpi_aml_scope_begin(struct acpi_aml *a, const char *path);
void acpi_aml_device_begin(struct acpi_aml *a, const char *name);
void acpi_aml_end(struct acpi_aml *a);
/* Name (name, value) */
void acpi_aml_name_int(struct acpi_aml *a, const char *name, uint64_t value);
void acpi_aml_name_string(struct acpi_aml *a, const char *name, const char *value);
/* Name (name, EisaId ("PNP0501")): id is three capital letters and four hex digits. */
void acpi_aml_name_eisaid(struct acpi_aml *a, const char *name, const char *id);
/* Name (name, Package () { values... }) of integers. */
void acpi_aml_name_package(struct acpi_aml *a, const char *name, const uint64_t *values,
                           unsigned count);
/* Name (_CRS, ResourceTemplate () { ... }): descriptors in between, then acpi_aml_end (which
 * appends the end tag, ACPI 6.5 §6.4.2.9). */
void acpi_aml_crs_begin(struct acpi_aml *a);
/* IO (Decode16, base, base, 1, len) (ACPI 6.5 §6.4.2.5) */
void acpi_aml_crs_io(struct acpi_aml *a, uint16_t base, uint8_t len);
/* IRQNoFlags () { irq } (ACPI 6.5 §6.4.2.1): ISA, edge, active high. */
void acpi_aml_crs_irq(struct acpi_aml *a, uint8_t irq);
/* Address space descriptors of a bridge's _CRS (ACPI 6.5 §6.4.3.5): windows it forwards
 * (ResourceProducer, MinFixed, MaxFixed, PosDecode, granularity and translation 0, length
 * max - min + 1). min > max is -EINVAL.
 * WordBusNumber (...) (§6.4.3.5.3, resource type 2). */
void acpi_aml_crs_word_bus(struct acpi_aml *a, uint16_t min, uint16_t max);
/* WordIO (..., EntireRange, ...) (§6.4.3.5.3, resource type 1). */
void acpi_aml_crs_word_io(struct acpi_aml *a, uint16_t min, uint16_t max);
/* DWordMemory (..., NonCacheable, ReadWrite, ...) (§6.4.3.5.2, resource type 0). */
void acpi_aml_crs_dword_memory(struct acpi_aml *a, uint32_t min, uint32_t max);
/* Name (name, Package () { Package () { v[0] .. v[cols-1] }, Package () { v[cols] .. }, ... })
 * of rows x cols integers given row by row, e.g. a _PRT (ACPI 6.5 §6.2.13). Up to 255 of
 * each. */
void acpi_aml_name_package_table(struct acpi_aml *a, const char *name, const uint64_t *values,
                                 unsigned rows, unsigned cols);
/* A legacy ISA device: _HID, _UID and a _CRS with up to two port ranges (len 0 skips one) and
 * an IRQ (irq < 0 for none). */
void acpi_aml_isa_device(struct acpi_aml *a, const char *name, const char *hid, unsigned uid,
                         uint16_t io0, uint8_t io0_len, uint16_t io1, uint8_t io1_len, int irq);
/* 0 and the AML length in *len, or -ENOSPC (buffer too small) or -EINVAL (bad name or id,
 * unbalanced begin/end). */
__attribute__((warn_unused_result)) int acpi_aml_finish(struct acpi_aml *a, size_t *len);

/* Sum of bytes, for checking tables (every SDT and the RSDP sum to 0). */
uint8_t acpi_checksum(const void *data, size_t len);

#endif
