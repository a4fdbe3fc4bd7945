/* SPDX-License-Identifier: MIT */
/* The ACPI table checksum (ACPI 6.5 §5.2.5.3, §5.2.6): every table's bytes sum to zero. */
#include "acpi.h"

uint8_t acpi_checksum(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + p[i]);
    return sum;
}
