#!/bin/sh
# SPDX-License-Identifier: MIT
# Nested lab: QEMU TCG with emulated AMD SVM boots Debian's kernel as L1 and runs a command there.
#
# usage: lab.sh kernel [CACHE]             fetch Debian's kernel into CACHE (tests/images/kernel.sh)
#        lab.sh initramfs [CACHE]          build the L1 initramfs; prints its path
#        lab.sh run CACHE WORKDIR CMD      boot L1 and run the shell command CMD in WORKDIR
#        lab.sh modules [CACHE]            print the L1 module load order
#   CACHE defaults to $LAB_CACHE, else build/lab-cache under the repository root.
#   Paths under the host's /tmp, /run and /var/tmp are hidden in L1 (tmpfs there), except WORKDIR.
#   In L1: the host's / is mounted read-only (9p) with tmpfs on /tmp /run /var/tmp /dev/shm, and
#   WORKDIR read-write at the same path, so host binaries and a build tree under WORKDIR work as
#   is. CMD runs with sh in WORKDIR as root, chrooted into that view; /dev/kvm is KVM on emulated SVM
#   (kvm_amd with nested paging). Environment of CMD: PATH, HOME=/tmp, TERM=dumb, LAB_L1=1.
#   L1's console (kernel messages and CMD's output) is streamed to stdout.
# Exit status of run: CMD's own status; 124 when LAB_TIMEOUT expired; 125 when the lab itself
# failed (L1 did not boot, a mount failed, L1's kernel panicked or stalled, ...).
# Environment: LAB_MEM     L1 memory in MiB (default 4096)
#              LAB_SMP     L1 vCPUs (default 2)
#              LAB_TIMEOUT seconds before L1 is killed (default 600)
#              LAB_CPU     QEMU -cpu for L1 (default EPYC,+svm,+npt; "max" is ~4x slower)
#              LAB_ACCEL   QEMU -accel for L1 (default tcg,thread=multi: one host thread per
#                          L1 CPU; tcg,thread=single runs them in turn on one)
#              LAB_APPEND  extra L1 kernel command-line arguments
#              LAB_MODULES extra L1 modules (dependencies are resolved from modules.dep)
#              LAB_STALL   seconds without L1's heartbeat before it counts as frozen (120)
#              LAB_MONITOR a Unix socket path for QEMU's monitor (default: one in a temporary
#                          dir); L1 runs with nokaslr, so RIPs match its System.map
# Needs (installed when missing, as root): qemu-system-x86, busybox-static, cpio, kmod.
set -eu

me=lab.sh
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
images=$repo/tests/images
die() { echo "lab: error: $*" >&2; exit 125; }
say() { echo "lab: $*" >&2; }
usage() { sed -n '/^# usage:/,/^# Environment:/s/^# \{0,1\}//p' "$here/$me" | sed '$d' >&2; exit 125; }

# Top-level modules L1 needs; modules.dep supplies the rest and the order.
L1_MODULES="virtio_pci 9p 9pnet_virtio kvm_amd tun tap vhost_net vhost_vsock bridge"

. "$here/../tools/need.sh"

kernel() { sh "$images/kernel.sh" "$1" || die "kernel.sh $1 failed"; }

# The L1 init (runs as /init.guest after the initramfs loader insmod'ed the modules).
l1_init() {
    cat <<'EOF'
#!/bin/sh
# lab.sh L1 init: mount the host's / and the work dir by 9p, run the lab command, report status.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
arg() { sed -n "s/.*lab_$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
work=$(arg work) id=$(arg id)
up() { cut -d' ' -f1 /proc/uptime; }
# Status goes to ttyS1 (a file on the host) and, as a fallback, to a file in the work dir.
report() {
    [ -z "${hb:-}" ] || kill "$hb" 2>/dev/null
    echo "lab-status $id $1" > /dev/ttyS1 2>/dev/null
    [ -z "$2" ] || { echo "$1" > "/host$work/.lab-$id.rc"; sync; }
}
fail() {
    echo "lab: L1 setup failed: $*"
    report setup ""; poweroff -f
}
o=trans=virtio,version=9p2000.L,msize=512000
mkdir -p /host
mount -t 9p -o "$o,ro" host /host || fail "cannot mount the host's / (9p tag host)"
mount -o bind /dev /host/dev || fail "bind /dev"
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /host/dev/pts 2>/dev/null
mount -t tmpfs shm /host/dev/shm
mount -t proc proc /host/proc; mount -t sysfs sysfs /host/sys
for d in /tmp /run /var/tmp; do
    mount -t tmpfs tmpfs "/host$d" || fail "tmpfs on $d"
done
chmod 1777 /host/tmp /host/var/tmp
mkdir -p "/host$work" 2>/dev/null      # a WORKDIR under /tmp is hidden by the tmpfs
mount -t 9p -o "$o" work "/host$work" || fail "cannot mount the work dir $work (9p tag work)"
ip link set lo up
[ -c /dev/kvm ] || echo "lab: warning: no /dev/kvm in L1 (kvm_amd did not load?)"
echo "lab: L1 up in $(up)s"
# L1's symbols (fixed: nokaslr), once per cache, to name where a frozen L1's CPUs are.
[ "$(arg syms)" != 1 ] || cat /proc/kallsyms > "/host$work/.lab-$id.syms"
# A heartbeat on ttyS1: the host stops an L1 that has frozen whole (no console message, no
# stall report), which TCG's SVM emulation has been seen to do.
( while :; do echo "lab-alive $id $(up)" > /dev/ttyS1; sleep 10; done ) &
hb=$!
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TERM=dumb \
    LAB_L1=1 chroot /host /bin/sh -c 'cd "$1" && exec /bin/sh "$2"' lab "$work" \
    "$work/.lab-$id.cmd" < /dev/null
rc=$?
report "$rc" work
echo "lab: command exited with status $rc; L1 done at $(up)s"
poweroff -f
EOF
}

# initramfs CACHE: build (if needed) the L1 initramfs; sets $l1 to its path.
initramfs() {
    cache=$1
    kernel "$cache"
    ver=$(cat "$cache/version")
    sum=$( (cat "$here/$me" "$images/initramfs.sh"; echo "${LAB_MODULES:-}") | cksum | cut -d' ' -f1)
    l1=$cache/l1-$ver-$sum.cpio.gz
    [ -s "$l1" ] && return 0
    mods="$L1_MODULES ${LAB_MODULES:-}"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/lab.XXXXXX")
    l1_init > "$tmp/init"
    sh "$images/initramfs.sh" --cache "$cache" --modules "$mods" --init "$tmp/init" \
        --out "$l1" || { rm -rf "$tmp"; die "building the L1 initramfs failed"; }
    rm -rf "$tmp"
    # Drop images built by other versions of the scripts an hour ago or more (a younger one may
    # be about to boot in a concurrent run).
    find "$cache" -maxdepth 1 -name 'l1-*.cpio.gz*' ! -name "${l1##*/}*" -mmin +60 \
        -exec rm -f {} + 2>/dev/null || true
}

run() {
    cache=$1 cmd=$3
    [ -d "$2" ] || die "WORKDIR '$2' is not a directory"
    work=$(cd "$2" && pwd -P)
    case $work in
        /) die "WORKDIR must not be /" ;;
        *[[:space:],\"\'\\]*) die "WORKDIR '$work' must not contain blanks, commas, quotes or backslashes" ;;
    esac
    need qemu-system-x86_64 qemu-system-x86; need timeout coreutils
    initramfs "$cache"
    mem=${LAB_MEM:-4096} smp=${LAB_SMP:-2} tmo=${LAB_TIMEOUT:-600} cpu=${LAB_CPU:-EPYC,+svm,+npt}
    stall=${LAB_STALL:-120}
    syms=0; [ -s "$cache/l1-$ver.syms" ] || syms=1

    id=$$-$(date +%s)
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/lab.XXXXXX")
    mon=${LAB_MONITOR:-$tmp/monitor}
    qpid='' tpid='' l1_died=''
    cleanup() {
        if [ -n "$qpid" ]; then kill -TERM "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; fi
        [ -z "$tpid" ] || kill "$tpid" 2>/dev/null || true
        rm -rf "$tmp" "$work/.lab-$id.cmd" "$work/.lab-$id.rc" "$work/.lab-$id.syms" 2>/dev/null || true
    }
    trap 'cleanup' EXIT
    trap 'say "interrupted"; exit 130' INT TERM HUP
    printf '%s\n' "$cmd" > "$work/.lab-$id.cmd"
    : > "$tmp/status"
    : > "$tmp/console" # before tail follows it

    start=$(date +%s)
    # In the background so that a signal to this script can stop it (timeout makes its own
    # process group, so a terminal's Ctrl-C would not reach QEMU).
    timeout -k 10 "$tmo" qemu-system-x86_64 -accel "${LAB_ACCEL:-tcg,thread=multi}" -cpu "$cpu" \
        -smp "$smp" -m "$mem" -display none -nodefaults -no-reboot \
        -serial stdio -serial "file:$tmp/status" \
        -monitor "unix:$mon,server,nowait" \
        -kernel "$cache/vmlinuz" -initrd "$l1" \
        -append "console=ttyS0 panic=-1 quiet nokaslr lab_work=$work lab_id=$id lab_syms=$syms ${LAB_APPEND:-}" \
        -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
        -virtfs "local,path=$work,mount_tag=work,security_model=none,multidevs=remap" \
        < /dev/null 2> "$tmp/qemu.err" > "$tmp/console" &
    qpid=$!
    # Stream L1's console, and stop L1 at once when its own kernel dies or stalls (seen under
    # TCG's SVM emulation, with any L2 VMM) rather than after LAB_TIMEOUT.
    tail -n +1 -f "$tmp/console" &
    tpid=$!
    beat=$start beat_size=0
    while kill -0 "$qpid" 2>/dev/null; do
        if grep -qE 'Kernel panic|rcu: INFO: rcu_.* stall|watchdog: BUG: soft lockup' \
            "$tmp/console" 2>/dev/null; then
            sleep 2
            say "L1's kernel panicked or stalled (see above): stopping it"
            kill -TERM "$qpid" 2>/dev/null || true
            l1_died=1
            break
        fi
        now=$(date +%s) size=$(wc -c < "$tmp/status")
        [ "$size" = "$beat_size" ] || { beat=$now beat_size=$size; }
        if [ $((now - beat)) -ge "$stall" ]; then
            say "L1 sent no heartbeat for ${stall}s (LAB_STALL): it froze; where its CPUs are:"
            l1_where "$mon" "$cache" >&2
            kill -TERM "$qpid" 2>/dev/null || true
            l1_died=1
            break
        fi
        sleep 2
    done
    st=0; wait "$qpid" || st=$?
    qpid=''
    sleep 1
    kill "$tpid" 2>/dev/null || true
    wait "$tpid" 2>/dev/null || true
    [ ! -s "$work/.lab-$id.syms" ] || mv "$work/.lab-$id.syms" "$cache/l1-$ver.syms"
    [ -z "$l1_died" ] || die "L1's kernel failed; the lab run is void"
    grep -v "TCG doesn't support requested feature" "$tmp/qemu.err" >&2 || true
    rc=$(tr -d '\r' < "$tmp/status" | sed -n "s/^lab-status $id \([0-9a-z]*\)\$/\1/p" | tail -n 1)
    [ -n "$rc" ] || rc=$(cat "$work/.lab-$id.rc" 2>/dev/null || true)
    if [ -z "$rc" ]; then
        case $st in 124|137) say "timed out after ${tmo}s (LAB_TIMEOUT)"; exit 124 ;; esac
        die "L1 ended without reporting a status (QEMU exit status $st, after $(( $(date +%s) - start ))s)"
    fi
    case $rc in
        setup) die "L1 could not set up the lab (see the console output above)" ;;
        *[!0-9]*|'') die "L1 reported a malformed status '$rc'" ;;
    esac
    return "$rc"
}

# l1_where MONITOR CACHE: each L1 CPU's RIP and mode from QEMU's monitor, with the L1 kernel
# symbol it is in (L1 runs with nokaslr; its kallsyms were saved by an earlier boot), for the
# log of a frozen L1.
l1_where() {
    for c in $(seq 0 $((${LAB_SMP:-2} - 1))); do
        printf 'cpu %s\ninfo registers\n' "$c" | timeout 20 socat - "UNIX-CONNECT:$1" 2>/dev/null |
            tr -d '\r' | grep -aE '^(RIP|CS |EFER|CR0)' | sed "s/^/lab: cpu $c: /"
    done > "$tmp/where"
    cat "$tmp/where"
    map=$2/l1-$ver.syms
    [ -s "$map" ] || return 0
    python3 - "$map" "$tmp/where" <<'PY' || true
import bisect, re, sys
syms = []
for line in open(sys.argv[1]):
    a, _, name = line.split()[:3]
    syms.append((int(a, 16), name))
syms.sort()
keys = [a for a, _ in syms]
for line in open(sys.argv[2]):
    m = re.search(r"(lab: cpu \d+): RIP=([0-9a-f]+)", line)
    if m:
        rip = int(m.group(2), 16)
        i = bisect.bisect_right(keys, rip) - 1
        where = f"{syms[i][1]}+0x{rip - syms[i][0]:x}" if i >= 0 and rip >= 0xffffffff80000000 else "not in L1's kernel text (user space, or an L2 guest)"
        print(f"{m.group(1)}: {where}")
PY
}

cache_arg() { echo "${1:-${LAB_CACHE:-$repo/build/lab-cache}}"; }

case "${1:-}" in
    kernel) [ $# -le 2 ] || usage; kernel "$(cache_arg "${2:-}")" ;;
    initramfs) [ $# -le 2 ] || usage; initramfs "$(cache_arg "${2:-}")"; echo "$l1" ;;
    modules) [ $# -le 2 ] || usage; c=$(cache_arg "${2:-}"); kernel "$c"
             sh "$images/initramfs.sh" --cache "$c" --list --modules "$L1_MODULES ${LAB_MODULES:-}" ;;
    run) [ $# -eq 4 ] || usage; run "$2" "$3" "$4" ;;
    *) usage ;;
esac
