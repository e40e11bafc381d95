#!/usr/bin/python3
"""Every JSON document the extension writes is valid JSON whatever the
names in it: schemas and paths with `"`, `\\`, newlines and UTF-8 (and
bytes that are not UTF-8), checked with SQLite's json_valid() and by
parsing: litestream_status(), litestream_sync(), the litestream_restore()
summary and PRAGMA litestream_requests of a read replica.  The documents'
keys and value types are checked against docs/sql.md."""
import json
import os
import sqlite3
import time
import urllib.parse

from harness import cleanup, diag, done, load, ok, replica_url, scratch

load()

WEIRD = 'q"uote \\back\nnew-\u00e9\u2713'
SCHEMAS = ['a"b', 'back\\slash', 'new\nline', '\u00fcn\u00ef\u2713']

STATUS_KEYS = {
    "schema": str, "path": str, "replicating": bool,
    "forced_full_images": int, "url": str, "txid": str,
    "spooled_txid": str, "replicated_txid": str, "pending_txns": int,
    "lag_ms": int, "sync_interval_ms": int, "spool_bytes": int,
    "queued_bytes": int, "spool_full": bool, "shipping": bool,
    "uploads": int, "full_images": int, "errors": int, "counters": dict,
    "last_upload": int, "last_error": (type(None), dict),
    "compaction": dict,
}
COUNTER_KEYS = ["put", "get", "list", "delete", "bytes_up", "bytes_down"]
COMPACTION_KEYS = {
    "levels": str, "snapshot_interval": str, "snapshot_retention": str,
    "retention": str, "compactions": int, "snapshots": int, "deleted": int,
    "last_error": (type(None), dict),
}
RESTORE_KEYS = {
    "path": str, "txid": str, "files": int, "pages": int, "page_size": int,
    "size": int, "checksum": str, "elapsed_ms": int,
}
REQUEST_KEYS = {
    "get": int, "list": int, "bytes_down": int, "cache_hits": int,
    "cache_misses": int, "pages_fetched": int, "polls": int, "replans": int,
    "poll_errors": int, "last_error": (type(None), str),
}


def valid(con, text, what):
    """json_valid() accepts text and Python parses it; returns the value."""
    v = con.execute("SELECT json_valid(?)", (text,)).fetchone()[0]
    try:
        parsed = json.loads(text)
    except (ValueError, TypeError) as e:
        parsed = None
        diag(f"{what}: {e}: {text!r}")
    ok(v == 1 and parsed is not None, f"{what}: valid JSON")
    return parsed


def has_keys(obj, keys, what):
    bad = [k for k, t in keys.items()
           if k not in obj or not isinstance(obj[k], t)
           or (t is int and isinstance(obj[k], bool))]
    ok(not bad, f"{what}: keys and types as documented" + (f" (bad: {bad})" if bad
                                                   else ""))


def qi(name):
    return '"' + name.replace('"', '""') + '"'


d = scratch("json")
top = os.path.join(d, WEIRD)
os.makedirs(top)
db = os.path.join(top, "main " + WEIRD + ".db")
url = replica_url(d)

con = sqlite3.connect(db, isolation_level=None)
con.execute("PRAGMA journal_mode=WAL")
con.execute("CREATE TABLE t(x)")
con.execute("INSERT INTO t VALUES ('one')")
con.execute("PRAGMA litestream_url = ?".replace("?", "'" + url + "'"))

# Attached schemas with awkward names: files through the litestream VFS
# (one replicating, the others not) and one in memory (not replicable).
for i, s in enumerate(SCHEMAS):
    con.execute("ATTACH ? AS " + qi(s), (os.path.join(top, f"{i}{WEIRD}.db"),))
    con.execute(f"CREATE TABLE {qi(s)}.t(x)")
con.execute("ATTACH ':memory:' AS " + qi('mem"\\\n\u00e9'))
first = qi(SCHEMAS[0])
con.execute(f"PRAGMA {first}.journal_mode=WAL")
con.execute(f"PRAGMA {first}.litestream_url = '{replica_url(d, 'aux')}'")
con.execute(f"INSERT INTO {first}.t VALUES (1)")

# --- litestream_status() -------------------------------------------------
text = con.execute("SELECT litestream_status()").fetchone()[0]
st = valid(con, text, "litestream_status() with awkward schemas and paths")
if st:
    by = {x["schema"]: x for x in st["databases"]}
    ok(set(by) == {"main"} | set(SCHEMAS),
       f"every schema name survives the round trip ({sorted(by)})")
    ok(by.get("main", {}).get("path") == db,
       "the path with a quote, a backslash, a newline and UTF-8 survives")
    ok([x["schema"] for x in st["not_replicable"]] == ['mem"\\\n\u00e9'],
       "the in-memory schema is listed as not replicable, name intact")
    ok(isinstance(st.get("version"), str), "version is a string")
    m = by.get("main", {})
    has_keys(m, STATUS_KEYS, "a replicating database's status")
    has_keys(m.get("counters", {}), {k: int for k in COUNTER_KEYS},
             "counters")
    has_keys(m.get("compaction", {}), COMPACTION_KEYS, "compaction")
    ok(by.get(SCHEMAS[0], {}).get("replicating") is True and
       by.get(SCHEMAS[1], {}).get("replicating") is False,
       "the attached replicating and non-replicating schemas are told apart")
for s in SCHEMAS:
    t = con.execute("SELECT litestream_status(?)", (s,)).fetchone()[0]
    one = valid(con, t, f"litestream_status({s!r})")
    ok(one is not None and [x["schema"] for x in one["databases"]] == [s],
       f"litestream_status({s!r}) names that schema only")

# --- litestream_sync() ---------------------------------------------------
for s in ["main", SCHEMAS[0]]:
    v = con.execute("SELECT litestream_sync(?, 10000)", (s,)).fetchone()[0]
    got = valid(con, json.dumps(v), f"litestream_sync({s!r}) result")
    ok(isinstance(got, int) and got >= 1,
       f"litestream_sync({s!r}) returns the replicated TXID ({v})")
    t = con.execute("SELECT json_valid(litestream_sync(?, 10000))",
                    (s,)).fetchone()[0]
    ok(t == 1, f"json_valid(litestream_sync({s!r})) in SQL")
try:
    con.execute("SELECT litestream_sync(?)", (SCHEMAS[1],)).fetchone()
    ok(False, "litestream_sync on a schema not replicating fails")
except sqlite3.Error as e:
    ok(SCHEMAS[1] in str(e), f"its error names the schema ({str(e)!r})")

# --- a start that failed: last_error.message in the status ---------------
bad_db = os.path.join(top, "bad " + WEIRD + ".db")
b = sqlite3.connect(bad_db, isolation_level=None)
b.execute("PRAGMA journal_mode=WAL")
b.execute(f"PRAGMA litestream_url = '{replica_url(d, 'bad')}'")
b.close()
cfg = os.path.join(bad_db + "-litestream", "config.json")
with open(cfg) as f:
    c = json.load(f)
c["url"] = "nosuch://x\"y\\z/\u00e9"
with open(cfg, "w") as f:
    json.dump(c, f)
b = sqlite3.connect(bad_db, isolation_level=None)
t = b.execute("SELECT litestream_status()").fetchone()[0]
bs = valid(b, t, "litestream_status() of a database whose start failed")
if bs:
    m = bs["databases"][0]
    ok(m["replicating"] is False and
       isinstance(m.get("last_error", {}).get("message"), str),
       f"last_error.message is a string ({m.get('last_error')!r})")
b.close()

# --- litestream_restore() ------------------------------------------------
# A path that is valid UTF-8 ...
out = os.path.join(top, "restored " + WEIRD + ".db")
text = con.execute("SELECT litestream_restore(?, ?)", (url, out)).fetchone()[0]
r = valid(con, text, "litestream_restore() summary")
if r:
    ok(r.get("path") == out, "the restored path survives the round trip")
    has_keys(r, RESTORE_KEYS, "the restore summary")
# ... and one that is not (a byte 0xff in the file name): still valid JSON.
raw = os.fsencode(os.path.join(top, "raw")) + b"\xff.db"
text = con.execute("SELECT litestream_restore(?, CAST(? AS TEXT))",
                   (url, raw)).fetchone()[0]
r = valid(con, text, "litestream_restore() to a path that is not UTF-8")
ok(r is not None and os.path.exists(raw) and
   r["path"].startswith(os.path.join(top, "raw")),
   "the restore happened and the summary names the path (U+FFFD for 0xff)")

# --- PRAGMA litestream_requests on a read replica ------------------------
q = "vfs=litestream-remote&url=" + urllib.parse.quote(url, safe="")
rc = sqlite3.connect(f"file:{urllib.parse.quote(WEIRD)}.db?{q}", uri=True,
                     isolation_level=None)
ok(rc.execute("SELECT x FROM t").fetchall() == [("one",)],
   "the read replica serves the table")
text = rc.execute("PRAGMA litestream_requests").fetchone()[0]
req = valid(rc, text, "PRAGMA litestream_requests")
if req:
    has_keys(req, REQUEST_KEYS, "PRAGMA litestream_requests")
rc.close()

# ... and its last_error, naming a replica whose URL has `"`, `\` and UTF-8.
rdir = os.path.join(d, 'rep"q\\b\u00e9')
rurl = "file://" + rdir
con.execute(f"PRAGMA {first}.litestream_url = '{rurl}'")
con.execute(f"INSERT INTO {first}.t VALUES (2)")
con.execute("SELECT litestream_sync(?)", (SCHEMAS[0],)).fetchone()
q = "vfs=litestream-remote&poll_ms=50&url=" + urllib.parse.quote(rurl, safe="")
rc = sqlite3.connect(f"file:r.db?{q}", uri=True, isolation_level=None)
rc.execute("SELECT * FROM t").fetchall()
con.execute(f"INSERT INTO {first}.t VALUES (3)")
con.execute("SELECT litestream_sync(?)", (SCHEMAS[0],)).fetchone()
newest = max((os.path.join(p, f) for p, _, fs in os.walk(rdir) for f in fs
              if f.endswith(".ltx")), key=os.path.getmtime)
with open(newest, "r+b") as f:  # the object the next poll reads: corrupt
    f.truncate(300)
req = {}
for _ in range(200):  # until a poll met it (polls follow reads)
    rc.execute("SELECT * FROM t").fetchall()
    text = rc.execute("PRAGMA litestream_requests").fetchone()[0]
    req = valid(rc, text, "PRAGMA litestream_requests after a poll error") \
        if json.loads(text)["poll_errors"] else {}
    if req:
        break
    time.sleep(0.05)
ok(isinstance(req.get("last_error"), str) and rdir in req["last_error"],
   f"its last_error is a string naming the replica ({req.get('last_error')!r})")
rc.close()

con.close()
cleanup(d)
done()
