#!/usr/bin/python3
"""S3 benchmark (part of `make bench`, test/bench/run.sh): the extension and
the Litestream v0.3.13 daemon side by side against one s3rver on loopback.

  e. requests per 1000 transactions at 100 transactions/s, 1 s sync
     interval, counted by a pass-through proxy in front of s3rver;
  f. restore of a BENCH_S3_RESTORE_MB (default 500) database from s3rver:
     litestream_restore() vs `litestream restore`, alternating, BENCH_REPS
     (default 3) each, medians and the ratio;
  l. an idle database: requests and wake-ups over BENCH_IDLE_SECONDS
     (default 40) with nothing written, once the writes before it have
     settled (idle_ext).

usage: s3_bench.py EXT_WITHOUT_SO DAEMON_BINARY WORKDIR OUT_MD
(DAEMON_BINARY may be "-" to skip the daemon.)  Appends markdown to OUT_MD.
"""
import json
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "servers"))
from servers import FaultProxy, S3Server  # noqa: E402

ext, daemon, work, out_md = sys.argv[1:5]
daemon = None if daemon == "-" else daemon
quick = os.environ.get("BENCH_QUICK") == "1"
restore_mb = int(os.environ.get("BENCH_S3_RESTORE_MB",
                                "40" if quick else "500"))
reps = int(os.environ.get("BENCH_REPS", "1" if quick else "3"))
n_txn = int(os.environ.get("BENCH_S3_TXNS", "300" if quick else "1000"))
idle_s = float(os.environ.get("BENCH_IDLE_SECONDS", "10" if quick else "40"))
only = os.environ.get("BENCH_ONLY")
rate = 100.0


def progress(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def load_ext():
    c = sqlite3.connect(":memory:")
    c.enable_load_extension(True)
    c.load_extension(ext)
    return c


def daemon_config(path, db, endpoint, prefix, bucket):
    with open(path, "w") as f:
        f.write(f"""access-key-id: {s3.key}
secret-access-key: {s3.secret}
dbs:
  - path: {db}
    monitor-interval: 1s
    replicas:
      - type: s3
        bucket: {bucket}
        path: {prefix}
        endpoint: {endpoint}
        region: us-east-1
        force-path-style: true
        sync-interval: 1s
""")


def paced_writes(con, n):
    """n one-row transactions at `rate` per second."""
    t0 = time.monotonic()
    for i in range(n):
        con.execute("INSERT INTO t(v) VALUES (randomblob(100))")
        delay = t0 + (i + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def counts(px):
    c = px.counts
    return {m: c.get(m, 0) for m in ("PUT", "GET", "HEAD", "POST", "DELETE")}


def req_ext(px):
    d = os.path.join(work, "e-ext")
    os.makedirs(d)
    load_ext()
    con = sqlite3.connect(os.path.join(d, "db.sqlite"), isolation_level=None)
    con.execute(f"PRAGMA litestream_url = 's3://bench/e-ext?endpoint="
                f"{px.endpoint}'")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    con.execute("SELECT litestream_sync(30000)")
    px.clear_log()
    paced_writes(con, n_txn)
    time.sleep(1.5)  # the last interval's upload
    c = counts(px)
    lst = len(px.requests("GET", "list-type"))
    c["GET"] -= lst
    c["LIST"] = lst
    con.close()
    return c


def req_daemon(px):
    d = os.path.join(work, "e-daemon")
    os.makedirs(d)
    db = os.path.join(d, "db.sqlite")
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=wal")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    cfg = os.path.join(d, "litestream.yml")
    daemon_config(cfg, db, px.endpoint, "e-daemon", "bench")
    log = open(os.path.join(d, "daemon.log"), "w")
    p = subprocess.Popen([daemon, "replicate", "-config", cfg], stdout=log,
                         stderr=subprocess.STDOUT)
    time.sleep(3)  # first snapshot and the initial listing
    px.clear_log()
    paced_writes(con, n_txn)
    time.sleep(1.5)
    c = counts(px)
    lst = len(px.requests("GET", "list-type|delimiter|prefix="))
    c["GET"] -= lst
    c["LIST"] = lst
    p.terminate()
    p.wait()
    con.close()
    return c


IDLE_CHILD = r"""
import json, os, sqlite3, sys, time
so, db, endpoint, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def tasks():
    # {tid: (name, voluntary + involuntary context switches)}
    out = {}
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                name = f.read().strip()
            sw = 0
            with open(f"/proc/self/task/{t}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches",
                                        "nonvoluntary_ctxt_switches")):
                        sw += int(line.split()[1])
            out[int(t)] = (name, sw)
        except OSError:
            pass
    return out


before = set(tasks())
b = sqlite3.connect(":memory:")
b.enable_load_extension(True)
b.load_extension(so)
con = sqlite3.connect(db, isolation_level=None)
con.execute(f"PRAGMA litestream_url = 's3://bench/l-idle?endpoint={endpoint}'")
# Short levels and L0 retention, so that the work the writes leave for
# later (the merges into levels 1-3, the L0 deletions) is done before the
# window, not at a 5 min or 1 h boundary inside it.
con.execute("PRAGMA litestream_levels = '10s,20s,30s'")
con.execute("PRAGMA litestream_retention = '20s'")
con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
t0 = time.monotonic()
for i in range(n):
    con.execute("INSERT INTO t(v) VALUES (randomblob(100))")
    delay = t0 + (i + 1) / 100.0 - time.monotonic()
    if delay > 0:
        time.sleep(delay)
con.execute("SELECT litestream_sync(30000)")
print("synced", flush=True)
seconds = float(sys.stdin.readline())  # the parent says when it settled
ext = lambda m: {k: v for k, v in m.items() if k not in before}
a = ext(tasks())
time.sleep(seconds)
z = ext(tasks())
per = {}
for tid, (name, sw) in z.items():
    per[name] = per.get(name, 0) + sw - a.get(tid, (name, 0))[1]
st = json.loads(con.execute("SELECT litestream_status()").fetchone()[0])
print(json.dumps({"per": per, "threads": len(z),
                  "compactions": st["databases"][0]["compaction"]
                  ["compactions"]}), flush=True)
sys.stdin.readline()  # the parent counted: closing releases the lease
con.close()
"""


def kinds_of(log, t0):
    """{request kind: [seconds after t0]} (N = 16 hex digits)."""
    kinds = {}
    for r in log:
        k = r.method + " " + re.sub(r"[0-9a-f]{16}", "N",
                                    r.path.split("?")[0]) \
            + (" (list)" if "list-type" in r.path else "")
        kinds.setdefault(k, []).append(r.started - t0)
    return kinds


def idle_ext(px):
    """Requests and wake-ups of the extension's threads over idle_s seconds
    with nothing written.  A child process writes 100 paced commits and
    syncs (so that the proxy's threads in this process are not counted
    as the extension's); then it settles: the work the writes left for
    later is done first (levels of 10 s, 20 s and 30 s and an L0
    retention of 20 s, so the merges into levels 1-3 and the L0 deletions
    come within a minute, not at a 5 min or 1 h boundary of the default
    levels inside the window) and the writer lease's renewals, which go on
    for two TTLs (60 s) after the last upload: until the level-3 object was
    put and no request came for QUIET seconds (more than a renewal
    period).  Those
    requests are reported apart.  Then the window: every request through
    the proxy, and the context switches of the threads the extension
    started, per thread name."""
    quiet, limit = 15.0, 240.0
    d = os.path.join(work, "l-idle")
    os.makedirs(d)
    p = subprocess.Popen(["/usr/bin/python3", "-c", IDLE_CHILD, ext + ".so",
                          os.path.join(d, "db.sqlite"), px.endpoint, "100"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    if p.stdout.readline().strip() != "synced":
        raise RuntimeError("l: the idle child did not sync")
    px.clear_log()
    t_sync = time.monotonic()
    while time.monotonic() - t_sync < limit:
        log = px.log
        merged = any(r.method == "PUT" and "/0003/" in r.path for r in log)
        last = max([r.started for r in log], default=t_sync)
        if merged and time.monotonic() - last >= quiet:
            break
        time.sleep(0.5)
    settle_log = px.log
    settled = time.monotonic() - t_sync
    px.clear_log()
    idle_t0 = time.monotonic()
    p.stdin.write(f"{idle_s}\n")
    p.stdin.flush()
    res = json.loads(p.stdout.readline())
    window = px.log  # before the close, which releases the lease (a PUT)
    p.stdin.write("close\n")
    p.stdin.flush()
    p.wait()
    return (len(window), kinds_of(window, idle_t0), res["per"],
            res["threads"], settled, kinds_of(settle_log, t_sync))


def build_db(path, mb):
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=wal")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    rows = mb * 1024 * 1024 // 4096
    for _ in range(0, rows, 1000):
        con.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 "
                    "FROM c WHERE x<1000) INSERT INTO t(v) "
                    "SELECT randomblob(4000) FROM c")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def bucket_bytes(prefix):
    root = os.path.join(s3.data_dir, "bench", prefix)
    n = 0
    for dp, _, fs in os.walk(root):
        n += sum(os.path.getsize(os.path.join(dp, f)) for f in fs
                 if f.endswith("._S3rver_object"))
    return n


def wait_quiet(prefix, quiet=3.0, limit=600):
    last, t_change, t0 = -1, time.time(), time.time()
    while time.time() - t_change < quiet and time.time() - t0 < limit:
        b = bucket_bytes(prefix)
        if b != last:
            last, t_change = b, time.time()
        time.sleep(0.2)
    return last


cpu = {}


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def s3_cpu():
    """CPU seconds of the s3rver process so far (utime + stime)."""
    try:
        with open(f"/proc/{s3.pid}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def restore_bench():
    d = os.path.join(work, "f")
    os.makedirs(d)
    src = os.path.join(d, "src.sqlite")
    progress(f"f. building a {restore_mb} MB database")
    build_db(src, restore_mb)
    size = os.path.getsize(src)
    # The extension's replica: one full image (multipart upload).
    edb = os.path.join(d, "ext.sqlite")
    shutil.copy(src, edb)
    load_ext()
    url = f"s3://bench/f-ext?endpoint={s3.endpoint}"
    con = sqlite3.connect(edb, isolation_level=None)
    con.execute(f"PRAGMA litestream_url = '{url}'")
    con.execute("SELECT litestream_sync(600000)")
    con.close()
    ext_bytes = bucket_bytes("f-ext")
    # The daemon's replica of the same database (snapshot + WAL).
    dcfg = None
    if daemon:
        ddb = os.path.join(d, "daemon.sqlite")
        shutil.copy(src, ddb)
        dcfg = os.path.join(d, "litestream.yml")
        daemon_config(dcfg, ddb, s3.endpoint, "f-daemon", "bench")
        log = open(os.path.join(d, "daemon.log"), "w")
        p = subprocess.Popen([daemon, "replicate", "-config", dcfg],
                             stdout=log, stderr=subprocess.STDOUT)
        time.sleep(2)
        wait_quiet("f-daemon")
        p.terminate()
        p.wait()
    t_ext, t_dae = [], []
    cpu["ext"], cpu["daemon"], cpu["s3_ext"], cpu["s3_daemon"] = [], [], [], []
    q = load_ext()
    for i in range(reps):
        out = os.path.join(d, "out-ext.sqlite")
        for f in (out, out + "-wal", out + "-shm"):
            if os.path.exists(f):
                os.remove(f)
        c0, s0 = self_cpu(), s3_cpu()
        t0 = time.monotonic()
        q.execute("SELECT litestream_restore(?, ?)", (url, out))
        t_ext.append(time.monotonic() - t0)
        cpu["ext"].append(self_cpu() - c0)
        cpu["s3_ext"].append(s3_cpu() - s0)
        os.remove(out)
        if daemon:
            outd = os.path.join(d, "out-daemon.sqlite")
            c0, s0 = children_cpu(), s3_cpu()
            t0 = time.monotonic()
            subprocess.run([daemon, "restore", "-config", dcfg, "-o", outd,
                            os.path.join(d, "daemon.sqlite")], check=True,
                           capture_output=True)
            t_dae.append(time.monotonic() - t0)
            cpu["daemon"].append(children_cpu() - c0)
            cpu["s3_daemon"].append(s3_cpu() - s0)
            os.remove(outd)
        progress(f"f. rep {i + 1}/{reps}: extension {t_ext[-1]:.2f} s"
                 + (f", daemon {t_dae[-1]:.2f} s" if t_dae else ""))
    return size, ext_bytes, bucket_bytes("f-daemon"), t_ext, t_dae


os.makedirs(work, exist_ok=True)
s3 = S3Server(buckets=("bench",)).start()
os.environ["AWS_ACCESS_KEY_ID"] = s3.key
os.environ["AWS_SECRET_ACCESS_KEY"] = s3.secret
px = FaultProxy(s3).start()
try:
    ce = cd = None
    if not only or "e" in only:
        progress(f"e. {n_txn} transactions at {rate:.0f}/s, extension")
        ce = req_ext(px)
    if daemon and (not only or "e" in only):
        progress(f"e. {n_txn} transactions at {rate:.0f}/s, daemon")
        cd = req_daemon(px)
    idle = None
    if not only or "l" in only:
        progress(f"l. idle for {idle_s:.0f} s, extension on s3rver")
        idle = idle_ext(px)
    te = None
    if not only or "f" in only:
        size, eb, db_, te, td = restore_bench()
finally:
    px.stop()
    s3.stop()

secs = n_txn / rate


def write_requests(f):
    f.write(f"\n## e. S3 requests per 1000 transactions (s3rver, {rate:.0f} "
            f"txn/s, 1 s sync interval, {n_txn} txns over {secs:.0f} s)\n\n")
    f.write("| | PUT | GET | LIST | POST | DELETE | PUT per second |\n")
    f.write("|---|---|---|---|---|---|---|\n")
    for name, c in (("extension", ce), ("daemon v0.3.13", cd)):
        if c is None:
            continue
        k = 1000.0 / n_txn
        f.write(f"| {name} | {c['PUT'] * k:.0f} | {c['GET'] * k:.0f} | "
                f"{c['LIST'] * k:.0f} | {c['POST'] * k:.0f} | "
                f"{c['DELETE'] * k:.0f} | {c['PUT'] / secs:.2f} |\n")


def write_idle(f):
    reqs, kinds, per, nthr, settled, before = idle
    wk = sum(per.values()) / idle_s
    f.write(f"\n## l. idle: nothing written for {idle_s:.0f} s "
            f"(s3rver, one database)\n\n")
    f.write(f"100 paced commits and `litestream_sync()`, then {settled:.0f} s "
            "of settling (levels '10s,20s,30s', L0 retention 20 s: until the "
            "writes' level-3 merge was put and no "
            "request came for 15 s: the work the writes left for later), "
            f"then {idle_s:.0f} s with nothing written.\n\n")
    f.write("| | value | goal |\n|---|---:|---|\n")
    f.write(f"| requests (all methods, through the counting proxy) | "
            f"{reqs} | 0: {'met' if reqs == 0 else '**MISSED**'} |\n")
    f.write(f"| wake-ups per second (context switches of the "
            f"extension's {nthr} threads) | {wk:.2f} | <= 1: "
            f"{'met' if wk <= 1 else '**MISSED**'} |\n")
    f.write("\nPer thread (context switches over the window): " + ", ".join(
        f"`{k}` {v}" for k, v in sorted(per.items())) + "\n")
    if kinds:
        f.write("\nRequests (seconds into the window; N = 16 hex digits): "
                + "; ".join(f"`{k}` at " + ", ".join(f"{t:.1f}" for t in v)
                            for k, v in sorted(kinds.items())) + "\n")
    if before:
        f.write("\nWhile settling, not counted (seconds after the sync): "
                + "; ".join(f"`{k}` at " + ", ".join(f"{t:.1f}" for t in v)
                            for k, v in sorted(before.items())) + "\n")


def write_restore(f):
    f.write(f"\n## f. restore of a {restore_mb} MB database from s3rver\n\n")
    me = statistics.median(te)
    f.write(f"database {size / 1e6:.0f} MB; extension replica "
            f"{eb / 1e6:.0f} MB, daemon replica {db_ / 1e6:.0f} MB; "
            f"{reps} reps alternating, medians\n\n")
    f.write("| | seconds | runs | MB/s | speed vs daemon |\n"
            "|---|---|---|---|---|\n")
    runs = ", ".join(f"{t:.2f}" for t in te)
    if td:
        md = statistics.median(td)
        f.write(f"| extension `litestream_restore('s3://…')` | **{me:.2f}** "
                f"| {runs} | {size / 1e6 / me:.0f} | **{md / me:.2f}x** "
                f"({'faster' if me < md else 'SLOWER'}; goal >= 1) |\n")
        f.write(f"| daemon `litestream restore` | {md:.2f} | "
                + ", ".join(f"{t:.2f}" for t in td)
                + f" | {size / 1e6 / md:.0f} | 1 |\n")
    else:
        f.write(f"| extension | {me:.2f} | {runs} | {size / 1e6 / me:.0f} "
                "| - |\n")
    m = statistics.median
    f.write(f"\nCPU seconds (medians): the restoring process "
            f"{m(cpu['ext']):.2f} (extension: every thread of it) "
            + (f"vs {m(cpu['daemon']):.2f} (daemon)" if cpu["daemon"] else "")
            + f"; s3rver while serving it {m(cpu['s3_ext']):.2f}"
            + (f" vs {m(cpu['s3_daemon']):.2f}" if cpu["s3_daemon"] else "")
            + ". s3rver is one Node process: when its CPU is close to the "
            "wall time, the server bounds the restore.\n")


with open(out_md, "a") as f:
    if ce:
        write_requests(f)
    if idle:
        write_idle(f)
    if te:
        write_restore(f)
progress("s3 done")
