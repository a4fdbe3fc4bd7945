# SPDX-License-Identifier: MIT
# The lab's virtio device cases, sourced by tests/lab/run-tests.sh: on the host to build the
# images (devices_prepare), and in L1 to run the cases (dev_case) against the VMM chosen by
# $VMM (revirter, the default, or qemu). Each case is written once: the guest side is
# tests/lab/guest.sh (the same image for either VMM), the VMM flags come from tests/lab/vmm.sh,
# and the checks below compare what the guest printed with what L1 sees.
#
# Cases (2 vCPUs, 256M each):
#   blk-root     root on an ext4 virtio-blk disk (switch_root); the guest writes files and prints
#                their sha256; L1 runs e2fsck -fn and reads the files back with debugfs
#   blk-ro       a read-only disk: the guest's write fails, its read matches the image
#   net-tap      TAP (10.0.0.1 in L1, 10.0.0.2 in the guest): ping, 2 MiB each way by TCP
#   net-vhost    the same with vhost=on
#   net-user     user networking: DHCP lease (10.0.2.15, gateway 10.0.2.2, DNS 10.0.2.3), a file
#                to L1's loopback through 10.0.2.2, a file in through hostfwd, and a name
#                resolved through 10.0.2.3 by a DNS server on L1's loopback
#   rng          64 KiB from /dev/hwrng (rng_current is virtio), incompressible and not zeros
#   vsock        1 MiB echoed host -> guest (port 1234) and guest -> host (CID 2, port 5000)
#   console      --console virtio, console=hvc0: commands typed on the VMM's stdin to a shell
#   all-devices  disk, user network, rng, vsock and virtio console in one guest
# Environment (L1): VMM (revirter or qemu), DEV_TIMEOUT (seconds per guest, default 300).

DEVICE_CASES="blk-root blk-ro net-tap net-vhost net-user rng vsock console all-devices"
DEV_MODULES="virtio_pci virtio_blk virtio_net virtio_console virtio_rng vmw_vsock_virtio_transport ext4"

# --- on the host -------------------------------------------------------------------------------
# devices_prepare REPO CACHE WORK: images and scripts for the device cases, in WORK.
devices_prepare() {
    _r=$1 _c=$2 _w=$3
    cp "$_r/tests/lab/vmm.sh" "$_r/tests/lab/devices.sh" "$_r/tests/lab/helper.py" "$_w/" || return 1
    # The initramfs for every device case: virtio modules, socat, tests/lab/guest.sh as init.
    sh "$_r/tests/images/initramfs.sh" --cache "$_c" --modules "$DEV_MODULES" --bin socat \
        --init "$_r/tests/lab/guest.sh" --out "$_w/dev.cpio.gz" >&2 || return 1
    # A stamp file both disks carry: the guest reads it back.
    mkdir -p "$_w/dev-tree/etc" "$_w/ro-tree/etc"
    seq 1 4000 > "$_w/dev-tree/etc/lab-stamp"
    cp "$_w/dev-tree/etc/lab-stamp" "$_w/ro-tree/etc/lab-stamp"
    : > "$_w/dev-tree/etc/lab-rootfs"
    sh "$_r/tests/images/rootfs.sh" --out "$_w/root-template.img" --size 64M --busybox \
        --dir "$_w/dev-tree" --init "$_r/tests/lab/guest.sh" >&2 || return 1
    sh "$_r/tests/images/rootfs.sh" --out "$_w/ro.img" --size 16M --dir "$_w/ro-tree" \
        --label revirt-ro >&2 || return 1
    # Fresh writable copies for this run (sparse, made here: copying over 9p in L1 is slow).
    cp --sparse=always "$_w/root-template.img" "$_w/blk-root.img"
    cp --sparse=always "$_w/ro.img" "$_w/all-devices.img"
    head -c 2097152 /dev/urandom > "$_w/net-down.bin"
}

# --- in L1 -------------------------------------------------------------------------------------
# The checks: expect DESCRIPTION COMMAND... records DESCRIPTION as a failure when COMMAND fails.
expect() {
    _d=$1; shift
    "$@" > /dev/null 2>&1 && return 0
    _fails="${_fails:+$_fails; }$_d"
    echo "lab-check: $_case: FAILED: $_d"
    return 1
}
is() { [ "$1" = "$2" ]; }
# vm_ok NAME: exit status 0, 2 CPUs, no guest error, and the guest's end marker.
vm_ok() {
    _vo_err=$(grep -v '^\[' "$1.err" 2>/dev/null | tail -n 2 | tr '\n' ' ' | cut -c1-200)
    expect "exit status $(cat "$1.rc" 2>/dev/null) (want 0)${_vo_err:+: $_vo_err}" \
        is "$(cat "$1.rc" 2>/dev/null)" 0
    expect "guest saw $(gval "$1" "case [^ ]* cpus" || true) CPUs (want 2)" \
        is "$(gval "$1" "case [^ ]* cpus")" 2
    expect "guest error: $(gval "$1" error)" is "$(gval "$1" error)" ""
    expect "the guest did not finish (no 'lab-guest: done')" grep -q 'lab-guest: done' "$1.res"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
# bg_stop PID...: end helpers a case started that are still running
bg_stop() {
    for _p in "$@"; do
        [ -n "$_p" ] || continue
        kill "$_p" 2>/dev/null
        wait "$_p" 2>/dev/null
    done
    return 0
}
dev_vm() { # NAME DEVICE...: standard guest settings for a case, then vm_start
    VM_KERNEL=vmlinuz VM_INITRD=dev.cpio.gz VM_CPUS=2 VM_MEM=256M
    VM_CMDLINE="${DEV_CONSOLE:-console=ttyS0} panic=-1 quiet lab_case=$1"
    _dn=$1; shift
    vm_start "$_dn" "${DEV_TIMEOUT:-300}" "$@"
}
tap_up() { # IFNAME ADDR: an L1 TAP interface for the guest
    ip link show "$1" > /dev/null 2>&1 || ip tuntap add "$1" mode tap || return 1
    ip addr flush dev "$1"
    ip addr add "$2" dev "$1" && ip link set "$1" up
}
vsock_server() { # SIZE: the host side of guest -> host (CID 2) port 5000; sets _vs_pid
    rm -f "$DEV_UDS"      # the VMM creates it; one left by an earlier guest would be stale
    case $VMM in
        revirter) python3 ./helper.py echo-server --uds "$DEV_UDS"_5000 "$1" > "$_case.vsrv" 2>&1 & ;;
        *) python3 ./helper.py echo-server --vsock 5000 "$1" > "$_case.vsrv" 2>&1 & ;;
    esac
    _vs_pid=$!
    sleep 1
}
vsock_client() { # PORT FILE: host -> guest through the VMM
    case $VMM in
        revirter) python3 ./helper.py echo-client --uds "$DEV_UDS" "$1" "$2" ;;
        *) python3 ./helper.py echo-client --cid "$DEV_CID" "$1" "$2" ;;
    esac
}
DEV_UDS=/tmp/lab-vsock.sock DEV_CID=3

dev_blk_root() {
    dev_vm blk-root disk=blk-root.img && vm_wait blk-root
    [ "$(cat blk-root.rc)" != 3 ] || return 0
    vm_ok blk-root
    expect "root is not /dev/vda ext4 ($(gval blk-root root))" is "$(gval blk-root root)" "/dev/vda ext4"
    expect "stamp read by the guest differs" is "$(gval blk-root stamp)" "$(sha dev-tree/etc/lab-stamp)"
    expect "read-only remount before power-off" grep -q 'lab-guest: remount-ro ok' blk-root.res
    e2fsck -fn blk-root.img > blk-root.fsck 2>&1; st=$?
    expect "e2fsck -fn blk-root.img: status $st ($(tail -n 1 blk-root.fsck))" is "$st" 0
    tr -d '\r' < blk-root.res | sed -n 's/^.*lab-guest: file //p' > blk-root.files
    expect "the guest reported $(wc -l < blk-root.files) files (want 4)" is "$(wc -l < blk-root.files)" 4
    rm -rf blk-root.dump; mkdir -p blk-root.dump
    while read -r s f; do
        out=blk-root.dump/$(basename "$f")
        debugfs -R "dump $f $out" blk-root.img > /dev/null 2>&1
        expect "$f read back by debugfs: $(sha "$out" 2>/dev/null || echo missing), guest wrote $s" \
            is "$(sha "$out" 2>/dev/null)" "$s"
    done < blk-root.files
}

dev_blk_ro() {
    before=$(sha ro.img)
    dev_vm blk-ro disk=ro.img,ro && vm_wait blk-ro
    [ "$(cat blk-ro.rc)" != 3 ] || return 0
    vm_ok blk-ro
    expect "/sys/block/vda/ro is '$(gval blk-ro ro-flag)' (want 1)" is "$(gval blk-ro ro-flag)" 1
    expect "a write to the read-only disk: $(gval blk-ro dd-write)" is "$(gval blk-ro dd-write)" failed
    expect "the guest's read of the disk differs from the image" is "$(gval blk-ro disk)" "$before"
    expect "mounted '$(gval blk-ro mounted)' (want ro)" is "$(gval blk-ro mounted)" ro
    expect "touch on the read-only mount: $(gval blk-ro touch)" is "$(gval blk-ro touch)" failed
    expect "stamp read by the guest differs" is "$(gval blk-ro stamp)" "$(sha ro-tree/etc/lab-stamp)"
    expect "the image changed" is "$(sha ro.img)" "$before"
}

dev_net_tap() { # NAME [vhost]
    _n=$1
    expect "cannot set up tap0 in L1" tap_up tap0 10.0.0.1/24 || return 0
    rm -f "$_n.up"
    socat -u TCP-LISTEN:7001,bind=10.0.0.1,reuseaddr "CREATE:$_n.up" & p1=$!
    socat -u OPEN:net-down.bin TCP-LISTEN:7002,bind=10.0.0.1,reuseaddr & p2=$!
    dev_vm "$_n" "tap=tap0${2:+,vhost}" && vm_wait "$_n"
    bg_stop "$p1" "$p2"
    [ "$(cat "$_n.rc")" != 3 ] || return 0
    vm_ok "$_n"
    expect "ping 10.0.0.1 from the guest" grep -q 'lab-guest: ping ok' "$_n.res"
    expect "upload: $(gval "$_n" upload), L1 got $(sha "$_n.up" 2>/dev/null)" \
        is "$(gval "$_n" upload)" "rc=0 sha=$(sha "$_n.up" 2>/dev/null)"
    expect "download: $(gval "$_n" download), L1 sent $(sha net-down.bin)" \
        is "$(gval "$_n" download)" "rc=0 sha=$(sha net-down.bin)"
}

# net-user's L1 side: an upload server on loopback port 7003 (the guest's 10.0.2.2:7003) and,
# for DNS, a resolver on 127.0.0.1 that the VMM's slirp forwards 10.0.2.3 to (L1's
# /etc/resolv.conf is bind-mounted for the case: L1 has no other network).
user_servers() { # NAME
    rm -f "$1.up"
    socat -u TCP-LISTEN:7003,bind=127.0.0.1,reuseaddr "CREATE:$1.up" & p1=$!
    echo "nameserver 127.0.0.1" > /tmp/lab-resolv.conf
    mount --bind /tmp/lab-resolv.conf /etc/resolv.conf && _resolv=1
    python3 ./helper.py dns 127.0.0.1 lab.revirt.test 192.0.2.42 > "$1.dns" 2>&1 & p3=$!
}
user_servers_stop() {
    bg_stop "$p1" "$p3"
    [ -z "${_resolv:-}" ] || umount /etc/resolv.conf
    _resolv=''
}

dev_net_user() {
    user_servers net-user
    if dev_vm net-user user,fwd=5555-8080; then
        if vm_expect net-user 'lab-guest: listening 8080' 240; then
            socat -u OPEN:net-down.bin TCP:127.0.0.1:5555,connect-timeout=30; st=$?
            expect "L1 -> guest through hostfwd 5555: socat status $st" is "$st" 0
        fi
        vm_wait net-user
    fi
    user_servers_stop
    [ "$(cat net-user.rc)" != 3 ] || return 0
    vm_ok net-user
    expect "lease '$(gval net-user dhcp)'" \
        is "$(gval net-user dhcp)" "ip=10.0.2.15 mask=24 router=10.0.2.2 dns=10.0.2.3"
    expect "upload: $(gval net-user upload), L1 got $(sha net-user.up 2>/dev/null)" \
        is "$(gval net-user upload)" "rc=0 sha=$(sha net-user.up 2>/dev/null)"
    expect "hostfwd: $(gval net-user hostfwd), L1 sent $(sha net-down.bin)" \
        is "$(gval net-user hostfwd)" "rc=0 sha=$(sha net-down.bin)"
    expect "resolver '$(gval net-user resolv)' (want 10.0.2.3)" \
        is "$(gval net-user resolv)" "nameserver 10.0.2.3 "
    expect "lab.revirt.test resolved to '$(gval net-user dns)' (want 192.0.2.42)" \
        is "$(gval net-user dns)" 192.0.2.42
}

rng_ok() { # NAME BYTES
    expect "rng_current '$(gval "$1" rng-current)'" grep -q 'lab-guest: rng-current virtio_rng' "$1.res"
    expect "read $(gval "$1" rng-bytes) bytes from /dev/hwrng (want $2)" is "$(gval "$1" rng-bytes)" "$2"
    expect "only $(gval "$1" rng-nonzero) non-zero bytes" \
        test "$(gval "$1" rng-nonzero)" -ge $(($2 * 99 / 100))
    expect "gzip -9 made $(gval "$1" rng-gzip) bytes of $2 (random data does not shrink)" \
        test "$(gval "$1" rng-gzip)" -ge "$2"
}

dev_rng() {
    dev_vm rng rng && vm_wait rng
    [ "$(cat rng.rc)" != 3 ] || return 0
    vm_ok rng
    rng_ok rng 65536
}

vsock_g2h_ok() { # NAME
    g=$(gval "$1" vsock-g2h)
    s=$(echo "$g" | sed -n 's/.*sent=\([0-9a-f]*\).*/\1/p')
    expect "guest -> host echo: $g" is "$g" "rc=0 sent=$s back=$s"
}

dev_vsock() {
    head -c 1048576 /dev/urandom > vsock.h2g
    vsock_server 1048576
    if dev_vm vsock "vsock=$DEV_CID,uds=$DEV_UDS"; then
        if vm_expect vsock 'lab-guest: listening 1234' 240; then
            vsock_client 1234 vsock.h2g > vsock.client 2>&1; st=$?
            expect "host -> guest echo: status $st $(cat vsock.client)" is "$st" 0
        fi
        vm_wait vsock
    fi
    bg_stop "$_vs_pid"
    cat vsock.vsrv
    [ "$(cat vsock.rc)" != 3 ] || return 0
    vm_ok vsock
    vsock_g2h_ok vsock
    expect "the guest's echo server: $(gval vsock h2g-server)" is "$(gval vsock h2g-server)" rc=0
}

# console_in NAME: the VMM's standard input is a FIFO (on L1's tmpfs: the 9p work dir has
# none), written through fd 7.
console_in() {
    VM_STDIN=/tmp/lab-$1.in
    rm -f "$VM_STDIN"
    mkfifo "$VM_STDIN" || { echo "cannot make the FIFO $VM_STDIN" >> "$1.why"; VM_STDIN=/dev/null; }
    exec 7<> "$VM_STDIN"
}
console_end() { exec 7>&-; VM_STDIN=/dev/null; }

dev_console() {
    console_in console
    DEV_CONSOLE=console=hvc0
    if dev_vm console console=virtio; then
        if vm_expect console 'lab-guest: console-ready' 240; then
            sleep 1
            printf 'echo $((6*7))-ok\n' >&7
            vm_expect console '42-ok' 60 out
            printf 'poweroff -f\n' >&7
        fi
        vm_wait console
    fi
    DEV_CONSOLE=''
    console_end
    [ "$(cat console.rc)" != 3 ] || return 0
    expect "exit status $(cat console.rc) (want 0)" is "$(cat console.rc)" 0
    expect "guest saw $(gval console "case [^ ]* cpus") CPUs (want 2)" is "$(gval console "case [^ ]* cpus")" 2
    expect "the shell on hvc0 did not answer 42-ok" grep -q '42-ok' console.out
}

dev_all_devices() {
    _n=all-devices
    before=$(sha all-devices.img)
    user_servers $_n
    vsock_server 262144
    console_in $_n
    DEV_CONSOLE=console=hvc0
    if dev_vm $_n disk=all-devices.img user rng "vsock=$DEV_CID,uds=$DEV_UDS" console=virtio; then
        if vm_expect $_n 'lab-guest: console-ready' 240; then
            printf 'token-%s\n' "$$" >&7
        fi
        vm_wait $_n
    fi
    DEV_CONSOLE=''
    console_end
    user_servers_stop
    bg_stop "$_vs_pid"
    [ "$(cat $_n.rc)" != 3 ] || return 0
    vm_ok $_n
    expect "the guest's read of the disk differs from the image" is "$(gval $_n disk)" "$before"
    expect "lease '$(gval $_n dhcp)'" is "$(gval $_n dhcp)" "ip=10.0.2.15 mask=24 router=10.0.2.2 dns=10.0.2.3"
    expect "upload: $(gval $_n upload), L1 got $(sha $_n.up 2>/dev/null)" \
        is "$(gval $_n upload)" "rc=0 sha=$(sha $_n.up 2>/dev/null)"
    rng_ok $_n 4096
    vsock_g2h_ok $_n
    expect "console input: '$(gval $_n console-in)'" is "$(gval $_n console-in)" "token-$$"
}

# dev_attempt NAME: one run of a case; its failures in _fails.
dev_attempt() {
    _case=$1 _fails=''
    rm -f "$1.why"
    case $1 in
        net-tap) dev_net_tap net-tap ;;
        net-vhost) dev_net_tap net-vhost vhost ;;
        *) "dev_$(echo "$1" | tr - _)" ;;
    esac
    [ ! -s "$1.why" ] || _fails="$(cat "$1.why")${_fails:+; $_fails}"
}

# dev_case NAME: run one device case; "ok NAME" or "fail NAME" in ./results (with NAME.why).
# A case whose guest reported nothing at all (no line on COM2: the L2 kernel never reached its
# init, which TCG's emulation of SVM causes now and then whatever the VMM does) runs once more;
# the first attempt's status and messages stay in NAME.first and are printed, so that a VMM
# that fails this way every time still fails the case.
# DEV_PREFIX (e.g. "user-"): the name the result is recorded under.
dev_case() {
    rm -f "$1.first"
    dev_attempt "$1"
    if [ -n "$_fails" ] && [ ! -s "$1.res" ] && [ "${DEV_RETRY:-1}" = 1 ]; then
        { echo "status $(cat "$1.rc" 2>/dev/null), nothing on COM2; stderr:"
          tail -n 20 "$1.err" 2>/dev/null; } > "$1.first"
        echo "lab-case: $1: the guest reported nothing; running it once more"
        sed "s/^/[$1, first attempt] /" "$1.first"
        dev_attempt "$1"
    fi
    if [ -z "$_fails" ]; then
        result ok "${DEV_PREFIX:-}$1"
    else
        echo "$_fails" > "$1.why"
        result fail "${DEV_PREFIX:-}$1"
    fi
    # Under a prefix (the same case in another mode) its files are kept under the prefixed name
    # too, for the summary and for people.
    if [ -n "${DEV_PREFIX:-}" ]; then
        for _x in rc ms why first res out err cmd; do
            rm -f "$DEV_PREFIX$1.$_x"
            [ ! -e "$1.$_x" ] || cp "$1.$_x" "$DEV_PREFIX$1.$_x"
        done
    fi
}
