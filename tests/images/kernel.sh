#!/bin/sh
# SPDX-License-Identifier: MIT
# Fetch Debian's stock amd64 kernel into a cache (never installed) and extract its vmlinux ELF.
#
# usage: kernel.sh CACHE
#   Downloads the package that linux-image-amd64 depends on (apt-get download; apt-get update
#   first if apt knows no such package) and unpacks it with dpkg-deb -x. Produces:
#     CACHE/vmlinuz              the bzImage (relative symlink into CACHE/root/boot)
#     CACHE/vmlinux              the uncompressed ELF kernel taken from the bzImage payload
#     CACHE/root/lib/modules/V/  the kernel's modules, modules.builtin, ... and modules.dep +
#                                modules.softdep, which the package lacks (its postinst runs
#                                depmod): made by `depmod -b`, or read from each module's
#                                .modinfo when kmod is absent and cannot be installed
#     CACHE/version              V, the kernel release (uname -r)
#   Checks that vmlinux carries the PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY, type 18) and prints
#   the entry address. A complete cache is reused as is; delete CACHE to fetch a newer kernel.
# Environment: KERNEL_PKG  package to fetch instead of linux-image-amd64's dependency;
#              KERNEL_NO_DEPMOD=1  always use the built-in modules.dep generator.
# Exit status: 0 ok, 1 failure (message on stderr).
set -eu

me=kernel.sh
die() { echo "$me: error: $*" >&2; exit 1; }
say() { echo "$me: $*" >&2; }

. "$(cd "$(dirname "$0")" && pwd)/../tools/need.sh"

# le_u VMLINUZ OFFSET NBYTES: little-endian unsigned integer read from a file.
le_u() {
    od -An -v -tu1 -j "$2" -N "$3" "$1" |
        awk '{ for (i = 1; i <= NF; i++) b[n++] = $i }
             END { v = 0; for (i = n - 1; i >= 0; i--) v = v * 256 + b[i]; printf "%d\n", v }'
}

# hexbytes FILE OFFSET N: "aa bb cc" of N bytes.
hexbytes() { od -An -v -tx1 -j "$2" -N "$3" "$1" | tr -s ' \n' '  ' | sed 's/^ //; s/ $//'; }

# decompressor MAGIC-HEX: "tool package" that decompresses a payload with that magic, or nothing.
decompressor() {
    case $1 in
        "1f 8b 08"*|"1f 9e"*)          echo "gzip gzip" ;;
        "fd 37 7a 58 5a 00"*)          echo "xz xz-utils" ;;
        "28 b5 2f fd"*)                echo "zstd zstd" ;;
        "02 21 4c 18"*)                echo "lz4 lz4" ;;
        "42 5a 68"*)                   echo "bzip2 bzip2" ;;
        "89 4c 5a 4f 00 0d 0a 1a 0a"*) echo "lzop lzop" ;;
        "5d 00 00"*)                   echo "lzma xz-utils" ;;
    esac
}

# unpack TOOL: stdin (compressed) -> stdout; trailing bytes after the stream are tolerated.
unpack() {
    case $1 in
        gzip) gzip -dc 2>/dev/null || [ $? -eq 2 ] ;;   # 2 = warning (trailing garbage)
        xz) xz -dc --single-stream ;;
        lzma) xz -dc --format=lzma 2>/dev/null || true ;;
        zstd) zstd -dcq ;;
        lz4) lz4 -dc 2>/dev/null || true ;;
        bzip2) bzip2 -dcq ;;
        lzop) lzop -dc ;;
    esac
}

# is_elf FILE: a complete 64-bit ELF (its section header table, stored last, is all there).
is_elf() {
    [ -s "$1" ] && [ "$(hexbytes "$1" 0 5)" = "7f 45 4c 46 02" ] || return 1
    [ "$(wc -c < "$1")" -ge $(( $(le_u "$1" 40 8) + $(le_u "$1" 58 2) * $(le_u "$1" 60 2) )) ]
}

# extract_vmlinux BZIMAGE OUT: the x86 boot protocol (>= 2.08) gives the compressed payload's
# offset and length in the setup header; the payload ends with its uncompressed size (le32).
# Without a usable header, scan for compression magics as scripts/extract-vmlinux does.
extract_vmlinux() {
    bz=$1 out=$2 tmp=$2.tmp.$$
    rm -f "$tmp" "$tmp.z"
    if [ "$(hexbytes "$bz" 514 4)" = "48 64 72 53" ] && [ "$(le_u "$bz" 518 2)" -ge 520 ]; then
        setup_sects=$(le_u "$bz" 497 1); [ "$setup_sects" -ne 0 ] || setup_sects=4
        poff=$(( (setup_sects + 1) * 512 + $(le_u "$bz" 584 4) ))
        plen=$(le_u "$bz" 588 4)
        # shellcheck disable=SC2046 # "tool package" becomes $1 $2
        set -- $(decompressor "$(hexbytes "$bz" "$poff" 9)")
        if [ $# -eq 2 ] && [ "$plen" -gt 4 ]; then
            need "$1" "$2"
            dd if="$bz" of="$tmp.z" bs=65536 iflag=skip_bytes,count_bytes skip="$poff" \
                count=$((plen - 4)) status=none
            want=$(le_u "$bz" $((poff + plen - 4)) 4)
            unpack "$1" < "$tmp.z" > "$tmp" || true
            rm -f "$tmp.z"
            got=$(wc -c < "$tmp")
            if is_elf "$tmp" && [ "$got" -eq "$want" ]; then
                mv "$tmp" "$out"; say "vmlinux: $1 payload at offset $poff, $got bytes"
                return 0
            fi
        fi
        say "setup header did not lead to an ELF payload; scanning for compression magics"
    fi
    # Fallback: try every magic occurrence (the first that yields an ELF wins).
    for m in '\037\213\010' '\3757zXZ\000' '\050\265\057\375' '\002\041\114\030' 'BZh' \
             '\211\114\132' ']\000\000\000'; do
        # shellcheck disable=SC2059 # $m holds octal escapes
        pat=$(printf "$m")
        for off in $(LC_ALL=C grep -aboF "$pat" "$bz" 2>/dev/null | cut -d: -f1 | head -n 20); do
            # shellcheck disable=SC2046
            set -- $(decompressor "$(hexbytes "$bz" "$off" 9)")
            [ $# -eq 2 ] || continue
            need "$1" "$2"
            tail -c +"$((off + 1))" "$bz" | unpack "$1" > "$tmp" 2>/dev/null || true
            if is_elf "$tmp"; then
                mv "$tmp" "$out"; say "vmlinux: $1 stream found at offset $off by scanning"
                return 0
            fi
        done
    done
    rm -f "$tmp"
    die "no compressed ELF kernel found in $bz"
}

# pvh_entry VMLINUX: prints the PVH 32-bit entry address from the Xen note of type 18, or fails.
pvh_entry() {
    need readelf binutils
    readelf -nW "$1" | awk '
        $1 == "Xen" && ($3 == "NT_XEN_ELFNOTE_PHYS32_ENTRY" || $0 ~ /\(0x0*12\)/) { hit = 1 }
        hit && /description data:/ {
            sub(/.*description data: */, ""); n = split($0, b, " ")
            v = ""; for (i = (n > 4 ? 4 : n); i >= 1; i--) v = v b[i]
            print "0x" v; exit 0
        }
        hit && /PHYS32_ENTRY.*0x/ { match($0, /0x[0-9a-fA-F]+/); print substr($0, RSTART, RLENGTH); exit 0 }
        END { if (!hit) exit 1 }'
}

# modules_dep ROOT VER: write ROOT/lib/modules/VER/modules.dep (+ modules.softdep).
modules_dep() {
    root=$1 ver=$2 mdir=$1/lib/modules/$2
    if [ "${KERNEL_NO_DEPMOD:-0}" != 1 ]; then
        if ! command -v depmod >/dev/null 2>&1 && [ -x /sbin/depmod ]; then
            PATH=$PATH:/sbin:/usr/sbin
        fi
        command -v depmod >/dev/null 2>&1 || [ "$(id -u)" != 0 ] || need depmod kmod
        if command -v depmod >/dev/null 2>&1; then
            depmod -b "$root" "$ver" || die "depmod -b $root $ver failed"
            return 0
        fi
        say "no depmod (kmod) and not root: generating modules.dep from .modinfo (slow)"
    fi
    # .modinfo holds NUL-separated key=value strings; depends= lists module names.
    (cd "$mdir" && find kernel -name '*.ko' -o -name '*.ko.*' | LC_ALL=C sort |
        while read -r f; do
            printf '@@ %s\n' "$f"
            case $f in
                *.ko.xz) xz -dc "$f" ;; *.ko.zst) zstd -dcq "$f" ;; *.ko.gz) gzip -dc "$f" ;;
                *) cat "$f" ;;
            esac | tr '\0' '\n' | LC_ALL=C grep -a -e '^depends=' -e '^softdep=' || true
        done) | awk -v dep="$mdir/modules.dep.tmp" -v soft="$mdir/modules.softdep.tmp" '
        function norm(s) { gsub(/-/, "_", s); return s }
        $1 == "@@" { path = $2; n = split(path, p, "/"); nm = p[n]; sub(/\.ko.*$/, "", nm)
                     nm = norm(nm); order[++cnt] = nm; file[nm] = path; next }
        /^depends=/ { dl = substr($0, 9); if (dl != "") deps[nm] = dl; next }
        /^softdep=/ { print "softdep " nm " " substr($0, 9) > soft; next }
        END {
            for (i = 1; i <= cnt; i++) {
                nm = order[i]; line = file[nm] ":"
                k = split(deps[nm], d, ",")
                for (j = 1; j <= k; j++) if (norm(d[j]) in file) line = line " " file[norm(d[j])]
                print line > dep
            }
        }' || die "generating $mdir/modules.dep failed"
    touch "$mdir/modules.softdep.tmp"
    mv "$mdir/modules.dep.tmp" "$mdir/modules.dep"
    mv "$mdir/modules.softdep.tmp" "$mdir/modules.softdep"
}

fetch() {
    cache=$1 pkg=${KERNEL_PKG:-}
    need apt-get apt; need dpkg-deb dpkg
    if [ -z "$pkg" ]; then
        if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
            say "apt knows no linux-image-amd64; running apt-get update"
            apt-get update -qq >/dev/null || die "apt-get update failed"
        fi
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
            awk '$1 ~ /Depends:/ && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
        [ -n "$pkg" ] || die "cannot find the kernel package linux-image-amd64 depends on"
    fi
    dl=$(mktemp -d "$cache/.dl.XXXXXX")
    trap 'rm -rf "$dl"' EXIT
    chmod 755 "$dl"     # lets apt's _apt user write there (no "unsandboxed" warning)
    say "downloading $pkg"
    if ! (cd "$dl" && apt-get download -qq "$pkg" >/dev/null 2>&1); then
        say "download failed; running apt-get update and retrying"
        apt-get update -qq >/dev/null || { rm -rf "$dl"; die "apt-get update failed"; }
        (cd "$dl" && apt-get download -qq "$pkg" >/dev/null) ||
            { rm -rf "$dl"; die "apt-get download $pkg failed"; }
    fi
    set -- "$dl"/*.deb
    [ -f "$1" ] || { rm -rf "$dl"; die "apt-get download $pkg produced no .deb"; }
    dpkg-deb -x "$1" "$dl/root" || { rm -rf "$dl"; die "dpkg-deb -x $1 failed"; }
    basename "$1" > "$dl/root/.deb"
    rm -rf "$cache/root"
    mv "$dl/root" "$cache/root"
    rm -rf "$dl"
}

main() {
    [ $# -eq 1 ] && [ -n "$1" ] || { echo "usage: $me CACHE" >&2; exit 1; }
    cache=$1
    mkdir -p "$cache" || die "cannot create $cache"
    if [ -e "$cache/vmlinuz" ] && [ -s "$cache/vmlinux" ] && [ -s "$cache/version" ] &&
       [ -d "$cache/root/lib/modules/$(cat "$cache/version")" ]; then
        return 0
    fi
    [ -d "$cache/root/boot" ] || fetch "$cache"
    set -- "$cache"/root/boot/vmlinuz-*
    [ $# -eq 1 ] && [ -f "$1" ] || die "expected exactly one $cache/root/boot/vmlinuz-*, found: $*"
    ver=${1##*/vmlinuz-}
    [ -d "$cache/root/lib/modules/$ver/kernel" ] ||
        die "$cache/root/lib/modules/$ver/kernel missing (package without modules?)"
    if [ ! -s "$cache/root/lib/modules/$ver/modules.dep" ]; then
        modules_dep "$cache/root" "$ver"
    fi
    ln -sfn "root/boot/vmlinuz-$ver" "$cache/vmlinuz"
    extract_vmlinux "$cache/vmlinuz" "$cache/vmlinux"
    need readelf binutils
    if entry=$(pvh_entry "$cache/vmlinux"); then
        say "vmlinux has a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): entry $entry"
    else
        say "warning: vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); PVH boot impossible"
    fi
    echo "$ver" > "$cache/version"
    say "kernel $ver ready in $cache ($(cat "$cache/root/.deb" 2>/dev/null || echo local))"
}

main "$@"
