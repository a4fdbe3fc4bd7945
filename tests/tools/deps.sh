#!/bin/sh
# Installs the Debian packages Revirt needs to build and test (as root; nothing if all present).
set -eu
PKGS="meson ninja-build gcc binutils pkg-config python3 clang-format kmod
      qemu-system-x86 busybox-static cpio xz-utils zstd e2fsprogs acpica-tools
      liburing-dev libslirp-dev libglib2.0-dev iproute2 fio iperf3 socat"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
