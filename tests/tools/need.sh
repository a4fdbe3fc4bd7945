# SPDX-License-Identifier: MIT
# Sourced by the lab and image scripts (which define die and say first).
# install_pkg PACKAGE WHY: install Debian's PACKAGE as root (apt-get update if needed).
install_pkg() {
    [ "$(id -u)" = 0 ] || die "$2; install Debian package '$1' (needs root)"
    say "installing $1"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null ||
            die "apt-get install -y $1 failed"
    fi
}

# need CMD PACKAGE: install Debian's PACKAGE when CMD is missing.
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    install_pkg "$2" "'$1' is missing"
    command -v "$1" >/dev/null 2>&1 || die "'$1' still missing after installing $2"
}
