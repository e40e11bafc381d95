#!/usr/bin/python3
"""Workloads through the replicating VFS, each restored and compared with
the source (content and integrity_check; the restore itself verifies the
LTX post-apply checksum against the restored file)."""
import json
import os
import sqlite3

from harness import (replica_url, cleanup, diag, done, dump_hash, load, ok,
                     restore_and_compare, run_cases, scratch)

load()


def fresh(name, **pragmas):
    d = scratch(name)
    db = os.path.join(d, "app.db")
    url = replica_url(d)
    con = sqlite3.connect(db, isolation_level=None)
    for k, v in pragmas.items():
        con.execute(f"PRAGMA {k}={v}")
    r = con.execute(f"PRAGMA litestream_url = '{url}'").fetchone()[0]
    ok(r == url, f"{name}: PRAGMA litestream_url returns the URL")
    return d, db, url, con


def w_small():
    d, db, url, con = fresh("small")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    for i in range(500):
        con.execute("INSERT INTO t(v) VALUES (?)", (f"row {i}",))
    restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                        "many small transactions")
    st = json.loads(con.execute("SELECT litestream_status()").fetchone()[0])
    s = st["databases"][0]
    ok(s["replicated_txid"] == s["txid"] and s["last_error"] is None,
       f"status: replicated {s['replicated_txid']} == captured {s['txid']}")
    ok(con.execute("PRAGMA journal_mode").fetchone()[0] == "wal",
       "setting the URL switched the database to WAL")
    cleanup(d)


def w_spill():
    d, db, url, con = fresh("spill", cache_size=10)
    con.execute("CREATE TABLE t(x)")
    con.execute("BEGIN")
    for i in range(3000):
        con.execute("INSERT INTO t VALUES (randomblob(500))")
    con.execute("COMMIT")
    restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                        "transaction larger than the page cache")
    cleanup(d)


def w_huge():
    # Bigger than the capture's 64 MiB buffer: queued by reference and
    # streamed from the WAL by the replicator.
    d, db, url, con = fresh("huge")
    con.execute("CREATE TABLE t(x)")
    con.execute("INSERT INTO t VALUES ('before')")
    con.execute("BEGIN")
    for i in range(20000):
        con.execute("INSERT INTO t VALUES (randomblob(4000))")
    con.execute("COMMIT")
    con.execute("INSERT INTO t VALUES ('after')")
    restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                        "one 80 MB transaction (bigger than the buffer)")
    cleanup(d)


def w_rollback():
    d, db, url, con = fresh("rollback", cache_size=10)
    con.execute("CREATE TABLE t(x)")
    con.execute("INSERT INTO t VALUES (1)")
    con.execute("BEGIN")
    for i in range(2000):
        con.execute("INSERT INTO t VALUES (randomblob(400))")
    con.execute("ROLLBACK")  # spilled frames, rolled back
    con.execute("BEGIN")
    con.execute("INSERT INTO t VALUES (2)")
    con.execute("SAVEPOINT a")
    con.execute("INSERT INTO t VALUES (3)")
    con.execute("ROLLBACK TO a")
    con.execute("RELEASE a")
    con.execute("COMMIT")
    restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                        "rollbacks and savepoints")
    ok(sqlite3.connect(os.path.join(d, "out.db"))
       .execute("SELECT group_concat(x) FROM t").fetchone()[0] == "1,2",
       "rolled-back rows are not in the restore")
    cleanup(d)


def w_schema():
    d, db, url, con = fresh("schema")
    con.execute("CREATE TABLE a(x)")
    con.execute("CREATE TABLE b(x)")
    for i in range(200):
        con.execute("INSERT INTO a VALUES (randomblob(1000))")
        con.execute("INSERT INTO b VALUES (?)", (i,))
    con.execute("DROP TABLE a")
    con.execute("VACUUM")
    restore_and_compare(con, db, url, os.path.join(d, "out1.db"),
                        "DROP TABLE + VACUUM (shrink)")
    con.execute("PRAGMA page_size=8192")
    con.execute("VACUUM")
    restore_and_compare(con, db, url, os.path.join(d, "out2.db"),
                        "page_size change by VACUUM")
    cleanup(d)


def w_autovacuum():
    # auto_vacuum=FULL shrinks the file at every commit that frees pages;
    # INCREMENTAL shrinks it when asked.
    for mode in ("FULL", "INCREMENTAL"):
        d = scratch("autovacuum-" + mode.lower())
        db = os.path.join(d, "app.db")
        url = replica_url(d)
        con = sqlite3.connect(db, isolation_level=None)
        con.execute(f"PRAGMA auto_vacuum={mode}")
        con.execute(f"PRAGMA litestream_url = '{url}'")
        con.execute("CREATE TABLE t(x)")
        for i in range(300):
            con.execute("INSERT INTO t VALUES (randomblob(3000))")
        before = con.execute("PRAGMA page_count").fetchone()[0]
        con.execute("DELETE FROM t WHERE rowid % 3 != 0")
        if mode == "INCREMENTAL":
            con.executescript("PRAGMA incremental_vacuum;")
        after = con.execute("PRAGMA page_count").fetchone()[0]
        ok(after < before, f"auto_vacuum={mode} shrank {before} -> {after} "
           "pages")
        restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                            f"auto_vacuum={mode} shrink")
        con.close()
        cleanup(d)


def w_checkpoints():
    for mode in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
        d, db, url, con = fresh("ckpt-" + mode.lower())
        other = sqlite3.connect(db, isolation_level=None)
        con.execute("CREATE TABLE t(x)")
        for r in range(3):
            for i in range(100):
                con.execute("INSERT INTO t VALUES (?)", (i,))
            (con if r % 2 == 0 else other).execute(
                f"PRAGMA wal_checkpoint({mode})")
            con.execute("SELECT litestream_sync(10000)")  # one upload each
        for i in range(50):
            other.execute("INSERT INTO t VALUES (?)", (i,))
        restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                            f"checkpoint {mode} from writer and other conn")
        st = json.loads(con.execute("SELECT litestream_status()")
                        .fetchone()[0])["databases"][0]
        ok(st["forced_full_images"] <= 1,
           f"checkpoint {mode}: no full image after the first "
           f"({st['forced_full_images']})")
        # Nor uploaded.  (After a TRUNCATE checkpoint the zero-copy
        # capture once seeded the next commit's reference with the old
        # WAL's checksum: the spool could not validate it, and every round
        # uploaded the whole database: 4 of 5 uploads.)
        ok(st["full_images"] <= 1,
           f"checkpoint {mode}: no full image uploaded after the first "
           f"({st['full_images']} of {st['uploads']} uploads)")
        other.close()
        cleanup(d)


def w_autockpt():
    for n in (0, 5):
        d, db, url, con = fresh(f"autockpt{n}", wal_autocheckpoint=n)
        con.execute("CREATE TABLE t(x)")
        for i in range(300):
            con.execute("INSERT INTO t VALUES (randomblob(100))")
        restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                            f"wal_autocheckpoint={n}")
        cleanup(d)


def w_sync_modes():
    for m in ("OFF", "NORMAL", "FULL"):
        d, db, url, con = fresh("sync-" + m.lower(), synchronous=m)
        con.execute("CREATE TABLE t(x)")
        for i in range(100):
            con.execute("INSERT INTO t VALUES (?)", (i,))
        restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                            f"synchronous={m}")
        cleanup(d)


def w_exclusive():
    d, db, url, con = fresh("exclusive")
    con.execute("PRAGMA locking_mode=EXCLUSIVE")
    con.execute("CREATE TABLE t(x)")
    for i in range(200):
        con.execute("INSERT INTO t VALUES (?)", (i,))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for i in range(20):
        con.execute("INSERT INTO t VALUES (?)", (i,))
    txid = con.execute("SELECT litestream_sync(10000)").fetchone()[0]
    out = os.path.join(d, "out.db")
    con.execute("SELECT litestream_restore(?, ?)", (url, out))
    con.close()  # releases the exclusive lock so the source can be read
    ok(dump_hash(db) == dump_hash(out),
       f"locking_mode=EXCLUSIVE after replication started: restore at TXID "
       f"{txid} identical")
    # Exclusive from the very first write (the first full image cannot be
    # read by a private connection: the capture takes it itself).
    d2 = scratch("exclusive-first")
    db2 = os.path.join(d2, "app.db")
    url2 = replica_url(d2)
    c2 = sqlite3.connect(db2, isolation_level=None)
    c2.execute("PRAGMA journal_mode=WAL")
    c2.execute("PRAGMA locking_mode=EXCLUSIVE")
    c2.execute("CREATE TABLE t(x)")
    c2.execute("INSERT INTO t VALUES (1)")
    c2.execute(f"PRAGMA litestream_url = '{url2}'")
    for i in range(300):
        c2.execute("INSERT INTO t VALUES (randomblob(200))")
    c2.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for i in range(30):
        c2.execute("INSERT INTO t VALUES (?)", (i,))
    txid = c2.execute("SELECT litestream_sync(10000)").fetchone()[0]
    out2 = os.path.join(d2, "out.db")
    c2.execute("SELECT litestream_restore(?, ?)", (url2, out2))
    rows = c2.execute("SELECT count(*) FROM t").fetchone()[0]
    c2.close()  # releases the exclusive lock so the source can be read
    same = dump_hash(db2) == dump_hash(out2)
    ok(same and rows == 331,
       f"locking_mode=EXCLUSIVE from the first write: restore at TXID {txid}"
       f" identical ({rows} rows)")
    cleanup(d2)
    cleanup(d)


def w_reopen():
    d, db, url, con = fresh("reopen")
    con.execute("CREATE TABLE t(x)")
    for i in range(100):
        con.execute("INSERT INTO t VALUES (?)", (i,))
    con.execute("SELECT litestream_sync(10000)")
    con.close()
    con = sqlite3.connect(db, isolation_level=None)
    ok(con.execute("PRAGMA litestream_url").fetchone()[0] == url,
       "reopen: the URL is remembered in the sidecar")
    for i in range(100):
        con.execute("INSERT INTO t VALUES (?)", (i,))
    restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                        "close and reopen: replication resumes")
    st = json.loads(con.execute("SELECT litestream_status()")
                    .fetchone()[0])["databases"][0]
    ok(st["full_images"] == 0 and st["forced_full_images"] == 0,
       "close and reopen: no full image when nothing was missed "
       f"(uploads {st['uploads']}, full images {st['full_images']})")
    # A position that no longer matches: the WAL and sidecar position say
    # one thing, the database another (replaced by an older copy).
    con.close()
    import shutil
    shutil.copy(os.path.join(d, "out.db"), os.path.join(d, "older.db"))
    con = sqlite3.connect(db, isolation_level=None)
    for i in range(10):
        con.execute("INSERT INTO t VALUES (?)", (i,))
    con.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    shutil.copy(os.path.join(d, "older.db"), db)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("INSERT INTO t VALUES ('after replace')")
    restore_and_compare(con, db, url, os.path.join(d, "out2.db"),
                        "replaced database: next TXID is a full image")
    st = json.loads(con.execute("SELECT litestream_status()")
                    .fetchone()[0])["databases"][0]
    ok(st["full_images"] == 1, "replaced database: exactly one full image "
       f"({st['full_images']})")
    cleanup(d)


def w_existing():
    # A database with content written before replication was configured:
    # setting the URL alone makes it restorable (no further write needed).
    d = scratch("existing")
    db = os.path.join(d, "app.db")
    p = sqlite3.connect(f"file:{db}?vfs=unix", uri=True, isolation_level=None)
    p.execute("PRAGMA journal_mode=WAL")
    p.execute("CREATE TABLE t(x)")
    p.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(500)])
    p.execute("PRAGMA user_version = 42")
    p.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    p.close()
    con = sqlite3.connect(db, isolation_level=None)
    url = replica_url(d)
    con.execute(f"PRAGMA litestream_url = '{url}'")
    ok(con.execute("PRAGMA user_version").fetchone()[0] == 42,
       "existing database: user_version untouched")
    restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                        "existing database, URL set, no write since")
    con.close()
    cleanup(d)


def w_nobusy():
    # A single writer without a busy timeout (the C API's default), right
    # after the URL is set on a database with content: the extension's
    # first full image must never take the write lock from it.
    for rnd in range(2):
        d = scratch("nobusy")
        db = os.path.join(d, "app.db")
        p = sqlite3.connect(f"file:{db}?vfs=unix", uri=True,
                            isolation_level=None)
        p.execute("PRAGMA journal_mode=WAL")
        p.execute("CREATE TABLE t(x)")
        p.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(2000)])
        p.close()
        con = sqlite3.connect(db, isolation_level=None, timeout=0)
        url = replica_url(d)
        con.execute(f"PRAGMA litestream_url = '{url}'")
        err, i = None, 0
        try:
            for i in range(20000):
                con.execute("INSERT INTO t VALUES (?)", (i,))
        except sqlite3.OperationalError as e:
            err = e
        ok(err is None, f"round {rnd}: 20000 commits without a busy timeout"
                        f" right after the URL: no error ({err} at {i})")
        restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                            f"round {rnd}: no busy timeout")
        con.close()
        cleanup(d)


run_cases(w_small, w_spill, w_huge, w_rollback, w_schema, w_autovacuum,
          w_checkpoints, w_autockpt, w_sync_modes, w_exclusive, w_reopen,
          w_existing, w_nobusy)
done()
