/* SPDX-License-Identifier: MIT */
/* ACPI tables (RSDP, RSDT/XSDT, FADT, FACS, MADT, DSDT) of the PC board, generated into guest
 * memory at start. */
#ifndef REVIRT_BOARD_PC_ACPI_TABLES_H
#define REVIRT_BOARD_PC_ACPI_TABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acpi/acpi.h"
#include "core/guest_mem.h"

/* The tables live in the legacy BIOS area so that a kernel started without a boot-protocol RSDP
 * pointer still finds the RSDP by its scan of [0xE0000, 0x100000) on 16-byte boundaries
 * (ACPI 6.5 §5.2.5.1). The boot loader must leave this range out of the E820 RAM list. */
#define ACPI_AREA_START 0xe0000u
#define ACPI_AREA_END 0x100000u

#define ACPI_LAPIC_ADDR 0xfee00000u
#define ACPI_IOAPIC_ADDR 0xfec00000u
#define ACPI_IOAPIC_PINS 24u

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

#endif
