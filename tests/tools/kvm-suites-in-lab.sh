#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs Meson test suites that need a KVM inside one L1 boot of the nested lab (where /dev/kvm is
# KVM on emulated SVM), for machines whose host has no usable KVM. Each build directory's
# meson-logs/testlog.json then holds the results, as after a run on the host.
# usage: kvm-suites-in-lab.sh BUILD:SUITE[,SUITE...] ...   (BUILD under the repository)
# Exit status: 0 when every suite passed, 1 when a test failed, lab.sh's status (124, 125) when
# the lab itself failed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd -P)
[ $# -gt 0 ] || { sed -n 's/^# usage: /usage: /p' "$0" >&2; exit 2; }
cmd=''
for spec in "$@"; do
    dir=${spec%%:*} suites=${spec#*:}
    [ -e "$dir/build.ninja" ] || { echo "kvm-suites-in-lab.sh: $dir is no Meson build" >&2; exit 2; }
    abs=$(cd "$dir" && pwd -P)
    case $abs in "$repo"/*) ;; *) echo "kvm-suites-in-lab.sh: $dir is not under $repo" >&2; exit 2 ;; esac
    args=''
    for s in $(echo "$suites" | tr ',' ' '); do args="$args --suite $s"; done
    rm -f "$abs/meson-logs/testlog.json"
    # No rebuild: the host built it; the same paths in L1 make the build tree usable as is.
    # TCG runs L1 at a fraction of the host's speed: timeouts are stretched (-t).
    cmd="$cmd echo '== in L1: meson test -C $abs$args';
        meson test -C '$abs' --no-rebuild --print-errorlogs -t 4 $args || rc=1;"
done
LAB_TIMEOUT=${LAB_TIMEOUT:-1800} sh "$repo/tests/lab/lab.sh" run "${LAB_CACHE:-$repo/build/lab-cache}" \
    "$repo" "rc=0; $cmd exit \$rc"
