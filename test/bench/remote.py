#!/usr/bin/python3
"""Read-replica benchmark (`bash test/bench/remote.sh`, docs/benchmarks.md).

Builds a database of BENCH_REMOTE_MB MiB (rows of BENCH_REMOTE_ROW random
bytes, 20000-row transactions) while the extension replicates it to a local
directory, then in one run measures against the same database opened as a
local file:

  open      connect + first query through litestream-remote (plan, indexes)
  cold      a point lookup on a fresh connection (schema already read), so
            every B-tree page is fetched; median of BENCH_REMOTE_COLD
  warm      the same lookups again on one connection whose cache holds them
  scan      SELECT sum(length(v)) over the table on a fresh connection

and prints a markdown table (medians of BENCH_REMOTE_REPS interleaved
repetitions) with the ratios and the requests per query
(PRAGMA litestream_requests).  The local side runs through SQLite's own unix
VFS with the OS page cache warm (the replica's files are in the same OS
cache: this measures the VFS's own costs, not a network).

Usage: remote.py SO WORKDIR
"""
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import time
import urllib.parse

so, work = sys.argv[1], sys.argv[2]
MB = int(os.environ.get("BENCH_REMOTE_MB", "256"))
ROW = int(os.environ.get("BENCH_REMOTE_ROW", "1000"))
NCOLD = int(os.environ.get("BENCH_REMOTE_COLD", "30"))
NWARM = int(os.environ.get("BENCH_REMOTE_WARM", "2000"))
REPS = int(os.environ.get("BENCH_REMOTE_REPS", "3"))

boot = sqlite3.connect(":memory:")
boot.enable_load_extension(True)
boot.load_extension(so)

shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
db = os.path.join(work, "app.db")
url = "file://" + os.path.join(work, "replica")
rows = MB * 1024 * 1024 // ROW

t0 = time.time()
w = sqlite3.connect(db, isolation_level=None)
w.execute(f"PRAGMA litestream_url = '{url}'")
w.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
for start in range(0, rows, 20000):
    w.execute("BEGIN")
    w.executemany("INSERT INTO t VALUES (?, randomblob(?))",
                  ((i + 1, ROW) for i in range(start, min(rows, start + 20000))))
    w.execute("COMMIT")
w.execute("SELECT litestream_sync(600000)").fetchone()
w.execute("PRAGMA wal_checkpoint(TRUNCATE)")
w.execute("SELECT litestream_sync(600000)").fetchone()
pages = w.execute("PRAGMA page_count").fetchone()[0]
psize = w.execute("PRAGMA page_size").fetchone()[0]
w.close()
build_s = time.time() - t0
nobj = sum(len(f) for _, _, f in os.walk(os.path.join(work, "replica")))
rep_bytes = sum(os.path.getsize(os.path.join(p, n))
                for p, _, f in os.walk(os.path.join(work, "replica"))
                for n in f)

qurl = urllib.parse.quote(url, safe="")
REMOTE = f"file:remote.db?vfs=litestream-remote&url={qurl}&poll_ms=0"
LOCAL = f"file:{db}?vfs=unix"


def connect(remote):
    return sqlite3.connect(REMOTE if remote else LOCAL, uri=True,
                           isolation_level=None)


def reqs(c):
    return json.loads(c.execute("PRAGMA litestream_requests").fetchone()[0])


def timed(fn):
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


rnd = random.Random(1)
res = {}
# open
opens = []
for _ in range(5):
    c = None

    def op():
        global c
        c = connect(True)
        c.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    opens.append(timed(op))
    res["open_requests"] = reqs(c)
    c.close()
res["open_ms"] = statistics.median(opens)

for rep in range(REPS):
    for remote in (False, True):
        tag = "remote" if remote else "local"
        # cold point lookups
        cold, creq = [], []
        for _ in range(NCOLD):
            c = connect(remote)
            c.execute("SELECT count(*) FROM sqlite_schema").fetchone()
            g0 = reqs(c)["get"] if remote else 0
            k = rnd.randint(1, rows)
            cold.append(timed(lambda: c.execute(
                "SELECT length(v) FROM t WHERE id = ?", (k,)).fetchone()))
            if remote:
                creq.append(reqs(c)["get"] - g0)
            c.close()
        res.setdefault(f"{tag}_cold_ms", []).append(statistics.median(cold))
        if remote:
            res["cold_requests"] = statistics.median(creq)
        # warm point lookups: the same keys twice, the second pass timed
        c = connect(remote)
        keys = [rnd.randint(1, rows) for _ in range(NWARM)]
        for k in keys:
            c.execute("SELECT length(v) FROM t WHERE id = ?", (k,)).fetchone()
        g0 = reqs(c)["get"] if remote else 0
        warm = [timed(lambda: c.execute("SELECT length(v) FROM t WHERE id = ?",
                                        (k,)).fetchone()) for k in keys]
        res.setdefault(f"{tag}_warm_us", []).append(statistics.median(warm) * 1000)
        if remote:
            res["warm_requests"] = reqs(c)["get"] - g0
        c.close()
        # full scan on a fresh connection
        c = connect(remote)
        c.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        q0 = reqs(c) if remote else {}
        res.setdefault(f"{tag}_scan_ms", []).append(timed(lambda: c.execute(
            "SELECT sum(length(v)) FROM t").fetchone()))
        if remote:
            q = reqs(c)
            res["scan_requests"] = q["get"] - q0["get"]
            res["scan_mb"] = (q["bytes_down"] - q0["bytes_down"]) / 1048576
        c.close()

for k in [k for k in res if isinstance(res[k], list)]:
    res[k] = statistics.median(res[k])

out = f"""Database: {MB} MiB, {rows} rows of {ROW} random bytes, {pages} pages of
{psize} bytes; replica: {nobj} LTX objects, {rep_bytes / 1048576:.0f} MiB
(built and replicated in {build_s:.0f} s).  Remote opened with poll_ms=0,
cache_mb=64 (default); local through the unix VFS, OS cache warm.  Each
figure is the median of {REPS} interleaved repetitions (local, remote, ...).

| measurement | local file | litestream-remote | ratio | requests (remote) |
|---|---|---|---|---|
| open (connect + first query) | - | {res['open_ms']:.1f} ms | - | {res['open_requests']['get']} GET, {res['open_requests']['list']} LIST |
| point lookup, cold (median of {NCOLD}) | {res['local_cold_ms']:.3f} ms | {res['remote_cold_ms']:.3f} ms | {res['remote_cold_ms'] / res['local_cold_ms']:.1f}x | {res['cold_requests']:.0f} GET |
| point lookup, warm (median of {NWARM}) | {res['local_warm_us']:.1f} us | {res['remote_warm_us']:.1f} us | {res['remote_warm_us'] / res['local_warm_us']:.2f}x | {res['warm_requests']} GET in total |
| full scan, fresh connection | {res['local_scan_ms']:.0f} ms | {res['remote_scan_ms']:.0f} ms | {res['remote_scan_ms'] / res['local_scan_ms']:.1f}x | {res['scan_requests']} GET, {res['scan_mb']:.0f} MiB |
"""
print(out)
open(os.path.join(os.path.dirname(work.rstrip("/")),
                  "bench-remote-results.md"), "w").write(out)
shutil.rmtree(work, ignore_errors=True)
