#!/bin/bash
# Configures a build directory, or configures it again when this machine
# changed since (a program the test registration looks for appeared or went:
# node, the sqlite3 shell, clang-format, clang), so that `make demo` before
# `make test` on a fresh machine cannot leave suites unregistered.
#   scripts/configure.sh BUILD_DIR [meson setup options...]
set -euo pipefail
dir=$1
shift
fp=$(for p in node sqlite3 clang-format clang; do
         printf '%s=%s\n' "$p" "$(command -v "$p" || true)"
     done)
if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null
elif [ "$(cat "$dir/.machine" 2>/dev/null)" != "$fp" ]; then
    echo "configure: the machine changed since $dir was configured; reconfiguring"
    meson setup --reconfigure "$dir" "$@" >/dev/null
fi
printf '%s\n' "$fp" >"$dir/.machine"
