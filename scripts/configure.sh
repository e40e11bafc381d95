#!/bin/bash
# Configures a build directory, or configures it again when this machine
# changed since (a program the test registration looks for appeared or went:
# node, the sqlite3 shell, clang-format, clang, age, or the tests' own node in
# test/tools/node), so that `make demo` before `make test` on a fresh machine
# cannot leave suites unregistered or on another node.
#   scripts/configure.sh BUILD_DIR [meson setup options...]
set -euo pipefail
dir=$1
shift
fp=$(for p in node sqlite3 clang-format clang age; do
         printf '%s=%s\n' "$p" "$(command -v "$p" || true)"
     done
     for tn in "$(dirname "$0")"/../test/tools/node/node_modules/node-linux-*/bin/node; do
         if [ -x "$tn" ]; then printf 'test-node=%s\n' "$(readlink -f "$tn")"; fi
     done)
if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" >/dev/null
elif [ "$(cat "$dir/.machine" 2>/dev/null)" != "$fp" ]; then
    echo "configure: the machine changed since $dir was configured; reconfiguring"
    meson setup --reconfigure "$dir" "$@" >/dev/null
fi
printf '%s\n' "$fp" >"$dir/.machine"
