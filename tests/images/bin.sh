# SPDX-License-Identifier: MIT
# Sourced by initramfs.sh and rootfs.sh (which define die and say and source need.sh first):
# find a static busybox, and copy dynamically linked host programs into an image tree at the
# same paths, with every library ldd reports and the loader.
# Variables here start with _b so that they cannot clobber the caller's (sh has no locals).

# static_busybox: path of a statically linked busybox ($BUSYBOX, or busybox-static's,
# installed when missing).
static_busybox() {
    if [ -n "${BUSYBOX:-}" ]; then
        [ -x "$BUSYBOX" ] || die "BUSYBOX=$BUSYBOX is not executable"
        echo "$BUSYBOX"; return 0
    fi
    dpkg -s busybox-static >/dev/null 2>&1 || install_pkg busybox-static \
        "Debian package busybox-static is not installed (or set BUSYBOX)" >&2
    _bb=$(dpkg -L busybox-static | grep -m1 '/bin/busybox$') || die "busybox-static has no busybox?"
    [ -x "$_bb" ] || die "$_bb is not executable"
    echo "$_bb"
}

# bin_path PROG: absolute path of PROG (a path, or a name looked up in PATH).
bin_path() {
    case $1 in
        */*) _bp=$1 ;;
        *) _bp=$(command -v "$1" 2>/dev/null) || die "--bin $1: no such program in PATH" ;;
    esac
    [ -f "$_bp" ] && [ -x "$_bp" ] || die "--bin $1: '$_bp' is not an executable file"
    case $_bp in /*) ;; *) _bp=$(cd "$(dirname "$_bp")" && pwd)/$(basename "$_bp") ;; esac
    echo "$_bp"
}

# bin_files PROG: the program's path, then every library ldd reports and the dynamic loader,
# one absolute path a line. A static program is just itself; a missing library is an error.
bin_files() {
    _bp=$(bin_path "$1") || exit 1
    echo "$_bp"
    if ! _bo=$(LC_ALL=C ldd "$_bp" 2>&1); then
        case $_bo in
            *"not a dynamic executable"*|*"statically linked"*) return 0 ;;
            *) die "--bin $1: ldd $_bp failed: $_bo" ;;
        esac
    fi
    case $_bo in
        *"not found"*) die "--bin $1: ldd $_bp: $(echo "$_bo" | grep 'not found')" ;;
    esac
    printf '%s\n' "$_bo" | awk '
        $2 == "=>" && $3 ~ /^\// { print $3; next }     # libfoo.so.1 => /path (0x...)
        $1 ~ /^\// { print $1 }                         # /lib64/ld-linux-x86-64.so.2 (0x...)
    ' | LC_ALL=C sort -u
}

# bin_copy ROOT PROG: copy bin_files PROG under ROOT at the same paths (symlinks dereferenced,
# so a library lands under the name the program asks for; an existing busybox link is replaced).
bin_copy() {
    _bf=$(bin_files "$2") || exit 1
    for _b in $_bf; do      # paths without blanks (the host system's own layout)
        _bd=$1$_b
        mkdir -p "$(dirname "$_bd")" || die "--bin $2: cannot create $(dirname "$_bd")"
        [ ! -L "$_bd" ] || rm -f "$_bd"
        cp -L "$_b" "$_bd" || die "--bin $2: cannot copy $_b"
    done
}

# bin_key PROG...: text that changes when any program or library changes (for FILE.inputs).
bin_key() {
    for _bk in "$@"; do
        _bf=$(bin_files "$_bk") || exit 1
        echo "bin $_bk"
        for _b in $_bf; do echo "$_b $(sha256sum < "$_b" | cut -d' ' -f1)"; done
    done
}
