#!/usr/bin/python3
"""An idle replicated database sleeps (docs/architecture.md 3.2): once the
work its writes left is done, none of the extension's threads wakes up,
even at a 100 ms sync interval (an upload pass per interval would be 10
wake-ups a second); and what other processes do still reaches it, through
the directory watcher rather than a timer: a second process's writes are
uploaded by the sleeping holder with nobody calling litestream_sync(), a
holder that exits hands the ship lock to a sleeping process, and the
database file renamed over is noticed without a write.

Each database lives in a child process of its own, driven line by line
(so that the threads counted are the extension's, in that process)."""
import json
import os
import subprocess
import time

from harness import SO, cleanup, diag, done, ok, replica_url, run_cases, \
    scratch

SESSION = r"""
import json, os, sqlite3, sys, time
so, db, url = sys.argv[1], sys.argv[2], sys.argv[3]


def tasks():
    out = {}
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                name = f.read().strip()
            sw = 0
            with open(f"/proc/self/task/{t}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches",
                                        "nonvoluntary_ctxt_switches")):
                        sw += int(line.split()[1])
            out[int(t)] = (name, sw)
        except OSError:
            pass
    return out


before = set(tasks())
b = sqlite3.connect(":memory:")
b.enable_load_extension(True)
b.load_extension(so)
c = sqlite3.connect(db, isolation_level=None, timeout=30)
c.execute(f"PRAGMA litestream_url = '{url}'")
c.execute("PRAGMA litestream_sync_interval = 100")
c.execute("PRAGMA litestream_levels = '1s'")
c.execute("PRAGMA litestream_retention = '1s'")
c.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v)")
for line in sys.stdin:
    cmd = line.split()
    r = ""
    if cmd[0] == "quit":
        break
    if cmd[0] == "w":
        for i in range(int(cmd[1])):
            c.execute("INSERT INTO t(v) VALUES (randomblob(100))")
    if cmd[0] == "sync":
        r = c.execute("SELECT litestream_sync(10000)").fetchone()[0]
    if cmd[0] == "status":
        r = json.dumps(json.loads(c.execute(
            "SELECT litestream_status()").fetchone()[0])["databases"][0])
    if cmd[0] == "switches":
        a = {k: v for k, v in tasks().items() if k not in before}
        time.sleep(float(cmd[1]))
        z = {k: v for k, v in tasks().items() if k not in before}
        per = {}
        for tid, (name, sw) in z.items():
            per[name] = per.get(name, 0) + sw - a.get(tid, (name, 0))[1]
        r = json.dumps(per)
    print("ok", r, flush=True)
"""


def session(db, url):
    return subprocess.Popen(["/usr/bin/python3", "-c", SESSION, SO, db, url],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def say(p, line):
    p.stdin.write(line + "\n")
    p.stdin.flush()
    return p.stdout.readline().strip()[3:]


def status(p):
    return json.loads(say(p, "status"))


def tx(v):
    return int(v, 16) if isinstance(v, str) else v


def wait_for(what, pred, seconds=20):
    """Polls pred() every 0.1 s for up to `seconds`; its last value."""
    t0 = time.time()
    v = pred()
    while not v and time.time() - t0 < seconds:
        time.sleep(0.1)
        v = pred()
    if not v:
        diag(f"gave up waiting for {what} after {seconds} s")
    return v


def setup(name):
    d = scratch(name)
    url = replica_url(d)
    # A 1 s lease: its renewals stop 2 s after the last upload.
    url += ("&" if "?" in url else "?") + "lease_ttl=1s"
    return d, os.path.join(d, "app.db"), url


def settle(p):
    """Waits until the work the writes left is done: everything replicated,
    the level-1 merge made (levels '1s'), then 3 s for the retention of
    the merged L0 objects (1 s) and the lease's last renewals (2 TTLs)."""
    def merged():
        st = status(p)
        return (st["compaction"]["compactions"] >= 1 and
                tx(st["replicated_txid"]) == tx(st["txid"]))
    ok(wait_for("the level-1 merge", merged), "the writes were merged into "
       "level 1")
    time.sleep(3)


def sleeps():
    """Idle at a 100 ms sync interval: (almost) no context switch."""
    d, db, url = setup("idle-sleeps")
    p = session(db, url)
    say(p, "w 20")
    say(p, "sync")
    settle(p)
    per = json.loads(say(p, "switches 3"))
    total = sum(per.values())
    ok(total <= 5,
       f"idle for 3 s at a 100 ms sync interval: {total} context switches "
       f"of the extension's threads ({per}; an upload pass per interval "
       f"would be 30 or more)")
    say(p, "quit")
    p.wait()
    cleanup(d)


def other_process():
    """A sleeping holder uploads another process's writes, unasked."""
    d, db, url = setup("idle-other")
    h = session(db, url)
    say(h, "w 5")
    say(h, "sync")
    settle(h)
    ok(status(h)["shipping"], "the first process holds the ship lock")
    w = session(db, url)
    status(w)  # its PRAGMAs (config.json) woke the holder: let it sleep
    time.sleep(1)
    say(w, "w 10")  # spooled by w; nobody asks for a sync
    target = tx(status(w)["txid"])
    got = wait_for("the holder's upload",
                   lambda: tx(status(h)["replicated_txid"]) >= target)
    ok(got, f"the idle holder uploaded the other process's TXIDs up to "
       f"{target} without a sync (replicated "
       f"{tx(status(h)['replicated_txid'])})")
    ok(not status(w)["shipping"], "the writer did not upload itself")
    # The holder exits: the sleeping writer takes the ship lock over
    # (the close of ship.lock wakes it), without writing.
    say(h, "quit")
    h.wait()
    ok(wait_for("the takeover", lambda: status(w)["shipping"]),
       "the holder exited: the other process took the ship lock over "
       "without a write of its own")
    say(w, "w 3")
    say(w, "sync")
    st = status(w)
    ok(tx(st["replicated_txid"]) == tx(st["txid"]) and
       st["last_error"] is None,
       f"... and uploads ({st['last_error']})")
    say(w, "quit")
    w.wait()
    cleanup(d)


def replaced():
    """The database renamed over while idle: noticed without a write."""
    d, db, url = setup("idle-replaced")
    p = session(db, url)
    say(p, "w 5")
    say(p, "sync")
    settle(p)
    other = os.path.join(d, "other.db")
    subprocess.run(["/usr/bin/python3", "-c",
                    "import sqlite3,sys; c = sqlite3.connect(sys.argv[1]); "
                    "c.execute('CREATE TABLE t(x)'); c.commit()", other],
                   check=True)
    os.rename(other, db)
    le = wait_for("the replacement",
                  lambda: (status(p).get("last_error") or {}).get("message"))
    ok(le is not None and "replaced" in le,
       f"the idle database's file renamed over: the status says so without "
       f"a write ({le})")
    ok(not status(p)["shipping"], "... and it no longer uploads")
    say(p, "quit")
    p.wait()
    cleanup(d)


run_cases(sleeps, other_process, replaced)
done()
