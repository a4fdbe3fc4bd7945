/* SPDX-License-Identifier: MIT */
/* Fuzz target: the multiboot v1 loader on arbitrary kernel bytes. */
#include "fuzz_boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_boot_one(boot_multiboot_load, data, size);
}
