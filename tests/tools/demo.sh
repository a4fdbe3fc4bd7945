#!/bin/sh
# make demo: runs the main job on this machine. Until revirter boots Linux (next milestone), it
# runs tiny guests through the HAV API and reports the exit-loop cost.
set -eu
build=${1:-build}
cd "$(dirname "$0")/../.."
export GUEST_DIR="$build/tests/guests"
echo "demo: tiny guests through the HAV API on backend ${REVIRT_HAV:-auto}"
for t in pio hypercall smp-kick; do
    "$build/tests/guests/hav_tests" "$t" | grep -E '^(ok|not ok)'
done
"$build/bench/exitloop" --iterations 20000 --runs 3
