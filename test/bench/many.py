#!/usr/bin/python3
"""Many databases (section o of `make bench`, test/bench/run.sh): N
databases in one process, configured by litestream_auto(dir, url) and
replicating to a local directory, each written once (a table and a row)
and synced, then left idle.  Measured over the idle window: the process's
threads (/proc/self/task), its RSS (VmRSS), the CPU seconds it used
(getrusage, scaled to an hour), the context switches of its threads per
second, and the backend requests made (litestream_metrics(): PUT, GET,
LIST, DELETE summed over the databases).  Every N runs in a child process
of its own, after a baseline with the extension loaded and no database.

usage: many.py EXT_WITHOUT_SO WORKDIR OUT_MD [N ...]   (appends markdown)
environment: BENCH_MANY_IDLE (seconds idle, default 60; 10 with
BENCH_QUICK=1), BENCH_MANY (the counts, default "200 1000"; "50 200"
with BENCH_QUICK=1)
"""
import json
import os
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import time

OPS = ("PUT", "GET", "LIST", "DELETE")


def progress(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def proc_status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def threads():
    return len(os.listdir("/proc/self/task"))


def switches():
    n = 0
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/status") as f:
                for line in f:
                    if "ctxt_switches" in line:
                        n += int(line.split()[-1])
        except OSError:
            pass  # a thread that ended meanwhile
    return n


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def requests(con):
    """Backend requests of every database of the process, by operation."""
    text = con.execute("SELECT litestream_metrics()").fetchone()[0]
    got = dict.fromkeys(OPS, 0)
    for m in re.finditer(r'^litestream_replica_operation_total\{[^}]*'
                         r'operation="(\w+)"[^}]*\}\s+(\d+)', text, re.M):
        if m.group(1) in got:
            got[m.group(1)] += int(m.group(2))
    return got


def child(ext, work, n, idle):
    """One measurement: n databases, then `idle` seconds of nothing."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 12 * n + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (want if hard == resource.RLIM_INFINITY
                            else min(want, hard), hard))
    ctl = sqlite3.connect(":memory:")
    ctl.enable_load_extension(True)
    ctl.load_extension(ext)
    base = {"threads": threads(), "rss_kb": proc_status("VmRSS")}
    root, rep = os.path.join(work, "dbs"), os.path.join(work, "replica")
    os.makedirs(root)
    ctl.execute("SELECT litestream_auto(?, ?)", (root, "file://" + rep))
    t0 = time.monotonic()
    cons = []
    for i in range(n):
        d = os.path.join(root, f"g{i // 50:02d}")
        os.makedirs(d, exist_ok=True)
        c = sqlite3.connect(os.path.join(d, f"tenant{i:04d}.db"),
                            isolation_level=None)
        c.execute("CREATE TABLE t(x)")
        c.execute("INSERT INTO t VALUES (?)", (f"tenant {i}",))
        cons.append(c)
    for c in cons:
        c.execute("SELECT litestream_sync(120000)")
    setup = time.monotonic() - t0
    bad = [i for i, c in enumerate(cons)
           if not json.loads(c.execute("SELECT litestream_status()")
                             .fetchone()[0])["databases"][0]["replicating"]]
    time.sleep(3)  # the last uploads' bookkeeping settles
    r0, c0, s0 = requests(ctl), cpu(), switches()
    th0 = threads()
    time.sleep(idle)
    r1, c1, s1 = requests(ctl), cpu(), switches()
    res = {
        "n": n, "idle_s": idle, "setup_s": round(setup, 1),
        "not_replicating": len(bad),
        "base_threads": base["threads"], "base_rss_kb": base["rss_kb"],
        "threads": max(th0, threads()), "rss_kb": proc_status("VmRSS"),
        "hwm_kb": proc_status("VmHWM"),
        "cpu_s": round(c1 - c0, 3),
        "switches_per_s": round((s1 - s0) / idle, 1),
        "requests": {k: r1[k] - r0[k] for k in OPS},
    }
    for c in cons:
        c.close()
    print(json.dumps(res), flush=True)


def table(results):
    out = []
    out.append("| databases | threads | RSS | RSS per database | CPU while "
               "idle | wake-ups | PUT | GET | LIST | DELETE | LIST per "
               "database per hour |")
    out.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        hour = 3600.0 / r["idle_s"]
        q = r["requests"]
        per_db = (r["rss_kb"] - r["base_rss_kb"]) / r["n"]
        out.append(
            f"| {r['n']} | {r['threads']} (no database: "
            f"{r['base_threads']}) | {r['rss_kb'] / 1024:.0f} MiB | "
            f"{per_db:.0f} KiB | {r['cpu_s'] * hour:.0f} s/h "
            f"({r['cpu_s']:.2f} s in {r['idle_s']:.0f} s) | "
            f"{r['switches_per_s']:.0f}/s | "
            + " | ".join(f"{q[k] * hour:.0f}/h" for k in OPS) +
            f" | {q['LIST'] * hour / r['n']:.0f} |")
    return out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
        return
    ext, work, out_md = sys.argv[1:4]
    quick = os.environ.get("BENCH_QUICK") == "1"
    idle = float(os.environ.get("BENCH_MANY_IDLE", "10" if quick else "60"))
    counts = [int(x) for x in (sys.argv[4:] or os.environ.get(
        "BENCH_MANY", "50 200" if quick else "200 1000").split())]
    results = []
    for n in counts:
        d = os.path.join(work, f"many-{n}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        progress(f"o: {n} databases, {idle:.0f} s idle")
        r = subprocess.run([sys.executable, os.path.abspath(__file__),
                            "--child", ext, d, str(n), str(idle)],
                           capture_output=True, text=True,
                           timeout=600 + 2 * idle)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            raise SystemExit(f"many.py: the run with {n} databases failed")
        results.append(json.loads(r.stdout.strip().splitlines()[-1]))
        shutil.rmtree(d, ignore_errors=True)
    lines = ["", f"### o. many databases: idle {idle:.0f} s after one write "
             "each (litestream_auto, local directory)", ""]
    lines += table(results)
    lines.append("")
    lines.append("Requests and CPU are scaled to an hour from the idle "
                 "window; RSS per database is over the baseline with the "
                 "extension loaded and no database; setup (open, write, "
                 "sync each): " + ", ".join(
                     f"{r['n']}: {r['setup_s']} s" for r in results) +
                 "; databases not replicating: " + ", ".join(
                     str(r["not_replicating"]) for r in results) + ".")
    text = "\n".join(lines) + "\n"
    with open(out_md, "a") as f:
        f.write(text)
    print(text)


main()
