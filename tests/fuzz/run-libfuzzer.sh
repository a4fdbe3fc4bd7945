#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds every fuzz target with clang's libFuzzer + ASan + UBSan (meson -Dfuzz_engine=libfuzzer,
# over coverage-instrumented project code) and runs each one from the seeds the build generates.
#
# Usage: tests/fuzz/run-libfuzzer.sh [SECONDS]      (default 30 seconds per target)
# Environment: CC (default clang), OUT (the meson build directory, default build-libfuzzer,
# relative to the repo root), TARGETS (names such as "blk pci", default every fuzz_* target).
# Exit status: 0 when every target ran SECONDS without a finding, 1 on a crash, leak, timeout or
# sanitizer report (the input is kept in $OUT/artifacts/, the log in $OUT/fuzz_<target>.log),
# 77 (skip) when clang cannot link -fsanitize=fuzzer: on Debian install clang and
# libclang-rt-14-dev (or the -dev package matching the clang version).
set -eu

seconds=${1:-30}
root=$(cd "$(dirname "$0")/../.." && pwd)
cc=${CC:-clang}
out=${OUT:-build-libfuzzer}
case $out in /*) ;; *) out=$root/$out ;; esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
    >"$tmp/probe.c"
if ! "$cc" -fsanitize=fuzzer "$tmp/probe.c" -o "$tmp/probe" 2>"$tmp/probe.log"; then
    cat "$tmp/probe.log"
    echo "SKIP: $cc cannot link -fsanitize=fuzzer; install clang and libclang-rt-14-dev"
    exit 77
fi

# The build also writes every target's seeds (tests/fuzz/corpus*/) with its generator.
opts="-Dfuzz_engine=libfuzzer -Db_sanitize=address,undefined -Db_lundef=false"
# shellcheck disable=SC2086  # word splitting of the option list is intended
if [ -e "$out/build.ninja" ]; then
    meson configure "$out" $opts >/dev/null
else
    CC=$cc meson setup "$out" "$root" $opts >/dev/null
fi
ninja -C "$out" >"$out/ninja.log" 2>&1 || { cat "$out/ninja.log"; exit 1; }

fz=$out/tests/fuzz
if [ -z "${TARGETS:-}" ]; then
    TARGETS=$(cd "$fz" && for f in fuzz_*; do
        case $f in fuzz_gen_corpus*) continue ;; esac
        if [ -f "$f" ] && [ -x "$f" ]; then echo "${f#fuzz_}"; fi
    done)
fi

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
mkdir -p "$out/artifacts"
status=0
for t in $TARGETS; do
    seeds=$fz/corpus-$t
    [ -d "$seeds" ] || seeds=$fz/corpus/$t # the boot loaders share one generator
    # New interesting inputs go to a work corpus, never into the seeds.
    mkdir -p "$out/work/$t"
    echo "== fuzz_$t: ${seconds}s"
    if ! "$fz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" \
        "$out/work/$t" "$seeds" >"$out/fuzz_$t.log" 2>&1; then
        echo "FAIL: fuzz_$t found a problem; log $out/fuzz_$t.log, input in $out/artifacts/"
        tail -n 40 "$out/fuzz_$t.log"
        status=1
        continue
    fi
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$out/fuzz_$t.log" # coverage: seeds, end
done
[ $status -eq 0 ] && echo "all targets ran ${seconds}s without findings"
exit $status
