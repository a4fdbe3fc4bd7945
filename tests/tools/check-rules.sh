#!/bin/sh
# Architecture rules the compiler cannot check: dependencies flow one way (public API ->
# backends -> core -> devices, PCI -> virtio -> board -> application), and KVM stays in src/hav/.
set -u
cd "$(dirname "$0")/../.."
fail=0
# allowed DIR PREFIX...: the project headers ("dir/file.h") files in src/DIR may include, besides
# their own directory's. <revirt/hav.h> counts as the prefix "hav".
allowed() {
    _d=$1; shift
    for _f in $(find "src/$_d" -name '*.[ch]' | sort); do
        # "x/y.h" includes name a layer; "y.h" ones are the directory's own files.
        for _inc in $(sed -nE 's@^[[:space:]]*#[[:space:]]*include[[:space:]]*"([a-z_]+)/.*@\1@p;
                               s@^[[:space:]]*#[[:space:]]*include[[:space:]]*<revirt/hav\.h>.*@hav@p' "$_f" |
                      sed "s/^revirt$/hav/" | sort -u); do
            case " $_d $* " in
                *" $_inc "*) ;;
                *) echo "rules: $_f includes from $_inc/ (src/$_d/ may use: $*)"; fail=1 ;;
            esac
        done
    done
}
allowed lib
allowed core lib
allowed sys lib core
allowed acpi lib
allowed boot lib core hav       # the loaders fill a struct hav_x86_state with the entry state
allowed dev lib core sys acpi
allowed pci lib core sys acpi
allowed virtio lib core sys pci
allowed hav lib
allowed board lib core sys acpi boot dev pci virtio hav
allowed revirter lib core sys board hav

bad=$(grep -rlE '#[[:space:]]*include[[:space:]]*[<"]linux/kvm\.h[>"]' --include='*.[ch]' . \
      | grep -v '^\./src/hav/' | grep -v '^\./build' || true)
if [ -n "$bad" ]; then
    echo "rules: <linux/kvm.h> included outside src/hav/:"
    echo "$bad"
    fail=1
fi
# The public header must not mention any KVM type either.
if grep -nE '\bkvm_[a-z_]+\b|KVM_' include/revirt/*.h; then
    echo "rules: KVM names in the public headers"
    fail=1
fi
[ "$fail" = 0 ] && echo "rules: ok"
exit "$fail"
