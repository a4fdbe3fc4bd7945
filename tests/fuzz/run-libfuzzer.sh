#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the boot loader fuzz targets with clang's libFuzzer + ASan + UBSan and runs each one.
#
# Usage: tests/fuzz/run-libfuzzer.sh [SECONDS]      (default 30 seconds per target)
# Environment: CC (default clang), OUT (default build-boot-libfuzzer, relative to the repo root),
# TARGETS (default "boot bzimage pvh multiboot").
# Exit status: 0 when every target ran SECONDS without a finding, 1 on a crash, leak, timeout or
# sanitizer report (the input is kept in $OUT/artifacts/), 77 (skip) when clang cannot link
# -fsanitize=fuzzer: on Debian install clang and libclang-rt-14-dev (or the -dev package
# matching the clang version).
set -eu

seconds=${1:-30}
root=$(cd "$(dirname "$0")/../.." && pwd)
cc=${CC:-clang}
out=${OUT:-build-boot-libfuzzer}
case $out in /*) ;; *) out=$root/$out ;; esac
targets=${TARGETS:-boot bzimage pvh multiboot}

mkdir -p "$out"
probe=$out/probe.c
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
    >"$probe"
if ! "$cc" -fsanitize=fuzzer "$probe" -o "$out/probe" 2>"$out/probe.log"; then
    echo "SKIP: $cc cannot link -fsanitize=fuzzer (see $out/probe.log);" \
        "install clang and libclang-rt-14-dev"
    exit 77
fi

cflags="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror -Wshadow
    -Wvla -Wno-missing-field-initializers -I$root/include -I$root/src"
boot_src="$root/src/boot/boot.c $root/src/boot/bzimage.c $root/src/boot/elf.c
    $root/src/boot/pvh.c $root/src/boot/multiboot.c $root/src/vmm/guest_mem.c"

# Seeds come from the same generator the meson build uses.
# shellcheck disable=SC2086  # word splitting of the flag and file lists is intended
"$cc" $cflags -I"$root/tests/unit/boot" -o "$out/fuzz_gen_corpus" \
    "$root/tests/fuzz/gen_corpus.c" "$root/tests/unit/boot/fixture.c" $boot_src
rm -rf "$out/seeds"
"$out/fuzz_gen_corpus" "$out/seeds"

mkdir -p "$out/artifacts"
status=0
for t in $targets; do
    echo "== fuzz_$t: building"
    # shellcheck disable=SC2086
    "$cc" $cflags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -o "$out/fuzz_$t" "$root/tests/fuzz/fuzz_$t.c" $boot_src
    # New interesting inputs go to a work corpus, never into the seeds.
    mkdir -p "$out/corpus/$t"
    echo "== fuzz_$t: running for ${seconds}s"
    if ! "$out/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" \
        "$out/corpus/$t" "$out/seeds/$t" >"$out/fuzz_$t.log" 2>&1; then
        echo "FAIL: fuzz_$t found a problem; log $out/fuzz_$t.log, input in $out/artifacts/"
        tail -n 40 "$out/fuzz_$t.log"
        status=1
        continue
    fi
    grep -E '^stat::number_of_executed_units|^Done|cov:' "$out/fuzz_$t.log" | tail -n 2
done
[ $status -eq 0 ] && echo "all targets ran ${seconds}s without findings"
exit $status
