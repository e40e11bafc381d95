#!/usr/bin/python3
"""Every bad input gets a clear error and loses nothing."""
import json
import os
import sqlite3

from harness import cleanup, diag, done, load, ok, restore_and_compare, scratch

load()


def err_of(con, sql, *args):
    try:
        con.execute(sql, args).fetchall()
    except sqlite3.Error as e:
        return str(e)
    return None


def status(con):
    return json.loads(con.execute("SELECT litestream_status()")
                      .fetchone()[0])


d = scratch("errors")
db = os.path.join(d, "app.db")

# --- PRAGMA litestream_url on databases the VFS does not manage ----------
mem = sqlite3.connect(":memory:")
e = err_of(mem, "PRAGMA litestream_url = 'file:///tmp/x'")
ok(e is not None and "not authorized" in e,
   f":memory: database: PRAGMA litestream_url fails ({e})")
st = status(mem)
ok(st["not_replicable"] and "in-memory" in st["not_replicable"][0]["reason"],
   f"status says why: {st['not_replicable']}")

other = sqlite3.connect(f"file:{db}?vfs=unix", uri=True)
e = err_of(other, "PRAGMA litestream_url = 'file:///tmp/x'")
ok(e is not None, f"database opened through another VFS: refused ({e})")
why = status(other)["not_replicable"][0]["reason"]
ok("unix" in why and "load the extension" in why, f"status says: {why}")
other.close()

con = sqlite3.connect(db, isolation_level=None)
e = err_of(con, "PRAGMA temp.litestream_url = 'file:///tmp/x'")
ok(e is not None, f"temp schema: refused ({e})")

# --- malformed URLs and unknown schemes ----------------------------------
for bad, want in [("ftp://host/x", "unknown URL scheme"),
                  ("rel/dir", "absolute"),
                  ("s3://", "bucket"),
                  ("file://remotehost/x", "host"),
                  ("http://[::1", None)]:
    e = err_of(con, f"PRAGMA litestream_url = '{bad}'")
    ok(e is not None and (want is None or want in e),
       f"PRAGMA litestream_url = '{bad}' fails: {e}")
ok(con.execute("PRAGMA litestream_url").fetchone()[0] == "",
   "after failed attempts nothing is replicating")
e = err_of(con, "PRAGMA litestream_url = 'abs://container/app'")
ok(e is not None and "no storage account" in e,
   f"abs:// without an account (nor AZURE_STORAGE_ACCOUNT): {e}")
e = err_of(con, "SELECT litestream_sync()")
ok(e is not None and "not being replicated" in e,
   f"litestream_sync on a database not replicated: {e}")
e = err_of(con, "PRAGMA litestream_sync_interval = 'soon'")
ok(e is not None and "milliseconds" in e, f"bad sync interval: {e}")

# --- a replica directory that cannot be created ----------------------------
blocker = os.path.join(d, "blocker")
open(blocker, "w").write("a file where the replica directory should be")
url = "file://" + os.path.join(blocker, "replica")
r = con.execute(f"PRAGMA litestream_url = '{url}'").fetchone()[0]
ok(r == url, "URL accepted (the directory is only needed at upload)")
con.execute("CREATE TABLE t(x)")
for i in range(50):
    con.execute("INSERT INTO t VALUES (?)", (i,))
e = err_of(con, "SELECT litestream_sync(1500)")
ok(e is not None and "blocker" in e,
   f"litestream_sync reports the failing upload: {e}")
s = status(con)["databases"][0]
le = s["last_error"]
ok(le is not None and "blocker" in le["message"],
   f"status shows the error: {le and le['message']}")
ok(con.execute("SELECT count(*) FROM t").fetchone()[0] == 50,
   "the application kept working while uploads failed")
os.remove(blocker)
os.makedirs(blocker)
restore_and_compare(con, db, url, os.path.join(d, "fixed.db"),
                    "after the problem is fixed nothing is lost")
ok(status(con)["databases"][0]["last_error"] is None,
   "the error clears once uploads succeed")

# --- a full spool ------------------------------------------------------------
sdir = os.path.join(d, "spool-case")
os.makedirs(sdir)
sdb = os.path.join(sdir, "app.db")
sblock = os.path.join(sdir, "blocker")
open(sblock, "w").write("x")
surl = "file://" + os.path.join(sblock, "replica")
sc = sqlite3.connect(sdb, isolation_level=None)
sc.execute(f"PRAGMA litestream_url = '{surl}'")
e = err_of(sc, "PRAGMA litestream_spool_limit = 10")
ok(e is not None and "bytes between" in e, f"spool limit too small: {e}")
ok(sc.execute("PRAGMA litestream_spool_limit = 1048576").fetchone()[0]
   == "1048576", "PRAGMA litestream_spool_limit = 1048576")
sc.execute("CREATE TABLE t(x)")
for i in range(800):
    sc.execute("INSERT INTO t VALUES (randomblob(8000))")
err_of(sc, "SELECT litestream_sync(600)")
s = status(sc)["databases"][0]
ok(s["spool_full"] and s["spool_bytes"] < 3 * 1048576,
   f"spool stops at its limit ({s['spool_bytes']} bytes) and status says "
   f"so: {s['last_error'] and s['last_error']['message'][:80]}")
ok(sc.execute("SELECT count(*) FROM t").fetchone()[0] == 800,
   "the application kept writing with a full spool")
os.remove(sblock)
os.makedirs(sblock)
restore_and_compare(sc, sdb, surl, os.path.join(sdir, "out.db"),
                    "full spool: once the replica is back nothing is lost")
s = status(sc)["databases"][0]
ok(not s["spool_full"] and s["last_error"] is None,
   "status: the spool is no longer full and the error cleared")
sc.close()

# --- restore errors --------------------------------------------------------
empty = os.path.join(d, "empty-replica")
os.makedirs(empty)
e = err_of(con, "SELECT litestream_restore(?, ?)", "file://" + empty,
           os.path.join(d, "x.db"))
ok(e is not None and "empty" in e, f"restore from an empty replica: {e}")
e = err_of(con, "SELECT litestream_restore(?, ?)",
           "file://" + os.path.join(d, "nope"), os.path.join(d, "x.db"))
ok(e is not None, f"restore from a missing replica: {e}")
ok(not os.path.exists(os.path.join(d, "x.db")), "no output left behind")
e = err_of(con, "SELECT litestream_restore(?, ?)", url, db)
ok(e is not None and "exists" in e, f"restore onto an existing file: {e}")
js = con.execute("SELECT litestream_restore(?, ?, NULL, 1)",
                 (url, os.path.join(d, "fixed.db"))).fetchone()[0]
ok(json.loads(js)["txid"], "overwrite=1 replaces an existing file")
e = err_of(con, "SELECT litestream_restore(?, ?, 'yesterday')", url,
           os.path.join(d, "y.db"))
ok(e is not None and "TXID" in e, f"a target that is not a TXID: {e}")

# Restore-on-boot options: 'if-not-exists' leaves an existing file
# byte-identical; 'if-replica-exists' returns quietly for an empty replica;
# ?parallelism= sets the download threads; 'overwrite' as a word.
before = open(db, "rb").read()
js = json.loads(con.execute("SELECT litestream_restore(?, ?, NULL, "
                            "'if-not-exists')", (url, db)).fetchone()[0])
ok(js["restored"] is False and "exists" in js["reason"] and
   open(db, "rb").read() == before,
   f"if-not-exists on an existing database: skipped, file unchanged ({js})")
boot = os.path.join(d, "boot.db")
js = json.loads(con.execute("SELECT litestream_restore(?, ?, NULL, "
                            "'if-not-exists')",
                            (url + "?parallelism=2", boot)).fetchone()[0])
ok(js.get("txid") and os.path.exists(boot),
   f"if-not-exists with no database: restored (parallelism=2): {js}")
js = json.loads(con.execute(
    "SELECT litestream_restore(?, ?, NULL, 'if-not-exists, if-replica-exists')",
    ("file://" + empty, os.path.join(d, "fresh.db"))).fetchone()[0])
ok(js["restored"] is False and "empty" in js["reason"] and
   not os.path.exists(os.path.join(d, "fresh.db")),
   f"if-replica-exists on an empty replica: skipped, nothing written ({js})")
js = json.loads(con.execute("SELECT litestream_restore(?, ?, NULL, "
                            "'overwrite')", (url, boot)).fetchone()[0])
ok(js.get("txid"), "'overwrite' as a word replaces the file")
for what, args, want in [
        ("an unknown mode", (url, boot, "if-missing"), "if-not-exists"),
        ("overwrite and if-not-exists", (url, boot, "overwrite,if-not-exists"),
         "exclude"),
        ("parallelism out of range", (url + "?parallelism=0", boot, 1),
         "parallelism")]:
    e = err_of(con, "SELECT litestream_restore(?, ?, NULL, ?)", *args)
    ok(e is not None and want in e, f"restore with {what}: {e}")
e = err_of(con, "SELECT litestream_restore(?, ?, '1 week ago')", url,
           os.path.join(d, "week.db"))
ok(e is not None and "nothing to restore" in e,
   f"a relative target before the replica began: {e}")

# A corrupt object: restore names it, the output path stays untouched.
# The newest state may be served by a snapshot or a compacted object as
# well as by L0: corrupt every object that ends at the newest TXID.
ltxdir = os.path.join(blocker, "replica", "ltx")
newest = []
for lv in sorted(os.listdir(ltxdir)):
    for name in os.listdir(os.path.join(ltxdir, lv)):
        if name.endswith(".ltx"):
            newest.append((name[17:33], lv, name))
top = max(newest)[0]
victims = [(lv, name) for (mx, lv, name) in newest if mx == top]
for lv, name in victims:
    victim = os.path.join(ltxdir, lv, name)
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(victim, "wb").write(bytes(data))
out = os.path.join(d, "corrupt-out.db")
e = err_of(con, "SELECT litestream_restore(?, ?)", url, out)
ok(e is not None and any(f"ltx/{lv}/{name}" in e for lv, name in victims),
   f"corrupt object: restore fails naming it: {e}")
ok(not os.path.exists(out) and not os.path.exists(out + ".tmp"),
   "corrupt object: nothing written at the output path")
con.close()

# Which credential is used shows in the status, never its value.
saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID",
                                        "AWS_SECRET_ACCESS_KEY")}
os.environ["AWS_ACCESS_KEY_ID"] = "AKIACREDCHECK"
os.environ["AWS_SECRET_ACCESS_KEY"] = "s3cr3t-never-shown"
cc = sqlite3.connect(os.path.join(d, "cred.db"), isolation_level=None)
cc.execute("PRAGMA litestream_url = "
           "'s3://bkt/p?endpoint=http://127.0.0.1:1&retries=0'")
js = cc.execute("SELECT litestream_status()").fetchone()[0]
s = json.loads(js)["databases"][0]
ok(s["credential"] == "the AWS key in AWS_ACCESS_KEY_ID" and
   "s3cr3t" not in js, f"status names the credential: {s['credential']}")
cc.execute("PRAGMA litestream_url = ''")
cc.close()
for k, v in saved.items():
    if v is None:
        os.environ.pop(k, None)
    else:
        os.environ[k] = v
cleanup(d)
done()
