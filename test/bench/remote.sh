#!/usr/bin/env bash
# test/bench/remote.sh: the read-replica benchmark (docs/benchmarks.md,
# "Read replicas").  Builds the extension as a release build in build-bench/
# (as run.sh does) and runs test/bench/remote.py in build-bench/remote-work/;
# the table is printed and written to build-bench/bench-remote-results.md.
#
#   bash test/bench/remote.sh                      # 256 MiB database
#   BENCH_REMOTE_MB=1024 bash test/bench/remote.sh # 1 GiB
#
# Knobs: BENCH_REMOTE_MB (256), BENCH_REMOTE_ROW (1000 bytes),
# BENCH_REMOTE_COLD (30 lookups), BENCH_REMOTE_WARM (2000 lookups),
# BENCH_REMOTE_REPS (3 interleaved repetitions).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build-bench"
cd "$root"
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" -Dbuildtype=release >/dev/null
fi
ninja -C "$build" litestream.so >/dev/null
echo "build: $build/litestream.so, $(date -u -r "$build/litestream.so" '+%Y-%m-%d %H:%M:%S UTC')"
# The Litestream VFS v0.5.17 beside ours when installed (npm ci in
# test/bench/, as run.sh does); BENCH_REMOTE_S3=1 reads from s3rver instead.
lvfs="$here/node_modules/litestream-vfs-linux-amd64/litestream-vfs.so"
args=()
[ -f "$lvfs" ] && args+=(--lvfs "$lvfs")
[ "${BENCH_REMOTE_S3:-0}" = 1 ] && args+=(--s3)
rm -f "$build/bench-remote-results.md"
exec /usr/bin/python3 "$here/remote.py" "$build/litestream" \
    "$build/remote-work" "${args[@]}" --out "$build/bench-remote-results.md"
