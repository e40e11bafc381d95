"""Helpers of test_sftp.py and test_webdav.py: a database replicating to a
URL, its status, and the "error, then fixed" check every credential, host
key and permission failure goes through (a clear message in status and from
litestream_restore(), the application keeps writing, nothing lost once the
problem is fixed).  Also what a replica directory on the server holds."""
import json
import os
import sqlite3
import struct
import time

from harness import cleanup, ok, restore_and_compare, scratch


def ltx_sane(path):
    """A whole LTX file: magic, trailer checksum flag, index before it."""
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 124 or b[:4] != b"LTX1":
        return False
    fck = struct.unpack(">Q", b[-8:])[0]
    idx_len = struct.unpack(">Q", b[-24:-16])[0]
    return fck >> 63 == 1 and 0 < idx_len < len(b) - 116


def objects(root):
    """(LTX objects, other files) under a replica directory."""
    ltx, other = [], []
    for dp, _, names in os.walk(root):
        for n in names:
            (ltx if n.endswith(".ltx") else other).append(
                os.path.join(dp, n))
    return ltx, other


class Checks:
    """The checks of one backend; secrets() lists what must never show."""

    def __init__(self, name, secrets):
        self.name = name
        self.secrets = secrets
        self.dirs = []

    def fresh(self, name, url):
        d = scratch(self.name + "-" + name)
        self.dirs.append(d)
        db = os.path.join(d, "app.db")
        con = sqlite3.connect(db, isolation_level=None)
        con.execute("PRAGMA litestream_url = '%s'" % url.replace("'", "''"))
        con.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v)")
        return d, db, con

    @staticmethod
    def status(con):
        return json.loads(con.execute("SELECT litestream_status()"
                                      ).fetchone()[0])["databases"][0]

    @staticmethod
    def write(con, n=20, size=200):
        for _ in range(n):
            con.execute("INSERT INTO t(v) VALUES (randomblob(?))", (size,))

    @staticmethod
    def err_of(con, sql, *args):
        try:
            con.execute(sql, args).fetchall()
            return None
        except sqlite3.Error as e:
            return str(e)

    def wait_error(self, con, what, timeout=10.0):
        """The status' last error once it contains `what` (else it, marked
        "(other)", or None)."""
        end = time.time() + timeout
        while time.time() < end:
            e = self.status(con)["last_error"]
            if e and what in e["message"]:
                return e["message"]
            time.sleep(0.1)
        e = self.status(con)["last_error"]
        return None if e is None else "(other) " + e["message"]

    def error_then_fix(self, name, url, what, breaks, fixes,
                       restore_what=None):
        breaks()  # first: a connection made before would stay usable
        d, db, con = self.fresh(name, url)
        self.write(con, 20)
        msg = self.wait_error(con, what)
        ok(msg is not None and what in msg, f"{name}: status says {msg!r}")
        js = json.dumps(self.status(con))
        ok(not any(s and s in js for s in self.secrets()),
           f"{name}: no secret in status")
        out = os.path.join(d, "early.db")
        e = self.err_of(con, "SELECT litestream_restore(?, ?)", url, out)
        ok(e is not None and (restore_what or what) in e and
           not os.path.exists(out),
           f"{name}: restore fails with {e!r}")
        self.write(con, 20)
        n = con.execute("SELECT count(*) FROM t").fetchone()[0]
        ok(n == 40, f"{name}: the application kept writing ({n} rows)")
        fixes()
        restore_and_compare(con, db, url, os.path.join(d, "o.db"),
                            f"{name}: fixed, every transaction replicated")
        con.close()

    def kill_mid_upload(self, srv, url, root):
        """A ~24 MB transaction, the server killed (SIGKILL) while its
        temporary object grows, the application writing on, the server
        restarted: no partial object was ever visible, nothing is lost."""
        d, db, con = self.fresh("kill", url)
        self.write(con, 5)
        con.execute("SELECT litestream_sync(10000)")
        con.execute("BEGIN")
        self.write(con, 400, 60000)
        con.execute("COMMIT")
        seen_tmp, end = False, time.time() + 20
        while time.time() < end and not seen_tmp:
            seen_tmp = any(n.endswith(".tmp") for n in objects(root)[1])
            time.sleep(0.002)
        srv.kill()
        ltx, rest = objects(root)
        ok(seen_tmp and all(ltx_sane(p) for p in ltx),
           f"killed mid-upload (temporary seen: {seen_tmp}): every visible "
           f"object is whole ({len(ltx)} objects, {len(rest)} other files)")
        self.write(con, 5)  # the application writes on, server down
        time.sleep(0.5)
        srv.restart()
        restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                            "server restarted: nothing lost")
        ok(all(ltx_sane(p) for p in objects(root)[0]),
           "no partial object after")
        con.close()

    def basic(self, url, root):
        """Replicates and restores; the objects on the server are whole,
        at <path>/ltx/<level>/<min>-<max>.ltx, with no temporary left; the
        request counters count.  Returns the connection, still open."""
        d, db, con = self.fresh("basic", url)
        self.write(con, 50)
        restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                            self.name + " basic")
        # The compactor's first snapshot (level 9) may still be on its way:
        # its temporary goes once its upload ends.
        t0 = time.time()
        ltx, other = objects(root)
        while other != [root + "/lock.json"] and time.time() - t0 < 10:
            time.sleep(0.1)
            ltx, other = objects(root)
        ok(ltx and all(p.startswith(root + "/ltx/") for p in ltx) and
           other == [root + "/lock.json"],
           f"objects at <path>/ltx/<level>/<min>-<max>.ltx and the writer "
           f"lease <path>/lock.json, no temporary left: {[os.path.relpath(p, root) for p in ltx[:2]]} {other}")
        ok(all(ltx_sane(p) for p in ltx), "every object is a whole LTX file")
        c = self.status(con)["counters"]
        ok(c["put"] >= 1 and c["list"] >= 1 and c["bytes_up"] > 0,
           f"request counters in status: {c}")
        return con

    def replace_existing(self, url, root):
        """An object in the way at the name of the next upload (a stale
        one) is replaced by the real object."""
        d, db, con = self.fresh("replace", url)
        self.write(con, 5)
        txid = con.execute("SELECT litestream_sync(10000)").fetchone()[0]
        txid = txid if isinstance(txid, int) else int(txid, 16)
        nxt = os.path.join(root, "ltx/0", "%016x-%016x.ltx" % (txid + 1,
                                                              txid + 1))
        with open(nxt, "wb") as f:
            f.write(b"stale object in the way")
        con.execute("INSERT INTO t(v) VALUES (1)")
        restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                            "an existing object at the target name is "
                            "replaced")
        ok(ltx_sane(nxt), "the stale object was replaced by the real one")
        con.close()

    def compact_and_delete(self, url, root):
        """Compaction (levels 200ms,1s) writes level 1 and 2 objects;
        the level-0 objects, made an hour old on the server, are deleted by
        retention; litestream_ltx() lists what the server holds; the
        restore is identical."""
        d, db, con = self.fresh("compact", url)
        con.execute("PRAGMA litestream_levels = '200ms,1s'")
        con.execute("PRAGMA litestream_retention = '2s'")
        for _ in range(12):
            self.write(con, 3)
            time.sleep(0.1)
        con.execute("SELECT litestream_sync(10000)")
        end = time.time() + 8
        while time.time() < end and not os.path.isdir(root + "/ltx/2"):
            time.sleep(0.1)
        l0 = objects(root + "/ltx/0")[0]
        old = time.time() - 3600
        for p in l0:
            os.utime(p, (old, old))
        self.write(con, 3)
        end, gone = time.time() + 10, []
        while time.time() < end and not gone:
            gone = [p for p in l0 if not os.path.exists(p)]
            time.sleep(0.1)
        deleted = self.status(con)["compaction"]["deleted"]
        ok(deleted > 0 and gone and os.path.isdir(root + "/ltx/1"),
           f"compaction wrote levels 1 and 2; retention deleted "
           f"{deleted} level-0 objects ({len(gone)} of the {len(l0)} made "
           f"old are gone from the server)")
        con.execute("PRAGMA litestream_retention = 'off'")
        # Compaction may still be at work: look until the listing and the
        # files agree (or 8 s).
        end = time.time() + 8
        while True:
            rows = con.execute("SELECT level, min_txid, max_txid, size FROM "
                               "litestream_ltx(?)", (url,)).fetchall()
            disk = sorted((int(p.split("/")[-2]), os.path.getsize(p))
                          for p in objects(root)[0])
            if sorted((r[0], r[3]) for r in rows) == disk or \
                    time.time() > end:
                break
            time.sleep(0.3)
        ok(sorted((r[0], r[3]) for r in rows) == disk,
           f"litestream_ltx() lists every object with its size "
           f"({len(rows)} objects)")
        restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                            "after compaction and retention")
        con.close()

    def cleanup(self):
        for d in self.dirs:
            cleanup(d)
