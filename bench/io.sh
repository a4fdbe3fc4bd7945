#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/io: in one lab run, the same L2 guest (Debian's kernel, an initramfs with fio and iperf3,
# 2 vCPUs, 512M) under revirter and under QEMU (-M pc, KVM) with the same virtio devices,
# interleaved: fio on a virtio-blk disk (a raw image on a RAM-backed ext4 in L1; QEMU with
# cache=none,aio=io_uring; fio --direct=1 on /dev/vda): sequential read and write MB/s with 1 MiB
# blocks (QD16) and 4 KiB random-read IOPS (QD32); and iperf3 from the guest to L1 over
# virtio-net on a TAP (vhost off; BENCH_VHOST=1 adds a second NIC with vhost on). Prints the
# medians per VMM and the ratios revirter/QEMU (targets: blk >= 1.2, net >= 1.0). A device a
# VMM lacks (revirter run --help does not list its option) is left out and reported as n/a.
#
# usage: bench/io.sh [BUILD] [RUNS]     (defaults: build, 3)
# Environment: BENCH_RUNTIME  seconds per fio job and iperf3 run (default 5)
#              BENCH_VHOST    1: also a TAP with vhost=on (default 0)
#              BENCH_DISK_MB  size of the disk image (default 256)
#              BENCH_VMMS     VMMs to run (default "revirter qemu")
#              LAB_CACHE, LAB_* as for tests/lab/lab.sh.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
runs=${2:-3}
cache=${LAB_CACHE:-$repo/build/lab-cache}
work=$build/bench-io
rt=${BENCH_RUNTIME:-5} vhost=${BENCH_VHOST:-0} mb=${BENCH_DISK_MB:-256}
vmms=${BENCH_VMMS:-revirter qemu}
mkdir -p "$cache" "$work"
cache=$(cd "$cache" && pwd)

sh "$repo/tests/images/kernel.sh" "$cache" >&2
cp "$cache/vmlinuz" "$build/revirter" "$repo/tests/lab/vmm.sh" "$work/"
sh "$repo/tests/images/initramfs.sh" --cache "$cache" \
    --modules "virtio_pci virtio_blk virtio_net" --bin fio --bin iperf3 \
    --init "$repo/tests/lab/guest.sh" --out "$work/io.cpio.gz" >&2
# L1's RAM disk for the image (tmpfs has no O_DIRECT): brd and ext4, loaded in L1 from copies
# in the work dir (a cache under /tmp would be hidden there).
ver=$(cat "$cache/version")
sh "$repo/tests/images/initramfs.sh" --cache "$cache" --list --modules "brd ext4" |
    while read -r m _; do
        cp "$cache/root/lib/modules/$ver/$m" "$work/$(basename "$m")"
        basename "$m"
    done > "$work/l1-modules"

cat > "$work/in-l1.sh" <<'EOI'
# In L1: a RAM-backed ext4 for the disk image, TAPs and an iperf3 server, then the runs.
. ./vmm.sh
: > results
while read -r m; do
    case $m in brd.ko) busybox insmod "$m" rd_nr=1 rd_size=$(( (MB + 64) * 1024 )) ;;
               *) busybox insmod "$m" 2>/dev/null ;; esac
done < l1-modules
mkdir -p /tmp/io
mke2fs -q -t ext4 -F /dev/ram0 && mount -t ext4 /dev/ram0 /tmp/io || { echo "bench: no RAM disk"; exit 1; }
dd if=/dev/zero of=/tmp/io/disk.img bs=1M count="$MB" conv=fsync 2>/dev/null
ip tuntap add tap0 mode tap && ip addr add 10.0.0.1/24 dev tap0 && ip link set tap0 up
devs="disk=/tmp/io/disk.img tap=tap0"
if [ "$VHOST" = 1 ]; then
    ip tuntap add tap1 mode tap && ip addr add 10.0.1.1/24 dev tap1 && ip link set tap1 up
    devs="$devs tap=tap1,vhost"
fi
iperf3 -s -D -I /tmp/iperf3.pid
VM_KERNEL=vmlinuz VM_INITRD=io.cpio.gz VM_CPUS=2 VM_MEM=512M
VM_CMDLINE="console=ttyS0 panic=-1 quiet lab_case=bench bench_runtime=$RT"
QEMU_DISK=cache=none,aio=io_uring
i=1
while [ "$i" -le "$RUNS" ]; do
    for VMM in $VMMS; do
        use=''
        for d in $devs; do
            if o=$(vm_lacks "$d"); then echo "bench: $VMM lacks $o: $d left out"; else use="$use $d"; fi
        done
        [ -n "$use" ] || { echo "bench: $VMM has none of the devices"; continue; }
        n=io-$VMM-$i
        # shellcheck disable=SC2086
        vm_run "$n" 600 $use
        echo "bench: $n exited with status $(cat "$n.rc") after $(cat "$n.ms") ms"
        tr -d '\r' < "$n.res" | sed -n "s/^.*lab-guest: bench /$VMM /p" >> results
    done
    i=$((i + 1))
done
kill "$(cat /tmp/iperf3.pid)" 2>/dev/null
EOI
rm -f "$work/results"
st=0
LAB_TIMEOUT=${LAB_TIMEOUT:-$((600 + runs * 900))} sh "$repo/tests/lab/lab.sh" run "$cache" "$work" \
    "RUNS=$runs RT=$rt VHOST=$vhost MB=$mb VMMS='$vmms' sh ./in-l1.sh" > "$work/lab.log" 2>&1 || st=$?
grep -E '^(bench|lab-vm): ' "$work/lab.log" | sed 's/^/# /'
[ "$st" = 0 ] || { tail -30 "$work/lab.log"; echo "bench/io: the lab run failed (status $st)"; exit 1; }
awk -v vhost="$vhost" -v rt="$rt" '
function median(key,   n, i, j, t, a) {
    n = 0
    for (i = 1; i <= cnt; i++) if (k[i] == key) a[++n] = v[i]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    nruns[key] = n
    if (n == 0) return -1
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function num(x) { return x < 0 ? "n/a" : sprintf("%.1f", x) }
function row(label, metric, target,   r, q, ratio) {
    r = median("revirter " metric); q = median("qemu " metric)
    ratio = (r > 0 && q > 0) ? sprintf("%.2f", r / q) : "n/a"
    printf "  %-40s revirter %10s   qemu %10s   revirter/qemu %5s (target >= %s)\n", label, num(r), num(q), ratio, target
}
{
    vmm = $1; job = $2
    for (f = 3; f <= NF; f++) {
        split($f, kv, "=")
        if (kv[2] == "") continue
        key = vmm " " job "." kv[1]; val = kv[2]
        if (kv[1] ~ /_kib_s$/) { sub(/_kib_s$/, "_mb_s", key); val = val / 1024 }
        k[++cnt] = key; v[cnt] = val
    }
}
END {
    printf "bench/io: medians over the runs (fio %ds per job, --direct=1 on /dev/vda; iperf3 %ds guest -> L1)\n", rt, rt
    row("blk sequential read, 1 MiB QD16 (MB/s)", "seqread.read_mb_s", "1.2")
    row("blk sequential write, 1 MiB QD16 (MB/s)", "seqwrite.write_mb_s", "1.2")
    row("blk random read, 4 KiB QD32 (IOPS)", "randread.read_iops", "1.2")
    row("net TAP vhost=off, guest -> L1 (Mbit/s)", "net0.mbit_s", "1.0")
    if (vhost == 1) row("net TAP vhost=on, guest -> L1 (Mbit/s)", "net1.mbit_s", "1.0")
    printf "  runs with results: revirter %d, qemu %d\n", nruns["revirter seqread.read_mb_s"] + 0, nruns["qemu seqread.read_mb_s"] + 0
}' "$work/results"
