#!/usr/bin/python3
"""Several writers on one replicated database: two processes with the
extension writing at the same time, several connections in one process,
and a process writing without the extension (the next TXID is a full
image).  Every case is restored and compared with the source."""
import json
import os
import sqlite3
import subprocess
import sys
import time

from harness import BACKEND, replica_url, SO, cleanup, done, load, ok, restore_and_compare, scratch

load()

CHILD = r"""
import sqlite3, sys
so, db, n, tag, ext = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
if ext:
    b = sqlite3.connect(":memory:"); b.enable_load_extension(True); b.load_extension(so)
c = sqlite3.connect(db if ext else f"file:{db}?vfs=unix", uri=not ext, isolation_level=None, timeout=30)
for i in range(n):
    c.execute("INSERT INTO t(tag, i, v) VALUES (?, ?, randomblob(200))", (tag, i))
    if ext and i % 97 == 0:
        c.execute("PRAGMA wal_checkpoint(PASSIVE)")
c.close()
"""


def child(db, n, tag, ext=True):
    return subprocess.Popen(["/usr/bin/python3", "-c", CHILD, SO, db, str(n),
                             tag, "1" if ext else "0"])


def setup(name):
    d = scratch(name)
    db = os.path.join(d, "app.db")
    url = replica_url(d)
    con = sqlite3.connect(db, isolation_level=None, timeout=30)
    con.execute(f"PRAGMA litestream_url = '{url}'")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, tag, i, v)")
    return d, db, url, con


def status(con):
    return json.loads(con.execute("SELECT litestream_status()")
                      .fetchone()[0])["databases"][0]


# Two processes with the extension, writing concurrently.
d, db, url, con = setup("two-procs")
ps = [child(db, 400, "a"), child(db, 400, "b")]
rcs = [p.wait() for p in ps]
ok(rcs == [0, 0], f"two writer processes finished ({rcs})")
n = con.execute("SELECT count(*) FROM t").fetchone()[0]
ok(n == 800, f"both processes' rows are there ({n})")
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "two processes writing the same database")
ok(status(con)["forced_full_images"] <= 1,
   "two processes: TXIDs shared through the sidecar, no extra full image")
con.close()
cleanup(d)

# Several connections in one process, interleaved.
d, db, url, con = setup("conns")
others = [sqlite3.connect(db, isolation_level=None, timeout=30)
          for _ in range(3)]
for i in range(300):
    c = others[i % 3]
    c.execute("INSERT INTO t(tag, i) VALUES ('c', ?)", (i,))
for c in others:
    c.close()
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "several connections in one process")
con.close()
cleanup(d)

# A process without the extension writes: its frames are either
# recovered from the WAL (still there) or covered by a full image.
d, db, url, con = setup("foreign")
for i in range(100):
    con.execute("INSERT INTO t(tag, i) VALUES ('x', ?)", (i,))
t0 = con.execute("SELECT litestream_sync(10000)").fetchone()[0]
f0 = status(con)["full_images"]
rc = child(db, 200, "foreign", ext=False).wait()
ok(rc == 0, "a process without the extension wrote 200 rows")
con.execute("INSERT INTO t(tag, i) VALUES ('after', 0)")
restore_and_compare(con, db, url, os.path.join(d, "out1.db"),
                    "writer without the extension (WAL still holds it)")
t1 = con.execute("SELECT litestream_sync(10000)").fetchone()[0]
ok(t1 - t0 == 201 and status(con)["full_images"] == f0,
   "its 200 transactions were recovered from the WAL, one TXID each, no "
   f"full image (TXIDs {t0} -> {t1}, full images {f0} -> "
   f"{status(con)['full_images']})")
# Now the foreign process checkpoints and restarts the WAL itself, so its
# frames are gone: only a full image can be right.
fc = sqlite3.connect(f"file:{db}?vfs=unix", uri=True, isolation_level=None)
for i in range(50):
    fc.execute("INSERT INTO t(tag, i) VALUES ('foreign2', ?)", (i,))
fc.execute("PRAGMA wal_checkpoint(TRUNCATE)")
fc.execute("INSERT INTO t(tag, i) VALUES ('foreign2', 999)")
fc.close()
before = status(con)["full_images"]
con.execute("INSERT INTO t(tag, i) VALUES ('after2', 0)")
restore_and_compare(con, db, url, os.path.join(d, "out2.db"),
                    "foreign checkpoint + restart: next TXID a full image")
ok(status(con)["full_images"] == before + 1,
   "foreign checkpoint + restart: exactly one full image "
   f"({status(con)['full_images'] - before})")
con.close()
cleanup(d)
# Uploading moves to another process when the uploader exits (the ship
# lock), and that process's per-page checksums must be the replica's, not
# the ones it loaded when it opened the database.
SESSION = r"""
import sqlite3, sys
so, db = sys.argv[1], sys.argv[2]
b = sqlite3.connect(":memory:"); b.enable_load_extension(True); b.load_extension(so)
c = sqlite3.connect(db, isolation_level=None, timeout=30)
for line in sys.stdin:
    cmd = line.split()
    r = ""
    if cmd[0] == "quit":
        break
    if cmd[0] == "w":
        for i in range(int(cmd[1]), int(cmd[2])):
            c.execute("INSERT INTO t(tag, i) VALUES ('s', ?)", (i,))
            c.execute("UPDATE t SET v = ? WHERE id = 1 + ? % 50", (i, i))
    if cmd[0] == "sync":
        r = c.execute("SELECT litestream_sync(10000)").fetchone()[0]
    if cmd[0] == "status":
        r = c.execute("SELECT litestream_status()").fetchone()[0]
    print("ok", r, flush=True)
"""


def session(db):
    return subprocess.Popen(["/usr/bin/python3", "-c", SESSION, SO, db],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def say(p, line):
    p.stdin.write(line + "\n")
    p.stdin.flush()
    return p.stdout.readline().strip()[3:]


d, db, url, con = setup("takeover")
con.execute("SELECT litestream_sync(10000)")
con.close()
p1 = session(db)
say(p1, "w 0 200")
say(p1, "sync")
p2 = session(db)  # opens while p1 uploads
say(p2, "w 200 201")
say(p1, "w 201 600")
say(p1, "sync")
say(p1, "quit")
p1.wait()
say(p2, "w 600 700")
say(p2, "sync")
st = json.loads(say(p2, "status"))["databases"][0]
ok(st["shipping"] and st["last_error"] is None,
   "after the uploader exits another process takes over uploading")
say(p2, "quit")
p2.wait()
con = sqlite3.connect(db, isolation_level=None)
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "upload takeover: the replica restores identical")
con.close()
cleanup(d)

# Two processes, two URLs: the second process's PRAGMA takes the database
# over; the first stops uploading and says why; no replica receives TXIDs
# from both.
TWO = r"""
import sqlite3, sys
so, db, url = sys.argv[1:4]
b = sqlite3.connect(":memory:"); b.enable_load_extension(True); b.load_extension(so)
c = sqlite3.connect(db, isolation_level=None, timeout=30)
c.execute(f"PRAGMA litestream_url = '{url}'")
c.execute("INSERT INTO t(tag, i) VALUES ('b', 1)")
c.execute("SELECT litestream_sync(20000)")
c.close()
"""
d, db, url, con = setup("two-urls")
con.execute("INSERT INTO t(tag, i) VALUES ('a', 1)")
con.execute("SELECT litestream_sync(10000)")
url2 = replica_url(d, "second")
rc = subprocess.run(["/usr/bin/python3", "-c", TWO, SO, db, url2]).returncode
ok(rc == 0, "a second process set another URL, wrote and synced")
con.execute("INSERT INTO t(tag, i) VALUES ('a', 2)")
try:
    con.execute("SELECT litestream_sync(3000)")
    e = None
except sqlite3.Error as x:
    e = str(x)
ok(e is not None and "another process changed the replica" in e and
   "second" in e, f"the first process stops uploading and says why: {e}")


def rows_of(u, name):
    out = os.path.join(d, name)
    con.execute("SELECT litestream_restore(?, ?)", (u, out))
    o = sqlite3.connect(f"file:{out}?vfs=unix", uri=True)
    r = sorted(o.execute("SELECT tag, i FROM t").fetchall())
    o.close()
    return r


r1, r2 = rows_of(url, "one.db"), rows_of(url2, "two.db")
ok(r1 == [("a", 1)], f"the first replica ends where the URL changed: {r1}")
ok(("b", 1) in r2 and ("a", 1) in r2,
   f"the second replica holds everything up to its own writes: {r2}")
con.close()
cleanup(d)

# fork(): the child opens the database itself (SQLite forbids carrying a
# connection across fork) and replicates; big transactions and WAL restarts
# in the child must not hang on the parent's replicator: a child forked
# while one of the extension's private read transactions was open inherited
# SQLite's record of it and its checkpoint waited for a reader that does
# not exist there (fork now waits for those transactions, image.c).
d, db, url, con = setup("fork")
con.execute("INSERT INTO t(tag, i) VALUES ('parent', 0)")
con.execute("SELECT litestream_sync(10000)")
pid = os.fork()
if pid == 0:
    try:
        c = sqlite3.connect(db, isolation_level=None, timeout=30)
        c.execute("BEGIN")
        for i in range(18000):
            c.execute("INSERT INTO t(tag, i, v) VALUES ('big', ?, "
                      "randomblob(4000))", (i,))
        c.execute("COMMIT")
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.execute("INSERT INTO t(tag, i) VALUES ('child', 1)")
        c.execute("SELECT litestream_sync(20000)")
        c.close()
        os._exit(0)
    except BaseException:
        os._exit(1)
deadline = time.time() + 60
while True:
    wpid, status = os.waitpid(pid, os.WNOHANG)
    if wpid or time.time() > deadline:
        break
    time.sleep(0.05)
if not wpid:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
ok(wpid and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
   "fork: the child's big transaction, checkpoint and write finished")
con.execute("INSERT INTO t(tag, i) VALUES ('parent', 1)")
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "fork: parent and child writes replicated")
con.close()
cleanup(d)
done()
