#!/usr/bin/env bash
# test/bench/run.sh: the benchmark (`make bench`).  Installs the Litestream
# v0.3.13 daemon from npm if missing (pinned in package-lock.json), builds the
# extension (release, build-bench/) and the bench program, runs every
# measurement, prints the table and writes build-bench/bench-results.md.
#
#   bash test/bench/run.sh              # full run, ~5-10 minutes
#   BENCH_QUICK=1 bash test/bench/run.sh   # smoke run, under a minute
#
# Other knobs (environment): BENCH_SECONDS BENCH_WARMUP BENCH_REPS
# BENCH_VALUE BENCH_LAG_SECONDS BENCH_LAG_RATE BENCH_BIG_MB BENCH_BIG_ROW_KB
# BENCH_RESTORE_MB BENCH_DAEMON=0 BENCH_ONLY=abcd (see bench.c);
# BENCH_S3=0 BENCH_S3_RESTORE_MB BENCH_S3_TXNS (see s3_bench.py).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build-bench"
daemon="$here/node_modules/@flydotio/litestream-linux-x64/litestream"

cd "$root"

# The daemon baseline (npm package @flydotio/litestream-linux-x64@1.0.1
# carries the litestream v0.3.13 binary).
if [ "${BENCH_DAEMON:-1}" != 0 ] && [ ! -x "$daemon" ]; then
    echo "bench: installing the Litestream v0.3.13 daemon (npm ci)" >&2
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ "${BENCH_DAEMON:-1}" != 0 ]; then
    "$daemon" version | grep -q '^v0\.3\.13' ||
        { echo "bench: $daemon is not litestream v0.3.13" >&2; exit 1; }
fi

# The extension, release build in its own directory.
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" -Dbuildtype=release >/dev/null
fi
for try in 1 2 3; do
    if ninja -C "$build" litestream.so >"$build/bench-ninja.log" 2>&1; then
        break
    fi
    if [ "$try" = 3 ]; then
        cat "$build/bench-ninja.log" >&2
        echo "bench: the extension does not build" >&2
        exit 1
    fi
    echo "bench: build failed, retrying in 30 s" >&2
    sleep 30
done

# The bench program, against the system libsqlite3.
cc -O2 -Wall -Wextra -o "$build/bench" "$here/bench.c" -lsqlite3 -lpthread

work="$build/bench-work"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

# Other engineers may be changing the sources: say which build was measured.
export BENCH_BUILD_ID="build-bench/litestream.so, release build of \
$(date -u -r "$build/litestream.so" '+%Y-%m-%d %H:%M:%S UTC'), sha256 \
$(sha256sum "$build/litestream.so" | cut -c1-16)"

dargs=()
daemon_bin=""
if [ "${BENCH_DAEMON:-1}" != 0 ]; then
    dargs=(-daemon "$daemon")
    daemon_bin="$daemon"
fi
"$build/bench" -ext "$build/litestream" "${dargs[@]}" -work "$work" \
    -out "$build/bench-results.md" >/dev/null

# S3 (sections e, f): the extension and the daemon against one s3rver on
# loopback (test/servers; scripts/deps.sh test installs it).  BENCH_S3=0
# skips it.
if [ "${BENCH_S3:-1}" != 0 ]; then
    if [ ! -f "$root/test/servers/node_modules/@20minutes/s3rver/package.json" ]; then
        bash "$root/scripts/deps.sh" test
    fi
    /usr/bin/python3 "$here/s3_bench.py" "$build/litestream" \
        "${daemon_bin:--}" "$work/s3" "$build/bench-results.md"
fi

cat "$build/bench-results.md"
echo
echo "bench: results written to $build/bench-results.md" >&2
