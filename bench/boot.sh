#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/boot: in one lab run, boot Debian's kernel + a busybox initramfs to /init with revirter,
# QEMU -M pc and QEMU -M microvm (all KVM, 1 vCPU, 256M), interleaved; print medians, ratios and
# revirter's resident memory outside guest RAM. Revirter and QEMU -M pc also boot without
# `quiet` (every kernel message on the serial console): the verbose / quiet ratio is what the
# console costs, and revirter's must be no worse than QEMU's.
#
# usage: bench/boot.sh [BUILD] [RUNS]     (defaults: build, 3)
# Environment: LAB_CACHE, LAB_* as for tests/lab/lab.sh.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
runs=${2:-3}
cache=${LAB_CACHE:-$repo/build/lab-cache}
work=$build/bench-boot
mkdir -p "$cache" "$work"
cache=$(cd "$cache" && pwd)

sh "$repo/tests/images/kernel.sh" "$cache" >&2
cp "$cache/vmlinuz" "$build/revirter" "$work/"
# /init prints the banner at once, then stays up 2 s so revirter's memory can be sampled. It
# first keeps further kernel messages off the console: in a verbose boot one could otherwise
# land in the middle of the banner line (the tty sends 16 bytes per THRE interrupt, printk
# writes whole lines in between), and the run would go unmeasured.
cat > "$work/init" <<'EOI'
#!/bin/sh
mount -t proc proc /proc
dmesg -n 1
echo "revirt-guest: Linux $(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo)"
sleep 2
poweroff -f
EOI
sh "$repo/tests/images/initramfs.sh" --cache "$cache" --init "$work/init" \
    --out "$work/initrd.gz" >&2

cat > "$work/in-l1.sh" <<'EOI'
# In L1: time each VMM from launch to the banner line of /init.
cmdline="console=ttyS0 panic=-1 quiet"
verbose="console=ttyS0 panic=-1"
: > times
timed() { # name command...   (the console of each run is kept in NAME.RUN.out)
    name=$1; shift
    t0=$(date +%s%N)
    : > "$name.$i.out"
    { timeout 300 "$@" < /dev/null 2>&1; } | { n=0; while IFS= read -r line; do
        n=$((n + 1))
        printf '%s\n' "$line" >> "$name.$i.out"
        case $line in
        *"revirt-guest: Linux"*)
            echo "$name $(( ($(date +%s%N) - t0) / 1000000 ))" >> times
            echo "$name-lines $n" >> times
            # revirter's resident set outside guest RAM: every mapping but the 256 MiB one.
            pid=$(pgrep -f "^./revirter run" | head -1)
            if [ "$name" = revirter ] && [ -n "$pid" ]; then
                awk '/^Size:/ { size = $2 }
                     /^Rss:/ { if (size != 262144) rss += $2 }
                     END { print "revirter-rss-kib", rss }' "/proc/$pid/smaps" >> times
            fi ;;
        esac
    done; }
}
i=1
while [ "$i" -le "$RUNS" ]; do
    timed revirter ./revirter run --kernel vmlinuz --initrd initrd.gz --cmdline "$cmdline" \
        --memory 256M
    timed qemu-pc qemu-system-x86_64 -accel kvm -M pc -cpu host -m 256 -smp 1 -nographic \
        -no-reboot -nodefaults -serial stdio -kernel vmlinuz -initrd initrd.gz -append "$cmdline"
    timed qemu-microvm qemu-system-x86_64 -accel kvm -M microvm -cpu host -m 256 -smp 1 \
        -nographic -no-reboot -nodefaults -serial stdio -kernel vmlinuz -initrd initrd.gz \
        -append "$cmdline"
    timed revirter-verbose ./revirter run --kernel vmlinuz --initrd initrd.gz \
        --cmdline "$verbose" --memory 256M
    timed qemu-pc-verbose qemu-system-x86_64 -accel kvm -M pc -cpu host -m 256 -smp 1 \
        -nographic -no-reboot -nodefaults -serial stdio -kernel vmlinuz -initrd initrd.gz \
        -append "$verbose"
    i=$((i + 1))
done
EOI
LAB_TIMEOUT=${LAB_TIMEOUT:-3000} sh "$repo/tests/lab/lab.sh" run "$cache" "$work" \
    "RUNS=$runs sh ./in-l1.sh" > "$work/lab.log" 2>&1 || { tail -30 "$work/lab.log"; exit 1; }
awk '
function median(name,   n, i, j, t, a) {
    n = 0
    for (i = 1; i <= cnt; i++) if (nm[i] == name) a[++n] = v[i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    if (n == 0) return -1
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ nm[++cnt] = $1; v[cnt] = $2; runs[$1]++ }
END {
    r = median("revirter"); p = median("qemu-pc"); m = median("qemu-microvm")
    best = (m > 0 && m < p) ? m : p
    printf "boot to /init (median of %d runs, ms): revirter %d, qemu -M pc %d, qemu -M microvm %d\n", runs["revirter"], r, p, m
    if (r > 0 && best > 0)
        printf "revirter / best QEMU = %.2f (target <= 0.5)\n", r / best
    printf "revirter resident memory outside guest RAM: %.1f MiB (median; target <= 3 MiB)\n", median("revirter-rss-kib") / 1024
    rv = median("revirter-verbose"); pv = median("qemu-pc-verbose")
    if (rv > 0 && pv > 0 && r > 0 && p > 0) {
        printf "verbose / quiet boot (median of %d, ms): revirter %d / %d = %.2f, qemu -M pc %d / %d = %.2f (%d console lines; target: revirter <= qemu)\n", runs["revirter-verbose"], rv, r, rv / r, pv, p, pv / p, median("revirter-verbose-lines")
        dr = median("revirter-verbose-lines") - median("revirter-lines")
        dp = median("qemu-pc-verbose-lines") - median("qemu-pc-lines")
        if (dr > 0 && dp > 0)
            printf "console cost per extra kernel line: revirter %.1f ms, qemu -M pc %.1f ms\n", (rv - r) / dr, (pv - p) / dp
    }
}' "$work/times"
# The same cost seen from inside: the median gap between consecutive kernel messages (printk
# timestamps, guest time) over every verbose run, which VMM start-up and host load outside the
# guest do not move.
for vmm in revirter qemu-pc; do
    cat "$work/$vmm-verbose."*.out 2>/dev/null | tr -d '\r' |
        awk -F'[][]' '/^\[ *[0-9]+\.[0-9]+\]/ { t = $2 + 0; if (seen && t >= p) print (t - p) * 1000; p = t; seen = 1 }' |
        sort -n | awk -v vmm="$vmm" '{ a[NR] = $1 } END {
            if (NR) printf "median gap between kernel lines of a verbose boot (guest time): %s %.2f ms (%d gaps)\n", vmm, a[int((NR + 1) / 2)], NR }'
done
