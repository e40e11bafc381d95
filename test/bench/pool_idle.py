#!/usr/bin/python3
"""Many idle databases in one process on the shared pool
(storage/base/pool.c; docs/benchmarks.md, "Many databases: the shared
pool").

Opens N databases (default 1000) in this process, each replicated to its own
prefix of one s3rver behind a counting proxy, writes a few transactions to
each and syncs them, waits SETTLE seconds for the first compactions and
retention passes, then measures an idle window of IDLE seconds with nothing
written: the process's threads (by name), RSS, CPU (user + system) and the
requests by kind, each also as a rate per idle hour.

usage: LITESTREAM_SO=build/litestream.so /usr/bin/python3 \\
         test/bench/pool_idle.py [N [IDLE [SETTLE]]]
Environment: POOL_IDLE_LEVELS (e.g. '2s,4s') and POOL_IDLE_RETENTION (e.g.
'4s') set PRAGMA litestream_levels / litestream_retention on every database,
so the replicas settle within seconds (the default settings take hours to
settle: 30s,5m,1h levels, 5 min L0 retention).  Prints markdown.
"""
import json
import os
import re
import resource
import sqlite3
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "servers"))
from servers import FaultProxy, S3Server  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
IDLE = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
SETTLE = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
LEVELS = os.environ.get("POOL_IDLE_LEVELS")
RETENTION = os.environ.get("POOL_IDLE_RETENTION")
SO = os.environ["LITESTREAM_SO"]
if SO.endswith(".so"):
    SO = SO[:-3]


def progress(msg):
    print("pool_idle: " + msg, file=sys.stderr, flush=True)


def threads():
    names = {}
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                n = f.read().strip()
        except OSError:
            continue
        names[n] = names.get(n, 0) + 1
    return names


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def ctx_switches():
    """{tid: voluntary + involuntary context switches} of this process."""
    out = {}
    for t in os.listdir("/proc/self/task"):
        try:
            n = 0
            with open(f"/proc/self/task/{t}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches",
                                        "nonvoluntary_ctxt_switches")):
                        n += int(line.split()[1])
            out[t] = n
        except OSError:
            pass
    return out


def switched(x0, x1):
    """Context switches between two ctx_switches(): per thread alive at the
    end (a pool worker that ended in the window, after a minute without
    work, takes its count with it: not subtracted)."""
    return sum(n - x0.get(t, 0) for t, n in x1.items())


def kind(method, path):
    if method == "GET" and "list-type" in path:
        return "LIST"
    return method


def server_process():
    """s3rver and the counting proxy in a child process (their threads are
    not this process's): endpoint and keys on stdout, then one command per
    line on stdin: "clear" empties the log, "report" prints it as JSON."""
    r_cmd, w_cmd = os.pipe()
    r_out, w_out = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w_cmd)
        os.close(r_out)
        s3 = S3Server(buckets=("bench",)).start()
        px = FaultProxy(s3).start()
        out = os.fdopen(w_out, "w")
        out.write(json.dumps([px.endpoint, s3.key, s3.secret]) + "\n")
        out.flush()
        for line in os.fdopen(r_cmd):
            if line.strip() == "clear":
                px.clear_log()
                out.write("[]\n")
            else:
                out.write(json.dumps([[r.method, r.path] for r in px.log])
                          + "\n")
            out.flush()
        px.stop()
        s3.stop()
        os._exit(0)
    os.close(r_cmd)
    os.close(w_out)
    return pid, os.fdopen(w_cmd, "w"), os.fdopen(r_out)


def ask(srv, cmd):
    srv[1].write(cmd + "\n")
    srv[1].flush()
    return json.loads(srv[2].readline())


soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
work = os.environ.get("POOL_IDLE_DIR", "/tmp/pool_idle")
os.makedirs(work, exist_ok=True)
srv = server_process()
endpoint, key, secret = json.loads(srv[2].readline())
os.environ["AWS_ACCESS_KEY_ID"] = key
os.environ["AWS_SECRET_ACCESS_KEY"] = secret
try:
    c = sqlite3.connect(":memory:")
    c.enable_load_extension(True)
    c.load_extension(SO)
    t_base = sum(threads().values())
    rss0 = rss_mb()
    dbs = []
    t0 = time.monotonic()
    for i in range(N):
        db = os.path.join(work, f"db{i}.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
        con = sqlite3.connect(db, isolation_level=None, timeout=30)
        con.execute(f"PRAGMA litestream_url = 's3://bench/p{os.getpid()}/"
                    f"{i}?endpoint={endpoint}'")
        if LEVELS:
            con.execute(f"PRAGMA litestream_levels = '{LEVELS}'")
        if RETENTION:
            con.execute(f"PRAGMA litestream_retention = '{RETENTION}'")
        con.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v)")
        for k in range(3):
            con.execute("INSERT INTO t(v) VALUES (randomblob(200))")
        dbs.append(con)
        if (i + 1) % 100 == 0:
            progress(f"{i + 1} databases open")
    for con in dbs:
        con.execute("SELECT litestream_sync(120000)")
    setup_s = time.monotonic() - t0
    progress(f"{N} databases written and synced in {setup_s:.0f} s; "
             f"settling {SETTLE:.0f} s")
    time.sleep(SETTLE)
    ask(srv, "clear")
    c0, x0, w0 = cpu_s(), ctx_switches(), time.monotonic()
    time.sleep(IDLE)
    c1, x1, w1 = cpu_s(), ctx_switches(), time.monotonic()
    names = threads()
    rss = rss_mb()
    log = ask(srv, "report")
    reqs = {}
    for m, p in log:
        reqs[kind(m, p)] = reqs.get(kind(m, p), 0) + 1
    win = w1 - w0
    per_h = 3600.0 / win
    pool = ", ".join(f"`{k}` {v}" for k, v in sorted(names.items())
                     if k.startswith("ls-"))
    print(f"\n#### {N} idle databases, one process, s3rver "
          f"({win:.0f} s idle window after {SETTLE:.0f} s settling"
          + (f"; levels {LEVELS}" if LEVELS else "")
          + (f", retention {RETENTION}" if RETENTION else "") + ")\n")
    print("| | value | per idle hour |\n|---|---:|---:|")
    print(f"| threads (process; before the first database: {t_base}) | "
          f"{sum(names.values())} | |")
    print(f"| RSS (MB; {rss0:.1f} before the first database) | {rss:.1f} | |")
    print(f"| CPU (s, user + system, whole process) | {c1 - c0:.2f} | "
          f"{(c1 - c0) * per_h:.0f} s |")
    xs = switched(x0, x1)
    print(f"| context switches (all threads) | {xs} | "
          f"{xs * per_h:.0f} |")
    for k in ("LIST", "GET", "PUT", "DELETE", "POST", "HEAD"):
        n = reqs.get(k, 0)
        print(f"| {k} requests | {n} | {n * per_h:.0f} |")
    print(f"\nPool threads: {pool}; setup (open, write, sync every database): "
          f"{setup_s:.0f} s.")
    kinds = {}
    for m, p in log:
        k = m + " " + re.sub(r"/\d+/", "/I/", re.sub(
            r"[0-9a-f]{16}", "N", p.split("?")[0])) + (
            " (list)" if "list-type" in p else "")
        kinds[k] = kinds.get(k, 0) + 1
    if kinds:
        print("Requests in the window: " + ", ".join(
            f"`{k}` {v}" for k, v in sorted(kinds.items())))
    for con in dbs:
        con.close()
finally:
    srv[1].close()
    os.waitpid(srv[0], 0)
