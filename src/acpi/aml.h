/* SPDX-License-Identifier: MIT */
/* A writer for the AML byte code of an ACPI definition block (ACPI 6.5 §20.2). */
#ifndef REVIRT_ACPI_AML_H
#define REVIRT_ACPI_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Enough AML (ACPI 6.5 §20.2) to describe devices: scopes, devices, named integers, strings,
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
/* Append a term list built by another writer (e.g. a device's AML inside a scope). */
void acpi_aml_raw(struct acpi_aml *a, const void *p, size_t n);
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

#endif
