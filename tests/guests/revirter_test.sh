#!/bin/sh
# revirter end to end on tiny kernels (fast on any KVM): boot, console, exit codes, bad input.
# usage: revirter_test.sh REVIRTER GUEST_BUILD_DIR CASE
set -u
rv=$1 dir=$2 case=$3
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

run() { # expected-status command...
    want=$1; shift
    timeout 60 "$@" </dev/null >"$out" 2>"$err"
    got=$?
    if [ "$got" != "$want" ]; then
        echo "not ok - exit status $got, expected $want: $*"
        sed 's/^/# stdout: /' "$out"; sed 's/^/# stderr: /' "$err"
        exit 1
    fi
}
expect() { # file pattern
    if ! grep -q -- "$2" "$1"; then
        echo "not ok - '$2' missing from output"
        sed 's/^/# stdout: /' "$out"; sed 's/^/# stderr: /' "$err"
        exit 1
    fi
}

case $case in
multiboot-debug-exit)
    run 67 "$rv" run --kernel "$dir/mb_hello.elf" --debug-exit --cmdline "hello from the test"
    expect "$out" "revirt multiboot ok: cmdline=hello from the test" ;;
no-debug-exit)
    # Without --debug-exit port 0xf4 is nobody's: the kernel ends in cli; hlt, which revirter
    # must not mistake for an exit. It has to be stopped from outside.
    timeout -s INT 3 "$rv" run --kernel "$dir/mb_hello.elf" </dev/null >"$out" 2>"$err"
    [ $? = 124 ] || { echo "not ok - revirter did not keep running the halted guest"; exit 1; }
    expect "$out" "revirt multiboot ok" ;;
triple-fault)
    run 1 "$rv" run --kernel "$dir/mb_hello.elf" --cmdline crash
    expect "$err" "vCPU 0: triple fault"
    expect "$err" "vCPU 0: rip 0000000000100" ;;
reboot)
    run 0 "$rv" run --kernel "$dir/mb_hello.elf" --cmdline reboot
    expect "$out" "cmdline=reboot" ;;
reboot-restart)
    # Every boot reboots again: restart is seen as a second banner; stop it then.
    "$rv" run --kernel "$dir/mb_hello.elf" --cmdline reboot --on-reboot=restart \
        </dev/null >"$out" 2>"$err" &
    pid=$!
    i=0
    while [ "$i" -lt 100 ] && [ "$(grep -c 'cmdline=reboot' "$out")" -lt 3 ]; do
        sleep 0.1; i=$((i + 1))
    done
    kill "$pid"; wait "$pid"
    [ "$(grep -c 'cmdline=reboot' "$out")" -ge 3 ] || { echo "not ok - no restarts"; exit 1; }
    expect "$err" "guest rebooted, restarting" ;;
poweroff)
    run 0 "$rv" run --kernel "$dir/mb_hello.elf" --cmdline poweroff
    expect "$out" "cmdline=poweroff" ;;
bad-kernel-file)
    run 2 "$rv" run --kernel /nonexistent/vmlinuz
    expect "$err" "revirter: --kernel: /nonexistent/vmlinuz: No such file or directory" ;;
bad-kernel-image)
    printf 'this is not a kernel at all, just some text\n%.0s' 1 2 3 4 5 6 7 8 > "$out.k"
    run 2 "$rv" run --kernel "$out.k"
    rm -f "$out.k"
    expect "$err" "revirter: --kernel .*: " ;;
truncated-kernel)
    head -c 100 "$dir/mb_hello.elf" > "$out.k"
    run 2 "$rv" run --kernel "$out.k"
    rm -f "$out.k"
    expect "$err" "revirter: --kernel" ;;
directory-kernel)
    run 2 "$rv" run --kernel "$dir"
    expect "$err" "not a regular file" ;;
bad-flag)
    run 2 "$rv" run --kernel "$dir/mb_hello.elf" --cpus 0
    expect "$err" "revirter: --cpus: '0' is not a number from 1 to 254" ;;
bad-backend)
    run 1 "$rv" run --kernel "$dir/mb_hello.elf" --hav nosuch
    expect "$err" "no HAV backend named 'nosuch'" ;;
help)
    run 0 "$rv" --help
    expect "$out" "usage: revirter run --kernel FILE" ;;
*)
    echo "not ok - unknown case $case"; exit 2 ;;
esac
echo "ok - $case"
