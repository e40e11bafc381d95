#!/usr/bin/env bash
# test/bench/run.sh: the benchmark (`make bench`).  Installs the Litestream
# v0.3.13 daemon from npm if missing (pinned in package-lock.json), builds the
# extension (release, build-bench/) and the bench program, runs every
# measurement, prints the table and writes build-bench/bench-results.md.
#
#   bash test/bench/run.sh              # full run, ~15 minutes
#   BENCH_QUICK=1 bash test/bench/run.sh   # smoke run, ~2 minutes
#
# Sections (docs/benchmarks.md): a-d bench.c; e, f, l s3_bench.py; g, i, j
# writers.c; h callgrind.py; k sidecar_io.py; m remote.py (file and
# s3rver); n durability.py (file and s3rver); o age_bench.py (encryption);
# p many.py (200 and 1,000 idle databases).
# BENCH_ONLY=LETTERS runs a subset (e.g. BENCH_ONLY=hk).
# Other knobs (environment): BENCH_SECONDS BENCH_WARMUP BENCH_REPS
# BENCH_VALUE BENCH_LAG_SECONDS BENCH_LAG_RATE BENCH_BIG_MB BENCH_BIG_ROW_KB
# BENCH_RESTORE_MB BENCH_DAEMON=0 (see bench.c); BENCH_WRITERS
# BENCH_RSS_COMMITS (writers.c); BENCH_CG_COMMITS (callgrind.py -n);
# BENCH_S3=0 BENCH_S3_RESTORE_MB BENCH_S3_TXNS BENCH_IDLE_SECONDS (see
# s3_bench.py); BENCH_REMOTE_* (remote.py); BENCH_MANY BENCH_MANY_S3 BENCH_MANY_IDLE
# (many.py).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build-bench"
daemon="$here/node_modules/@flydotio/litestream-linux-x64/litestream"
lvfs="$here/node_modules/litestream-vfs-linux-amd64/litestream-vfs.so"
only="${BENCH_ONLY:-abcdefghijklmnop}"
want() { case "$only" in *"$1"*) return 0 ;; esac; return 1; }

cd "$root"

# The baselines (package.json, package-lock.json): the daemon (npm package
# @flydotio/litestream-linux-x64@1.0.1 carries the litestream v0.3.13
# binary) and the Litestream VFS v0.5.17 (litestream-vfs-linux-amd64, an
# 84 MB .so).
if { [ "${BENCH_DAEMON:-1}" != 0 ] && [ ! -x "$daemon" ]; } ||
   { want m && [ ! -f "$lvfs" ]; }; then
    echo "bench: installing the Litestream baselines (npm ci)" >&2
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
# valgrind (section h) and strace (section k), Debian packages.
missing=""
want h && ! command -v valgrind >/dev/null && missing="$missing valgrind"
want k && ! command -v strace >/dev/null && missing="$missing strace"
if [ -n "$missing" ]; then
    echo "bench: installing$missing" >&2
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends $missing >/dev/null ||
        { $SUDO apt-get update -qq &&
          DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
              --no-install-recommends $missing >/dev/null; }
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

# The bench programs, against the system libsqlite3.
cc -O2 -Wall -Wextra -o "$build/bench" "$here/bench.c" -lsqlite3 -lpthread
cc -O2 -Wall -Wextra -o "$build/writers" "$here/writers.c" -lsqlite3 -lpthread
cc -O2 -Wall -Wextra -o "$build/cg_driver" "$here/cg_driver.c" -lsqlite3

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
t_start=$(date +%s)
"$build/bench" -ext "$build/litestream" "${dargs[@]}" -work "$work" \
    -out "$build/bench-results.md" >/dev/null

# Issue 12's writer costs: 4 writers, memory, CPU per transaction (g, i, j).
if want g || want i || want j; then
    "$build/writers" -ext "$build/litestream" "${dargs[@]}" \
        -work "$work/writers" -out "$build/bench-results.md"
fi
# Instructions per commit under callgrind (h), about a minute.
if want h; then
    /usr/bin/python3 "$here/callgrind.py" --so "$build/litestream.so" \
        -n "${BENCH_CG_COMMITS:-$([ "${BENCH_QUICK:-0}" = 1 ] && echo 5000 || echo 20000)}" \
        --out "$build/bench-results.md" >/dev/null
fi
# Sidecar bytes per WAL byte (k).
if want k; then
    /usr/bin/python3 "$here/sidecar_io.py" --so "$build/litestream.so" \
        --driver "$build/cg_driver" --out "$build/bench-results.md" >/dev/null
fi

# S3 (sections e, f): the extension and the daemon against one s3rver on
# loopback (test/servers; scripts/deps.sh test installs it).  BENCH_S3=0
# skips it.
if [ "${BENCH_S3:-1}" != 0 ] && { want e || want f || want l || want m || want n; } &&
   [ ! -f "$root/test/servers/node_modules/@20minutes/s3rver/package.json" ]; then
    bash "$root/scripts/deps.sh" test
fi
if [ "${BENCH_S3:-1}" != 0 ] && { want e || want f || want l; }; then
    /usr/bin/python3 "$here/s3_bench.py" "$build/litestream" \
        "${daemon_bin:--}" "$work/s3" "$build/bench-results.md"
fi

# Read replicas: ours beside the Litestream VFS v0.5.17 on one replica, in
# a local directory and on s3rver (m).
if want m; then
    if [ "${BENCH_QUICK:-0}" = 1 ]; then
        export BENCH_REMOTE_MB=${BENCH_REMOTE_MB:-32} \
            BENCH_REMOTE_S3_MB=${BENCH_REMOTE_S3_MB:-8} \
            BENCH_REMOTE_REPS=${BENCH_REMOTE_REPS:-1} \
            BENCH_REMOTE_COLD=${BENCH_REMOTE_COLD:-10} \
            BENCH_REMOTE_WARM=${BENCH_REMOTE_WARM:-500}
    fi
    /usr/bin/python3 "$here/remote.py" "$build/litestream" "$work/remote" \
        --lvfs "$lvfs" --out "$build/bench-results.md" >/dev/null
    if [ "${BENCH_S3:-1}" != 0 ]; then
        /usr/bin/python3 "$here/remote.py" "$build/litestream" \
            "$work/remote-s3" --lvfs "$lvfs" --s3 \
            --out "$build/bench-results.md" >/dev/null
    fi
fi
# COMMIT latency and throughput, durability 'local' vs 'remote' (n).
if want n && [ "${BENCH_S3:-1}" != 0 ]; then
    /usr/bin/python3 "$here/durability.py" "$build/litestream" \
        "$work/durability" "$build/bench-results.md" >/dev/null
fi
# The cost of age encryption (o): upload and restore without and with it.
if want o && command -v age-keygen >/dev/null; then
    /usr/bin/python3 "$here/age_bench.py" --so "$build/litestream.so" \
        --mb "$([ "${BENCH_QUICK:-0}" = 1 ] && echo 32 || echo 200)" \
        --out "$build/bench-results.md" >/dev/null
fi
# Many databases, idle (p): threads, RSS, CPU and requests of 200 and
# 1,000 databases in one process (the shared pool).
if want p; then
    /usr/bin/python3 "$here/many.py" "$build/litestream" "$work/many" \
        "$build/bench-results.md" >/dev/null
fi
{
    echo
    echo "## Summary against issue 12's goals"
    echo
    /usr/bin/python3 "$here/summary.py" "$build/bench-results.md"
    echo
    echo "Total time of this run: $(( $(date +%s) - t_start )) s."
} >"$build/bench-summary.md"
cat "$build/bench-summary.md" >>"$build/bench-results.md"
rm -f "$build/bench-summary.md"

cat "$build/bench-results.md"
echo
echo "bench: results written to $build/bench-results.md" >&2
