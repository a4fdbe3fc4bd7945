#!/bin/sh
# make test: every suite (normal and ASan/UBSan builds), fuzzing, style and rule checks, and the
# nested lab; ends with one line "N passed, N failed, N skipped" and fails if anything failed.
# QUICK=1 (make check) leaves out the sanitized build and the lab.
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

meson_suites() { # build-dir label extra-setup-args...
    dir=$1 label=$2; shift 2
    if [ ! -e "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >/dev/null || { failed=$((failed + 1)); failures="$failures $label-setup"; return; }
    fi
    if ! ninja -C "$dir" >"$dir/ninja.log" 2>&1; then
        cat "$dir/ninja.log"; failed=$((failed + 1)); failures="$failures $label-build"; return
    fi
    echo "== $label: meson test"
    meson test -C "$dir" --print-errorlogs $MESON_TEST_ARGS | grep -vE '^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout): ' || true
    count_meson "$dir" "$label"
}

MESON_TEST_ARGS=""
meson_suites build build
step rules tests/tools/check-rules.sh
step format tests/tools/check-format.sh
if [ "${QUICK:-0}" != 1 ]; then
    # Guests and the bench smoke are the same code in both builds; the sanitized build runs the
    # host-side code that parses or touches untrusted data: unit, HAV and fuzz suites.
    MESON_TEST_ARGS="--suite unit --suite hav --suite fuzz"
    meson_suites build-san asan-ubsan -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debug
    MESON_TEST_ARGS=""
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
