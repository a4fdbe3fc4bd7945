#!/bin/sh
# Architecture rules that the compiler cannot check: KVM stays inside src/hav/.
set -u
cd "$(dirname "$0")/../.."
bad=$(grep -rlE '#[[:space:]]*include[[:space:]]*[<"]linux/kvm\.h[>"]' --include='*.[ch]' . \
      | grep -v '^\./src/hav/' | grep -v '^\./build' || true)
if [ -n "$bad" ]; then
    echo "rules: <linux/kvm.h> included outside src/hav/:"
    echo "$bad"
    exit 1
fi
# The public header must not mention any KVM type either.
if grep -nE '\bkvm_[a-z_]+\b|KVM_' include/revirt/*.h; then
    echo "rules: KVM names in the public headers"
    exit 1
fi
echo "rules: ok"
