#!/usr/bin/python3
"""Durability benchmark (section n of `make bench`, test/bench/run.sh):
commit latency (p50, p99) and throughput with PRAGMA litestream_durability
= 'local' against 'remote', at 1, 4 and 16 writer threads (one connection
each, one 100-byte row per autocommit INSERT), on a local directory and on
s3rver (loopback), BENCH_DUR_SECONDS (default 3) per cell.

usage: durability.py EXT_WITHOUT_SO WORKDIR OUT_MD   (appends markdown)
"""
import json
import os
import shutil
import sqlite3
import statistics
import sys
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "servers"))
from servers import S3Server  # noqa: E402

ext, work, out_md = sys.argv[1:4]
quick = os.environ.get("BENCH_QUICK") == "1"
seconds = float(os.environ.get("BENCH_DUR_SECONDS", "1" if quick else "3"))
threads = [1, 4, 16]


def progress(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


c = sqlite3.connect(":memory:")
c.enable_load_extension(True)
c.load_extension(ext)
c.close()


def cell(url, mode, nthreads, d):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    db = os.path.join(d, "app.db")
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute(f"PRAGMA litestream_url = '{url}'")
    con.execute(f"PRAGMA litestream_durability = '{mode}'")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
    con.execute("SELECT litestream_sync(30000)")
    lat = [[] for _ in range(nthreads)]
    errors = []
    stop = time.monotonic() + seconds
    go = threading.Barrier(nthreads)

    def writer(k):
        w = sqlite3.connect(db, isolation_level=None, timeout=60,
                            check_same_thread=False)
        w.execute("PRAGMA synchronous = NORMAL")
        go.wait()
        try:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                w.execute("INSERT INTO t(v) VALUES (randomblob(100))")
                lat[k].append(time.perf_counter() - t0)
        except sqlite3.Error as e:
            errors.append(str(e))
        w.close()

    ths = [threading.Thread(target=writer, args=(k,))
           for k in range(nthreads)]
    t0 = time.monotonic()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    took = time.monotonic() - t0
    before = con.execute("SELECT litestream_status()").fetchone()[0]
    con.execute("SELECT litestream_sync(60000)")
    con.close()
    all_lat = sorted(x for per in lat for x in per)
    n = len(all_lat)
    if errors or n == 0:
        return None, errors[:1]
    up = json.loads(before)["databases"][0]["uploads"]
    return {"n": n, "tps": n / took,
            "p50": statistics.median(all_lat) * 1000,
            "p99": all_lat[min(n - 1, int(n * 0.99))] * 1000,
            "uploads": up}, None


rows = []
s3 = S3Server(buckets=("bench",)).start()
os.environ["AWS_ACCESS_KEY_ID"] = s3.key
os.environ["AWS_SECRET_ACCESS_KEY"] = s3.secret
try:
    for backend in ("file", "s3rver"):
        for nt in threads:
            res = {}
            for mode in ("local", "remote"):
                d = os.path.join(work, f"dur-{backend}-{nt}-{mode}")
                url = ("file://" + os.path.join(d, "replica")
                       if backend == "file" else
                       f"s3://bench/dur-{nt}-{mode}?endpoint={s3.endpoint}")
                progress(f"durability: {backend}, {nt} threads, {mode}")
                r, err = cell(url, mode, nt, d)
                res[mode] = r
                if err:
                    progress(f"durability: {backend} {nt} {mode}: {err}")
            rows.append((backend, nt, res))
finally:
    s3.stop()
    shutil.rmtree(os.path.join(work), ignore_errors=True)


def fmt(r, k, f):
    return "error" if r is None else f % r[k]


with open(out_md, "a") as f:
    f.write("\n## n. Durability: COMMIT latency and throughput, "
            "'local' vs 'remote'\n\n")
    f.write(f"One 100-byte row per autocommit INSERT, one connection per "
            f"thread, synchronous=NORMAL, {seconds:g} s per cell; "
            f"sync interval 1 s. 'remote' COMMITs return once the replica "
            f"holds them (group commit: `uploads` counts the objects "
            f"written for `commits`).\n\n")
    f.write("| replica | threads | local p50 ms | local p99 ms | local "
            "commits/s | remote p50 ms | remote p99 ms | remote commits/s "
            "| remote uploads / commits |\n|---|---|---|---|---|---|---|---|"
            "---|\n")
    for backend, nt, res in rows:
        lo, re_ = res.get("local"), res.get("remote")
        f.write(f"| {backend} | {nt} | {fmt(lo, 'p50', '%.3f')} | "
                f"{fmt(lo, 'p99', '%.3f')} | {fmt(lo, 'tps', '%.0f')} | "
                f"{fmt(re_, 'p50', '%.3f')} | {fmt(re_, 'p99', '%.3f')} | "
                f"{fmt(re_, 'tps', '%.0f')} | "
                f"{'-' if re_ is None else '%d / %d' % (re_['uploads'], re_['n'])} |\n")
print("ok")
