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
#         VM_STDIN (default /dev/null), REVIRTER (default ./revirter), VM_IRQCHIP (revirter's
#         --irqchip: kernel or user; empty: its default),
#         QEMU_DISK (drive options for QEMU, default cache=writeback).
# Outputs in the current directory: NAME.out (the VMM's standard output: the guest console),
#         NAME.res (the guest's COM2: results, see tests/lab/guest.sh), NAME.err, NAME.rc,
#         NAME.ms (launch to exit), NAME.cmd (the command line).

VMM=${VMM:-revirter}
REVIRTER=${REVIRTER:-./revirter}

# vm_lacks DEVICE: revirter's option for DEVICE when `revirter run --help` does not list it.
vm_lacks() {
    [ "$VMM" = revirter ] || return 1
    [ -n "${_vm_help:-}" ] || _vm_help=$("$REVIRTER" run --help 2>&1)
    case $1 in
        disk=*) _vo=--disk ;; tap=*|user|user,*) _vo=--net ;; rng) _vo=--rng ;;
        vsock=*) _vo=--vsock ;; console=*) _vo=--console ;; *) return 1 ;;
    esac
    case $_vm_help in *"$_vo"*) return 1 ;; esac
    echo "$_vo"
}

# opt LIST NAME: value of NAME=VALUE (or "yes" for a bare NAME) in the comma-separated LIST
opt() {
    printf '%s\n' "$1" | tr ',' '\n' | awk -v k="$2" -F= '
        $1 == k { print (NF > 1 ? substr($0, length(k) + 2) : "yes"); exit }'
}

# vm_flags DEVICE...: the VMM's device flags on one line (blank-separated).
vm_flags() {
    _vf='' _vn=0 _vuart=stdio
    for _vd in "$@"; do
        _vn=$((_vn + 1))
        _vv=${_vd#*=}; _vv=${_vv%%,*}
        case $VMM:$_vd in
        revirter:disk=*)
            _vf="$_vf --disk $_vv"; [ -z "$(opt "$_vd" ro)" ] || _vf="$_vf,ro" ;;
        revirter:tap=*)
            _vf="$_vf --net tap=$_vv"; [ -z "$(opt "$_vd" vhost)" ] || _vf="$_vf,vhost=on" ;;
        revirter:user|revirter:user,*)
            _vf="$_vf --net user"
            for _vw in $(printf '%s' "$_vd" | tr ',' ' '); do
                case $_vw in fwd=*-*) _vh=${_vw#fwd=}; _vf="$_vf,hostfwd=tcp::${_vh%-*}-:${_vh#*-}" ;; esac
            done ;;
        revirter:rng) _vf="$_vf --rng" ;;
        revirter:vsock=*) _vf="$_vf --vsock cid=$_vv,uds=$(opt "$_vd" uds)" ;;
        revirter:console=virtio) _vf="$_vf --console virtio" ;;
        qemu:disk=*)
            _vro=''; [ -z "$(opt "$_vd" ro)" ] || _vro=,readonly=on
            _vf="$_vf -drive file=$_vv,if=none,id=disk$_vn,format=raw${QEMU_DISK:+,$QEMU_DISK}$_vro"
            _vf="$_vf -device virtio-blk-pci,drive=disk$_vn,disable-legacy=on" ;;
        qemu:tap=*)
            _vvh=off; [ -z "$(opt "$_vd" vhost)" ] || _vvh=on
            _vf="$_vf -netdev tap,id=net$_vn,ifname=$_vv,script=no,downscript=no,vhost=$_vvh"
            _vf="$_vf -device virtio-net-pci,netdev=net$_vn,disable-legacy=on" ;;
        qemu:user|qemu:user,*)
            _vf="$_vf -netdev user,id=net$_vn"
            for _vw in $(printf '%s' "$_vd" | tr ',' ' '); do
                case $_vw in fwd=*-*) _vh=${_vw#fwd=}; _vf="$_vf,hostfwd=tcp::${_vh%-*}-:${_vh#*-}" ;; esac
            done
            _vf="$_vf -device virtio-net-pci,netdev=net$_vn,disable-legacy=on" ;;
        qemu:rng)
            _vf="$_vf -object rng-random,id=rng$_vn,filename=/dev/urandom"
            _vf="$_vf -device virtio-rng-pci,rng=rng$_vn,disable-legacy=on" ;;
        qemu:vsock=*) _vf="$_vf -device vhost-vsock-pci,guest-cid=$_vv,disable-legacy=on" ;;
        qemu:console=virtio)
            _vf="$_vf -device virtio-serial-pci,disable-legacy=on -chardev stdio,id=con$_vn"
            _vf="$_vf -device virtconsole,chardev=con$_vn"; _vuart=null ;;
        *) echo "vmm.sh: unknown device '$_vd' for VMM '$VMM'" >&2; return 1 ;;
        esac
    done
    [ "$VMM" != qemu ] || _vf="-serial $_vuart$_vf"
    echo "$_vf"
}

# vm_command NAME DEVICE...: the whole command line (without the kernel command line), or
# status 3 with NAME.why when the VMM lacks a device.
vm_command() {
    _vname=$1; shift
    for _vd in "$@"; do
        if _vo=$(vm_lacks "$_vd"); then
            echo "revirter has no $_vo (for $_vd)" > "$_vname.why"; return 3
        fi
    done
    _vfl=$(vm_flags "$@") || return 1
    # COM2 (the guest's ttyS1) goes to NAME.res: the guest's results, apart from the console.
    case $VMM in
    revirter)
        echo "$REVIRTER run --kernel ${VM_KERNEL:?} --initrd ${VM_INITRD:?} --cpus ${VM_CPUS:-2} --memory ${VM_MEM:-256M}${VM_IRQCHIP:+ --irqchip=$VM_IRQCHIP} --serial2 $_vname.res$_vfl" ;;
    qemu)
        echo "qemu-system-x86_64 -accel kvm -M pc -cpu host -nodefaults -no-user-config -display none -no-reboot -smp ${VM_CPUS:-2} -m ${VM_MEM:-256M} -kernel ${VM_KERNEL:?} -initrd ${VM_INITRD:?} $_vfl -serial file:$_vname.res" ;;
    *) echo "vmm.sh: unknown VMM '$VMM' (revirter or qemu)" >&2; return 1 ;;
    esac
}

# vm_start NAME TIMEOUT DEVICE...: launch in the background; VM_PID is the timeout process.
vm_start() {
    _vname=$1 _vtmo=$2; shift 2
    rm -f "$_vname.out" "$_vname.err" "$_vname.res" "$_vname.rc" "$_vname.ms"
    _vc=$(vm_command "$_vname" "$@") || { _vst=$?; echo "$_vst" > "$_vname.rc"; VM_PID=''; return "$_vst"; }
    printf '%s --cmdline "%s"\n' "$_vc" "$VM_CMDLINE" > "$_vname.cmd"
    echo "lab-vm: $_vname ($VMM): $_vc"
    _vm_t0=$(date +%s%N)
    # shellcheck disable=SC2086
    case $VMM in
        revirter) timeout -k 5 "$_vtmo" $_vc --cmdline "$VM_CMDLINE" \
                      < "${VM_STDIN:-/dev/null}" > "$_vname.out" 2> "$_vname.err" 7>&- & ;;
        qemu) timeout -k 5 "$_vtmo" $_vc -append "$VM_CMDLINE" \
                  < "${VM_STDIN:-/dev/null}" > "$_vname.out" 2> "$_vname.err" 7>&- & ;;
    esac
    VM_PID=$!
}

# vm_wait NAME: wait for the guest started by vm_start; writes NAME.rc and NAME.ms.
vm_wait() {
    [ -n "$VM_PID" ] || return "$(cat "$1.rc")"
    _vst=0; wait "$VM_PID" || _vst=$?
    VM_PID=''
    echo "$(( ($(date +%s%N) - _vm_t0) / 1000000 ))" > "$1.ms"
    echo "$_vst" > "$1.rc"
    sed "s/^/[$1] /" "$1.out" "$1.err" | tr -d '\r'
    [ "$_vst" != 124 ] || echo "[$1] timed out" >> "$1.why"
    return "$_vst"
}

vm_run() {
    vm_start "$@" || return $?
    vm_wait "$1"
}

# vm_expect NAME PATTERN SECONDS [out]: wait until NAME.res (the guest's results; NAME.out, its
# console, with "out") has a line matching PATTERN (grep -E) while the guest runs; status 1 if
# it ended or the time ran out first.
vm_expect() {
    _vxf=$1.${4:-res}
    _vend=$(( $(date +%s) + $3 ))             # a deadline: under TCG a sleep can take far longer
    while [ "$(date +%s)" -lt "$_vend" ]; do  # one grep per 0.5 s: L1's CPU is the guest's too
        grep -qE -- "$2" "$_vxf" 2>/dev/null && return 0
        [ -n "$VM_PID" ] && kill -0 "$VM_PID" 2>/dev/null || break
        sleep 0.5
    done
    grep -qE -- "$2" "$_vxf" 2>/dev/null
}

# gval NAME KEY: the rest of the guest's first "lab-guest: KEY ..." line in NAME.res
gval() {
    tr -d '\r' < "$1.res" 2>/dev/null |
        sed -n "s/^.*lab-guest: $2 //p" | head -n 1
}
