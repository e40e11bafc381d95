#!/usr/bin/python3
"""Hydration of a read replica (hydration=1, hydration_path=): a background
copy of the database into a local file, fetched in whole-object ranges
(requests counted by the extension and, on S3, by a proxy in front of
s3rver), kept at the TXID served, resumed after a restart (and rewritten
when it does not match), paused by time travel, and failing cleanly (an
unwritable path, a file in use, a full disk) while reads go on from the
replica."""
import json
import os
import sqlite3
import subprocess
import time

from harness import cleanup, done, load, ok, scratch
from remote_harness import (KIND, remote, remote_uri, replica, replica_url,
                            requests, txid, writer_txid)

load()
d = scratch("remote-hydrate")
db = os.path.join(d, "app.db")
url = replica_url(d)
N, COMMITS = 20000, 5

w = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
w.execute(f"PRAGMA litestream_url = '{url}'")
w.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
w.execute("BEGIN")
for i in range(1, N + 1):
    w.execute("INSERT INTO t VALUES (?, ?)", (i, f"{i:08d}" + "v" * 192))
w.execute("COMMIT")
w.execute("SELECT litestream_sync(10000)")
for k in range(COMMITS):  # several objects, each changing a few pages
    w.execute("UPDATE t SET v = ? WHERE id % 997 = ?", (f"u{k}" * 50, k))
    w.execute("SELECT litestream_sync(10000)")
pages = w.execute("PRAGMA page_count").fetchone()[0]
rep = replica(url)


def replica_stats():
    objs = [(lv, lo, hi) for lv in range(10) for lo, hi in rep.objects(lv)]
    return len(objs), sum(rep.size(rep.key(*o)) for o in objs)


def status(c):
    return c.execute("PRAGMA litestream_hydration_status").fetchone()[0]


def hyd(c):
    return requests(c)["hydration"]


def wait_done(c, want="complete", timeout=60):
    """Starts read transactions (each may give the hydrator its next order)
    until the status is `want` (or failed)."""
    deadline = time.time() + timeout
    st = None
    while time.time() < deadline:
        c.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        st = status(c)
        if st == want or st.startswith("failed"):
            break
        time.sleep(0.02)
    return st


def total(c):
    return c.execute("SELECT count(*), sum(id), sum(length(v)) "
                     "FROM t").fetchone()


want_rows = w.execute("SELECT count(*), sum(id), sum(length(v)) "
                      "FROM t").fetchone()

# On S3 a proxy in front of s3rver counts the requests the server gets.
proxy = None
if KIND == "s3":
    import sys
    sys.path.insert(0, os.path.join(os.environ["LITESTREAM_SRCDIR"], "test",
                                    "servers"))
    from faultproxy import FaultProxy
    import harness
    proxy = FaultProxy(harness.s3_server()).start()
    hurl = url.replace(harness.s3_server().endpoint, proxy.endpoint)
else:
    hurl = url

# --- a first copy --------------------------------------------------------
hpath = os.path.join(d, "copy.db")
nobj, nbytes = replica_stats()
if proxy:
    proxy.clear_log()
r = remote(hurl, poll_ms=50, hydration=1, hydration_path=hpath)
during = total(r)  # read while the copy is being made
st = wait_done(r)
h = hyd(r)
ok(st == "complete" and
   r.execute("PRAGMA litestream_hydration_progress").fetchone()[0] ==
   "100.0" and h["txid"] == f"{txid(r):016x}",
   f"the copy completes: status {st}, progress 100.0, at the TXID served "
   f"({h})")
bound = nobj + nbytes // (8 << 20) + 1
ok(1 <= h["get"] <= bound and h["get"] * 20 < pages,
   f"the copy of {pages} pages in {nobj} objects ({nbytes} bytes) took "
   f"{h['get']} GETs (bound {bound}: whole objects, never one per page)")
if proxy:
    proxy.wait_idle()
    ltx_gets = len([q for q in proxy.requests("GET") if ".ltx" in q.path])
    q = requests(r)
    ok(ltx_gets == q["get"] + h["get"] and ltx_gets <= bound + q["get"],
       f"s3rver received {ltx_gets} object GETs: the connection's {q['get']} "
       f"+ the hydration's {h['get']}")
ok(during == want_rows and total(r) == want_rows,
   "reads during and after the copy return the database")
g0, f0 = requests(r)["get"], requests(r)["file_reads"]
ok(total(r) == want_rows and requests(r)["get"] == g0 and
   requests(r)["file_reads"] - f0 >= pages - 2,
   f"once complete, a full scan reads the file: no GET, "
   f"{requests(r)['file_reads'] - f0} pages from the copy")
c = sqlite3.connect(f"file:{hpath}?mode=ro&vfs=unix", uri=True)
ok(c.execute("PRAGMA integrity_check").fetchone()[0] == "ok" and
   c.execute("SELECT count(*), sum(id), sum(length(v)) FROM t").fetchone()
   == want_rows, "the hydration file is the database (integrity_check ok)")
c.close()
meta = json.load(open(hpath + ".meta"))
ok(meta["txid"] == f"{txid(r):016x}" and meta["page_size"] == 4096,
   f"{os.path.basename(hpath)}.meta records the TXID: {meta}")
ok(r.execute("SELECT litestream_hydration_progress(), "
             "litestream_hydration_status()").fetchone() ==
   (100.0, "complete") and
   r.execute("PRAGMA litestream_hydration_file").fetchone()[0] == hpath,
   "litestream_hydration_progress() / _status() and PRAGMA "
   "litestream_hydration_file")

# --- following new transactions ------------------------------------------
g0 = hyd(r)["get"]
for k in range(3):
    w.execute("INSERT INTO t VALUES (NULL, ?)", ("new" * 30,))
    w.execute("UPDATE t SET v = 'x' WHERE id = ?", (k * 5000 + 1,))
    w.execute("SELECT litestream_sync(10000)")
want_rows = w.execute("SELECT count(*), sum(id), sum(length(v)) "
                      "FROM t").fetchone()
T = writer_txid(w)
deadline = time.time() + 30
while time.time() < deadline and not (
        txid(r) == T and hyd(r)["txid"] == f"{T:016x}"):
    r.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    time.sleep(0.02)
h = hyd(r)
ok(h["txid"] == f"{T:016x}" and total(r) == want_rows and
   h["get"] - g0 <= 3 + 1,
   f"the copy follows 3 new transactions with {h['get'] - g0} GETs "
   f"(now at {h['txid']})")
r.close()

# --- restart ---------------------------------------------------------------
old_tx = writer_txid(w)  # the end of an object: a restorable point
w.execute("INSERT INTO t VALUES (NULL, 'after restart')")
w.execute("SELECT litestream_sync(10000)")
want_rows = w.execute("SELECT count(*), sum(id), sum(length(v)) "
                      "FROM t").fetchone()
r = remote(hurl, poll_ms=50, hydration_path=hpath)
st = wait_done(r)
h = hyd(r)
ok(st == "complete" and h["bytes_down"] < nbytes // 4 and
   total(r) == want_rows and h["txid"] == f"{writer_txid(w):016x}",
   f"reopened: the file is resumed from its TXID ({h['get']} GETs, "
   f"{h['bytes_down']} bytes), checked, then serves reads")
r.close()
# A file that does not match its meta any more is rewritten whole.
with open(hpath, "r+b") as f:
    f.seek(4096 * (pages // 2) + 200)
    f.write(b"\xee" * 64)
r = remote(hurl, poll_ms=50, hydration_path=hpath)
st = wait_done(r)
h = hyd(r)
ok(st == "complete" and h["bytes_down"] > nbytes // 4 and
   total(r) == want_rows,
   f"a damaged file fails the checksum check and is rewritten "
   f"({h['bytes_down']} bytes)")
r.close()
# A meta that names a TXID the replica does not reach: rebuilt.
m = json.load(open(hpath + ".meta"))
m["txid"] = "00000000ffffffff"
json.dump(m, open(hpath + ".meta", "w"))
r = remote(hurl, poll_ms=50, hydration_path=hpath)
st = wait_done(r)
ok(st == "complete" and hyd(r)["bytes_down"] > nbytes // 4 and
   total(r) == want_rows,
   "a meta beyond the replica's TXID: the file is rebuilt")

# --- time travel ------------------------------------------------------------
r.execute(f"PRAGMA litestream_txid = {old_tx}")
old_rows = total(r)
ok(status(r) == "paused" and old_rows[0] == want_rows[0] - 1,
   f"PRAGMA litestream_txid pauses hydration ({status(r)}); the old state "
   "reads from the replica")
r.execute("PRAGMA litestream_txid = 'latest'")
st = wait_done(r)
ok(st == "complete" and total(r) == want_rows,
   "'latest' follows again and the copy serves it")
r.close()
r = remote(hurl, hydration_path=hpath, txid=old_tx)
st = wait_done(r)
ok(st == "complete" and total(r) == old_rows and
   hyd(r)["txid"] == f"{old_tx:016x}",
   f"txid= at open: the copy holds that TXID ({hyd(r)['txid']})")
r.close()

# --- failures: reads go on from the replica ---------------------------------
blocker = os.path.join(d, "a-file")
open(blocker, "w").close()
r = remote(hurl, hydration_path=os.path.join(blocker, "copy.db"))
st = wait_done(r)
ok(st.startswith("failed: litestream-remote: hydration stopped: cannot open "
                 "the hydration file") and "Not a directory" in st and
   total(r) == want_rows,
   f"an unwritable path: {st}; queries still work")
r.close()
r = remote(hurl, hydration_path=hpath)
r2 = remote(hurl, hydration_path=hpath)
st = wait_done(r2)
ok(st.startswith("failed") and "in use by another connection" in st and
   total(r2) == want_rows, f"a hydration file in use: {st}")
r2.close()
r.close()

# The anonymous temporary file: nothing is left in TMPDIR.
tmpd = os.path.join(d, "tmp")
os.makedirs(tmpd)
os.environ["TMPDIR"] = tmpd
r = remote(hurl, hydration=1)
st = wait_done(r)
ok(st == "complete" and total(r) == want_rows and
   r.execute("PRAGMA litestream_hydration_file").fetchone()[0] == "" and
   os.listdir(tmpd) == [], "hydration=1 without a path: an anonymous "
   "temporary file (no name left in TMPDIR)")
r.close()
del os.environ["TMPDIR"]
os.environ["LITESTREAM_HYDRATION_ENABLED"] = "true"
r = sqlite3.connect(remote_uri(hurl), uri=True, isolation_level=None)
ok(wait_done(r) == "complete", "LITESTREAM_HYDRATION_ENABLED=true (as in "
   "Litestream's VFS) turns hydration on")
r.close()
del os.environ["LITESTREAM_HYDRATION_ENABLED"]

for what, opts, want in [("hydration=maybe", {"hydration": "maybe"},
                          "hydration must be 1 or 0"),
                         ("hydration_path=''", {"hydration_path": ""},
                          "hydration_path is empty")]:
    try:
        sqlite3.connect(remote_uri(hurl, **opts), uri=True)
        e = None
    except sqlite3.Error as ex:
        e = str(ex)
    ok(e and want in e and e.startswith("litestream-remote: "),
       f"{what}: the open fails: {e}")
try:
    r = remote(hurl)
    r.execute("PRAGMA litestream_hydration_progress = 5")
    e = None
except sqlite3.Error as ex:
    e = str(ex)
ok(e and "read-only" in e, f"PRAGMA litestream_hydration_progress = 5: {e}")
ok(r.execute("PRAGMA litestream_hydration_status").fetchone()[0] == "idle"
   and r.execute("PRAGMA litestream_hydration_progress").fetchone()[0] ==
   "0.0", "without hydration: idle, 0.0")
r.close()


# A full disk: a 1 MiB tmpfs for a larger database.
def disk_full():
    small = os.path.join(d, "small")
    os.makedirs(small)
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                            small], capture_output=True, text=True)
        why = (p.stderr.strip() or "mount failed").splitlines()[0]
    except OSError as ex:
        p, why = None, str(ex)
    if p is None or p.returncode != 0:
        ok(True, f"# SKIP disk full: cannot mount a tmpfs ({why})")
        ok(True, f"# SKIP disk full: cannot mount a tmpfs ({why})")
        return
    try:
        path = os.path.join(small, "copy.db")
        r = remote(hurl, hydration_path=path)
        st = wait_done(r)
        ok(st.startswith("failed") and "No space left on device" in st and
           total(r) == want_rows,
           f"a full disk: {st}; queries still work")
        r.close()
        ok(os.path.getsize(path) == 0 and not os.path.exists(path + ".meta"),
           "the partial file is emptied at close (its space given back)")
    finally:
        subprocess.run(["umount", "-l", small])


disk_full()
if proxy:
    proxy.stop()
w.close()
cleanup(d)
done()
