# SPDX-License-Identifier: MIT
# Sourced in L1 by the device cases (tests/lab/devices.sh) and bench/io.sh: run one L2 guest
# under the VMM named by $VMM (revirter or qemu) from a VMM-neutral device list, so that each
# case is written once.
#
# Devices (words; paths must not contain blanks or commas):
#   disk=PATH[,ro]         virtio-blk on a raw image     revirter --disk PATH[,ro]
#   tap=IFNAME[,vhost]     virtio-net on an existing TAP revirter --net tap=IFNAME[,vhost=on]
#   user[,fwd=H-G]...      virtio-net, user networking   revirter --net user[,hostfwd=tcp::H-:G]
#   rng                    virtio-rng                    revirter --rng
#   vsock=CID,uds=PATH     virtio-vsock                  revirter --vsock cid=CID,uds=PATH
#   console=virtio         console on hvc0 (stdin/out)   revirter --console virtio
# QEMU gets the same devices as modern-only virtio PCI functions on -M pc (see vm_flags).
#
# vm_run NAME TIMEOUT DEVICE...    boot in the foreground; status: the VMM's exit status,
#                                  124 on timeout, 3 when the VMM lacks a device (NAME.why)
# vm_start NAME TIMEOUT DEVICE...  the same in the background (VM_PID); vm_wait NAME finishes
# Inputs: VMM (default revirter), VM_KERNEL, VM_INITRD, VM_CMDLINE, VM_CPUS (2), VM_MEM (256M),
#         VM_STDIN (default /dev/null), REVIRTER (default ./revirter),
#         QEMU_DISK (drive options for QEMU, default cache=writeback).
# Outputs in the current directory: NAME.out (the VMM's standard output: the guest console),
#         NAME.err, NAME.rc, NAME.ms (launch to exit), NAME.cmd (the command line).

VMM=${VMM:-revirter}
REVIRTER=${REVIRTER:-./revirter}

# vm_lacks DEVICE: revirter's option for DEVICE when `revirter run --help` does not list it.
vm_lacks() {
    [ "$VMM" = revirter ] || return 1
    [ -n "${_vm_help:-}" ] || _vm_help=$("$REVIRTER" run --help 2>&1)
    case $1 in
        disk=*) o=--disk ;; tap=*|user|user,*) o=--net ;; rng) o=--rng ;;
        vsock=*) o=--vsock ;; console=*) o=--console ;; *) return 1 ;;
    esac
    case $_vm_help in *"$o"*) return 1 ;; esac
    echo "$o"
}

# opt LIST NAME: value of NAME=VALUE (or "yes" for a bare NAME) in the comma-separated LIST
opt() {
    printf '%s\n' "$1" | tr ',' '\n' | awk -v k="$2" -F= '
        $1 == k { print (NF > 1 ? substr($0, length(k) + 2) : "yes"); exit }'
}

# vm_flags DEVICE...: the VMM's device flags on one line (blank-separated).
vm_flags() {
    f='' n=0 uart=stdio
    for d in "$@"; do
        n=$((n + 1))
        v=${d#*=}; v=${v%%,*}
        case $VMM:$d in
        revirter:disk=*)
            f="$f --disk $v"; [ -z "$(opt "$d" ro)" ] || f="$f,ro" ;;
        revirter:tap=*)
            f="$f --net tap=$v"; [ -z "$(opt "$d" vhost)" ] || f="$f,vhost=on" ;;
        revirter:user|revirter:user,*)
            f="$f --net user"
            for w in $(printf '%s' "$d" | tr ',' ' '); do
                case $w in fwd=*-*) h=${w#fwd=}; f="$f,hostfwd=tcp::${h%-*}-:${h#*-}" ;; esac
            done ;;
        revirter:rng) f="$f --rng" ;;
        revirter:vsock=*) f="$f --vsock cid=$v,uds=$(opt "$d" uds)" ;;
        revirter:console=virtio) f="$f --console virtio" ;;
        qemu:disk=*)
            ro=''; [ -z "$(opt "$d" ro)" ] || ro=,readonly=on
            f="$f -drive file=$v,if=none,id=disk$n,format=raw${QEMU_DISK:+,$QEMU_DISK}$ro"
            f="$f -device virtio-blk-pci,drive=disk$n,disable-legacy=on" ;;
        qemu:tap=*)
            vh=off; [ -z "$(opt "$d" vhost)" ] || vh=on
            f="$f -netdev tap,id=net$n,ifname=$v,script=no,downscript=no,vhost=$vh"
            f="$f -device virtio-net-pci,netdev=net$n,disable-legacy=on" ;;
        qemu:user|qemu:user,*)
            f="$f -netdev user,id=net$n"
            for w in $(printf '%s' "$d" | tr ',' ' '); do
                case $w in fwd=*-*) h=${w#fwd=}; f="$f,hostfwd=tcp::${h%-*}-:${h#*-}" ;; esac
            done
            f="$f -device virtio-net-pci,netdev=net$n,disable-legacy=on" ;;
        qemu:rng)
            f="$f -object rng-random,id=rng$n,filename=/dev/urandom"
            f="$f -device virtio-rng-pci,rng=rng$n,disable-legacy=on" ;;
        qemu:vsock=*) f="$f -device vhost-vsock-pci,guest-cid=$v,disable-legacy=on" ;;
        qemu:console=virtio)
            f="$f -device virtio-serial-pci,disable-legacy=on -chardev stdio,id=con$n"
            f="$f -device virtconsole,chardev=con$n"; uart=null ;;
        *) echo "vmm.sh: unknown device '$d' for VMM '$VMM'" >&2; return 1 ;;
        esac
    done
    [ "$VMM" != qemu ] || f="-serial $uart$f"
    echo "$f"
}

# vm_command NAME DEVICE...: the whole command line (without the kernel command line), or
# status 3 with NAME.why when the VMM lacks a device.
vm_command() {
    name=$1; shift
    for d in "$@"; do
        if o=$(vm_lacks "$d"); then
            echo "revirter has no $o (for $d)" > "$name.why"; return 3
        fi
    done
    fl=$(vm_flags "$@") || return 1
    case $VMM in
    revirter)
        echo "$REVIRTER run --kernel ${VM_KERNEL:?} --initrd ${VM_INITRD:?} --cpus ${VM_CPUS:-2} --memory ${VM_MEM:-256M}$fl" ;;
    qemu)
        echo "qemu-system-x86_64 -accel kvm -M pc -cpu host -nodefaults -no-user-config -display none -no-reboot -smp ${VM_CPUS:-2} -m ${VM_MEM:-256M} -kernel ${VM_KERNEL:?} -initrd ${VM_INITRD:?} $fl" ;;
    *) echo "vmm.sh: unknown VMM '$VMM' (revirter or qemu)" >&2; return 1 ;;
    esac
}

# vm_start NAME TIMEOUT DEVICE...: launch in the background; VM_PID is the timeout process.
vm_start() {
    name=$1 tmo=$2; shift 2
    rm -f "$name.out" "$name.err" "$name.rc" "$name.ms" "$name.why"
    c=$(vm_command "$name" "$@") || { st=$?; echo "$st" > "$name.rc"; VM_PID=''; return "$st"; }
    printf '%s --cmdline "%s"\n' "$c" "$VM_CMDLINE" > "$name.cmd"
    echo "lab-vm: $name ($VMM): $c"
    _vm_t0=$(date +%s%N)
    # shellcheck disable=SC2086
    case $VMM in
        revirter) timeout -k 5 "$tmo" $c --cmdline "$VM_CMDLINE" \
                      < "${VM_STDIN:-/dev/null}" > "$name.out" 2> "$name.err" 7>&- & ;;
        qemu) timeout -k 5 "$tmo" $c -append "$VM_CMDLINE" \
                  < "${VM_STDIN:-/dev/null}" > "$name.out" 2> "$name.err" 7>&- & ;;
    esac
    VM_PID=$!
}

# vm_wait NAME: wait for the guest started by vm_start; writes NAME.rc and NAME.ms.
vm_wait() {
    [ -n "$VM_PID" ] || return "$(cat "$1.rc")"
    st=0; wait "$VM_PID" || st=$?
    VM_PID=''
    echo "$(( ($(date +%s%N) - _vm_t0) / 1000000 ))" > "$1.ms"
    echo "$st" > "$1.rc"
    sed "s/^/[$1] /" "$1.out" "$1.err" | tr -d '\r'
    [ "$st" != 124 ] || echo "[$1] timed out" >> "$1.why"
    return "$st"
}

vm_run() {
    vm_start "$@" || return $?
    vm_wait "$1"
}

# vm_expect NAME PATTERN SECONDS: wait until NAME.out has a line matching PATTERN (grep -E) while
# the guest runs; status 1 if it ended or the time ran out first.
vm_expect() {
    n=0
    while [ "$n" -lt $(($3 * 5)) ]; do
        tr -d '\r' < "$1.out" 2>/dev/null | grep -qE -- "$2" && return 0
        [ -n "$VM_PID" ] && kill -0 "$VM_PID" 2>/dev/null || break
        sleep 0.2; n=$((n + 1))
    done
    tr -d '\r' < "$1.out" 2>/dev/null | grep -qE -- "$2"
}

# gval NAME KEY: the rest of the guest's first "lab-guest: KEY ..." line in NAME.out
gval() {
    tr -d '\r' < "$1.out" 2>/dev/null |
        sed -n "s/^.*lab-guest: $2 //p" | head -n 1
}
