#!/usr/bin/python3
"""Several replicas: PRAGMA litestream_url = 'URL1 URL2 URL3' replicates to
each independently.  A failing replica (a file:// path whose parent is a
regular file) neither stops nor slows the others: they keep their lag while
it backs off; litestream_sync() names it; durability 'remote' waits for the
first replica, 'remote-all' for every one.  Once healthy it catches up, and
a restore from each URL is identical to the database.  A reopen continues
every replica from its own position (no full image).  A replica whose
server hangs (an S3 replica behind the fault proxy, test/servers/
faultproxy.py, that stalls every request), with the default timeout and
retries, delays nothing on the other one.  Bad lists are refused and change
nothing.  On the directory backend, and as replicas-s3 with the first
replica on s3rver (the others file://); the stalled replica is on s3rver
in both runs (skipped without it)."""
import json
import os
import sqlite3
import time

from harness import (SO, cleanup, diag, done, dump_hash, load, ok, replica_url,
                     run_cases, scratch)

UNCONFIRMED = 28 | (0x4C << 8)  # LITESTREAM_UNCONFIRMED (docs/sql.md)
load()


def status(con):
    return json.loads(con.execute("SELECT litestream_status()")
                      .fetchone()[0])["databases"][0]


def wait_for(cond, what, timeout=30.0):
    """Polls cond() until true or timeout (no fixed sleep races a thread)."""
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    return cond()


def open_db(path):
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.enable_load_extension(True)
    con.load_extension(SO)
    return con


def restore_from(url, out, src, what):
    if os.path.exists(out):
        os.unlink(out)
    c = sqlite3.connect(":memory:")
    c.enable_load_extension(True)
    c.load_extension(SO)
    c.execute("SELECT litestream_restore(?, ?)", (url, out)).fetchone()
    c.close()
    o = sqlite3.connect(f"file:{out}?vfs=unix", uri=True)
    ic = o.execute("PRAGMA integrity_check").fetchone()[0]
    o.close()
    ok(ic == "ok" and dump_hash(src) == dump_hash(out),
       f"{what}: the restore from {url.split('?')[0]} is identical "
       f"(integrity {ic})")


def replicated(s, i):
    return int(s["replicas"][i]["replicated_txid"], 16)


def one_failing():
    d = scratch("replicas")
    blocker = os.path.join(d, "blocker")
    with open(blocker, "w") as f:
        f.write("a regular file: no directory can be made under it\n")
    urls = [replica_url(d, "a"), "file://" + os.path.join(d, "b"),
            "file://" + os.path.join(blocker, "c")]
    db = os.path.join(d, "app.db")
    con = open_db(db)
    got = con.execute(f"PRAGMA litestream_url = '{' '.join(urls)}'"
                      ).fetchone()[0]
    con.execute("PRAGMA litestream_sync_interval = 100")
    ok(got.split() == [u.split('?')[0] for u in urls] or
       len(got.split()) == 3,
       f"PRAGMA litestream_url returns the list of three ({got[:200]})")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
    for i in range(30):
        con.execute("INSERT INTO t(v) VALUES (randomblob(500))")
    s = wait_for(lambda: (lambda s: s if replicated(s, 0) >= int(
        s["txid"], 16) and replicated(s, 1) >= int(s["txid"], 16) else None)(
        status(con)), "healthy replicas caught up", 20)
    s = s or status(con)
    txid = int(s["txid"], 16)
    ok(replicated(s, 0) == txid and replicated(s, 1) == txid,
       f"the two healthy replicas hold TXID {txid} while the third fails "
       f"({[r['replicated_txid'] for r in s['replicas']]})")
    bad = s["replicas"][2]
    ok(len(s["replicas"]) == 3 and replicated(s, 2) < txid and
       bad["last_error"] and bad["errors"] > 0 and
       s["replicas"][0]["last_error"] is None,
       f"status lists each replica: the third has its own error "
       f"({(bad['last_error'] or {}).get('message', '')[:160]})")
    ok(int(s["replicated_txid"], 16) == replicated(s, 2),
       "the top-level replicated_txid is what every replica holds")

    # The healthy ones keep their lag: each commit is replicated within a
    # few intervals while the third still fails.
    lags = []
    for i in range(10):
        con.execute("INSERT INTO t(v) VALUES (randomblob(500))")
        t0 = time.time()
        want = int(status(con)["txid"], 16)
        wait_for(lambda: replicated(status(con), 0) >= want and
                 replicated(status(con), 1) >= want, "lag", 10)
        lags.append(time.time() - t0)
    ok(max(lags) < 3.0,
       f"10 commits reached both healthy replicas quickly (longest "
       f"{max(lags):.2f} s, interval 0.1 s) while the third failed")

    # litestream_sync waits for every replica and names the failing one.
    try:
        con.execute("SELECT litestream_sync(300)").fetchone()
        err = None
    except sqlite3.Error as e:
        err = str(e)
    ok(err and f"replica file://{blocker}/c:" in err,
       f"litestream_sync() times out naming the failing replica ({err})")

    # 'remote': the first replica to get there; 'remote-all': every one.
    con.execute("PRAGMA litestream_durability = 'remote'")
    con.execute("PRAGMA litestream_durability_timeout = 5000")
    t0 = time.time()
    con.execute("INSERT INTO t(v) VALUES ('remote')")
    took = time.time() - t0
    s = status(con)
    ok(took < 4 and max(replicated(s, 0), replicated(s, 1)) >=
       int(s["txid"], 16),
       f"durability 'remote': the COMMIT returned once one replica held it "
       f"({took:.2f} s)")
    con.execute("PRAGMA litestream_durability = 'remote-all'")
    con.execute("PRAGMA litestream_durability_timeout = 400")
    err = None
    try:
        con.execute("INSERT INTO t(v) VALUES ('remote-all')")
    except sqlite3.Error as e:
        err = e
    ok(err is not None and
       getattr(err, "sqlite_errorcode", None) == UNCONFIRMED,
       f"durability 'remote-all': the COMMIT is unconfirmed while one "
       f"replica fails ({err})")
    con.execute("PRAGMA litestream_durability = 'local'")
    ok(con.execute("SELECT count(*) FROM t WHERE v = 'remote-all'"
                   ).fetchone()[0] == 1,
       "the unconfirmed row is committed")

    # Healthy again: it catches up, and every URL restores identically.
    os.unlink(blocker)
    try:
        con.execute("SELECT litestream_sync(60000)").fetchone()
        err = None
    except sqlite3.Error as e:
        err = str(e)
    s = status(con)
    txid = int(s["txid"], 16)
    ok(err is None and all(replicated(s, i) == txid for i in range(3)),
       f"healed: litestream_sync() returns once all three hold TXID {txid} "
       f"({err})")
    for i, u in enumerate(urls):
        restore_from(u, os.path.join(d, f"out{i}.db"), db,
                     f"replica {i + 1} of 3")
    full = [r["full_images"] for r in s["replicas"]]
    con.close()

    # Reopened: the list comes from config.json, each replica continues
    # from its own position (no new full image).
    con = open_db(db)
    got = con.execute("PRAGMA litestream_url").fetchone()[0]
    ok(len(got.split()) == 3, f"reopened: the URL list is kept ({got[:120]})")
    for i in range(5):
        con.execute("INSERT INTO t(v) VALUES (randomblob(300))")
    con.execute("SELECT litestream_sync(20000)").fetchone()
    s = status(con)
    ok([r["full_images"] for r in s["replicas"]] == [0, 0, 0] and
       all(r["uploads"] > 0 for r in s["replicas"]),
       f"reopened: every replica continued incrementally (full images "
       f"before {full}, now {[r['full_images'] for r in s['replicas']]}, "
       f"uploads {[r['uploads'] for r in s['replicas']]})")
    for i, u in enumerate(urls):
        restore_from(u, os.path.join(d, f"again{i}.db"), db,
                     f"reopened, replica {i + 1}")
    con.close()
    cleanup(d)


def spool_released():
    """A replica failing while the spool fills is released: the healthy
    one keeps replicating incrementally (no full image, the spool stays
    below its limit) and the failing one continues with a full image."""
    d = scratch("replicas-spool")
    blocker = os.path.join(d, "blocker")
    with open(blocker, "w") as f:
        f.write("x\n")
    urls = [replica_url(d, "a"), "file://" + os.path.join(blocker, "c")]
    db = os.path.join(d, "app.db")
    con = open_db(db)
    con.execute(f"PRAGMA litestream_url = '{' '.join(urls)}'")
    con.execute("PRAGMA litestream_sync_interval = 100")
    con.execute("PRAGMA litestream_spool_limit = 1048576")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
    peak, full_seen = 0, False
    for i in range(120):  # about 2 MiB of pages, twice the limit
        con.execute("INSERT INTO t(v) VALUES (randomblob(16000))")
        if i % 10 == 9:
            want = int(status(con)["txid"], 16)
            wait_for(lambda: replicated(status(con), 0) >= want, "a", 20)
            s = status(con)
            peak = max(peak, s["spool_bytes"])
            full_seen |= s["spool_full"]
    s = status(con)
    a, c = s["replicas"]
    ok(replicated(s, 0) == int(s["txid"], 16) and a["full_images"] == 1 and
       not full_seen and peak < 1048576 and c["released"],
       f"the healthy replica kept up with its one first full image "
       f"({a['full_images']}), the spool never filled (peak {peak} bytes), "
       f"the failing one was released ({c['released']})")
    os.unlink(blocker)
    con.execute("SELECT litestream_sync(60000)").fetchone()
    s = status(con)
    ok(s["replicas"][1]["full_images"] >= 1 and
       not s["replicas"][1]["released"] and
       replicated(s, 1) == int(s["txid"], 16),
       f"healed: the released replica caught up with a full image (full "
       f"images {s['replicas'][1]['full_images']}, released "
       f"{s['replicas'][1]['released']}, TXID {replicated(s, 1)} of "
       f"{int(s['txid'], 16)})")
    for i, u in enumerate(urls):
        restore_from(u, os.path.join(d, f"out{i}.db"), db,
                     f"spool released, replica {i + 1}")
    con.close()
    cleanup(d)


def stalled_default():
    """An S3 replica whose server accepts every request and then answers
    nothing, with the URL's default timeout and retries (30 s x 5
    attempts: a pass over both replicas in turn would wait 150 s): each
    replica uploads on its own worker, so the other replica keeps its lag
    and 'remote' commits return with it while the stalled one hangs; once
    the server answers again, both restore identically."""
    import sys
    import harness
    sys.path.insert(0, os.path.join(os.environ["LITESTREAM_SRCDIR"], "test",
                                    "servers"))
    from faultproxy import FaultProxy
    try:
        s3 = harness.s3_server()
    except Exception as e:  # no Node or s3rver on this machine
        ok(True, f"# SKIP a stalled replica needs s3rver ({e})")
        return
    proxy = FaultProxy(s3).start()
    d = scratch("replicas-stalled")
    prefix = os.path.basename(d.rstrip("/")) + "/stalled"
    stalled = f"s3://{s3.bucket}/{prefix}?endpoint={proxy.endpoint}"
    urls = [replica_url(d, "a"), stalled]  # no timeout= or retries=
    rule = proxy.add_rule(fault="stall", seconds=600)
    db = os.path.join(d, "app.db")
    con = open_db(db)
    con.execute(f"PRAGMA litestream_url = '{' '.join(urls)}'")
    con.execute("PRAGMA litestream_sync_interval = 100")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
    # Bounds far above what a loaded machine needs (a few intervals) and
    # far below what the old pass took (150 s); the loops stop at the first
    # miss, so the old code fails in about 10 s, not 150.
    lags = []
    for i in range(10):
        con.execute("INSERT INTO t(v) VALUES (randomblob(500))")
        t0 = time.time()
        want = int(status(con)["txid"], 16)
        wait_for(lambda: replicated(status(con), 0) >= want, "lag", 10)
        lags.append(time.time() - t0)
        if lags[-1] >= 5:
            break
    s = status(con)
    diag(f"lags of the healthy replica: {[round(x, 2) for x in lags]} s")
    hung = [q for q in proxy.requests(fault="stall") if not q.done]
    ok(len(lags) == 10 and max(lags) < 5 and
       replicated(s, 0) == int(s["txid"], 16) and
       replicated(s, 1) < int(s["txid"], 16) and hung,
       f"the S3 replica hangs ({len(hung)} request(s) stalled, default "
       f"timeout and retries); the other kept up with every commit "
       f"(longest {max(lags):.2f} s over {len(lags)} commits, interval "
       f"0.1 s)")
    con.execute("PRAGMA litestream_durability = 'remote'")
    con.execute("PRAGMA litestream_durability_timeout = 8000")
    took, err = [], None
    for i in range(3):
        t0 = time.time()
        try:
            con.execute("INSERT INTO t(v) VALUES ('remote')")
        except sqlite3.Error as e:
            err = e
        took.append(time.time() - t0)
        if err or took[-1] >= 5:
            break
    con.execute("PRAGMA litestream_durability = 'local'")
    s = status(con)
    ok(err is None and len(took) == 3 and max(took) < 5 and
       replicated(s, 0) == int(s["txid"], 16) and
       replicated(s, 1) < int(s["txid"], 16),
       f"durability 'remote': each COMMIT returned once the healthy replica "
       f"held it while the other hung (longest {max(took):.2f} s; {err})")
    proxy.remove_rule(rule, end_stalls=True)
    try:
        con.execute("SELECT litestream_sync(60000)").fetchone()
        err = None
    except sqlite3.Error as e:
        err = str(e)
    s = status(con)
    ok(err is None and replicated(s, 1) == int(s["txid"], 16),
       f"the server answers again: the stalled replica caught up ({err})")
    for i, u in enumerate(urls):
        restore_from(u, os.path.join(d, f"out{i}.db"), db,
                     f"stalled replica, replica {i + 1}")
    con.close()
    proxy.stop()
    cleanup(d)


def compaction_each():
    """Each replica is compacted by its own compactor: both get level-1
    objects, a restore of each (from its levels) is identical, and the
    read replica (litestream-remote) serves the database from either."""
    d = scratch("replicas-levels")
    urls = ["file://" + os.path.join(d, "a"), "file://" + os.path.join(d, "b")]
    db = os.path.join(d, "app.db")
    con = open_db(db)
    con.execute(f"PRAGMA litestream_url = '{' '.join(urls)}'")
    con.execute("PRAGMA litestream_sync_interval = 100")
    con.execute("PRAGMA litestream_levels = '200ms,1s'")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")

    def levels_done():
        con.execute("INSERT INTO t(v) VALUES (randomblob(200))")
        s = status(con)
        return all(r["compaction"]["compactions"] >= 2
                   for r in s["replicas"])

    wait_for(levels_done, "compactions", 30)
    s = status(con)
    counts = [r["compaction"]["compactions"] for r in s["replicas"]]
    l1 = [len(os.listdir(os.path.join(d, n, "ltx", "1")))
          if os.path.isdir(os.path.join(d, n, "ltx", "1")) else 0
          for n in ("a", "b")]
    ok(all(c >= 2 for c in counts) and all(n >= 1 for n in l1),
       f"each replica compacted on its own (compactions {counts}, level-1 "
       f"objects {l1})")
    con.execute("SELECT litestream_sync(20000)").fetchone()
    for i, u in enumerate(urls):
        restore_from(u, os.path.join(d, f"out{i}.db"), db,
                     f"compacted, replica {i + 1}")
    # The read replica takes either URL and serves the same rows.
    from remote_harness import remote
    want = con.execute("SELECT count(*), sum(length(v)) FROM t").fetchone()
    for i, u in enumerate(urls):
        rc = remote(u)
        got = rc.execute("SELECT count(*), sum(length(v)) FROM t").fetchone()
        rc.close()
        ok(got == want, f"the read replica on replica {i + 1} serves the "
                        f"database ({got}, want {want})")
    con.close()
    cleanup(d)


def bad_lists():
    d = scratch("replicas-bad")
    a, b = "file://" + os.path.join(d, "a"), "file://" + os.path.join(d, "b")
    db = os.path.join(d, "app.db")
    con = open_db(db)
    con.execute(f"PRAGMA litestream_url = '{a}'")
    con.execute("CREATE TABLE t(x)")
    con.execute("INSERT INTO t VALUES (1)")
    cases = [(f"{a} {b} {a}", "twice"),
             (" ".join(f"file://{d}/r{i}" for i in range(9)), "at most 8"),
             (f"{b} nosuch://x", "nosuch")]
    for lst, want in cases:
        err = None
        try:
            con.execute(f"PRAGMA litestream_url = '{lst}'").fetchone()
        except sqlite3.Error as e:
            err = str(e)
        now = con.execute("PRAGMA litestream_url").fetchone()[0]
        ok(err and want in err and now == a,
           f"refused: {want} ({err}); the URL stays {now}")
    con.execute("SELECT litestream_sync(10000)").fetchone()
    restore_from(a, os.path.join(d, "out.db"), db, "after refused lists")
    err = None
    try:
        con.execute("SELECT litestream_restore(?, ?)",
                    (f"{a} {b}", os.path.join(d, "list.db"))).fetchone()
    except sqlite3.Error as e:
        err = str(e)
    ok(err and "give one URL here" in err and
       not os.path.exists(os.path.join(d, "list.db")),
       f"a restore from a list is refused, saying to give one URL ({err})")
    con.close()
    cleanup(d)


run_cases(one_failing, spool_released, stalled_default, compaction_each,
          bad_lists)
done()
