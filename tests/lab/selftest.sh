#!/bin/sh
# SPDX-License-Identifier: MIT
# Lab self-test: inside L1, QEMU/KVM boots Debian's kernel as L2 to the revirt-guest banner.
#
# usage: selftest.sh [CACHE]
#   Fetches the kernel (tests/images/kernel.sh), builds an L2 initramfs with the default init
#   (tests/images/initramfs.sh), boots L1 with tests/lab/lab.sh, and there runs
#     qemu-system-x86_64 -accel kvm -M pc -cpu host -m 256 -smp 2 -nographic -no-reboot
#       -kernel vmlinuz -initrd <L2 initramfs> -append "console=ttyS0 panic=-1 quiet"
#   It passes when the banner "revirt-guest: Linux <version> cpus=2" appears. Prints the
#   consoles, the timings (L1 boot, L2 boot to banner) and finally "selftest: ok" or
#   "selftest: FAIL ...". This L2 QEMU boot is the peer the revirter benchmark compares against.
#   CACHE defaults to $LAB_CACHE, else build/lab-cache under the repository root; work files go
#   to CACHE/selftest, and CACHE is the lab's WORKDIR (so it may live under /tmp).
# Environment: SELFTEST_RUNS     L2 boots to time (default 1)
#              SELFTEST_TIMEOUT  seconds allowed per L2 boot (default 300)
#              LAB_*             passed to lab.sh (LAB_TIMEOUT defaults to 120 + runs x timeout)
# Exit status: 0 ok, 1 FAIL.
set -eu

me=selftest.sh
runs=${SELFTEST_RUNS:-1} l2tmo=${SELFTEST_TIMEOUT:-300}

# --- inside L1: run from CACHE/selftest (the lab's WORKDIR is CACHE) -------------------------
if [ "${1:-}" = --in-l1 ]; then
    out=selftest/result
    : > "$out"
    [ -c /dev/kvm ] || { echo "error=no /dev/kvm in L1" >> "$out"; exit 1; }
    echo "l1_uptime=$(cut -d' ' -f1 /proc/uptime)" >> "$out"
    i=1
    while [ "$i" -le "$runs" ]; do
        echo "selftest: L2 boot $i/$runs"
        t0=$(date +%s%N)
        { timeout -k 5 "$l2tmo" qemu-system-x86_64 -accel kvm -M pc -cpu host -m 256 -smp 2 \
              -nographic -no-reboot -kernel vmlinuz -initrd selftest/l2.cpio.gz \
              -append "console=ttyS0 panic=-1 quiet" < /dev/null 2>&1
          echo "qemu_rc_$i=$?" >> "$out"; } |
        while IFS= read -r line || [ -n "$line" ]; do
            printf '%s\n' "$line"
            case $line in
                *"revirt-guest: Linux "*)
                    echo "banner_ns_$i=$(( $(date +%s%N) - t0 ))" >> "$out"
                    printf 'banner_%s=%s\n' "$i" "$(printf '%s' "$line" | tr -d '\r' |
                        sed 's/.*\(revirt-guest: .*\)/\1/')" >> "$out" ;;
            esac
        done
        echo "exit_ns_$i=$(( $(date +%s%N) - t0 ))" >> "$out"
        i=$((i + 1))
    done
    exit 0
fi

# --- on the host ---------------------------------------------------------------------------
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ $# -le 1 ] || { echo "usage: $me [CACHE]" >&2; exit 1; }
cache=${1:-${LAB_CACHE:-$repo/build/lab-cache}}
fail() { echo "selftest: FAIL: $*"; exit 1; }
now_ns() { date +%s%N; }
secs() { awk -v n="$1" 'BEGIN { printf "%.2f", n / 1e9 }'; }

sh "$repo/tests/images/kernel.sh" "$cache" || fail "kernel.sh could not provide a kernel"
cache=$(cd "$cache" && pwd -P)
mkdir -p "$cache/selftest"
sh "$repo/tests/images/initramfs.sh" --out "$cache/selftest/l2.cpio.gz" ||
    fail "initramfs.sh could not build the L2 initramfs"
cp "$here/$me" "$cache/selftest/$me"    # L1 hides the host's /tmp: run a copy from WORKDIR
rm -f "$cache/selftest/result" "$cache/selftest/lab.rc" "$cache/selftest/l1-up"

: "${LAB_TIMEOUT:=$((120 + runs * l2tmo))}"
export LAB_TIMEOUT SELFTEST_RUNS="$runs" SELFTEST_TIMEOUT="$l2tmo"
t0=$(now_ns)
# Stream L1's console, noting (host wall clock) when L1 is ready to run the command.
{ st=0; sh "$here/lab.sh" run "$cache" "$cache" \
      "SELFTEST_RUNS=$runs SELFTEST_TIMEOUT=$l2tmo sh selftest/$me --in-l1" || st=$?
  echo "$st" > "$cache/selftest/lab.rc"; } |
while IFS= read -r line || [ -n "$line" ]; do
    printf '%s\n' "$line"
    case $line in
        "lab: L1 up in "*) [ -e "$cache/selftest/l1-up" ] || echo $(( $(now_ns) - t0 )) > "$cache/selftest/l1-up" ;;
    esac
done
total=$(( $(now_ns) - t0 ))

r=$cache/selftest/result
get() { sed -n "s/^$1=//p" "$r" 2>/dev/null | tail -n 1; }
st=$(cat "$cache/selftest/lab.rc" 2>/dev/null || echo "?")
echo "selftest: ----"
[ -e "$cache/selftest/l1-up" ] &&
    echo "selftest: L1 boot: $(secs "$(cat "$cache/selftest/l1-up")") s host wall, QEMU start to L1 ready (L1 kernel uptime $(get l1_uptime) s)"
bad=''
i=1
while [ "$i" -le "$runs" ]; do
    b=$(get "banner_ns_$i") e=$(get "exit_ns_$i") q=$(get "qemu_rc_$i")
    if [ -n "$b" ]; then
        echo "selftest: L2 boot $i: QEMU/KVM to banner $(secs "$b") s, QEMU exited after $(secs "${e:-0}") s (status ${q:-?}): $(get "banner_$i")"
        case $(get "banner_$i") in
            *" cpus=2") ;;
            *) bad="${bad:+$bad; }run $i: banner without cpus=2" ;;
        esac
    else
        echo "selftest: L2 boot $i: no banner (QEMU status ${q:-?} after $(secs "${e:-0}") s)"
        bad="${bad:+$bad; }run $i: no banner"
    fi
    i=$((i + 1))
done
echo "selftest: whole lab run: $(secs "$total") s"
err=$(get error)
[ -z "$err" ] || fail "$err"
[ "$st" = 0 ] || fail "lab.sh run exited with status $st"
[ -s "$r" ] || fail "no result from L1"
[ -z "$bad" ] || fail "$bad"
echo "selftest: ok"
