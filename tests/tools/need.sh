# SPDX-License-Identifier: MIT
# Sourced by the lab and image scripts (which define die and say first).
# need CMD PACKAGE: install Debian's PACKAGE when CMD is missing (apt-get update if needed).
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    [ "$(id -u)" = 0 ] || die "'$1' is missing; install Debian package '$2' (needs root)"
    say "installing $2 (for $1)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null ||
            die "apt-get install -y $2 failed"
    fi
    command -v "$1" >/dev/null 2>&1 || die "'$1' still missing after installing $2"
}
