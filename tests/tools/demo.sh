#!/bin/sh
# SPDX-License-Identifier: MIT
# make demo / make shell: prepare the default guest (Debian's stock kernel + a busybox
# initramfs) and boot it with revirter: directly when this host's KVM runs guest kernels at
# speed, otherwise inside the nested lab (tests/lab/lab.sh), saying why.
# usage: demo.sh BUILD [shell]
set -eu
build=$(cd "${1:-build}" && pwd)
mode=${2:-demo}
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${LAB_CACHE:-$repo/build/lab-cache}
work=$build/demo
mkdir -p "$cache" "$work"
cache=$(cd "$cache" && pwd)

echo "demo: fetching Debian's kernel package (unpacked, never installed)"
sh "$repo/tests/images/kernel.sh" "$cache" >/dev/null
if [ "$mode" = shell ]; then
    cat > "$work/init" <<'EOI'
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "revirt-guest: Linux $(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo)"
echo "revirt-guest: 'poweroff -f' ends the VM; Ctrl-A x quits revirter"
setsid cttyhack sh
poweroff -f
EOI
    sh "$repo/tests/images/initramfs.sh" --cache "$cache" --init "$work/init" \
        --out "$work/shell.cpio.gz" >/dev/null
    initrd=$work/shell.cpio.gz
else
    sh "$repo/tests/images/initramfs.sh" --cache "$cache" --out "$work/initrd.cpio.gz" >/dev/null
    initrd=$work/initrd.cpio.gz
fi
cp "$cache/vmlinuz" "$build/revirter" "$work/"
cat > "$work/boot.sh" <<EOI
./revirter run --kernel vmlinuz --initrd $(basename "$initrd") --cpus 2 --memory 512M \\
    --cmdline "console=ttyS0 panic=-1 quiet"
EOI

# kvm_pvm runs guest ring 0 by emulation: a stock kernel takes many minutes to boot there.
kvm=$(sh "$repo/tests/tools/host-kvm.sh")
if [ "${kvm%%:*}" != native ]; then
    why="host KVM: ${kvm#*: }"
    if [ "$mode" = shell ]; then
        echo "demo: $why; an interactive guest needs a KVM host that runs kernels natively."
        echo "demo: there, run: cd $work && sh boot.sh"
        exit 1
    fi
    echo "demo: $why; booting inside the nested SVM lab (QEMU TCG) instead (~1 min)"
    LAB_TIMEOUT=600 sh "$repo/tests/lab/lab.sh" run "$cache" "$work" \
        'sh ./boot.sh; echo "demo: revirter exited with status $?"' |
        grep -E "revirt-guest:|revirter:|demo:|reboot: Power down|lab: L1 up" | tr -d '\r'
else
    echo "demo: booting with revirter on this host's KVM"
    cd "$work" && exec sh ./boot.sh
fi
