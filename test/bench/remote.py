#!/usr/bin/python3
"""Read-replica benchmark (`bash test/bench/remote.sh`, part of `make bench`;
docs/benchmarks.md, section m).

Builds a database of BENCH_REMOTE_MB MiB (rows of BENCH_REMOTE_ROW random
bytes, 20000-row transactions) while the extension replicates it, then reads
that one replica three ways, each in a process of its own, interleaved
(local, ours, theirs, local, ...), BENCH_REMOTE_REPS times:

  local     the database file itself through SQLite's unix VFS (OS cache
            warm);
  ours      litestream-remote (poll_ms=0, cache_mb=64);
  theirs    the Litestream VFS v0.5.17 (`load_extension(so,
            'sqlite3_litestreamvfs_init')`, `file:x.db?vfs=litestream&
            replica_url=URL&cache_size=67108864&poll_interval=1h`), which
            reads v0.5 LTX buckets, i.e. ours; skipped without --lvfs.

Measured in each process:

  open      connect + the first query (median of 3 fresh connections)
  cold      a point lookup on a fresh connection whose schema is read, so
            every B-tree page below page 1 is fetched; median of
            BENCH_REMOTE_COLD connections
  indexed   a lookup through a secondary index (SELECT ... WHERE k = ?)
            on a fresh connection; median of BENCH_REMOTE_COLD
  warm      BENCH_REMOTE_WARM random keys looked up twice on one
            connection, the second pass timed (median)
  scan      SELECT sum(length(v)) over the table on a fresh connection

Requests per query: on s3rver (--s3) every request goes through a counting
proxy and the worker marks the start and end of each measured query for
this process (a line "mark NAME+" / "mark NAME-" on stdout, acknowledged on
stdin), so both implementations are counted the same way; on a local directory only ours
can count them (PRAGMA litestream_requests).

Usage: remote.py SO WORKDIR [--lvfs PATH] [--s3] [--out FILE.md]
       (internal: remote.py --worker KIND URI SO LVFS ROWS)
"""
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse

NCOLD = int(os.environ.get("BENCH_REMOTE_COLD", "30"))
NWARM = int(os.environ.get("BENCH_REMOTE_WARM", "2000"))
CACHE_MB = 64


def timed(fn):
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def worker(kind, uri, so, lvfs, rows):
    """One process: measures kind on uri; the measured queries are marked
    on stdout and acknowledged on stdin (the parent counts their
    requests); the result is the last line."""
    boot = sqlite3.connect(":memory:")
    boot.enable_load_extension(True)
    if kind == "ours":
        boot.load_extension(so)
    elif kind == "theirs":
        boot.execute("SELECT load_extension(?, 'sqlite3_litestreamvfs_init')",
                     (lvfs,))

    def mark(name):
        """name+ before and name- after what is counted."""
        print("mark " + name, flush=True)
        sys.stdin.readline()

    def counted(name, fn):
        mark(name + "+")
        ms = timed(fn)
        mark(name + "-")
        return ms

    def connect():
        return sqlite3.connect(uri, uri=True, isolation_level=None)

    def reqs(c):
        if kind != "ours":
            return {}
        return json.loads(c.execute("PRAGMA litestream_requests")
                          .fetchone()[0])

    rnd = random.Random(1)
    res = {"requests": {}}
    opens, oreq = [], {}
    for _ in range(3):
        box = []

        def op():
            box.append(connect())
            box[0].execute("SELECT count(*) FROM sqlite_schema").fetchone()
        opens.append(counted("open", op))
        oreq = reqs(box[0])
        box[0].close()
    res["open_ms"] = statistics.median(opens)
    res["requests"]["open"] = oreq.get("get")
    for name, sql in (("cold", "SELECT length(v) FROM t WHERE id = ?"),
                      ("indexed", "SELECT id FROM t WHERE k = ?")):
        ms, gets = [], []
        for _ in range(NCOLD):
            c = connect()
            c.execute("SELECT count(*) FROM sqlite_schema").fetchone()
            g0 = reqs(c).get("get", 0)
            k = rnd.randint(1, rows)
            ms.append(counted(name, lambda: c.execute(sql, (k,)).fetchone()))
            gets.append(reqs(c).get("get", 0) - g0)
            c.close()
        res[name + "_ms"] = statistics.median(ms)
        res["requests"][name] = statistics.median(gets) if kind == "ours" \
            else None
    c = connect()
    keys = [rnd.randint(1, rows) for _ in range(NWARM)]
    for k in keys:
        c.execute("SELECT length(v) FROM t WHERE id = ?", (k,)).fetchone()
    g0 = reqs(c).get("get", 0)
    mark("warm+")
    warm = [timed(lambda: c.execute("SELECT length(v) FROM t WHERE id = ?",
                                    (k,)).fetchone()) for k in keys]
    mark("warm-")
    res["warm_us"] = statistics.median(warm) * 1000
    res["requests"]["warm"] = reqs(c).get("get", 0) - g0 \
        if kind == "ours" else None
    c.close()
    c = connect()
    c.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    g0 = reqs(c).get("get", 0)
    res["scan_ms"] = counted("scan", lambda: c.execute(
        "SELECT sum(length(v)) FROM t").fetchone())
    res["requests"]["scan"] = reqs(c).get("get", 0) - g0 \
        if kind == "ours" else None
    c.close()
    print("result " + json.dumps(res), flush=True)


if len(sys.argv) > 1 and sys.argv[1] == "--worker":
    worker(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5],
           int(sys.argv[6]))
    sys.exit(0)

# ---- the parent ----------------------------------------------------------

args = sys.argv[1:]
so, work = os.path.abspath(args[0]), os.path.abspath(args[1])
lvfs = os.path.abspath(args[args.index("--lvfs") + 1]) \
    if "--lvfs" in args else None
use_s3 = "--s3" in args
out_md = args[args.index("--out") + 1] if "--out" in args else None
MB = int(os.environ.get("BENCH_REMOTE_S3_MB" if use_s3 else "BENCH_REMOTE_MB",
                        "16" if use_s3 else "256"))
ROW = int(os.environ.get("BENCH_REMOTE_ROW", "1000"))
REPS = int(os.environ.get("BENCH_REMOTE_REPS", "3"))

shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
db = os.path.join(work, "app.db")
px = s3 = None
if use_s3:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "..", "servers"))
    from servers import FaultProxy, S3Server  # noqa: E402
    s3 = S3Server(buckets=("bench",)).start()
    os.environ["AWS_ACCESS_KEY_ID"] = s3.key
    os.environ["AWS_SECRET_ACCESS_KEY"] = s3.secret
    px = FaultProxy(s3).start()
    url = f"s3://bench/remote?endpoint={px.endpoint}&region=us-east-1"
else:
    url = "file://" + os.path.join(work, "replica")
rows = MB * 1024 * 1024 // ROW

try:
    boot = sqlite3.connect(":memory:")
    boot.enable_load_extension(True)
    boot.load_extension(so)
    t0 = time.time()
    w = sqlite3.connect(db, isolation_level=None)
    w.execute(f"PRAGMA litestream_url = '{url}'")
    w.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB)")
    for start in range(0, rows, 20000):
        w.execute("BEGIN")
        w.executemany("INSERT INTO t VALUES (?, ?, randomblob(?))",
                      ((i + 1, (i * 7919) % rows + 1, ROW)
                       for i in range(start, min(rows, start + 20000))))
        w.execute("COMMIT")
    w.execute("CREATE INDEX t_k ON t(k)")
    w.execute("SELECT litestream_sync(600000)").fetchone()
    w.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    w.execute("SELECT litestream_sync(600000)").fetchone()
    pages = w.execute("PRAGMA page_count").fetchone()[0]
    psize = w.execute("PRAGMA page_size").fetchone()[0]
    w.close()
    build_s = time.time() - t0

    qurl = urllib.parse.quote(url, safe="")
    uris = {
        "local": f"file:{db}?vfs=unix",
        "ours": f"file:remote.db?vfs=litestream-remote&url={qurl}"
                f"&poll_ms=0&cache_mb={CACHE_MB}",
        "theirs": f"file:x.db?vfs=litestream&replica_url={qurl}"
                  f"&cache_size={CACHE_MB << 20}&poll_interval=1h",
    }
    kinds = ["local", "ours"] + (["theirs"] if lvfs else [])

    # The AWS SDK of the Litestream VFS fails on a custom CA bundle given to
    # plain-HTTP endpoints ("unable to add custom RootCAs"): s3rver is
    # plain HTTP on loopback, so the worker runs without one.
    wenv = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}

    def run_worker(kind):
        p = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", kind,
             uris[kind], so, lvfs or "-", str(rows)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=work, env=wenv)
        gets, start, res = {}, {}, None
        for line in p.stdout:
            if line.startswith("mark "):
                name = line.split()[1]
                g = px.counts.get("GET", 0) if px else 0
                if name.endswith("+"):
                    start[name[:-1]] = g
                else:
                    gets[name[:-1]] = gets.get(name[:-1], 0) + g - \
                        start[name[:-1]]
                p.stdin.write("ok\n")
                p.stdin.flush()
            elif line.startswith("result "):
                res = json.loads(line[7:])
            elif "level=INFO" not in line:  # the Litestream VFS logs here
                sys.stderr.write(line)
        p.wait()
        if p.returncode != 0 or res is None:
            raise SystemExit(f"remote.py: the {kind} worker failed "
                             f"(status {p.returncode})")
        if px:
            res["requests"] = dict(gets)
            for k in ("cold", "indexed"):
                res["requests"][k] /= NCOLD
            res["requests"]["open"] /= 3
        return res

    runs = {k: [] for k in kinds}
    for rep in range(REPS):
        for kind in kinds:
            print(f"bench: m. rep {rep + 1}/{REPS}: {kind}"
                  f"{' (s3rver)' if use_s3 else ''}", file=sys.stderr,
                  flush=True)
            runs[kind].append(run_worker(kind))
finally:
    if px:
        px.stop()
    if s3:
        s3.stop()


def med(kind, key):
    return statistics.median(r[key] for r in runs[kind])


def req(kind, phase):
    v = runs[kind][-1]["requests"].get(phase)
    if v is None:
        return "-"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


where = "s3rver on loopback, through a counting proxy" if use_s3 else \
    "a local directory (file://)"
lines = [f"Replica on {where}. Database: {MB} MiB, {rows} rows of {ROW} "
         f"random bytes and an index, {pages} pages of {psize} bytes "
         f"(built and replicated in {build_s:.0f} s). Same replica, same "
         f"cache ({CACHE_MB} MiB), no polling during the measurements; "
         f"medians of {REPS} interleaved repetitions, each kind in its own "
         "process.\n"]
head = "| measurement | local file | litestream-remote (ours) |"
sep = "|---|---:|---:|"
if lvfs:
    head += " Litestream VFS v0.5.17 | ours vs theirs |"
    sep += "---:|---|"
head += " requests, ours | requests, theirs |" if use_s3 or lvfs else \
    " requests, ours |"
sep += "---:|---:|" if use_s3 or lvfs else "---:|"
lines += [head, sep]
for key, label, unit, phase in (
        ("open_ms", "open (connect + first query)", "ms", "open"),
        ("cold_ms", f"point lookup, cold (median of {NCOLD})", "ms", "cold"),
        ("indexed_ms", f"indexed lookup, cold (median of {NCOLD})", "ms",
         "indexed"),
        ("warm_us", f"point lookup, warm (median of {NWARM})", "us", "warm"),
        ("scan_ms", "full scan, fresh connection", "ms", "scan")):
    loc = "-" if key == "open_ms" else f"{med('local', key):.3f} {unit}"
    row = f"| {label} | {loc} | {med('ours', key):.3f} {unit} |"
    if lvfs:
        t = med("theirs", key)
        o = med("ours", key)
        verdict = "ahead" if o <= t else "**BEHIND**"
        row += f" {t:.3f} {unit} | {t / o:.1f}x faster: {verdict} |" \
            if o > 0 else f" {t:.3f} {unit} | - |"
    row += f" {req('ours', phase)} |"
    if use_s3 or lvfs:
        row += f" {req('theirs', phase) if lvfs else '-'} |"
    lines.append(row)
lines.append("")
lines.append("Requests: GETs per query (open: per connection; warm: in "
             "total for the timed pass; scan: for the whole scan)"
             + ("." if use_s3 else "; on a local directory the Litestream "
                "VFS has no request counter (\"-\")."))
text = "\n".join(lines) + "\n"
print(text)
if out_md:
    with open(out_md, "a") as f:
        f.write(f"\n## m. read replica vs the Litestream VFS v0.5.17: "
                f"{'s3rver' if use_s3 else 'local directory'}\n\n" + text)
shutil.rmtree(work, ignore_errors=True)
