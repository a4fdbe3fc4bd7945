#!/bin/sh
# make test: every suite (normal and ASan/UBSan builds), fuzzing, style and rule checks, and the
# nested lab; ends with one line "N passed, N failed, N skipped" and fails if anything failed.
# QUICK=1 (make check) leaves out the sanitized build and the Linux boots in the lab.
# REVIRT_HOST_KVM=none runs the KVM suites in the lab even where the host has a usable KVM.
set -u
cd "$(dirname "$0")/../.."
passed=0 failed=0 skipped=0
failures=""

# Count the results meson recorded for one `meson test` run.
count_meson() { # build-dir label
    log=$1/meson-logs/testlog.json
    [ -s "$log" ] || { failed=$((failed + 1)); failures="$failures $2(no-log)"; return; }
    set -- $(python3 - "$log" "$2" <<'PY'
import json, sys
p = f = s = 0
names = []
for line in open(sys.argv[1]):
    t = json.loads(line)
    r = t.get("result")
    # A TAP case that skipped ("ok N - name # SKIP why") shows in the count, and its reason
    # in the output above, even though its test passed.
    for line in (t.get("stdout") or "").splitlines():
        if line.startswith("ok ") and " # SKIP" in line:
            s += 1
            print("skipped: " + sys.argv[2] + ":" + t["name"] + ": " + line, file=sys.stderr)
    if r in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r == "SKIP":
        s += 1
    else:
        f += 1
        names.append(sys.argv[2] + ":" + t["name"])
print(p, f, s, *names)
PY
)
    passed=$((passed + $1)); failed=$((failed + $2)); skipped=$((skipped + $3))
    shift 3
    failures="$failures $*"
}

step() { # name command...
    name=$1; shift
    echo "== $name"
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures="$failures $name"; fi
}

# Build dir, label, setup args; 1 when it could not be built (counted as a failure).
build_tree() { # build-dir label extra-setup-args...
    dir=$1 label=$2; shift 2
    if [ ! -e "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >/dev/null || { failed=$((failed + 1)); failures="$failures $label-setup"; return 1; }
    fi
    if ! ninja -C "$dir" >"$dir/ninja.log" 2>&1; then
        cat "$dir/ninja.log"; failed=$((failed + 1)); failures="$failures $label-build"; return 1
    fi
}

meson_suites() { # build-dir label meson-test-args...
    dir=$1 label=$2; shift 2
    echo "== $label: meson test $*"
    meson test -C "$dir" --print-errorlogs "$@" | grep -vE '^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout): ' || true
    count_meson "$dir" "$label"
}

# Suites that run tiny guests on a KVM. Where the host has none that works (or
# REVIRT_HOST_KVM=none), they run in one L1 boot of the nested lab, whose /dev/kvm is KVM on
# emulated SVM, and count exactly as host runs do. Every other suite runs on the host.
KVM_SUITES="hav revirter bench"
kvm=$(tests/tools/host-kvm.sh) || exit 2
echo "== host KVM: $kvm"
on_host() { # suite... -> meson test args for what runs on the host
    for s in "$@"; do
        case " $KVM_SUITES " in *" $s "*) [ "${kvm%%:*}" = none ] && continue ;; esac
        printf ' --suite %s' "$s"
    done
}
in_lab='' # BUILD:SUITE,... for tests/tools/kvm-suites-in-lab.sh
lab_for() { # build-dir suite...
    d=$1 l=''; shift
    [ "${kvm%%:*}" = none ] || return 0
    for s in "$@"; do case " $KVM_SUITES " in *" $s "*) l="$l${l:+,}$s" ;; esac; done
    [ -z "$l" ] || in_lab="$in_lab $d:$l"
}

ALL_SUITES="unit hav revirter revirter-input fuzz bench"
if build_tree build build; then
    # shellcheck disable=SC2046
    meson_suites build build $(on_host $ALL_SUITES)
    lab_for build $ALL_SUITES
fi
step rules tests/tools/check-rules.sh
step format tests/tools/check-format.sh
if [ "${QUICK:-0}" != 1 ]; then
    # Guests and the bench smoke are the same code in both builds; the sanitized build runs the
    # host-side code that parses or touches untrusted data: unit, HAV and fuzz suites.
    if build_tree build-san asan-ubsan -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debug; then
        # shellcheck disable=SC2046
        meson_suites build-san asan-ubsan $(on_host unit hav fuzz)
        lab_for build-san unit hav fuzz
    fi
fi
if [ -n "$in_lab" ]; then
    echo "== KVM suites in the nested lab (${kvm#*: }):$in_lab"
    # shellcheck disable=SC2086
    tests/tools/kvm-suites-in-lab.sh $in_lab > build/kvm-suites-lab.log 2>&1
    klab_rc=$?
    if [ "$klab_rc" -ge 124 ]; then
        # L1 itself failed (TCG's SVM emulation stalls now and then, whatever runs in it) and
        # left no verdict: the suites run once more, from the start, in a new L1.
        echo "== the lab failed (status $klab_rc) before the suites ended: once more in a new L1"
        tail -20 build/kvm-suites-lab.log
        mv build/kvm-suites-lab.log build/kvm-suites-lab.1.log
        # shellcheck disable=SC2086
        tests/tools/kvm-suites-in-lab.sh $in_lab > build/kvm-suites-lab.log 2>&1
        klab_rc=$?
    fi
    grep -E '^ *[0-9]+/[0-9]+ |^== in L1|^lab: ' build/kvm-suites-lab.log
    for spec in $in_lab; do
        d=${spec%%:*}
        case $d in build) label=build-l1 ;; *) label=asan-ubsan-l1 ;; esac
        count_meson "$d" "$label"
    done
    if [ "$klab_rc" -gt 1 ]; then
        failed=$((failed + 1)); failures="$failures kvm-suites-lab(status $klab_rc)"
        tail -40 build/kvm-suites-lab.log
    fi
fi
if [ "${QUICK:-0}" != 1 ]; then
    # Real Linux guests need a KVM that runs guest kernels at speed: the nested lab provides
    # one on any x86 machine (QEMU TCG with SVM), so this never skips.
    echo "== lab: Debian's kernel under revirter in the nested SVM lab"
    tests/lab/run-tests.sh build > build/lab-tests.log 2>&1
    lab_rc=$?
    grep -E '^(ok|not ok) - lab-|^lab: |^# ' build/lab-tests.log
    lp=$(grep -c '^ok - lab-' build/lab-tests.log)
    lf=$(grep -c '^not ok - lab-' build/lab-tests.log)
    passed=$((passed + lp)); failed=$((failed + lf))
    if [ "$lab_rc" != 0 ] && [ "$lf" = 0 ]; then
        failed=$((failed + 1)); failures="$failures lab(setup)"
        tail -40 build/lab-tests.log
    fi
    [ "$lf" = 0 ] || { failures="$failures lab"; tail -80 build/lab-tests.log; }
fi
[ "$failed" -gt 0 ] && echo "failed:$failures"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
