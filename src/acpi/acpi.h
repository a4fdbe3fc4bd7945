/* SPDX-License-Identifier: MIT */
/* ACPI vocabulary shared by the fixed-hardware device (src/dev/acpi_pm), the PCI host and the
 * board's table builder: the PM register block, extra tables, the table checksum. */
#ifndef REVIRT_ACPI_ACPI_H
#define REVIRT_ACPI_ACPI_H

#include <stddef.h>
#include <stdint.h>

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

/* Sum of bytes, for checking tables (every SDT and the RSDP sum to 0). */
uint8_t acpi_checksum(const void *data, size_t len);

#endif
