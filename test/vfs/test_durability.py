#!/usr/bin/python3
"""PRAGMA litestream_durability = 'remote': a COMMIT returns only once the
replica holds it.  Every acknowledged commit is in the replica at once;
host loss (the writer SIGKILLed, its database, WAL and sidecar deleted)
loses no acknowledged commit; an unreachable replica makes COMMIT fail
with LITESTREAM_UNCONFIRMED after the timeout while the transaction stays
committed and is replicated once the replica is back; the auto-checkpoint
keeps working under the WAL hook remote mode installs; the PRAGMAs
validate and persist.  Runs on the directory backend and, as
durability-s3, on s3rver."""
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

from harness import (BACKEND, SO, cleanup, diag, done, dump_hash, load, ok,
                     replica_url, run_cases, scratch)

UNCONFIRMED = 28 | (0x4C << 8)  # LITESTREAM_UNCONFIRMED (docs/sql.md)
load()


def status(con):
    return json.loads(con.execute("SELECT litestream_status()").fetchone()[0]
                      )["databases"][0]


def remote_db(d, url, mode="remote", timeout=None):
    db = os.path.join(d, "app.db")
    con = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    con.execute(f"PRAGMA litestream_url = '{url}'")
    con.execute(f"PRAGMA litestream_durability = '{mode}'")
    if timeout:
        con.execute(f"PRAGMA litestream_durability_timeout = {timeout}")
    con.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v)")
    return db, con


def restored_ids(url, out):
    if os.path.exists(out):
        os.unlink(out)
    c = sqlite3.connect(":memory:")
    c.execute("SELECT litestream_restore(?, ?)", (url, out)).fetchone()
    c.close()
    o = sqlite3.connect(f"file:{out}?vfs=unix", uri=True)
    ic = o.execute("PRAGMA integrity_check").fetchone()[0]
    ids = {r[0] for r in o.execute("SELECT id FROM t")}
    o.close()
    return ic, ids


def ack_in_replica():
    """Each COMMIT returns with its TXID already in the replica."""
    d = scratch("dur-ack")
    url = replica_url(d)
    db, con = remote_db(d, url)
    behind = 0
    for i in range(40):
        con.execute("INSERT INTO t(v) VALUES (randomblob(300))")
        s = status(con)
        if int(s["replicated_txid"], 16) < int(s["txid"], 16):
            behind += 1
    con.execute("BEGIN")
    con.execute("INSERT INTO t(v) VALUES ('explicit')")
    con.execute("COMMIT")
    s = status(con)
    ok(behind == 0 and s["replicated_txid"] == s["txid"],
       f"40 autocommits and an explicit COMMIT: none returned before the "
       f"replica held it ({behind} behind; txid {s['txid']}, replicated "
       f"{s['replicated_txid']})")
    ok(s["durability"] == "remote" and s["unconfirmed_commits"] == 0,
       "status: durability 'remote', no unconfirmed commits")
    # Restored right away, without litestream_sync(): identical.
    out = os.path.join(d, "out.db")
    ic, ids = restored_ids(url, out)
    ok(ic == "ok" and dump_hash(out) == dump_hash(db),
       "restored without a sync: identical to the database")
    con.close()
    cleanup(d)


def group_commit():
    """Four threads commit at once: every commit is acknowledged only once
    replicated, and they share uploads."""
    d = scratch("dur-group")
    url = replica_url(d)
    db, con = remote_db(d, url)
    errors = []
    acked = []
    lock = threading.Lock()

    def writer(k):
        c = sqlite3.connect(db, isolation_level=None, timeout=30)
        try:
            for i in range(25):
                cur = c.execute("INSERT INTO t(v) VALUES (?)", (f"{k}-{i}",))
                with lock:
                    acked.append(cur.lastrowid)
        except sqlite3.Error as e:
            errors.append(str(e))
        c.close()

    before = status(con)["uploads"]
    ths = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    uploads = status(con)["uploads"] - before
    ok(not errors and len(acked) == 100,
       f"4 threads x 25 commits acknowledged ({errors[:1]})")
    ic, ids = restored_ids(url, os.path.join(d, "out.db"))
    ok(ic == "ok" and set(acked) <= ids,
       f"every acknowledged row is in the replica ({len(set(acked) - ids)} "
       f"missing)")
    diag(f"100 commits from 4 threads took {uploads} uploads")
    ok(uploads <= 100, f"no more uploads than commits ({uploads})")
    con.close()
    cleanup(d)


CHILD = r"""
import os, sqlite3, sys
c = sqlite3.connect(":memory:"); c.enable_load_extension(True)
c.load_extension(sys.argv[1]); c.close()
con = sqlite3.connect(sys.argv[2], isolation_level=None)
con.execute("PRAGMA litestream_url = '%s'" % sys.argv[3])
con.execute("PRAGMA litestream_durability = 'remote'")
con.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v)")
print("ready", flush=True)
i = 0
while True:
    i += 1
    if i % 7 == 0:
        con.execute("BEGIN")
        for j in range(20):
            con.execute("INSERT INTO t(v) VALUES (randomblob(3000))")
        rid = con.execute("INSERT INTO t(v) VALUES ('b') RETURNING id"
                          ).fetchone()[0]
        con.execute("COMMIT")
    else:
        rid = con.execute("INSERT INTO t(v) VALUES (randomblob(200)) "
                          "RETURNING id").fetchone()[0]
    print(rid, flush=True)
"""


def host_loss():
    """A writer in remote mode is SIGKILLed at a random moment and its
    database, WAL and sidecar are deleted: the restore holds every commit
    it acknowledged (20 trials)."""
    rnd = random.Random(int(os.environ.get("DURABILITY_SEED", "0")) or None)
    seed = rnd.randrange(1 << 30)
    rnd = random.Random(seed)
    lost = []
    total = 0
    for trial in range(20):
        d = scratch(f"dur-loss{trial}")
        url = replica_url(d)
        db = os.path.join(d, "app.db")
        p = subprocess.Popen([sys.executable, "-c", CHILD, SO, db, url],
                             stdout=subprocess.PIPE, text=True)
        ready = p.stdout.readline().strip() == "ready"
        lines = []
        t = threading.Thread(target=lambda: lines.extend(p.stdout))
        t.start()
        time.sleep(0.05 + rnd.random() * 0.4)
        p.send_signal(signal.SIGKILL)
        p.wait()
        t.join()
        acked = {int(x) for x in lines if x.strip().isdigit()}
        total += len(acked)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.unlink(db + suffix)
        subprocess.run(["rm", "-rf", db + "-litestream"], check=True)
        ic, ids = restored_ids(url, os.path.join(d, "out.db"))
        if not ready or ic != "ok" or not acked <= ids:
            lost.append((trial, ready, ic, sorted(acked - ids)[:5]))
        cleanup(d)
    ok(not lost, f"host loss, 20 trials, {total} acknowledged commits: "
                 f"none lost (seed {seed}; DURABILITY_SEED={seed} replays "
                 f"the timings) {lost[:3]}")


def unreachable():
    """The replica cannot be written: COMMIT fails after the timeout with
    LITESTREAM_UNCONFIRMED, the row is committed, and once the replica is
    back everything is replicated.  (A directory whose parent is a file:
    the upload fails whatever the user's rights.)"""
    d = scratch("dur-down")
    block = os.path.join(d, "blocked")
    os.mkdir(block)
    url = "file://" + os.path.join(block, "replica")
    db, con = remote_db(d, url, timeout=400)
    con.execute("INSERT INTO t(v) VALUES ('before')")
    os.rename(block, block + ".away")
    with open(block, "w") as f:
        f.write("not a directory")
    t0 = time.time()
    err = None
    try:
        con.execute("INSERT INTO t(v) VALUES ('during')")
    except sqlite3.Error as e:
        err = e
    took = time.time() - t0
    code = getattr(err, "sqlite_errorcode", None)
    ok(err is not None and code == UNCONFIRMED and 0.35 < took < 5,
       f"COMMIT with the replica down: error code {code} "
       f"(LITESTREAM_UNCONFIRMED = {UNCONFIRMED}) after {took:.2f} s: {err}")
    n = con.execute("SELECT count(*) FROM t WHERE v = 'during'").fetchone()[0]
    ok(n == 1 and con.in_transaction is False,
       "... the transaction is committed, no transaction left open")
    s = status(con)
    ok(s["unconfirmed_commits"] == 1,
       f"status counts it: unconfirmed_commits {s['unconfirmed_commits']}")
    # A second connection's commit times out the same way; reads are free.
    os.unlink(block)
    os.rename(block + ".away", block)
    con.execute("INSERT INTO t(v) VALUES ('after')")
    ic, ids = restored_ids(url, os.path.join(d, "out.db"))
    o = sqlite3.connect(f"file:{os.path.join(d, 'out.db')}?vfs=unix", uri=True)
    vals = sorted(r[0] for r in o.execute("SELECT v FROM t"))
    o.close()
    ok(ic == "ok" and vals == ["after", "before", "during"],
       f"replica back: the next COMMIT returns normally and the restore "
       f"holds all three rows ({vals})")
    con.close()
    cleanup(d)


def autocheckpoint():
    """Remote mode installs its own WAL hook: the auto-checkpoint still
    runs at the connection's threshold, and PRAGMA wal_autocheckpoint = 0
    still turns it off."""
    d = scratch("dur-ckpt")
    url = replica_url(d)
    db, con = remote_db(d, url)
    con.execute("PRAGMA wal_autocheckpoint = 50")
    for i in range(300):
        con.execute("INSERT INTO t(v) VALUES (randomblob(3000))")
    pages = os.path.getsize(db + "-wal") // 4120
    ok(pages < 150, f"wal_autocheckpoint = 50: the WAL stays small "
                    f"({pages} frames after 300 commits of 1-2 pages)")
    ok(con.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 50,
       "PRAGMA wal_autocheckpoint reads back 50")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("PRAGMA wal_autocheckpoint = 0")
    for i in range(300):
        con.execute("INSERT INTO t(v) VALUES (randomblob(3000))")
    pages = os.path.getsize(db + "-wal") // 4120
    ok(pages >= 300, f"wal_autocheckpoint = 0: no checkpoint ({pages} "
                     f"frames)")
    s = status(con)
    ok(s["replicated_txid"] == s["txid"],
       "... and every commit still waited for the replica")
    con.close()
    cleanup(d)


def exclusive_mode():
    """locking_mode = EXCLUSIVE (no wal-index locks; the capture runs at
    COMMIT_PHASETWO): commits still wait for the replica."""
    d = scratch("dur-excl")
    url = replica_url(d)
    db, con = remote_db(d, url)
    con.execute("PRAGMA locking_mode = EXCLUSIVE")
    behind = 0
    for i in range(10):
        con.execute("INSERT INTO t(v) VALUES (randomblob(100))")
        s = status(con)
        behind += s["replicated_txid"] != s["txid"]
    ok(behind == 0, f"exclusive locking mode: 10 commits, {behind} returned "
                    f"before the replica held them")
    con.close()
    cleanup(d)


def pragmas():
    """Values, errors and persistence of the two PRAGMAs."""
    d = scratch("dur-pragma")
    db = os.path.join(d, "app.db")
    con = sqlite3.connect(db, isolation_level=None)

    def err(sql):
        try:
            con.execute(sql).fetchall()
            return None
        except sqlite3.Error as e:
            return str(e)
    e = err("PRAGMA litestream_durability = 'remote'")
    ok(e and "not being replicated" in e and "litestream_url" in e,
       f"before a URL: {e}")
    url = replica_url(d)
    con.execute(f"PRAGMA litestream_url = '{url}'")
    ok(con.execute("PRAGMA litestream_durability").fetchone()[0] == "local",
       "default 'local'")
    e = err("PRAGMA litestream_durability = 'sometimes'")
    ok(e and "'local', 'remote' or 'remote-all'" in e, f"bad value: {e}")
    e = err("PRAGMA litestream_durability_timeout = 0")
    ok(e and "between 1 and 86400000" in e, f"bad timeout: {e}")
    ok(con.execute("PRAGMA litestream_durability_timeout"
                   ).fetchone()[0] == "10000", "default timeout 10000 ms")
    con.execute("PRAGMA litestream_durability = 'REMOTE-ALL'")
    con.execute("PRAGMA litestream_durability_timeout = 2500")
    con.close()
    con = sqlite3.connect(db, isolation_level=None)
    ok(con.execute("PRAGMA litestream_durability").fetchone()[0] ==
       "remote-all" and con.execute("PRAGMA litestream_durability_timeout"
                                    ).fetchone()[0] == "2500",
       "both stored with the URL: read back after reopening")
    con.execute("CREATE TABLE t(x)")
    s = status(con)
    ok(s["replicated_txid"] == s["txid"],
       "'remote-all' with one replica waits for it")
    con.execute("PRAGMA litestream_url = ''")
    con.execute("INSERT INTO t VALUES (1)")  # not replicating: no wait
    ok(status(con)["replicating"] is False,
       "replication stopped: a commit returns (nothing to wait for)")
    con.close()
    cleanup(d)


cases = [ack_in_replica, group_commit, host_loss, unreachable,
         autocheckpoint, exclusive_mode, pragmas]
if BACKEND != "file":
    cases.remove(unreachable)  # its fault is a directory's
run_cases(*cases)
done()
