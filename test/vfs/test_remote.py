#!/usr/bin/python3
"""The read replica (`litestream-remote` VFS): what a query costs in
requests, clear errors for every bad input, read-only, read-your-writes
(min_txid), and robustness to objects disappearing or moving between
listing and reading (what compaction and retention do)."""
import os
import random
import sqlite3
import shutil
import struct
import subprocess
import threading
import time
import urllib.parse

from harness import SO, cleanup, done, load, ok, scratch
from remote_harness import (KIND, remote, remote_uri, replica, replica_url,
                            requests, txid, writer_txid)

load()
SHELL = shutil.which("sqlite3")
d = scratch("remote")
db = os.path.join(d, "app.db")
url = replica_url(d)
N = 20000

w = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
w.execute(f"PRAGMA litestream_url = '{url}'")
w.execute("PRAGMA litestream_sync_interval = 100")
w.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
w.execute("BEGIN")
for i in range(1, N + 1):
    w.execute("INSERT INTO t VALUES (?, ?)", (i, f"{i:08d}" + "v" * 192))
w.execute("COMMIT")
T1 = w.execute("SELECT litestream_sync(10000)").fetchone()[0]


def btree_depth(path, table):
    """Levels of the table's B-tree, walked in the file (right-most path)."""
    c = sqlite3.connect(f"file:{path}?vfs=unix", uri=True)
    root = c.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?",
                     (table,)).fetchone()[0]
    ps = c.execute("PRAGMA page_size").fetchone()[0]
    c.close()
    data, depth, pg = open(path, "rb").read(), 1, root
    while True:
        hdr = (pg - 1) * ps + (100 if pg == 1 else 0)
        if data[hdr] == 0x0D:
            return depth
        pg = struct.unpack(">I", data[hdr + 8:hdr + 12])[0]
        depth += 1


depth = btree_depth(db, "t")
pages = w.execute("PRAGMA page_count").fetchone()[0]

# --- basics -----------------------------------------------------------------
r = remote(url, poll_ms=0)
ok(r.execute("SELECT count(*), sum(id) FROM t").fetchone() ==
   (N, N * (N + 1) // 2), f"the replica reads back {N} rows")
ok(txid(r) == T1, f"PRAGMA litestream_txid = {T1:016x}")
lag = int(r.execute("PRAGMA litestream_lag").fetchone()[0])
ok(0 <= lag < 60000, f"PRAGMA litestream_lag = {lag} ms")
ok(r.execute("PRAGMA litestream_url").fetchone()[0] == url,
   "PRAGMA litestream_url shows the replica")
hdr = r.execute("PRAGMA journal_mode").fetchone()[0]
ok(hdr == "delete", f"served as a rollback-journal database ({hdr})")
r.close()

# --- request counting -------------------------------------------------------
r = remote(url, poll_ms=0)
r.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # schema: page 1
g0 = requests(r)["get"]
r.execute("SELECT v FROM t WHERE id = 12345").fetchone()
cold = requests(r)["get"] - g0
ok(1 <= cold <= depth, f"cold point lookup: {cold} requests "
   f"(B-tree depth {depth})")
g0 = requests(r)["get"]
r.execute("SELECT v FROM t WHERE id = 12345").fetchone()
ok(requests(r)["get"] - g0 == 0, "warm point lookup: no request")
r.close()
r = remote(url, poll_ms=0)
r.execute("SELECT sum(length(v)) FROM t").fetchone()
q = requests(r)
ok(q["get"] * 10 < pages, f"full scan of {pages} pages: {q['get']} "
   f"requests ({q['pages_fetched']} pages fetched, read-ahead)")
r.close()
r = remote(url, poll_ms=0, cache_mb=1)
r.execute("SELECT sum(length(v)) FROM t").fetchone()
r.execute("SELECT sum(length(v)) FROM t").fetchone()
q = requests(r)
ok(q["pages_fetched"] > pages, "cache_mb=1 bounds the cache: a second "
   f"scan fetches again ({q['pages_fetched']} pages for 2 scans)")
r.close()

# --- a replica written by the reference implementation ----------------------
ref = os.path.join(os.environ["LITESTREAM_TESTDATA"], "ltx")
refrep = replica(replica_url(d, "reference"))
refrep.put(refrep.key(0, 1, 1),
           open(os.path.join(ref, "mid-4096.ltx"), "rb").read())
r = remote(refrep.url)
local = sqlite3.connect(f"file:{os.path.join(ref, 'mid-4096.db')}?vfs=unix"
                        "&mode=ro", uri=True)
same = list(r.iterdump()) == list(local.iterdump())
ok(same and r.execute("PRAGMA integrity_check").fetchone()[0] == "ok",
   "an LTX file written by the reference Go implementation (mid-4096.ltx) "
   "reads back as its database")
local.close()
r.close()

# --- connections of several threads, each with its own state ------------
results = []


def reader_thread(k):
    c = remote(url, poll_ms=0)
    rr = random.Random(k)
    good = all(c.execute("SELECT v FROM t WHERE id = ?", (i,)).fetchone()[0]
               .startswith(f"{i:08d}")
               for i in (rr.randint(1, N) for _ in range(300)))
    results.append(good and c.execute("SELECT count(*) FROM t").fetchone()[0]
                   == N)
    c.close()


threads = [threading.Thread(target=reader_thread, args=(k,)) for k in range(4)]
for th in threads:
    th.start()
for th in threads:
    th.join()
ok(results == [True] * 4, "4 threads, each with its own replica connection, "
   "read the same rows")

# --- writes are refused -----------------------------------------------------
r = remote(url)
for sql in ("INSERT INTO t VALUES (NULL, 'x')", "CREATE TABLE u(x)",
            "DELETE FROM t", "PRAGMA user_version = 7"):
    try:
        r.execute(sql)
        ok(False, f"{sql}: refused")
    except sqlite3.Error as e:
        ok(e.sqlite_errorcode == sqlite3.SQLITE_READONLY and
           "readonly" in str(e), f"{sql}: SQLITE_READONLY ({e})")
    if r.in_transaction:
        r.execute("ROLLBACK")
r.execute("CREATE TEMP TABLE scratch(x)")
ok(True, "temp tables still work on a replica connection")
e = None
try:
    r.execute("PRAGMA litestream_url = 'file:///tmp/x'")
except sqlite3.Error as ex:
    e = str(ex)
ok(e and "cannot be replicated" in e, f"PRAGMA litestream_url = ...: {e}")
st = r.execute("SELECT litestream_status()").fetchone()[0]
ok("read replica" in st, f"litestream_status() says it is a replica: {st}")
r.close()


# --- errors -----------------------------------------------------------------
open_codes = []  # (where it failed, error code, message) of each open_err


def open_err(uri):
    t0 = time.time()
    where = "connect"
    try:
        c = sqlite3.connect(uri, uri=True)
        where = "statement"
        c.execute("SELECT 1 FROM t").fetchone()
    except sqlite3.Error as ex:
        open_codes.append((where, ex.sqlite_errorcode, str(ex)))
        return str(ex), time.time() - t0
    return None, time.time() - t0


empty = os.path.join(d, "empty")
os.makedirs(empty)
empty_s3 = replica_url(d, "empty") if KIND == "s3" else None
os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIAUNREACHABLE")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "unused")
for what, uri, want in [
        ("no URL", "file:x.db?vfs=litestream-remote", "no replica URL"),
        ("unknown scheme", remote_uri("ftp://host/x"), "unknown URL scheme"),
        ("relative path", remote_uri("rel/dir"), "absolute"),
        ("abs without an account", remote_uri("abs://container/x"),
         "no storage account"),
        ("unreachable server", remote_uri(
            "s3://bucket/x?endpoint=http://127.0.0.1:1&retries=0"),
         "Couldn't connect"),
        ("missing directory", remote_uri("file://" + d + "/nope"),
         "empty or does not exist"),
        ("empty replica", remote_uri("file://" + empty),
         "empty or does not exist"),
        ("empty s3 prefix", empty_s3 and remote_uri(empty_s3),
         "empty or does not exist"),
        ("bad poll_ms", remote_uri(url, poll_ms="soon"), "poll_ms"),
        ("bad time", remote_uri(url, time="yesterday"), "RFC 3339"),
        ("txid and time", remote_uri(url, txid=1, time="2026-01-01T00:00:00Z"),
         "exclude"),
        ("TXID not restorable", remote_uri(url, txid=T1 + 1000),
         "not a restorable point"),
        ("time before the replica", remote_uri(url, time="2000-01-01T00:00:00Z"),
         "nothing to restore")]:
    if uri is None:
        continue
    e, secs = open_err(uri)
    ok(e is not None and want in e and secs < 30,  # fails, never hangs
       f"{what}: open fails in {secs:.2f} s: {e}")
# The open itself fails, with the reason as the message (no "automatic
# extension loading failed" prefix) and SQLITE_CANTOPEN.
bad_opens = [o for o in open_codes
             if o[0] != "connect" or o[1] != sqlite3.SQLITE_CANTOPEN or
             not o[2].startswith("litestream-remote: ") or
             "automatic extension" in o[2]]
ok(open_codes and not bad_opens,
   f"{len(open_codes)} failed opens: sqlite3.connect() raises "
   f"SQLITE_CANTOPEN 'litestream-remote: <why>' ({bad_opens[:2]})")
# The sqlite3 shell says the same when .open fails.
if SHELL:
    out = subprocess.run(
        [SHELL, "-cmd", f".load {SO}", ":memory:",
         ".open file:x.db?vfs=litestream-remote&url=" +
         urllib.parse.quote("file://" + empty, safe="")],
        capture_output=True, text=True, timeout=60)
    ok("Error: unable to open database" in out.stderr and
       "litestream-remote: replica is empty" in out.stderr and
       "automatic extension" not in out.stderr,
       f"sqlite3 shell .open: {out.stderr.strip()}")
else:
    ok(True, "# SKIP sqlite3 shell not installed")
os.environ["LITESTREAM_REPLICA_URL"] = url
r = sqlite3.connect("file:env.db?vfs=litestream-remote", uri=True)
ok(r.execute("SELECT count(*) FROM t").fetchone()[0] == N,
   "the URL comes from LITESTREAM_REPLICA_URL when url= is absent")
r.close()
del os.environ["LITESTREAM_REPLICA_URL"]

# --- Litestream's VFS names --------------------------------------------------
# replica_url=, poll_interval= (a duration), cache_size= (bytes or with a
# unit) and litestream_txid()/_time()/_lag()/_set_time() as in Litestream.
lsq = ("file:lsnames.db?vfs=litestream-remote&replica_url=" +
       urllib.parse.quote(url, safe="") + "&poll_interval=250ms&cache_size=16MB")
r = sqlite3.connect(lsq, uri=True, isolation_level=None)
ok(r.execute("SELECT count(*) FROM t").fetchone()[0] == N,
   "replica_url=, poll_interval=250ms, cache_size=16MB open the replica")
tx, tm, lag = r.execute(
    "SELECT litestream_txid(), litestream_time(), litestream_lag()").fetchone()
ok(tx == r.execute("PRAGMA litestream_txid").fetchone()[0] and
   tm == r.execute("PRAGMA litestream_time").fetchone()[0] and
   isinstance(lag, int) and 0 <= lag < 3600,
   f"litestream_txid() {tx}, litestream_time() {tm}, litestream_lag() {lag} s "
   "match the PRAGMAs")
ok(r.execute("SELECT litestream_set_time('now')").fetchone()[0] is None and
   r.execute("SELECT litestream_txid()").fetchone()[0] == tx,
   "litestream_set_time('now') serves the newest state")
try:
    r.execute("SELECT litestream_set_time('1 week ago')")
    e = None
except sqlite3.Error as ex:
    e = str(ex)
ok(e and "nothing to restore" in e,
   f"litestream_set_time('1 week ago') before the replica began: {e}")
ok(r.execute("SELECT litestream_set_time('LATEST')").fetchone()[0] is None,
   "litestream_set_time('LATEST') follows the replica again")
r.close()
for what, q, want in [
        ("poll_interval", lsq.replace("250ms", "fast"), "poll_interval"),
        ("cache_size", lsq.replace("16MB", "12zz"), "cache_size"),
        ("both url and replica_url",
         lsq + "&url=" + urllib.parse.quote(url, safe=""), "same setting"),
        ("relative time", remote_uri(url, time="5 fortnights ago"),
         "5 minutes ago")]:
    e, secs = open_err(q)
    ok(e is not None and want in e, f"bad {what}: {e}")
try:
    w.execute("SELECT litestream_txid()")
    e = None
except sqlite3.Error as ex:
    e = str(ex)
ok(e and "not a read replica" in e,
   f"litestream_txid() on the primary says what it is for: {e}")

# --- read-your-writes: min_txid ----------------------------------------------
want = writer_txid(w) + 1
e, secs = open_err(remote_uri(url, min_txid=want, timeout_ms=300))
ok(e and "not visible" in e and 0.25 < secs < 30,
   f"min_txid beyond the replica: fails after the timeout ({secs:.2f} s): "
   f"{e}")
threading.Timer(0.3, lambda: (w.execute("INSERT INTO t VALUES (NULL, 'new')"),
                              w.execute("SELECT litestream_sync()"))).start()
t0 = time.time()
r = remote(url, min_txid=want, timeout_ms=10000, poll_ms=50)
ok(txid(r) >= want and r.execute("SELECT count(*) FROM t").fetchone()[0] ==
   N + 1, f"min_txid={want}: the open waited {time.time() - t0:.2f} s for "
   "the write to be visible")
r.close()

# min_txid on a replica that is still empty waits for the first upload.
d2 = os.path.join(d, "late")
os.makedirs(d2)
url2 = replica_url(d2)
w2 = sqlite3.connect(os.path.join(d2, "late.db"), isolation_level=None,
                     check_same_thread=False)


def late_start():
    w2.execute(f"PRAGMA litestream_url = '{url2}'")
    w2.execute("CREATE TABLE late(x)")
    w2.execute("SELECT litestream_sync()")


threading.Timer(0.3, late_start).start()
t0 = time.time()
r = remote(url2, min_txid=2, timeout_ms=10000)
ok(txid(r) >= 2 and r.execute("SELECT count(*) FROM late").fetchone() ==
   (0,), f"min_txid on an empty replica: waited {time.time() - t0:.2f} s "
   "for its first upload")
r.close()
w2.close()

# Time travel is refused inside a read transaction.
r = remote(url)
r.execute("BEGIN")
r.execute("SELECT count(*) FROM t").fetchone()
e = None
try:
    r.execute("PRAGMA litestream_txid = 1")
except sqlite3.Error as ex:
    e = str(ex)
r.execute("COMMIT")
ok(e and "finish it first" in e, f"time travel inside a transaction: {e}")
r.close()

# --- objects vanish or move between listing and reading --------------------
rep = replica(url)


def move_l0_to(level, which):
    """Moves the level-0 objects `which` picks from the sorted (min, max)
    list to `level`, as compaction (new object) plus retention would."""
    for lo, hi in which(rep.objects(0)):
        rep.move(rep.key(0, lo, hi), rep.key(level, lo, hi))


r = remote(url, poll_ms=0)
r.execute("SELECT v FROM t WHERE id = 1").fetchone()
t_before = txid(r)
r.execute("BEGIN")
r.execute("SELECT v FROM t WHERE id = 2").fetchone()
# "Compaction": every L0 object now lives in L1 instead.
move_l0_to(1, lambda objs: objs)
got = r.execute("SELECT count(*), sum(id) FROM t").fetchone()
r.execute("COMMIT")
q = requests(r)
ok(got[0] == N + 1 and txid(r) == t_before and q["replans"] >= 1,
   f"objects moved mid-transaction: same TXID re-planned from level 1 "
   f"and read on ({q['replans']} plans)")
r.close()

# A gap in level 0 is bridged from level 1.
r = remote(url, poll_ms=50)
start = txid(r)
for i in range(3):
    w.execute("INSERT INTO t VALUES (NULL, 'gap')")
    w.execute("SELECT litestream_sync()")
end = writer_txid(w)
move_l0_to(1, lambda objs: [o for o in objs if o[0] > start][:-1])
time.sleep(0.1)
got = r.execute("SELECT count(*) FROM t").fetchone()[0]
q = requests(r)
ok(txid(r) == end and got == N + 4 and q["replans"] == 1,
   f"a level-0 gap is bridged from level 1 without a re-plan "
   f"({start} -> {txid(r)})")
r.close()

# A corrupt frame: the query fails, the error names the object.
objs = [(lv, lo, hi) for lv in range(10) for lo, hi in rep.objects(lv)]
# The largest object; on a tie the higher level, which the latest plan
# reads (the startup snapshot, not the L1 object of the same pages).
big = max(objs, key=lambda o: (rep.size(rep.key(*o)), o[0]))
bad = replica(replica_url(d, "bad"))
rep.copy_levels(bad, range(10))
bigkey = bad.key(*big)
size = bad.size(bigkey)
bad.overwrite(bigkey, size // 2, b"\xff" * 64)
r = remote(bad.url, poll_ms=0)
e = None
try:
    r.execute("SELECT sum(length(v)) FROM t").fetchone()
except sqlite3.Error as ex:
    e = str(ex)
le = requests(r)["last_error"] or ""
ok(e is not None and "corrupt LTX object" in le and bigkey in le,
   f"a corrupt frame fails the query ({e}); PRAGMA litestream_requests "
   f"says: {le[:160]}")
r.close()
# A corrupt index: the open fails naming the object.
bad.overwrite(bigkey, size - 24, b"\xff" * 8)
e, secs = open_err(remote_uri(bad.url))
ok(e and "corrupt LTX object" in e and bigkey in e,
   f"a corrupt page index fails the open: {e}")

w.close()
cleanup(d)
done()
