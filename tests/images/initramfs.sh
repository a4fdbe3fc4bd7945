#!/bin/sh
# SPDX-License-Identifier: MIT
# Build a gzip'ed newc initramfs: static busybox, kernel modules with their dependencies, an init.
#
# usage: initramfs.sh --out FILE [--cache CACHE] [--modules "m1 m2,m3"]... [--init FILE]
#                     [--add SRC:DST]... [--bin PROG]... [--list]
#   --out FILE       the .cpio.gz to write (rebuilt only when an input changed: FILE.inputs
#                    holds a checksum of all inputs)
#   --cache CACHE    kernel cache made by kernel.sh (needed when --modules is given)
#   --modules LIST   modules to load at boot (names as in lsmod, '-' and '_' alike). Their
#                    dependencies come from CACHE's modules.dep, recursively, plus soft
#                    dependencies (modules.softdep, resolved through modules.alias). Built-in
#                    modules are skipped with a note; an unknown name is an error.
#                    Compressed modules (.ko.xz/.ko.zst/.ko.gz) are stored decompressed.
#   --init FILE      the guest's init (script or static binary). Default: mount /proc /sys
#                    /dev, print "revirt-guest: Linux <uname -r> cpus=<online cpus>" on the
#                    console and on ttyS1 (COM2, where there is one), poweroff -f.
#   --add SRC:DST    copy file or directory SRC to DST inside the image (repeatable)
#   --bin PROG       copy the host program PROG (a path, or a name looked up in PATH) into the
#                    image at the same path, with every library ldd reports and the dynamic
#                    loader, also at their paths (repeatable); for fio, iperf3, socat in a guest
#   --list           only print the resolved module load order (paths relative to
#                    lib/modules/<version>, "soft" after soft dependencies) and exit
# Layout of the image: /init loads the modules listed in /lib/modules/load-order with insmod
# (a failure is reported but not fatal; soft dependencies fail silently) and then execs
# /init.guest (your init) as PID 1, with the kernel's arguments and environment. Busybox applets
# are symlinked under /bin /sbin /usr/bin /usr/sbin.
# Environment: BUSYBOX  path of a static busybox (default: the one from busybox-static).
set -eu

me=initramfs.sh
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "$me: error: $*" >&2; exit 1; }
say() { echo "$me: $*" >&2; }
usage() { sed -n '/^# usage:/,/^# Environment:/s/^# \{0,1\}//p' "$here/$me" >&2; exit 1; }

. "$here/../tools/need.sh"
. "$here/bin.sh"

# resolve MODDIR "NAMES": module paths relative to MODDIR, in load order (dependencies first).
resolve() {
    mdir=$1
    [ -f "$mdir/modules.dep" ] || die "$mdir/modules.dep missing (run kernel.sh on the cache)"
    soft=/dev/null alias=/dev/null builtin=/dev/null
    [ -f "$mdir/modules.softdep" ] && soft=$mdir/modules.softdep
    [ -f "$mdir/modules.alias" ] && alias=$mdir/modules.alias
    [ -f "$mdir/modules.builtin" ] && builtin=$mdir/modules.builtin
    awk -v want="$2" -v me="$me" '
        function norm(s) { gsub(/-/, "_", s); return s }
        function base(p,   n, a, s) {
            n = split(p, a, "/"); s = a[n]; sub(/\.ko(\.[a-z0-9]+)?$/, "", s); return norm(s)
        }
        # softdep targets are module names or aliases (e.g. crypto-crc32c)
        function softvisit(list,   n, t, i, j, k, m, a) {
            n = split(list, t, " ")
            for (i = 1; i <= n; i++) {
                m = norm(t[i])
                if (m in path) { visit(m, 1); continue }
                if (t[i] in alias_of) {
                    j = split(alias_of[t[i]], a, " ")
                    for (k = 1; k <= j; k++) if (a[k] in path) visit(a[k], 1)
                }
            }
        }
        function visit(m, soft,   n, d, i) {
            if (state[m] == 2) return
            if (state[m] == 1) { print me ": warning: dependency cycle at " m > "/dev/stderr"; return }
            state[m] = 1
            softvisit(pre[m])
            n = split(deps[m], d, " ")
            for (i = n; i >= 1; i--) visit(base(d[i]), 0)
            state[m] = 2
            print path[m] (soft ? " soft" : "")
            softvisit(post[m])
        }
        phase == "dep" {
            p = $1; sub(/:$/, "", p); m = base(p); path[m] = p
            deps[m] = ""; for (i = 2; i <= NF; i++) deps[m] = deps[m] " " $i
            next
        }
        phase == "builtin" { builtin[base($1)] = 1; next }
        phase == "soft" && $1 == "softdep" {
            m = norm($2); which = ""
            for (i = 3; i <= NF; i++) {
                if ($i == "pre:" || $i == "post:") { which = $i; continue }
                if (which == "pre:") pre[m] = pre[m] " " $i
                else if (which == "post:") post[m] = post[m] " " $i
            }
            next
        }
        phase == "alias" && $1 == "alias" && $2 !~ /[*?[]/ {
            alias_of[$2] = alias_of[$2] " " norm($3); next
        }
        END {
            n = split(want, w, /[ ,\t\n]+/)
            for (i = 1; i <= n; i++) {
                if (w[i] == "") continue
                m = norm(w[i]); sub(/\.ko.*$/, "", m)
                if (m in path) visit(m, 0)
                else if (m in builtin) print me ": note: " w[i] " is built into the kernel" > "/dev/stderr"
                else { print me ": error: no module named " w[i] " in modules.dep" > "/dev/stderr"; bad = 1 }
            }
            exit bad
        }' phase=dep "$mdir/modules.dep" phase=builtin "$builtin" phase=soft "$soft" \
           phase=alias "$alias" || die "cannot resolve modules: $2"
}

# Default /init.guest: the guest banner the lab and benchmarks look for.
default_init() {
    cat <<'EOF'
#!/bin/sh
# Default guest init (initramfs.sh): mount, print the revirt-guest banner, power off.
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
n=0
IFS=,
for r in $(cat /sys/devices/system/cpu/online 2>/dev/null); do
    case $r in
        *-*) n=$((n + ${r#*-} - ${r%-*} + 1)) ;;
        ?*) n=$((n + 1)) ;;
    esac
done
unset IFS
# Also on ttyS1 where the VMM has a COM2 (revirter --serial2, QEMU's second -serial): a
# channel the kernel's printk does not write to, for tests to read. tee's close of the port
# waits until the line is out, before the power-off.
echo "revirt-guest: Linux $(uname -r) cpus=$n" | tee /dev/ttyS1 2>/dev/null
poweroff -f
EOF
}

# The /init every image gets: load modules, then hand PID 1 to /init.guest.
loader_init() {
    cat <<'EOF'
#!/bin/sh
# initramfs.sh loader: insmod /lib/modules/load-order in order, then exec /init.guest as PID 1.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
if [ -f /lib/modules/load-order ]; then
    while read -r m soft; do
        if [ -n "$soft" ]; then
            insmod "$m" 2>/dev/null || true     # a soft dependency: may not fit this CPU
        else
            insmod "$m" || echo "initramfs: insmod $m failed" >&2
        fi
    done < /lib/modules/load-order
fi
exec /init.guest "$@"
EOF
}

main() {
    out='' cache='' mods='' init='' adds='' bins='' list=0
    while [ $# -gt 0 ]; do
        case $1 in
            --out|--cache|--modules|--init|--add|--bin) [ $# -ge 2 ] || die "$1 needs a value" ;;
        esac
        case $1 in
            --out) out=$2; shift 2 ;;
            --cache) cache=$2; shift 2 ;;
            --modules) mods="$mods $2"; shift 2 ;;
            --init) init=$2; shift 2 ;;
            --add) case $2 in *:/*) ;; *) die "--add wants SRC:/ABSOLUTE/DST, got '$2'" ;; esac
                   adds="$adds
$2"; shift 2 ;;
            --bin) case $2 in *[[:space:]]*) die "--bin '$2': blanks are not supported" ;; esac
                   bins="$bins $2"; shift 2 ;;
            --list) list=1; shift ;;
            -h|--help) usage ;;
            *) echo "$me: unknown argument '$1'" >&2; usage ;;
        esac
    done
    mods=$(printf '%s' "$mods" | tr ',\t\n' '   ' | tr -s ' ' | sed 's/^ //; s/ $//')
    [ -n "$out" ] || [ "$list" = 1 ] || die "--out FILE is required"
    [ -z "$init" ] || [ -f "$init" ] || die "init file '$init' not found"

    ver='' mdir='' order=''
    if [ -n "$mods" ]; then
        [ -n "$cache" ] || die "--modules needs --cache CACHE (a kernel cache made by kernel.sh)"
        if [ -s "$cache/version" ]; then
            ver=$(cat "$cache/version")
        else
            set -- "$cache"/root/lib/modules/*/
            [ $# -eq 1 ] && [ -d "$1" ] || die "not exactly one kernel in $cache/root/lib/modules"
            ver=$(basename "$1")
        fi
        mdir=$cache/root/lib/modules/$ver
        [ -d "$mdir" ] || die "$mdir missing (run kernel.sh $cache)"
        order=$(resolve "$mdir" "$mods")
    fi
    if [ "$list" = 1 ]; then
        [ -z "$order" ] || printf '%s\n' "$order"
        return 0
    fi

    need cpio cpio; need gzip gzip; need sha256sum coreutils
    printf '%s\n' "$adds" | while IFS= read -r a; do
        [ -z "$a" ] || [ -e "${a%%:/*}" ] || die "--add source '${a%%:/*}' not found"
    done
    bb=$(static_busybox)
    for b in $bins; do bin_files "$b" > /dev/null || exit 1; done

    # Checksum of every input: skip the build when nothing changed.
    key=$( {
        cat "$here/$me" "$bb"
        echo "ver=$ver deb=$(cat "$cache/root/.deb" 2>/dev/null || true)"
        printf '%s\n' "$order"
        if [ -n "$init" ]; then cat "$init"; else echo default-init; fi
        printf '%s\n' "$adds" | while IFS= read -r a; do
            [ -n "$a" ] || continue
            src=${a%%:/*}
            echo "add $a"
            find "$src" -type f -print0 | LC_ALL=C sort -z | xargs -0r cat
        done
        # shellcheck disable=SC2086
        bin_key $bins
    } | sha256sum | cut -d' ' -f1)
    if [ -s "$out" ] && [ "$(cat "$out.inputs" 2>/dev/null)" = "$key" ]; then
        say "$out is up to date"
        return 0
    fi

    r=$(mktemp -d "${TMPDIR:-/tmp}/initramfs.XXXXXX")
    trap 'rm -rf "$r"' EXIT
    mkdir -p "$r/bin" "$r/sbin" "$r/usr/bin" "$r/usr/sbin" "$r/dev" "$r/proc" "$r/sys" \
        "$r/tmp" "$r/run" "$r/root" "$r/etc" "$r/mnt" "$r/lib/modules"
    cp "$bb" "$r/bin/busybox"
    applets=$("$bb" --list-full 2>/dev/null) || applets=$("$bb" --list | sed 's|^|bin/|')
    for a in $applets; do
        [ "$a" = bin/busybox ] || [ -e "$r/$a" ] || ln -s /bin/busybox "$r/$a" 2>/dev/null || true
    done
    [ -e "$r/bin/sh" ] || ln -s /bin/busybox "$r/bin/sh"
    if [ "$(id -u)" = 0 ]; then
        mknod -m 600 "$r/dev/console" c 5 1; mknod -m 666 "$r/dev/null" c 1 3
    fi

    if [ -n "$order" ]; then
        printf '%s\n' "$order" | while read -r m soft; do
            dst=$r/lib/modules/$ver/${m%.ko*}.ko
            mkdir -p "$(dirname "$dst")"
            case $m in
                *.ko) cp "$mdir/$m" "$dst" ;;
                *.ko.xz) need xz xz-utils; xz -dc "$mdir/$m" > "$dst" ;;
                *.ko.zst) need zstd zstd; zstd -dcq "$mdir/$m" > "$dst" ;;
                *.ko.gz) gzip -dc "$mdir/$m" > "$dst" ;;
                *) die "unknown module file type: $m" ;;
            esac || die "cannot copy module $m"
            echo "/lib/modules/$ver/${m%.ko*}.ko${soft:+ $soft}" >> "$r/lib/modules/load-order"
        done
    fi

    loader_init > "$r/init"
    if [ -n "$init" ]; then cp "$init" "$r/init.guest"; else default_init > "$r/init.guest"; fi
    chmod 755 "$r/init" "$r/init.guest"

    printf '%s\n' "$adds" | while IFS= read -r a; do
        [ -n "$a" ] || continue
        src=${a%%:/*} dst=$r/${a#*:/}
        case $dst in */) mkdir -p "$dst" ;; *) mkdir -p "$(dirname "$dst")" ;; esac
        cp -RL "$src" "$dst" || die "--add $a: copy failed"
    done
    for b in $bins; do bin_copy "$r" "$b"; done

    mkdir -p "$(dirname "$out")"
    (cd "$r" && find . -mindepth 1 | LC_ALL=C sort |
        cpio -o -H newc -R 0:0 --quiet | gzip -6 -n) > "$out.tmp.$$" ||
        { rm -f "$out.tmp.$$"; die "cpio/gzip failed"; }
    mv "$out.tmp.$$" "$out"
    echo "$key" > "$out.inputs"
    n=$(printf '%s\n' "$order" | grep -c . || true)
    say "wrote $out ($(wc -c < "$out") bytes, $n modules${ver:+ from $ver})"
}

main "$@"
