#!/usr/bin/python3
"""SIGKILL the writer at random moments (CRASH_ROUNDS, default 12; seed in
CRASH_SEED or random, printed).  After each kill: reopen the database with
the extension (replication resumes), litestream_sync(), restore, and check
that the restore passes integrity_check, is identical to the database, and
holds every transaction acknowledged before the kill and nothing that was
not committed."""
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "vfs"))
from harness import (replica_url, SO, cleanup, diag, done, dump_hash, load, ok,  # noqa
                     scratch)

seed = int(os.environ.get("CRASH_SEED") or random.randrange(1 << 30))
rounds = int(os.environ.get("CRASH_ROUNDS", "12"))
diag(f"seed {seed} (CRASH_SEED={seed} reproduces), {rounds} rounds")
rnd = random.Random(seed)
load()
d = scratch("crash")
db = os.path.join(d, "app.db")
url = replica_url(d)
writer = os.path.join(os.path.dirname(__file__), "writer.py")
# The database exists and is replicated before the first kill.
setup = sqlite3.connect(db, isolation_level=None)
setup.execute(f"PRAGMA litestream_url = '{url}'")
setup.execute("CREATE TABLE t(seq INTEGER PRIMARY KEY, v BLOB)")
setup.close()
acked = 0
for rnd_i in range(rounds):
    p = subprocess.Popen(["/usr/bin/python3", writer, SO, db, url,
                          str(rnd.randrange(1 << 30)), str(acked)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    last = [acked]

    def reader():
        for line in p.stdout:
            last[0] = int(line)
    th = threading.Thread(target=reader)
    th.start()
    time.sleep(rnd.uniform(0.05, 0.6))
    p.send_signal(signal.SIGKILL)
    p.wait()
    th.join()
    err = p.stderr.read()
    if err.strip():
        diag(err)
    acked = last[0]
    con = sqlite3.connect(db, isolation_level=None)
    try:
        first_max = con.execute("SELECT max(seq) FROM t").fetchone()[0]
        txid = con.execute("SELECT litestream_sync(20000)").fetchone()[0]
        after_sync = con.execute("SELECT max(seq) FROM t").fetchone()[0]
        if first_max != after_sync:
            diag(f"view changed: at open {first_max}, after sync {after_sync}")
        out = os.path.join(d, f"restore-{rnd_i}.db")
        con.execute("SELECT litestream_restore(?, ?)", (url, out))
        r = sqlite3.connect(f"file:{out}?vfs=unix", uri=True)
        ic = r.execute("PRAGMA integrity_check").fetchone()[0]
        mx = r.execute("SELECT max(seq) FROM t").fetchone()[0] or 0
        n = r.execute("SELECT count(*) FROM t").fetchone()[0]
        r.close()
        src_max = con.execute("SELECT max(seq) FROM t").fetchone()[0] or 0
        same = dump_hash(db) == dump_hash(out)
        if not same:
            a = sqlite3.connect(f"file:{db}?vfs=unix", uri=True)
            a.execute(f"ATTACH 'file:{out}?vfs=unix' AS r")
            bad = a.execute("SELECT t.seq, length(t.v), length(rt.v) FROM "
                            "t JOIN r.t AS rt USING(seq) WHERE t.v IS NOT "
                            "rt.v LIMIT 5").fetchall()
            diag(f"differing rows (seq, len src, len restored): {bad}")
            diag(f"con max now {con.execute('SELECT max(seq) FROM t').fetchone()}"
                 f", fresh unix max {sqlite3.connect(f'file:{db}?vfs=unix', uri=True).execute('SELECT max(seq) FROM t').fetchone()}"
                 f", fresh litestream max {sqlite3.connect(db).execute('SELECT max(seq) FROM t').fetchone()}"
                 f", wal size {os.path.getsize(db + '-wal') if os.path.exists(db + '-wal') else None}")
            import difflib
            la = list(sqlite3.connect(f"file:{db}?vfs=unix", uri=True)
                      .iterdump())
            lb = list(sqlite3.connect(f"file:{out}?vfs=unix", uri=True)
                      .iterdump())
            diag(f"dump lines {len(la)} vs {len(lb)}")
            for ln in list(difflib.unified_diff(la, lb, lineterm=""))[:8]:
                diag(ln[:200])
            a.close()
        ok(ic == "ok" and same and mx >= acked and n == mx and
           mx == src_max,
           f"round {rnd_i}: TXID {txid}: acked {acked}, restored max {mx} "
           f"({n} rows), identical {same}, integrity {ic}")
        acked = src_max  # committed before the kill, maybe unacknowledged
        os.remove(out)
    except Exception as e:
        ok(False, f"round {rnd_i}: {type(e).__name__}: {e}")
    con.close()
cleanup(d)
done()
