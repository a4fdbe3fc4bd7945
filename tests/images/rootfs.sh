#!/bin/sh
# SPDX-License-Identifier: MIT
# Build an ext4 disk image (a virtio-blk root disk) from a directory, without root privileges.
#
# usage: rootfs.sh --out IMG [--size SIZE] [--dir DIR] [--busybox] [--init FILE]
#                  [--add SRC:DST]... [--bin PROG]... [--label LABEL]
#   --out IMG      the raw ext4 image to write (rebuilt only when an input changed: IMG.inputs
#                  holds a checksum of all inputs); made with mke2fs -t ext4 -d TREE -F IMG SIZE
#   --size SIZE    image size as mke2fs takes it (default 64M)
#   --dir DIR      copy DIR's contents to the image's root
#   --busybox      a static busybox at /bin/busybox with its applets linked under /bin /sbin
#                  /usr/bin /usr/sbin, and the usual empty directories (/dev /proc /sys /tmp ...)
#   --init FILE    install FILE as /sbin/init (mode 755)
#   --add SRC:DST  copy file or directory SRC to DST inside the image (repeatable)
#   --bin PROG     a host program with its libraries and loader at the same paths (repeatable;
#                  as initramfs.sh --bin)
#   --label LABEL  file system label (default revirt-root)
# Files keep their modes; owners are those of the files in the staging tree (root when run as
# root; mke2fs -d maps them as they are). The image is sparse.
# Environment: BUSYBOX  path of a static busybox (default: the one from busybox-static).
set -eu

me=rootfs.sh
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "$me: error: $*" >&2; exit 1; }
say() { echo "$me: $*" >&2; }
usage() { sed -n '/^# usage:/,/^# Environment:/s/^# \{0,1\}//p' "$here/$me" >&2; exit 1; }

. "$here/../tools/need.sh"
. "$here/bin.sh"

main() {
    out='' size=64M dir='' busybox=0 init='' adds='' bins='' label=revirt-root
    while [ $# -gt 0 ]; do
        case $1 in
            --out|--size|--dir|--init|--add|--bin|--label) [ $# -ge 2 ] || die "$1 needs a value" ;;
        esac
        case $1 in
            --out) out=$2; shift 2 ;;
            --size) size=$2; shift 2 ;;
            --dir) dir=$2; shift 2 ;;
            --busybox) busybox=1; shift ;;
            --init) init=$2; shift 2 ;;
            --add) case $2 in *:/*) ;; *) die "--add wants SRC:/ABSOLUTE/DST, got '$2'" ;; esac
                   adds="$adds
$2"; shift 2 ;;
            --bin) case $2 in *[[:space:]]*) die "--bin '$2': blanks are not supported" ;; esac
                   bins="$bins $2"; shift 2 ;;
            --label) label=$2; shift 2 ;;
            -h|--help) usage ;;
            *) echo "$me: unknown argument '$1'" >&2; usage ;;
        esac
    done
    [ -n "$out" ] || die "--out IMG is required"
    [ -z "$dir" ] || [ -d "$dir" ] || die "--dir '$dir' is not a directory"
    [ -z "$init" ] || [ -f "$init" ] || die "init file '$init' not found"
    need mke2fs e2fsprogs; need sha256sum coreutils
    bb=''
    [ "$busybox" = 0 ] || bb=$(static_busybox)
    printf '%s\n' "$adds" | while IFS= read -r a; do
        [ -z "$a" ] || [ -e "${a%%:/*}" ] || die "--add source '${a%%:/*}' not found"
    done || exit 1
    for b in $bins; do bin_files "$b" > /dev/null || exit 1; done

    key=$( {
        cat "$here/$me" "$here/bin.sh"
        echo "size=$size label=$label busybox=$busybox mke2fs=$(mke2fs -V 2>&1 | head -n 1)"
        [ -z "$bb" ] || cat "$bb"
        [ -z "$init" ] || { echo init; cat "$init"; }
        if [ -n "$dir" ]; then
            echo "dir $dir"
            (cd "$dir" && find . -print0 | LC_ALL=C sort -z | xargs -0r ls -ld --time-style=+ &&
                find . -type f -print0 | LC_ALL=C sort -z | xargs -0r cat)
        fi
        printf '%s\n' "$adds" | while IFS= read -r a; do
            [ -n "$a" ] || continue
            echo "add $a"
            find "${a%%:/*}" -type f -print0 | LC_ALL=C sort -z | xargs -0r cat
        done
        # shellcheck disable=SC2086
        bin_key $bins
    } | sha256sum | cut -d' ' -f1)
    if [ -s "$out" ] && [ "$(cat "$out.inputs" 2>/dev/null)" = "$key" ]; then
        say "$out is up to date"
        return 0
    fi

    r=$(mktemp -d "${TMPDIR:-/tmp}/rootfs.XXXXXX")
    trap 'rm -rf "$r"' EXIT
    chmod 755 "$r"
    [ -z "$dir" ] || cp -a "$dir/." "$r/" || die "cannot copy $dir"
    if [ -n "$bb" ]; then
        mkdir -p "$r/bin" "$r/sbin" "$r/usr/bin" "$r/usr/sbin" "$r/dev" "$r/proc" "$r/sys" \
            "$r/tmp" "$r/run" "$r/root" "$r/etc" "$r/mnt"
        chmod 1777 "$r/tmp"
        cp "$bb" "$r/bin/busybox"
        applets=$("$bb" --list-full 2>/dev/null) || applets=$("$bb" --list | sed 's|^|bin/|')
        for a in $applets; do
            [ "$a" = bin/busybox ] || [ -e "$r/$a" ] || ln -s /bin/busybox "$r/$a" 2>/dev/null || true
        done
        [ -e "$r/bin/sh" ] || ln -s /bin/busybox "$r/bin/sh"
    fi
    if [ -n "$init" ]; then
        mkdir -p "$r/sbin"
        rm -f "$r/sbin/init"
        cp "$init" "$r/sbin/init" && chmod 755 "$r/sbin/init" || die "cannot install the init"
    fi
    printf '%s\n' "$adds" | while IFS= read -r a; do
        [ -n "$a" ] || continue
        src=${a%%:/*} dst=$r/${a#*:/}
        case $dst in */) mkdir -p "$dst" ;; *) mkdir -p "$(dirname "$dst")" ;; esac
        cp -RL "$src" "$dst" || die "--add $a: copy failed"
    done || exit 1
    for b in $bins; do bin_copy "$r" "$b"; done

    mkdir -p "$(dirname "$out")"
    : > "$out.tmp.$$"
    mke2fs -q -t ext4 -L "$label" -d "$r" -F "$out.tmp.$$" "$size" ||
        { rm -f "$out.tmp.$$"; die "mke2fs -t ext4 -d failed (is $size large enough?)"; }
    mv "$out.tmp.$$" "$out"
    echo "$key" > "$out.inputs"
    say "wrote $out ($size ext4, $(du -k "$out" | cut -f1) KiB allocated)"
}

main "$@"
