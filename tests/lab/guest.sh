#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest (L2) side of the lab's device cases and of bench/io.sh: the same script whichever VMM
# runs the guest. Installed as /init.guest in an initramfs with the virtio modules (the loader
# has insmod'ed them), and as /sbin/init in the blk-root image. The case comes from the kernel
# command line: lab_case=NAME. Results are lines "lab-guest: KEY VALUE..." on ttyS1 (COM2: the
# VMM writes it to NAME.res), a channel the kernel's printk never writes to, so no kernel message
# can land inside a result; they are echoed on the console for people. The host side
# (tests/lab/devices.sh, bench/io.sh) checks NAME.res; "lab-guest: done" ends every case that
# ran to its end, then the guest powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /tmp /run
mount -t tmpfs tmpfs /tmp 2>/dev/null

arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
# fd 9: the result channel. Raw, so that nothing the tty layer does changes a byte.
# (A redirection that fails on exec would end the shell: the port is tried in a subshell first.)
if (: > /dev/ttyS1) 2>/dev/null; then exec 9> /dev/ttyS1; stty raw -echo <&9 2>/dev/null
else exec 9> /dev/null; fi
say() { echo "lab-guest: $*"; echo "lab-guest: $*" >&9; }
# Closing the port waits until what was written to it has gone out (the tty's closing_wait),
# so power-off cannot cut the last result lines short.
die() { say "error $*"; finish; }
finish() { say "done"; exec 9>&-; sync; poweroff -f; sleep 60; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
# wait_for PATH SECONDS: until PATH exists (devices appear after their driver probed). Waits
# are deadlines on the clock: under TCG a sleep can take far longer than asked.
wait_for() {
    end=$(( $(date +%s) + $2 ))
    while [ ! -e "$1" ] && [ "$(date +%s)" -lt "$end" ]; do usleep 100000; done
    [ -e "$1" ]
}
# wait_pid PID SECONDS: until PID exits (status 0) or the time is up (status 1, PID killed)
wait_pid() {
    end=$(( $(date +%s) + $2 ))
    while kill -0 "$1" 2>/dev/null; do
        [ "$(date +%s)" -lt "$end" ] || { kill "$1" 2>/dev/null; return 1; }
        usleep 100000
    done
}
cpus() {
    n=0 IFS=,
    for r in $(cat /sys/devices/system/cpu/online); do
        case $r in *-*) n=$((n + ${r#*-} - ${r%-*} + 1)) ;; ?*) n=$((n + 1)) ;; esac
    done
    unset IFS
    echo "$n"
}
# on_hvc0: console I/O on hvc0 (virtio-console). With console=hvc0 the kernel had no console
# when it started init (virtio_console is a module), so stdin/stdout/stderr are reopened here.
on_hvc0() {
    wait_for /dev/hvc0 20 || die "no /dev/hvc0"
    exec < /dev/hvc0 > /dev/hvc0 2>&1
    stty -echo 2>/dev/null      # the host's input is not echoed back into the log
}
# net_user: DHCP on eth0 from the VMM's user-mode network; the lease lands in /tmp/lease.
net_user() {
    wait_for /sys/class/net/eth0 20 || die "no eth0"
    ip link set lo up
    ip link set eth0 up
    cat > /tmp/udhcpc.sh <<'EOS'
#!/bin/sh
case $1 in
    deconfig) ip addr flush dev "$interface" 2>/dev/null; ip link set "$interface" up ;;
    bound|renew)
        ip addr add "$ip/${mask:-24}" dev "$interface"
        for r in $router; do ip route add default via "$r" dev "$interface"; break; done
        : > /etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
        echo "ip=$ip mask=$mask router=$router dns=$dns" > /tmp/lease ;;
esac
EOS
    chmod 755 /tmp/udhcpc.sh
    udhcpc -i eth0 -s /tmp/udhcpc.sh -f -q -n -t 10 -T 2 > /tmp/udhcpc.log 2>&1 ||
        { cat /tmp/udhcpc.log; die "dhcp failed"; }
    say "dhcp $(cat /tmp/lease)"
}
# send FILE HOST PORT / recv FILE HOST PORT: one TCP connection, out of or into the guest
send() { socat -u "OPEN:$1" "TCP:$2:$3,connect-timeout=20"; }
recv() { socat -u "TCP:$2:$3,connect-timeout=20" "CREATE:$1"; }
# rng_check BYTES: read BYTES from /dev/hwrng; report the source and how random it looks
rng_check() {
    wait_for /dev/hwrng 20 || die "no /dev/hwrng"
    say "rng-current $(cat /sys/class/misc/hw_random/rng_current)"
    timeout 60 head -c "$1" /dev/hwrng > /tmp/rng.bin
    say "rng-bytes $(wc -c < /tmp/rng.bin)"
    say "rng-nonzero $(tr -d '\000' < /tmp/rng.bin | wc -c)"
    say "rng-gzip $(gzip -9 -c /tmp/rng.bin | wc -c)"
}
# vsock_g2h SIZE: send SIZE random bytes to the host (CID 2) port 5000, which echoes them
vsock_g2h() {
    head -c "$1" /dev/urandom > /tmp/g2h.bin
    timeout 120 socat -t 30 - VSOCK-CONNECT:2:5000 < /tmp/g2h.bin > /tmp/g2h.back
    say "vsock-g2h rc=$? sent=$(sha /tmp/g2h.bin) back=$(sha /tmp/g2h.back)"
}

case=$(arg lab_case)
[ -e /etc/lab-rootfs ] && case=rootfs     # /sbin/init of the blk-root image
[ "$case" = console ] || [ "$case" = all-devices ] && on_hvc0
say "case $case cpus $(cpus)"

case $case in
blk-root)
    # The initramfs part: mount the ext4 root disk and make it the root.
    wait_for /dev/vda 20 || die "no /dev/vda"
    mkdir -p /newroot
    mount -t ext4 /dev/vda /newroot || die "cannot mount /dev/vda"
    umount /tmp /sys /proc 2>/dev/null
    umount /dev 2>/dev/null
    exec switch_root /newroot /sbin/init
    ;;
rootfs)
    # /sbin/init on the root disk: write files, report their checksums, leave the file system
    # clean (read-only remount) and power off. The host checks them with e2fsck and debugfs.
    say "root $(awk '$2 == "/" && $1 != "rootfs" { print $1, $3 }' /proc/mounts)"
    say "stamp $(sha /etc/lab-stamp)"
    mkdir -p /data/dir/sub
    head -c 4194304 /dev/urandom > /data/random.bin
    echo "written by the guest on $(uname -r)" > /data/hello.txt
    seq 1 20000 > /data/seq.txt
    head -c 3000 /dev/urandom > /data/dir/sub/small.bin
    for f in /data/random.bin /data/hello.txt /data/seq.txt /data/dir/sub/small.bin; do
        say "file $(sha "$f") $f"
    done
    sync
    mount -o remount,ro / && say "remount-ro ok"
    finish
    ;;
blk-ro)
    wait_for /dev/vda 20 || die "no /dev/vda"
    say "ro-flag $(cat /sys/block/vda/ro)"
    if dd if=/dev/zero of=/dev/vda bs=4096 count=1 oflag=direct 2>/dev/null; then
        say "dd-write succeeded"
    else
        say "dd-write failed"
    fi
    say "disk $(sha /dev/vda)"
    mkdir -p /mnt/ro
    if mount -t ext4 -o rw /dev/vda /mnt/ro 2>/dev/null ||
       mount -t ext4 -o ro /dev/vda /mnt/ro; then
        say "mounted $(awk '$2 == "/mnt/ro" { split($4, o, ","); print o[1] }' /proc/mounts)"
        if touch /mnt/ro/new-file 2>/dev/null; then say "touch succeeded"; else say "touch failed"; fi
        say "stamp $(sha /mnt/ro/etc/lab-stamp)"
        umount /mnt/ro
    fi
    finish
    ;;
net-tap|net-vhost)
    # The host is 10.0.0.1 on its TAP and serves 7002 (a file to fetch) and 7001 (uploads).
    wait_for /sys/class/net/eth0 20 || die "no eth0"
    ip link set lo up
    ip link set eth0 up
    ip addr add 10.0.0.2/24 dev eth0
    if ping -c 3 -w 30 10.0.0.1 > /tmp/ping.log 2>&1; then say "ping ok"; else cat /tmp/ping.log; say "ping failed"; fi
    head -c 2097152 /dev/urandom > /tmp/up.bin
    send /tmp/up.bin 10.0.0.1 7001
    say "upload rc=$? sha=$(sha /tmp/up.bin)"
    recv /tmp/down.bin 10.0.0.1 7002
    say "download rc=$? sha=$(sha /tmp/down.bin)"
    finish
    ;;
net-user)
    # The host serves 7003 on its loopback (10.0.2.2 here) and forwards its port 5555 to 8080.
    net_user
    head -c 2097152 /dev/urandom > /tmp/up.bin
    send /tmp/up.bin 10.0.2.2 7003
    say "upload rc=$? sha=$(sha /tmp/up.bin)"
    socat -u TCP-LISTEN:8080,reuseaddr CREATE:/tmp/in.bin &
    lpid=$!
    usleep 300000
    say "listening 8080"
    wait_pid "$lpid" 120; wait "$lpid"
    say "hostfwd rc=$? sha=$(sha /tmp/in.bin)"
    say "resolv $(grep nameserver /etc/resolv.conf | tr '\n' ' ')"
    say "dns $(nslookup lab.revirt.test 2>&1 | awk '/^Name:/ { n = 1 } n && /^Address/ { print $NF; exit }')"
    finish
    ;;
rng)
    rng_check 65536
    say "rng-available $(cat /sys/class/misc/hw_random/rng_available)"
    finish
    ;;
vsock)
    # Host -> guest: an echo server on port 1234 for one connection. Guest -> host: port 5000.
    wait_for /dev/vsock 20 || die "no /dev/vsock"
    socat -t 30 VSOCK-LISTEN:1234 EXEC:cat &
    lpid=$!
    usleep 300000
    say "listening 1234"
    vsock_g2h 1048576
    wait_pid "$lpid" 180; wait "$lpid"
    say "h2g-server rc=$?"
    finish
    ;;
console)
    # An interactive shell on hvc0: the host types commands on the VMM's standard input.
    say "console-ready"
    exec sh -i
    ;;
all-devices)
    # One guest, every device: console on hvc0, disk, user network, rng, vsock.
    wait_for /dev/vda 20 && say "disk $(sha /dev/vda)"
    net_user
    head -c 1048576 /dev/urandom > /tmp/up.bin
    send /tmp/up.bin 10.0.2.2 7003
    say "upload rc=$? sha=$(sha /tmp/up.bin)"
    rng_check 4096
    wait_for /dev/vsock 20 && vsock_g2h 262144
    say "console-ready"
    read -r line && say "console-in $line"
    finish
    ;;
bench)
    # bench/io.sh: fio on /dev/vda (direct I/O) and iperf3 to the host over each TAP network.
    rt=$(arg bench_runtime); rt=${rt:-5}
    cd /tmp || die "no /tmp"
    if wait_for /dev/vda 20; then
        fiojob() { # name rw bs iodepth
            fio --name="$1" --filename=/dev/vda --direct=1 --ioengine=libaio --rw="$2" \
                --bs="$3" --iodepth="$4" --runtime="$rt" --time_based --ramp_time=1 \
                --minimal > "/tmp/$1.fio" 2> "/tmp/$1.err" || { cat "/tmp/$1.err"; return; }
            # terse v3: field 7/8 read KiB/s and IOPS, 48/49 write KiB/s and IOPS
            awk -F';' -v n="$1" '{ printf "lab-guest: bench %s read_kib_s=%s read_iops=%s write_kib_s=%s write_iops=%s\n", n, $7, $8, $48, $49 }' "/tmp/$1.fio"
        }
        fiojob seqread read 1M 16
        fiojob seqwrite write 1M 16
        fiojob randread randread 4k 32
    else
        say "bench no-disk"
    fi
    for i in 0 1; do
        [ -e /sys/class/net/eth$i ] || continue
        ip link set lo up
        ip link set "eth$i" up
        ip addr add "10.0.$i.2/24" dev "eth$i"
        ping -c 1 -w 20 "10.0.$i.1" > /dev/null 2>&1
        iperf3 -c "10.0.$i.1" -t "$rt" -f m > "/tmp/iperf$i.log" 2>&1 || cat "/tmp/iperf$i.log"
        awk -v i="$i" '/receiver/ { for (k = 1; k < NF; k++) if ($(k + 1) == "Mbits/sec") m = $k }
            END { if (m != "") printf "lab-guest: bench net%d mbit_s=%s\n", i, m }' "/tmp/iperf$i.log"
    done
    finish
    ;;
*)
    die "unknown case '$case'"
    ;;
esac
die "case $case fell through"
