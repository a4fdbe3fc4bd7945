#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/launch: wall time of a whole revirter process on a trivial guest (the multiboot test
# kernel: start, boot, print, leave through --debug-exit), median of N runs, on this host.
# usage: bench/launch.sh [BUILD] [N]
set -eu
build=${1:-build} n=${2:-21}
kernel=$build/tests/guests/mb_hello.elf
[ -x "$build/revirter" ] && [ -f "$kernel" ] || { echo "launch: build first (make build)" >&2; exit 1; }
i=0
while [ "$i" -lt "$n" ]; do
    t0=$(date +%s%N)
    rc=0
    "$build/revirter" run --kernel "$kernel" --debug-exit </dev/null >/dev/null 2>&1 || rc=$?
    [ "$rc" = 67 ] || { echo "launch: revirter exited with $rc, expected 67" >&2; exit 1; }
    echo $(( ($(date +%s%N) - t0) / 1000 ))
    i=$((i + 1))
done | sort -n | awk -v n="$n" '{ v[NR] = $1 } END {
    printf "launch: revirter process, start to guest exit (multiboot test kernel): median %.2f ms, min %.2f ms over %d runs\n", v[int((NR + 1) / 2)] / 1000, v[1] / 1000, n }'
