#!/bin/sh
# clang-format --dry-run --Werror over every tracked or new C file (the .clang-format at the root).
set -u
cd "$(dirname "$0")/../.."
files=$(git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null)
[ -n "$files" ] || files=$(find include src tests bench -name '*.[ch]')
# shellcheck disable=SC2086
if clang-format --dry-run --Werror $files; then
    echo "format: ok ($(echo "$files" | wc -w) files)"
else
    echo "format: run 'clang-format -i' on the files above"
    exit 1
fi
