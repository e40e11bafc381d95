"""litestream_metrics(): Prometheus text of every database the process
replicates, parsed by Prometheus' own parser (python3-prometheus-client),
with values that agree with the files and litestream_status()."""
import json
import os
import sqlite3
import time

from prometheus_client.parser import text_string_to_metric_families

from harness import done, load, ok, scratch
from remote_harness import KIND, replica_url

load()
d = scratch("metrics")
cons, rep_urls = [], []
for i in range(3):
    db = os.path.join(d, f"db{i}.db")
    c = sqlite3.connect(db, isolation_level=None)
    rep_urls.append(replica_url(d, f'rep{i}'))
    c.execute(f"PRAGMA litestream_url = '{rep_urls[i]}'")
    c.execute("CREATE TABLE t(x)")
    for k in range(10 * (i + 1)):
        c.execute("INSERT INTO t VALUES (randomblob(500))")
    c.execute("SELECT litestream_sync()")
    cons.append((db, c))

# A database whose replica refuses uploads: a file where its directory
# should be (file backend), or an unreachable server (S3).
bad_db = os.path.join(d, "bad.db")
bad = sqlite3.connect(bad_db, isolation_level=None)
if KIND == "s3":
    bad_url = "s3://nobucket/x?endpoint=http://127.0.0.1:1&retries=0"
else:
    open(os.path.join(d, "blocked"), "w").close()
    bad_url = "file://" + os.path.join(d, "blocked", "replica")
bad.execute(f"PRAGMA litestream_url = '{bad_url}'")
bad.execute("CREATE TABLE t(x)")
bad.execute("INSERT INTO t VALUES (1)")
try:
    bad.execute("SELECT litestream_sync(2500)")
except sqlite3.Error:
    pass

text = cons[0][1].execute("SELECT litestream_metrics()").fetchone()[0]
try:
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    parsed = True
except Exception as ex:  # noqa: BLE001 - the parser's own error
    fams, parsed = {}, str(ex)
ok(parsed is True, f"Prometheus' parser reads the exposition ({parsed})")
want = ["litestream_db_size", "litestream_wal_size", "litestream_txid",
        "litestream_replicated_txid", "litestream_lag_seconds",
        "litestream_sync_count", "litestream_sync_error_count",
        "litestream_disk_full", "litestream_replica_operation",
        "litestream_replica_operation_bytes"]
ok(all(w in fams for w in want), f"families: {sorted(fams)}")
ok(all(f"# HELP {w}" in text and f"# TYPE {w}" in text
       for w in ["litestream_txid", "litestream_sync_count"]),
   "every metric has # HELP and # TYPE lines")


def value(name, **labels):
    for fam in fams.values():
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v
                                      for k, v in labels.items()):
                return s.value
    return None


for db, c in cons:
    st = json.loads(c.execute("SELECT litestream_status()").fetchone()[0])
    s = st["databases"][0]
    ok(value("litestream_db_size", db=db) == os.path.getsize(db) and
       value("litestream_txid", db=db) == int(s["txid"], 16) and
       value("litestream_replicated_txid", db=db) ==
       int(s["replicated_txid"], 16) and
       value("litestream_sync_count_total", db=db) == s["uploads"],
       f"{os.path.basename(db)}: size, txid, replicated txid and uploads "
       "agree with the file and litestream_status()")
rtype = "s3" if KIND == "s3" else "file"
puts = value("litestream_replica_operation_total", replica_type=rtype,
             operation="PUT")
ok(puts is not None and puts >= 3,
   f"replica operations by type and operation: {rtype} PUT = {puts}")
ok((value("litestream_sync_error_count_total", db=bad_db) or 0) >= 1 and
   value("litestream_pending_txns", db=bad_db) >= 1,
   "the database whose replica refuses uploads shows errors and pending "
   f"transactions ({value('litestream_sync_error_count_total', db=bad_db)}, "
   f"{value('litestream_pending_txns', db=bad_db)})")

# Several replicas of different types: each replica's requests count under
# its own replica_type (the status's top-level url is the whole list, whose
# first scheme took every request before).
os.environ.setdefault("AWS_ACCESS_KEY_ID", "k")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "s")
two_db = os.path.join(d, "two.db")
two = sqlite3.connect(two_db, isolation_level=None)
two_file = "file://" + os.path.join(d, "two-rep")
two.execute("PRAGMA litestream_url = 's3://nobucket/two?endpoint="
            f"http://127.0.0.1:1&retries=0 {two_file}'")
two.execute("CREATE TABLE t(x)")
two.execute("INSERT INTO t VALUES (1)")
deadline = time.time() + 30
while time.time() < deadline:
    st = json.loads(two.execute("SELECT litestream_status()").fetchone()[0])
    reps = st["databases"][0]["replicas"]
    if reps[1]["counters"]["put"] >= 1 and \
            reps[1]["replicated_txid"] == st["databases"][0]["txid"]:
        break
    time.sleep(0.05)
file_puts = 0  # every file replica's PUTs, read before the metrics
for c in [c for _, c in cons] + [bad, two]:
    for db in json.loads(c.execute(
            "SELECT litestream_status()").fetchone()[0])["databases"]:
        for rep in db.get("replicas", []):
            if rep["url"].startswith("file:"):
                file_puts += rep["counters"]["put"]
text = cons[0][1].execute("SELECT litestream_metrics()").fetchone()[0]
fams = {f.name: f for f in text_string_to_metric_families(text)}
got = value("litestream_replica_operation_total", replica_type="file",
            operation="PUT")
ok(reps[1]["counters"]["put"] >= 1 and got is not None and got >= file_puts,
   f"'s3://… file://…': the file replica's PUTs ({reps[1]['counters']['put']})"
   f" count as replica_type file ({got} >= {file_puts})")
two.execute("PRAGMA litestream_url = ''")
two.close()

# --- heartbeat ---------------------------------------------------------------
import http.server  # noqa: E402
import threading  # noqa: E402

pings = []


class Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        pings.append(time.time())
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


hb = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ping)
threading.Thread(target=hb.serve_forever, daemon=True).start()
c0 = cons[0][1]
hb_url = f"http://127.0.0.1:{hb.server_address[1]}/ping"
c0.execute(f"PRAGMA litestream_heartbeat_url = '{hb_url}'")
c0.execute("PRAGMA litestream_heartbeat_interval = 300")
ok(cons[1][1].execute("PRAGMA litestream_heartbeat_url").fetchone()[0] ==
   hb_url and cons[1][1].execute(
       "PRAGMA litestream_heartbeat_interval").fetchone()[0] in (300, "300"),
   "the heartbeat is the process's: another database's connection reads it")
time.sleep(2.5)
ok(len(pings) == 0, f"no ping while one database cannot upload ({len(pings)})")
bad.execute("PRAGMA litestream_url = ''")  # stop replicating it
deadline = time.time() + 10
while len(pings) < 2 and time.time() < deadline:
    time.sleep(0.1)
ok(len(pings) >= 2, f"pings once every database is healthy ({len(pings)})")
gaps = [b - a for a, b in zip(pings, pings[1:])]
ok(all(g >= 0.25 for g in gaps), f"at most one GET per interval: {gaps}")
# A dead endpoint: failures are counted, one per interval at most.
hb.shutdown()
hb.server_close()
c0.execute("PRAGMA litestream_heartbeat_interval = 500")
time.sleep(2.6)
text = c0.execute("SELECT litestream_metrics()").fetchone()[0]
fams = {f.name: f for f in text_string_to_metric_families(text)}
errs = value("litestream_heartbeat_total", result="error")
ok(errs is not None and 1 <= errs <= 7,
   f"a dead heartbeat endpoint: {errs} failed GETs in 2.6 s, counted, "
   "never a tight loop")
for bad_val in ["ftp://x", "soon"]:
    name = "url" if bad_val.startswith("ftp") else "interval"
    try:
        c0.execute(f"PRAGMA litestream_heartbeat_{name} = '{bad_val}'")
        e = None
    except sqlite3.Error as ex:
        e = str(ex)
    ok(e and "litestream_heartbeat" in e, f"bad heartbeat {name}: {e}")
c0.execute("PRAGMA litestream_heartbeat_url = ''")

# The Python example of docs/sql.md, on a free port.
import sys  # noqa: E402
import urllib.request  # noqa: E402
sys.path.insert(0, os.path.join(os.environ["LITESTREAM_SRCDIR"], "examples"))
import metrics_server  # noqa: E402

srv = metrics_server.serve(sqlite3.connect(":memory:",
                                           check_same_thread=False), port=0)
url = f"http://127.0.0.1:{srv.server_address[1]}/metrics"
with urllib.request.urlopen(url, timeout=10) as resp:
    ctype, body = resp.headers["Content-Type"], resp.read().decode()
names = {f.name for f in text_string_to_metric_families(body)}
ok(ctype.startswith("text/plain; version=0.0.4") and
   "litestream_txid" in names and cons[1][0] in body,
   f"examples/metrics_server.py serves it on /metrics ({ctype})")
srv.shutdown()

# --- read replicas (litestream-remote) -----------------------------------------
from remote_harness import remote, requests as rreq  # noqa: E402

r1 = remote(rep_urls[2], poll_ms=0)
r2 = remote(rep_urls[2], poll_ms=0, hydration=1,
            hydration_path=os.path.join(d, "copy.db"))
r1.execute("SELECT count(*), sum(length(x)) FROM t").fetchone()
deadline = time.time() + 60
while (r2.execute("PRAGMA litestream_hydration_status").fetchone()[0] !=
       "complete" and time.time() < deadline):
    r2.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    time.sleep(0.02)
r2.execute("SELECT count(*) FROM t").fetchone()
text = c0.execute("SELECT litestream_metrics()").fetchone()[0]
fams = {f.name: f for f in text_string_to_metric_families(text)}
ok("litestream_vfs_requests" in fams and
   "litestream_vfs_hydration_progress" in fams,
   "Prometheus' parser reads the read replicas' families")


def samples(name):
    return [s for f in fams.values() for s in f.samples if s.name == name]


conns = sorted({s.labels["conn"] for s in samples("litestream_vfs_lag_seconds")
                if s.labels.get("url") == rep_urls[2]})
ok(len(conns) == 2, f"two read replicas of {rep_urls[2]}: conn {conns}")
good = True
for rc, conn in zip((r1, r2), conns):
    q = rreq(rc)
    h = q["hydration"]
    lab = {"url": rep_urls[2], "conn": conn}
    want = {
        ("litestream_txid", None): int(rc.execute(
            "PRAGMA litestream_txid").fetchone()[0], 16),
        ("litestream_vfs_requests_total", "GET"): q["get"] + h["get"],
        ("litestream_vfs_requests_total", "LIST"): q["list"],
        ("litestream_vfs_bytes_total", None): q["bytes_down"] +
        h["bytes_down"],
        ("litestream_vfs_cache_hits_total", None): q["cache_hits"],
        ("litestream_vfs_cache_misses_total", None): q["cache_misses"],
        ("litestream_vfs_file_reads_total", None): q["file_reads"]}
    for (name, op), v in want.items():
        extra = {"operation": op} if op else {}
        got = value(name, **lab, **extra)
        if got != v:
            good = False
            ok(False, f"conn {conn}: {name} {extra} = {got}, want {v}")
ok(good, "each replica's TXID, requests, bytes, cache hits/misses and file "
   "reads agree with PRAGMA litestream_txid and litestream_requests")
lag = value("litestream_vfs_lag_seconds", url=rep_urls[2], conn=conns[0])
ok(lag is not None and 0 <= lag < 600, f"litestream_vfs_lag_seconds {lag}")
ok(value("litestream_vfs_hydration_progress", url=rep_urls[2],
         conn=conns[1]) == 1.0 and
   value("litestream_vfs_hydration_progress", url=rep_urls[2],
         conn=conns[0]) is None,
   "hydration progress 1.0 for the hydrated replica; none without "
   "hydration")
gets = value("litestream_replica_operation_total", replica_type=rtype,
             operation="GET")
ok(gets is not None and gets >= rreq(r1)["get"] + rreq(r2)["get"],
   f"the replicas' GETs count in litestream_replica_operation_total ({gets})")
r1.close()
text = c0.execute("SELECT litestream_metrics()").fetchone()[0]
fams = {f.name: f for f in text_string_to_metric_families(text)}
left = sorted({s.labels["conn"] for s in samples("litestream_vfs_lag_seconds")})
ok(left == [conns[1]], f"a closed replica leaves the metrics ({left})")
r2.close()
done()
