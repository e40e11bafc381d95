#!/usr/bin/python3
"""Many databases (section p of `make bench`, test/bench/run.sh): N
databases in one process, configured by litestream_auto(dir, url), each
written once (a table and a row) and synced, then left idle.  Measured
over the idle window: the process's threads (/proc/self/task), its RSS
(VmRSS), the CPU seconds it used (getrusage, scaled to an hour), the
context switches of its threads per second, and the backend requests:
on a local directory the objects written and deleted in the replica
(every thread's, the compactor's too) and the requests
litestream_status()/litestream_metrics() counted; on s3rver every request
through the counting proxy (test/servers), by method, LIST apart.  Every
N runs in a child process of its own, after a baseline with the extension
loaded and no database.

usage: many.py EXT_WITHOUT_SO WORKDIR OUT_MD [N ...]   (appends markdown)
environment: BENCH_MANY_IDLE (seconds idle, default 60; 10 with
BENCH_QUICK=1), BENCH_MANY (the counts, default "200 1000"; "50 200"
with BENCH_QUICK=1), BENCH_MANY_S3 (the counts on s3rver, default "200";
"50" with BENCH_QUICK=1), BENCH_S3=0 (the local directory only)
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


def objects(rep):
    """The objects of a file replica (relative paths), or an empty set."""
    got = set()
    for top, _, files in os.walk(rep):
        got.update(os.path.join(top, f) for f in files
                   if f.endswith(".ltx"))
    return got


def child(ext, work, n, idle, url):
    """One measurement: n databases, then `idle` seconds of nothing.
    Prints "idle" when the window starts and "done" when it ends (the
    parent counts the proxy's requests in between), then the results."""
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
    ctl.execute("SELECT litestream_auto(?, ?)",
                (root, url or "file://" + rep))
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
    # Every database's first upload at once: a test server may time some
    # out; the replicator retries them, so wait (up to 15 minutes).
    retries = 0
    for c in cons:
        while True:
            try:
                c.execute("SELECT litestream_sync(60000)")
                break
            except sqlite3.OperationalError:
                retries += 1
                if time.monotonic() - t0 > 900:
                    raise
    setup = time.monotonic() - t0
    bad = [i for i, c in enumerate(cons)
           if not json.loads(c.execute("SELECT litestream_status()")
                             .fetchone()[0])["databases"][0]["replicating"]]
    time.sleep(3)  # the last uploads' bookkeeping settles
    r0, c0, s0, o0 = requests(ctl), cpu(), switches(), objects(rep)
    th0 = threads()
    print("idle", flush=True)
    time.sleep(idle)
    print("done", flush=True)
    r1, c1, s1, o1 = requests(ctl), cpu(), switches(), objects(rep)
    res = {
        "n": n, "idle_s": idle, "setup_s": round(setup, 1),
        "not_replicating": len(bad), "sync_retries": retries,
        "base_threads": base["threads"], "base_rss_kb": base["rss_kb"],
        "threads": max(th0, threads()), "rss_kb": proc_status("VmRSS"),
        "hwm_kb": proc_status("VmHWM"),
        "cpu_s": round(c1 - c0, 3),
        "switches_per_s": round((s1 - s0) / idle, 1),
        "counted": {k: r1[k] - r0[k] for k in OPS},
        "written": len(o1 - o0), "deleted": len(o0 - o1),
    }
    for c in cons:
        c.close()
    print(json.dumps(res), flush=True)


def table(results):
    out = []
    out.append("| replica | databases | threads | RSS | RSS per database "
               "| CPU while idle | wake-ups | requests while idle | LIST "
               "per database per hour |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in results:
        if r.get("failed"):
            out.append(f"| {r['where']} | {r['n']} | failed (see the "
                       "log) | | | | | | |")
            continue
        hour = 3600.0 / r["idle_s"]
        per_db = (r["rss_kb"] - r["base_rss_kb"]) / r["n"]
        if r["where"] == "s3rver":
            q = r["proxy"]
            reqs = ", ".join(f"{k} {q[k] * hour:.0f}/h" for k in q)
            lists = q["LIST"]
        else:
            q = r["counted"]
            reqs = (f"objects written {r['written'] * hour:.0f}/h, deleted "
                    f"{r['deleted'] * hour:.0f}/h; counted by "
                    "litestream_status(): " +
                    ", ".join(f"{k} {q[k] * hour:.0f}/h" for k in OPS))
            lists = q["LIST"]
        out.append(
            f"| {r['where']} | {r['n']} | {r['threads']} (none open: "
            f"{r['base_threads']}) | {r['rss_kb'] / 1024:.0f} MiB | "
            f"{per_db:.0f} KiB | {r['cpu_s'] * hour:.0f} s/h "
            f"({r['cpu_s']:.2f} s in {r['idle_s']:.0f} s) | "
            f"{r['switches_per_s']:.0f}/s | {reqs} | "
            f"{lists * hour / r['n']:.1f} |")
    return out


def run(ext, d, n, idle, url=None, px=None):
    """One child; with px, the proxy's requests over its idle window."""
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                          "--child", ext, d, str(n), str(idle), url or ""],
                         stdout=subprocess.PIPE, text=True)
    proxy = None
    last = ""
    for line in p.stdout:
        line = line.strip()
        if line == "idle" and px:
            px.clear_log()
        elif line == "done" and px:
            c = px.counts
            lst = len(px.requests("GET", "list-type"))
            proxy = {m: c.get(m, 0) for m in ("PUT", "GET", "HEAD", "POST",
                                               "DELETE")}
            proxy["GET"] -= lst
            proxy["LIST"] = lst
        elif line:
            last = line
    if p.wait(timeout=1200 + 2 * idle) != 0:
        progress(f"o: the run with {n} databases failed")
        return None
    res = json.loads(last)
    res["where"] = "s3rver" if px else "local directory"
    if proxy is not None:
        res["proxy"] = proxy
    return res


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        try:
            child(sys.argv[2], sys.argv[3], int(sys.argv[4]),
                  float(sys.argv[5]), sys.argv[6] if len(sys.argv) > 6 else "")
        except Exception as e:
            # Not the closes: each would wait for its database's upload.
            print(f"many.py: {e}", file=sys.stderr, flush=True)
            os._exit(1)
        return
    ext, work, out_md = sys.argv[1:4]
    quick = os.environ.get("BENCH_QUICK") == "1"
    idle = float(os.environ.get("BENCH_MANY_IDLE", "10" if quick else "60"))
    counts = [int(x) for x in (sys.argv[4:] or os.environ.get(
        "BENCH_MANY", "50 200" if quick else "200 1000").split())]
    # s3rver (one node process behind a Python proxy) does not take the
    # first uploads of 1,000 databases at once: 200 by default.
    s3_counts = [int(x) for x in os.environ.get(
        "BENCH_MANY_S3", "50" if quick else "200").split()]
    results = []
    for n in counts:
        d = os.path.join(work, f"many-{n}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        progress(f"o: {n} databases, local directory, {idle:.0f} s idle")
        results.append(run(ext, d, n, idle) or
                       {"n": n, "where": "local directory", "failed": 1})
        shutil.rmtree(d, ignore_errors=True)
    if os.environ.get("BENCH_S3", "1") != "0":
        sys.path.insert(0, os.path.join(os.path.dirname(
            os.path.abspath(__file__)), "..", "servers"))
        from servers import FaultProxy, S3Server
        s3 = S3Server(buckets=("bench",)).start()
        os.environ["AWS_ACCESS_KEY_ID"] = s3.key
        os.environ["AWS_SECRET_ACCESS_KEY"] = s3.secret
        px = FaultProxy(s3).start()
        try:
            for n in s3_counts:
                d = os.path.join(work, f"many-s3-{n}")
                shutil.rmtree(d, ignore_errors=True)
                os.makedirs(d)
                progress(f"o: {n} databases, s3rver, {idle:.0f} s idle")
                url = f"s3://bench/many-{n}?endpoint={px.endpoint}"
                results.append(run(ext, d, n, idle, url, px) or
                               {"n": n, "where": "s3rver", "failed": 1})
                shutil.rmtree(d, ignore_errors=True)
        finally:
            px.stop()
            s3.stop()
    lines = ["", f"### p. many databases: idle {idle:.0f} s after one write "
             "each (litestream_auto)", ""]
    lines += table(results)
    lines.append("")
    lines.append("Requests and CPU are scaled to an hour from the idle "
                 "window; RSS per database is over the baseline with the "
                 "extension loaded and no database; setup (open, write, "
                 "sync each): " + ", ".join(
                     f"{r['n']} on {r['where']}: {r['setup_s']} s"
                     for r in results if not r.get("failed")) +
                 "; databases not replicating: " + ", ".join(
                     str(r["not_replicating"]) for r in results
                     if not r.get("failed")) +
                 "; first syncs that timed out and were waited for again: "
                 + ", ".join(str(r["sync_retries"]) for r in results
                             if not r.get("failed")) + ".")
    text = "\n".join(lines) + "\n"
    with open(out_md, "a") as f:
        f.write(text)
    print(text)


main()
