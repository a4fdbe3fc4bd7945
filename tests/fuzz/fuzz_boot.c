/* SPDX-License-Identifier: MIT */
/* Fuzz target: the format dispatcher (boot_load) on arbitrary kernel bytes. */
#include "fuzz_boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_boot_one(boot_load, data, size);
}
