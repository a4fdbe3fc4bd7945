#!/bin/sh
# SPDX-License-Identifier: MIT
# What the host's KVM can do for the tests: prints one word and the reason on one line.
#   native  /dev/kvm runs guests in hardware (kvm_intel, kvm_amd, or nested KVM in the lab's L1)
#   pvm     /dev/kvm is kvm_pvm: guest ring 3 native, ring 0 emulated; tiny test guests only
#   none    no usable /dev/kvm: what needs a KVM runs inside the nested lab instead
# REVIRT_HOST_KVM=none forces "none", so that path can be tried on any machine.
set -u
say() { echo "$1: $2"; exit 0; }
case ${REVIRT_HOST_KVM:-auto} in
    none) say none "forced by REVIRT_HOST_KVM=none" ;;
    auto) ;;
    *) echo "host-kvm.sh: REVIRT_HOST_KVM must be 'none' or 'auto', not '$REVIRT_HOST_KVM'" >&2
       exit 2 ;;
esac
[ -e /dev/kvm ] || say none "no /dev/kvm on this machine"
# Usable means it opens read-write and answers KVM_GET_API_VERSION (_IO(0xAE, 0)) with 12.
why=$(python3 - <<'PY' 2>&1
import fcntl, os, sys
try:
    fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    v = fcntl.ioctl(fd, 0xAE00)
except OSError as e:
    sys.exit(f"/dev/kvm: {e.strerror}")
if v != 12:
    sys.exit(f"/dev/kvm: KVM API version {v}, need 12")
PY
) || say none "$why"
[ -d /sys/module/kvm_pvm ] &&
    say pvm "/dev/kvm is kvm_pvm (guest ring 0 emulated): tiny guests on the host, Linux in the lab"
for m in kvm_intel kvm_amd; do
    [ -d /sys/module/$m ] && say native "/dev/kvm is $m"
done
say native "/dev/kvm answers (no kvm_intel, kvm_amd or kvm_pvm module seen)"
