"""The randomized model checker of the replication contracts (docs/sql.md,
"The sync contract"; docs/architecture.md, "Tests").

Several worker processes, each with several connections through the real
extension, run random operations from a weighted menu (small and large
transactions, rollbacks, savepoints, VACUUM, a page_size change, every
checkpoint mode, exclusive locking mode, opening and closing connections,
loading the extension again, setting the URL again, litestream_sync,
litestream_snapshot).  A supervisor SIGKILLs random workers at random
moments (and, with a kill-point build, inside the extension at named
points: LITESTREAM_KILLPOINTS_SO, storage/base/killpoint.h) and
restarts them.  Every few seconds it stops the world, syncs,
restores and compares:
  1. litestream_sync() returns N and the replica restored at its latest
     state is TXID N and equals the database (content and integrity);
  2. restored at a TXID recorded earlier, it equals the state recorded then;
  3. no operation failed: in particular a connection without a busy
     timeout, writing alone, never sees SQLITE_BUSY (SQLite alone would not
     raise it), and litestream_sync() in a worker never returns less than
     the TXID captured when it was called.

Checkpoints, VACUUM, exclusive locking mode and the writes without a busy
timeout run alone (a fair reader-writer lock of two flock files): SQLite
before 3.51.3 can corrupt a database when a checkpoint runs concurrently
with a WAL-restarting commit of another connection, which is SQLite's bug,
not ours, so the workers also run with wal_autocheckpoint off.

Replay: every failure prints the seed and the command; the operations each
worker chooses follow from the seed, the interleaving does not.

  /usr/bin/python3 test/model/model.py [--seed N] [--seconds S]
      [--workers W] [--backend file|s3]
"""
import argparse
import fcntl
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "vfs"))
import harness  # noqa: E402
from harness import cleanup, diag, dump_hash, ok  # noqa: E402

SO = harness.SO
# The test build with kill points (storage/base/killpoint.h), if built.
KP_SO = os.environ.get("LITESTREAM_KILLPOINTS_SO", "")
# The database stays small (a few MB): every kill may cost a full image,
# and the replica of a long soak must fit on the disk.
MAX_ROWS = 5000
KILLPOINTS = ["capture-queued", "spool-mid-write", "upload-before-position",
              "image-mid", "compaction-mid"]


class Gate:
    """A fair reader-writer lock between processes: ordinary operations
    share it, solo operations and the supervisor's checks hold it alone.
    A turnstile keeps a waiting exclusive holder from being starved."""

    def __init__(self, d):
        self.turn = open(os.path.join(d, "turn.lock"), "a")
        self.rw = open(os.path.join(d, "rw.lock"), "a")

    def shared(self):
        fcntl.flock(self.turn, fcntl.LOCK_EX)
        fcntl.flock(self.rw, fcntl.LOCK_SH)
        fcntl.flock(self.turn, fcntl.LOCK_UN)

    def exclusive(self):
        fcntl.flock(self.turn, fcntl.LOCK_EX)
        fcntl.flock(self.rw, fcntl.LOCK_EX)

    def release(self):
        fcntl.flock(self.rw, fcntl.LOCK_UN)
        fcntl.flock(self.turn, fcntl.LOCK_UN)


def status(con):
    js = json.loads(con.execute("SELECT litestream_status()").fetchone()[0])
    return js["databases"][0] if js["databases"] else None


# ---- the worker ---------------------------------------------------------

class Worker:
    def __init__(self, db, url, seed, idx, d, big):
        self.db, self.url, self.idx, self.d = db, url, idx, d
        self.rnd = random.Random(seed)
        self.gate = Gate(d)
        self.log = open(os.path.join(d, f"worker-{idx}.log"), "a")
        self.big = big
        self.conns = []
        self.ops = 0
        if KP_SO and os.path.exists(KP_SO):
            harness.SO = KP_SO[:-3]
        harness.load()
        for _ in range(self.rnd.randint(1, 3)):
            self.conns.append(self.connect())

    def connect(self, busy_ms=5000):
        c = sqlite3.connect(self.db, isolation_level=None, timeout=0)
        c.execute(f"PRAGMA busy_timeout = {busy_ms}")
        c.execute("PRAGMA wal_autocheckpoint = 0")
        return c

    def note(self, what):
        self.log.write(what + "\n")
        self.log.flush()

    def fail(self, what):
        self.note("FAIL " + what)

    def conn(self):
        return self.rnd.choice(self.conns)

    # Ordinary operations (the gate shared).
    def op_small(self, c):
        r = self.rnd.random()
        n = c.execute("SELECT count(*), max(id) FROM t").fetchone()
        if r < 0.5 and n[0] < MAX_ROWS:
            c.execute("BEGIN IMMEDIATE")
            for _ in range(self.rnd.randint(1, 3)):
                c.execute("INSERT INTO t(w, k, v) VALUES (?, ?, "
                          "randomblob(?))", (self.idx, self.rnd.randint(
                              0, 1 << 30), self.rnd.randint(10, 900)))
            c.execute("COMMIT")
        elif r < 0.75 and n[1]:
            c.execute("UPDATE t SET v = randomblob(?) WHERE id = (SELECT id "
                      "FROM t WHERE id >= ? LIMIT 1)",
                      (self.rnd.randint(10, 2000), self.rnd.randint(0, n[1])))
        elif r < 0.9:
            c.execute("INSERT INTO kv VALUES (?, ?) ON CONFLICT(k) DO "
                      "UPDATE SET v = excluded.v",
                      (str(self.rnd.randint(0, 300)), self.rnd.random()))
        elif n[1]:
            c.execute("DELETE FROM t WHERE id IN (SELECT id FROM t WHERE "
                      "id >= ? LIMIT ?)", (self.rnd.randint(0, n[1]),
                                           self.rnd.randint(1, 60)))

    def op_large(self, c):
        c.execute("BEGIN IMMEDIATE")
        rows = self.rnd.randint(100, 800)
        if c.execute("SELECT count(*) FROM t").fetchone()[0] > MAX_ROWS:
            # Bounded: a large deletion instead.
            c.execute("DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY "
                      "id LIMIT ?)", (rows * 2,))
            c.execute("COMMIT")
            return
        c.execute("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                  "FROM s WHERE i < ?) INSERT INTO t(w, k, v) SELECT ?, i, "
                  "randomblob(?) FROM s",
                  (rows, self.idx, self.rnd.randint(100, 1500)))
        if self.rnd.random() < 0.5:
            c.execute("DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY "
                      "id LIMIT ?)", (rows,))
        c.execute("COMMIT")

    def op_huge(self, c):
        """A transaction over 64 MiB (queued by reference to the WAL)."""
        c.execute("BEGIN IMMEDIATE")
        c.execute("CREATE TABLE IF NOT EXISTS big(x)")
        c.execute("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                  "FROM s WHERE i < 70) INSERT INTO big SELECT "
                  "randomblob(1000000) FROM s")
        c.execute("COMMIT")
        c.execute("DELETE FROM big")

    def op_rollback(self, c):
        c.execute("BEGIN IMMEDIATE")
        for _ in range(self.rnd.randint(1, 50)):
            c.execute("INSERT INTO t(w, k, v) VALUES (?, -1, randomblob(?))",
                      (self.idx, self.rnd.randint(10, 4000)))
        c.execute("ROLLBACK")

    def op_savepoint(self, c):
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO t(w, k, v) VALUES (?, 1, randomblob(50))",
                  (self.idx,))
        c.execute("SAVEPOINT a")
        for _ in range(self.rnd.randint(1, 30)):
            c.execute("INSERT INTO t(w, k, v) VALUES (?, -2, randomblob(?))",
                      (self.idx, self.rnd.randint(10, 4000)))
        c.execute("ROLLBACK TO a")
        c.execute("INSERT INTO t(w, k, v) VALUES (?, 2, randomblob(70))",
                  (self.idx,))
        c.execute("RELEASE a")
        c.execute("COMMIT")

    def op_reconnect(self, c):
        if len(self.conns) > 1 and self.rnd.random() < 0.5:
            self.conns.remove(c)
            c.close()
        if len(self.conns) < 4:
            self.conns.append(self.connect())

    def op_reload(self, c):
        c.enable_load_extension(True)
        if self.rnd.random() < 0.5:
            c.execute("SELECT load_extension(?)", (harness.SO,))
        else:
            c.load_extension(harness.SO)
        c.enable_load_extension(False)

    def op_seturl(self, c):
        got = c.execute(f"PRAGMA litestream_url = '{self.url}'").fetchone()
        if not got or got[0] != self.url:
            self.fail(f"PRAGMA litestream_url = same URL returned {got}")

    def op_sync(self, c):
        st = status(c)
        before = int(st["txid"], 16) if st else 0
        n = c.execute("SELECT litestream_sync(60000)").fetchone()[0]
        if n < before:
            self.fail(f"litestream_sync() returned {n} < the TXID captured "
                      f"when it was called ({before})")

    def op_snapshot(self, c):
        try:
            c.execute("SELECT litestream_snapshot()")
        except sqlite3.OperationalError as e:
            if "ship" not in str(e) and "upload" not in str(e):
                raise  # only "another process uploads" is expected

    # Solo operations (the gate held alone).
    def op_nobusy(self, c):
        """Writes on a connection without a busy timeout, alone."""
        nb = self.connect(busy_ms=0)
        try:
            for _ in range(self.rnd.randint(1, 20)):
                nb.execute("INSERT INTO t(w, k, v) VALUES (?, 3, "
                           "randomblob(?))", (self.idx,
                                              self.rnd.randint(10, 900)))
        finally:
            nb.close()

    def op_vacuum(self, c):
        c.execute("VACUUM")

    def op_page_size(self, c):
        c.execute(f"PRAGMA page_size = {self.rnd.choice([1024, 4096, 8192])}")
        c.execute("VACUUM")

    def op_checkpoint(self, c):
        mode = self.rnd.choice(["PASSIVE", "FULL", "RESTART", "TRUNCATE"])
        c.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()

    def op_exclusive(self, c):
        """Exclusive locking mode.  It needs the database to itself, which
        every other connection open on it denies (SQLite's own BUSY, not
        ours): then it is counted, not failed."""
        x = self.connect(busy_ms=0)
        try:
            x.execute("PRAGMA locking_mode = EXCLUSIVE")
            try:
                x.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                if "locked" not in str(e):
                    raise
                self.note("exclusive-denied")
                return
            x.execute("COMMIT")
            for _ in range(self.rnd.randint(1, 5)):
                x.execute("INSERT INTO t(w, k, v) VALUES (?, 4, "
                          "randomblob(100))", (self.idx,))
            x.execute("PRAGMA locking_mode = NORMAL")
            x.execute("SELECT count(*) FROM t").fetchone()
        finally:
            x.close()

    MENU = [  # (weight, operation, alone)
        (40, op_small, False), (4, op_large, False), (6, op_rollback, False),
        (6, op_savepoint, False), (3, op_reconnect, False),
        (2, op_reload, False), (2, op_seturl, False), (3, op_sync, False),
        (1, op_snapshot, False), (6, op_nobusy, True), (1, op_vacuum, True),
        (1, op_page_size, True), (3, op_checkpoint, True),
        (2, op_exclusive, True),
    ]

    def run(self):
        menu = list(self.MENU)
        if self.big:
            menu.append((1, Worker.op_huge, False))
        weights = [w for w, _, _ in menu]
        while True:
            _, op, alone = self.rnd.choices(menu, weights)[0]
            c = self.conn()
            (self.gate.exclusive if alone else self.gate.shared)()
            try:
                op(self, c)
                self.ops += 1
                self.note(f"op {op.__name__}")
            except sqlite3.Error as e:
                try:
                    c.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                self.fail(f"{op.__name__}: {type(e).__name__}: {e}")
            except Exception:
                self.fail(f"{op.__name__}: " + traceback.format_exc()
                          .replace("\n", " | "))
            finally:
                self.gate.release()
            time.sleep(self.rnd.random() * 0.004)


# ---- the supervisor -----------------------------------------------------

class Supervisor:
    def __init__(self, a):
        self.a = a
        self.d = harness.scratch("model")
        self.db = os.path.join(self.d, "app.db")
        self.url = harness.replica_url(self.d)
        self.rnd = random.Random(a.seed)
        self.gate = Gate(self.d)
        self.procs = {}
        self.kills = 0
        self.kp_armed = 0
        self.kp_kills = 0
        self.ours = set()  # workers the supervisor killed
        self.checks = 0
        self.history = []  # (txid, content hash, when) recorded at checks
        self.failed = False

    def replay(self):
        return (f"LITESTREAM_SO={os.environ['LITESTREAM_SO']} "
                f"LITESTREAM_SRCDIR={os.environ.get('LITESTREAM_SRCDIR', '.')} "
                f"LITESTREAM_TEST_BACKEND={harness.BACKEND} /usr/bin/python3 "
                f"test/model/model.py --seed {self.a.seed} "
                f"--seconds {self.a.seconds} --workers {self.a.workers}")

    def check(self, cond, what):
        if not ok(cond, what):
            self.failed = True
            diag(f"seed {self.a.seed}; replay: {self.replay()}")
        return cond

    def setup(self):
        harness.load()
        c = sqlite3.connect(self.db, isolation_level=None)
        c.execute(f"PRAGMA litestream_url = '{self.url}'")
        c.execute("PRAGMA litestream_sync_interval = 100")
        c.execute("PRAGMA litestream_levels = '1s,5s'")
        # Retention bounds the replica (a long soak otherwise fills the
        # disk): past TXIDs are only checked while they are restorable.
        c.execute("PRAGMA litestream_snapshot_interval = '20s'")
        c.execute("PRAGMA litestream_snapshot_retention = '3m'")
        c.execute("PRAGMA litestream_retention = '3m'")
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, w, k, v)")
        c.execute("CREATE INDEX t_k ON t(w, k)")
        c.execute("CREATE TABLE kv(k TEXT PRIMARY KEY, v)")
        c.close()

    def spawn(self, i):
        seed = self.rnd.randrange(1 << 32)
        env = dict(os.environ)
        env.pop("LITESTREAM_KILLPOINT", None)
        if KP_SO and os.path.exists(KP_SO) and self.rnd.random() < 0.4:
            env["LITESTREAM_KILLPOINT"] = (f"{self.rnd.choice(KILLPOINTS)}:"
                                           f"{self.rnd.randint(1, 8)}")
            self.kp_armed += 1
        p = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker",
             str(i), "--seed", str(seed), "--dir", self.d, "--url", self.url]
            + (["--big"] if self.a.seconds >= 300 else []),
            stdout=subprocess.DEVNULL, env=env,
            stderr=open(os.path.join(self.d, f"worker-{i}.err"), "ab"))
        self.procs[i] = p

    def kill_one(self):
        i = self.rnd.choice(sorted(self.procs))
        p = self.procs[i]
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            self.kills += 1
            p.wait()
            self.spawn(i)

    @staticmethod
    def txid(js):
        t = js["txid"]
        return int(t, 16) if isinstance(t, str) else t

    def kill_all(self):
        """Every worker SIGKILLed at once: the check that follows syncs
        from a fresh process, with the last transactions only in the WAL
        (litestream_sync() after a crash)."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                self.kills += 1
                self.ours.add(p.pid)
            p.wait()

    def respawn_dead(self):
        """Workers that died by themselves (at a kill point) start again."""
        for i, p in list(self.procs.items()):
            if p.poll() is not None:
                if (p.returncode == -signal.SIGKILL and
                        p.pid not in self.ours):
                    self.kp_kills += 1
                self.spawn(i)

    def restore(self, con, out, target=None):
        if os.path.exists(out):
            os.remove(out)
        js = json.loads(con.execute("SELECT litestream_restore(?, ?, ?)",
                                    (self.url, out, target)).fetchone()[0])
        o = sqlite3.connect(f"file:{out}?vfs=unix", uri=True)
        ic = o.execute("PRAGMA integrity_check").fetchone()[0]
        o.close()
        return js, ic, dump_hash(out)

    def stop_the_world_check(self, final=False, killed=False):
        """Syncs with every worker between operations, restores, compares."""
        self.gate.exclusive()
        con = None
        t0 = time.monotonic()
        try:
            con = sqlite3.connect(self.db, isolation_level=None)
            con.execute("PRAGMA wal_autocheckpoint = 0")
            h = dump_hash(self.db)
            t1 = time.monotonic()
            n = con.execute("SELECT litestream_sync(60000)").fetchone()[0]
            secs = time.monotonic() - t1
            out = os.path.join(self.d, "check.db")
            js, ic, got = self.restore(con, out)
            self.checks += 1
            good = self.txid(js) == n and ic == "ok" and got == h
            if not good or final or self.checks % 10 == 1:
                self.check(good, f"check {self.checks}: sync returned TXID {n}"
                                 f" in {secs:.1f} s; the restore is TXID "
                                 f"{self.txid(js)}, integrity {ic}, equal to the"
                                 f" database: {got == h}")
            self.failed |= not good
            if not good and got != h:
                self.explain(out, killed)
            if good:
                self.history.append((n, h, time.monotonic()))
            recent = self.recent()
            if recent and self.rnd.random() < 0.3:
                self.check_past(con, self.rnd.choice(recent))
        except Exception as e:
            self.check(False, f"check {self.checks}: {type(e).__name__}: {e}"
                              f" (after {time.monotonic() - t0:.1f} s"
                              f"{', all workers killed' if killed else ''})")
        finally:
            if con:
                con.close()
            self.gate.release()

    def explain(self, out, killed):
        """What differs between the database and the restore (diagnostic)."""
        def rows(path):
            c = sqlite3.connect(f"file:{path}?vfs=unix&mode=ro", uri=True)
            r = set(c.execute("SELECT 't', id, w, k, length(v) FROM t UNION "
                              "ALL SELECT 'kv', k, v, NULL, NULL FROM kv"))
            c.close()
            return r
        a, b = rows(self.db), rows(out)
        diag(f"all workers killed before this check: {killed}; only in the "
             f"database: {sorted(a - b)[:8]} ({len(a - b)}); only in the "
             f"restore: {sorted(b - a)[:8]} ({len(b - a)})")

    def recent(self):
        """Recorded TXIDs young enough to be restorable: newer than the
        oldest snapshot retention keeps (3m) and than the L0 objects it
        keeps after compaction (3m), with a wide margin."""
        now = time.monotonic()
        return [r for r in self.history if now - r[2] < 60]

    def check_past(self, con, rec):
        n, h, _ = rec
        js, ic, got = self.restore(con, os.path.join(self.d, "past.db"), n)
        good = self.txid(js) == n and ic == "ok" and got == h
        if not good:
            self.check(False, f"restore at recorded TXID {n}: TXID "
                              f"{self.txid(js)}, integrity {ic}, equal {got == h}")

    def worker_failures(self):
        out = []
        ops = 0
        for i in range(self.a.workers):
            p = os.path.join(self.d, f"worker-{i}.log")
            if not os.path.exists(p):
                continue
            for line in open(p, errors="replace"):
                if line.startswith("FAIL "):
                    out.append(f"worker {i}: {line[5:].strip()}")
                elif line.startswith("op "):
                    ops += 1
        return out, ops

    def run(self):
        self.setup()
        for i in range(self.a.workers):
            self.spawn(i)
        end = time.monotonic() + self.a.seconds
        next_check = time.monotonic() + 2
        while time.monotonic() < end:
            time.sleep(self.rnd.uniform(0.2, 1.5))
            self.respawn_dead()
            if self.rnd.random() < 0.6:
                self.kill_one()
            if time.monotonic() >= next_check:
                killed = self.rnd.random() < 0.25
                if killed:
                    self.kill_all()  # the whole application dies
                self.stop_the_world_check(killed=killed)
                self.respawn_dead()
                next_check = time.monotonic() + self.rnd.uniform(1, 4)
        for p in self.procs.values():
            p.send_signal(signal.SIGKILL)
            p.wait()
        self.kills += len(self.procs)
        self.stop_the_world_check(final=True)
        harness.load()
        con = sqlite3.connect(":memory:")
        recent = self.recent()
        for rec in self.rnd.sample(recent, min(8, len(recent))):
            self.check_past(con, rec)
        con.close()
        fails, ops = self.worker_failures()
        self.check(not fails, f"no operation failed ({ops} operations by "
                              f"{self.a.workers} workers)")
        for f in fails[:20]:
            diag(f)
        self.check(self.checks >= 2 and len(self.history) >= 2,
                   f"{self.checks} comparisons ran, "
                   f"{len(self.history)} TXIDs recorded")
        diag(f"seed {self.a.seed}: {ops} operations, {self.kills} kills by "
             f"the supervisor, {self.kp_kills} at kill points ("
             f"{self.kp_armed} armed), {self.checks} comparisons, "
             f"backend {harness.BACKEND}")
        used = sum(os.path.getsize(os.path.join(dp, f))
                   for dp, _, fs in os.walk(self.d) for f in fs)
        diag(f"disk used by the run: {used >> 20} MiB")
        if not self.failed:
            cleanup(self.d)
        else:
            diag(f"kept {self.d}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int,
                    default=int(os.environ.get("MODEL_SEED", "0")) or
                    random.randrange(1, 1 << 31))
    ap.add_argument("--seconds", type=int,
                    default=int(os.environ.get("MODEL_SECONDS", "60")))
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--worker", type=int)
    ap.add_argument("--dir")
    ap.add_argument("--url")
    ap.add_argument("--big", action="store_true")
    a = ap.parse_args()
    if a.worker is not None:
        Worker(os.path.join(a.dir, "app.db"), a.url, a.seed, a.worker, a.dir,
               a.big).run()
        return
    diag(f"seed {a.seed}, {a.seconds} s, {a.workers} workers, backend "
         f"{harness.BACKEND}")
    Supervisor(a).run()
    harness.done()


main()
