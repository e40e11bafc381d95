"""The writer lease (docs/architecture.md 5.1, docs/urls.md "Writer lease"):
two processes on two databases pointed at one replica URL, each the real
.so in /usr/bin/python3.  Exactly one ships; the other's sync fails with
the holder named, its status says "refused", and the replica restores the
first database.  A holder that closes releases the lease; one killed with
SIGKILL blocks the path until its lease expires; the same database
reopened on the same host takes its own lease over at once; a lease taken
over by another writer stops this one for good; an unreadable lock.json
stops uploads with what to do; lease=off writes none; bad parameters are
refused.  With LITESTREAM_TEST_BACKEND set, the same cases run on that
backend (test/integration/meson.build: lease-abs, lease-sftp, ...)."""
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time

from harness import (SO, cleanup, diag, done, dump_hash, load, make_replica,
                     ok, run_cases, scratch)

SESSION = r"""
import json, sqlite3, sys
so, db = sys.argv[1:3]
b = sqlite3.connect(":memory:"); b.enable_load_extension(True)
b.load_extension(so)
c = sqlite3.connect(db, isolation_level=None, timeout=30)
c.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, tag, i)")
print(json.dumps({"ok": "ready"}), flush=True)
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    try:
        if cmd == "quit":
            c.close()
            break
        if cmd == "url":
            r = c.execute(f"PRAGMA litestream_url = '{arg}'").fetchall()
        elif cmd == "w":
            c.execute("BEGIN")
            for i in range(int(arg)):
                c.execute("INSERT INTO t(tag, i) VALUES (?, ?)", (db, i))
            c.execute("COMMIT")
            r = c.execute("SELECT count(*) FROM t").fetchone()[0]
        elif cmd == "sync":
            r = c.execute("SELECT litestream_sync(?)", (int(arg),)).fetchone()[0]
        elif cmd == "status":
            r = json.loads(c.execute("SELECT litestream_status()").fetchone()[0])
        print(json.dumps({"ok": r}), flush=True)
    except sqlite3.Error as e:
        print(json.dumps({"err": str(e)}), flush=True)
"""

HOST = socket.gethostname()


class Writer:
    """One process with the extension and one database."""

    def __init__(self, db):
        self.db = db
        self.p = subprocess.Popen(["/usr/bin/python3", "-c", SESSION, SO, db],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.pid = self.p.pid
        self.read()

    def read(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"writer {self.pid} ({self.db}) exited")
        return json.loads(line)

    def say(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return self.read()

    def lease(self):
        st = self.say("status")["ok"]["databases"][0]
        return st, st.get("lease", {})

    def quit(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.flush()
        self.p.wait(60)

    def kill(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(60)


def with_params(url, params):
    return url + ("&" if "?" in url else "?") + params


def wait_for(what, cond, timeout=30):
    """Polls cond() until it is true or timeout seconds pass."""
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    diag(f"timed out waiting for {what}")
    return None


def restores_to(url, d, db, what):
    out = os.path.join(d, f"out-{time.time_ns()}.db")
    c = load()
    c.execute("SELECT litestream_restore(?, ?)", (url, out))
    c.close()
    same = dump_hash(out) == dump_hash(db)
    ok(same, f"{what}: the replica restores {os.path.basename(db)}")


def two(name, params="lease_ttl=2s"):
    d = scratch(name)
    rep = make_replica(d)
    url = with_params(rep.url, params)
    a, b = os.path.join(d, "a.db"), os.path.join(d, "b.db")
    return d, rep, url, a, b


def cpu_s(pid):
    """User + system CPU seconds of process pid so far."""
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def refused(b, a_pid, a_db, what):
    c0 = cpu_s(b.pid)
    r = b.say("sync 3000")
    used = cpu_s(b.pid) - c0
    # A sync waiting on a refused replica waits; it does not spin (it
    # once re-ran the replica's pass back to back: 3 s of CPU in 3 s).
    ok(used < 0.5, f"{what}: the refused writer's 3 s sync used {used:.2f} s "
                   f"of CPU")
    e = r.get("err", "")
    ok("held by another writer" in e and f"pid {a_pid}" in e and a_db in e
       and HOST in e, f"{what}: the second writer's sync names the holder "
                      f"({e[:200]})")
    st, ls = b.lease()
    ok(ls.get("state") == "refused" and not st["shipping"] and
       (ls.get("holder") or {}).get("pid") == a_pid,
       f"{what}: its status says refused by pid {a_pid}")


def two_writers():
    """Exactly one ships; the other is refused; after the first closes
    (releasing the lease) the second takes the path over."""
    d, rep, url, a_db, b_db = two("lease-two")
    a = Writer(a_db)
    ok("ok" in a.say(f"url {url}"), "first writer set the URL")
    a.say("w 100")
    ok("ok" in a.say("sync 10000"), "first writer ships")
    st, ls = a.lease()
    ok(ls.get("state") == "held" and st["shipping"],
       f"first writer holds the lease ({ls.get('state')})")
    b = Writer(b_db)
    ok("ok" in b.say(f"url {url}"), "second writer set the same URL")
    b.say("w 7")
    refused(b, a.pid, a_db, "two writers")
    ok(b.say("w 3").get("ok") == 10, "the refused writer's writes go on "
                                     "locally")
    a.say("w 50")
    ok("ok" in a.say("sync 10000"), "the first writer keeps shipping")
    restores_to(url, d, a_db, "two writers")
    doc = json.loads(rep.get("lock.json"))
    ok(doc.get("owner") == f"{HOST}:{a.pid}" and doc.get("pid") == a.pid and
       doc.get("database") == a_db and doc.get("released") is False,
       f"lock.json names the holder ({doc.get('owner')})")
    a_lease = a.lease()[1]
    a.quit()
    # Released, or already taken by the second writer (it may claim the
    # moment the first one releases).  On "rename" backends the release
    # is in the holder's renewal object: lock.json is never replaced to
    # release it (lease.c).
    doc = json.loads(rep.get("lock.json"))
    if a_lease.get("conditions") == "rename" and doc.get("pid") == a.pid:
        doc = json.loads(rep.get(
            f"lock.json.{a_lease['instance']}.renewal.tmp"))
    ok(doc.get("released") is True or doc.get("pid") == b.pid,
       "closing releases the lease")
    ok(wait_for("the second writer to take over",
                lambda: b.lease()[1].get("state") == "held"),
       "after the holder closed the second writer takes the lease")
    # Its next TXID continues above the first writer's, with a full image
    # (docs/architecture.md 2.7).  A sync right away covers its database
    # already (the sync contract), with no write of its own first.
    ok("ok" in b.say("sync 10000"), "the second writer ships")
    restores_to(url, d, b_db, "after the handover, synced without a write")
    b.say("w 2")
    ok("ok" in b.say("sync 10000"), "... and its next commit")
    restores_to(url, d, b_db, "after the handover")
    doc = json.loads(rep.get("lock.json"))
    # Generation 2 (taken over), or 1 when it found the key absent while
    # the first writer's release had it renamed aside (cond.c).
    ok(doc.get("generation") in (1, 2) and doc.get("pid") == b.pid,
       f"lock.json: the new holder, generation {doc.get('generation')}")
    b.quit()
    cleanup(d)


def race():
    """Four databases claim one path at the same moment: exactly one
    holds it (the conditional write decides), the others are refused."""
    d, rep, url, _, _ = two("lease-race")
    ws = [Writer(os.path.join(d, f"r{i}.db")) for i in range(4)]
    for w in ws:
        w.say("w 3")
    for w in ws:  # all at once: send, then read the answers
        w.p.stdin.write(f"url {url}\nsync 5000\n")
        w.p.stdin.flush()
    res = [(w.read(), w.read()) for w in ws]
    won = [w for w, (_, s) in zip(ws, res) if "ok" in s]
    ok(len(won) == 1, f"exactly one of four ships ({len(won)})")
    if len(won) != 1:
        for w, (_, s) in zip(ws, res):
            diag(f"pid {w.pid}: sync said {s}; lease {w.lease()[1]}")
    if len(won) == 1:
        for w, (_, s) in zip(ws, res):
            if w is not won[0]:
                # Its sync may end before its first claim settles (a loser
                # of the same instant can see the object change under it
                # and retry after a backoff, slower under ASan and load):
                # then the verdict shows in its status.
                e = s.get("err", "")
                named = "held by another writer" in e and \
                    f"pid {won[0].pid}" in e
                if not named:
                    diag(f"pid {w.pid}: its sync said: {e[:300]}")
                    named = wait_for(
                        "the loser's status to name the holder",
                        lambda: (w.lease()[1].get("state") == "refused" and
                                 (w.lease()[1].get("holder") or {}).get(
                                     "pid") == won[0].pid), 15)
                ok(named, f"pid {w.pid} is refused, pid {won[0].pid} named "
                   f"({e[:200]})")
        restores_to(url, d, won[0].db, "race")
    for w in ws:
        w.quit()
    cleanup(d)


def crashed_holder():
    """A holder killed with SIGKILL blocks the path until its lease
    expires; then the other writer takes over."""
    d, rep, url, a_db, b_db = two("lease-crash")
    a = Writer(a_db)
    a.say(f"url {url}")
    a.say("w 20")
    ok("ok" in a.say("sync 10000"), "holder ships")
    b = Writer(b_db)
    b.say(f"url {url}")
    b.say("w 5")
    refused(b, a.pid, a_db, "before the crash")
    a.kill()
    t0 = time.time()
    ok(wait_for("the lease of the killed holder to expire",
                lambda: b.lease()[1].get("state") == "held"),
       "after the killed holder's lease expired the other writer holds it")
    diag(f"taken over {time.time() - t0:.1f} s after SIGKILL (TTL 2 s)")
    b.say("w 2")
    ok("ok" in b.say("sync 10000"), "the new holder ships")
    restores_to(url, d, b_db, "after the crash")
    b.quit()
    cleanup(d)


def same_database():
    """The same database reopened on the same host after a crash takes its
    own lease over at once (its ship lock fences the host's processes)."""
    d, rep, url, a_db, _ = two("lease-same", "lease_ttl=1h")
    a = Writer(a_db)
    a.say(f"url {url}")
    a.say("w 20")
    ok("ok" in a.say("sync 10000"), "holder ships")
    a.kill()
    a2 = Writer(a_db)
    a2.say("w 5")
    r = a2.say("sync 20000")
    ok("ok" in r, f"reopened after SIGKILL it ships at once, TTL 1 h ({r})")
    restores_to(url, d, a_db, "same database reopened")
    a2.quit()
    cleanup(d)


def lost_lease():
    """Someone else's lease in lock.json (as a writer that took it over
    while this one was cut off would leave): this writer stops for good."""
    d, rep, url, a_db, _ = two("lease-lost")
    a = Writer(a_db)
    a.say(f"url {url}")
    a.say("w 20")
    ok("ok" in a.say("sync 10000"), "holder ships")
    now = time.time()
    exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600))
    rep.put("lock.json", json.dumps({
        "generation": 9, "expires_at": exp, "owner": "elsewhere:1",
        "host": "elsewhere", "pid": 1, "instance": "feedfacefeedface",
        "database": "/srv/other.db", "since": exp}).encode())
    ok(wait_for("the renewal to find the lease taken",
                lambda: a.lease()[1].get("state") == "lost"),
       "the holder's renewal finds the lease taken over: lost")
    before = rep.objects(0)
    a.say("w 5")
    e = a.say("sync 3000").get("err", "")
    ok("taken over by database '/srv/other.db' on host elsewhere" in e,
       f"its sync says who took the lease over ({e[:160]})")
    ok(rep.objects(0) == before, "nothing more was uploaded")
    a.quit()
    ok(json.loads(rep.get("lock.json")).get("pid") == 1,
       "closing does not touch a lease that is not ours")
    cleanup(d)


def expiry(rep, w):
    """When w's lease expires, as the replica says: lock.json's expires_at,
    or on "rename" backends its renewal object's (lease.c: renewals never
    replace lock.json there)."""
    ls = w.lease()[1]
    key = "lock.json"
    if ls.get("conditions") == "rename":
        key = f"lock.json.{ls['instance']}.renewal.tmp"
    try:
        return json.loads(rep.get(key)).get("expires_at")
    except Exception:  # absent: each replica kind says so its own way
        return None


def renewing():
    """While a holder ships, its renewals keep a second writer out at every
    moment.  On "rename" backends lock.json is never renamed aside to renew
    (a writer reading then would find it absent and take it): it stays as
    claimed, and the renewal object's expiry advances.  On WebDAV the
    holder's requests go through a proxy that delays every MOVE and every
    GET of a moved-aside object by 0.4 s, which kept lock.json absent for
    most of each renewal when renewals replaced it."""
    d, rep, url, a_db, b_db = two("lease-renew", "lease_ttl=3s")
    a_url, proxy = url, None
    if os.environ.get("LITESTREAM_TEST_BACKEND") == "webdav":
        from faultproxy import FaultProxy
        from harness import host_server
        srv = host_server()
        proxy = FaultProxy(("127.0.0.1", srv.port)).start()
        proxy.add_rule("MOVE", None, "delay", seconds=0.4)
        proxy.add_rule("GET", r"\.old\.tmp", "delay", seconds=0.4)
        a_url = url.replace(f":{srv.port}/", f":{proxy.port}/")
    a = Writer(a_db)
    a.say(f"url {a_url}")
    a.say("w 5")
    ok("ok" in a.say("sync 10000"), "holder ships")
    rename = a.lease()[1].get("conditions") == "rename"
    lock1, exp1 = rep.get("lock.json"), expiry(rep, a)
    b = Writer(b_db)
    b.say(f"url {url}")
    b.say("w 3")
    states, end = set(), time.time() + 7
    while time.time() < end:  # the holder keeps shipping, B keeps asking
        a.say("w 1")
        b.say("sync 0")
        states.add(b.lease()[1].get("state"))
        time.sleep(0.3)
    ok(states <= {"refused", "claiming", None},
       f"the second writer never held the path ({sorted(map(str, states))})")
    ok(a.lease()[1].get("state") == "held" and "ok" in a.say("sync 10000"),
       "the holder still holds it and ships")
    exp2 = expiry(rep, a)
    ok(exp2 is not None and exp2 != exp1, f"renewed: expires {exp1} -> {exp2}")
    if rename:
        ok(rep.get("lock.json") == lock1,
           "rename backend: lock.json was never replaced to renew")
    restores_to(url, d, a_db, "renewing")
    a.quit()
    b.quit()
    if proxy:
        proxy.stop()
    cleanup(d)


def idle():
    """An idle writer stops renewing (no requests while nothing is
    uploaded; renewals stop two TTLs after the last upload) and renews
    before its next upload."""
    d, rep, url, a_db, _ = two("lease-idle", "lease_ttl=1s")
    a = Writer(a_db)
    a.say(f"url {url}")
    a.say("w 5")
    ok("ok" in a.say("sync 10000"), "holder ships")
    time.sleep(3.5)  # two TTLs and a renewal period: the renewals stop
    doc1 = rep.get("lock.json")
    time.sleep(2.0)
    doc2 = rep.get("lock.json")
    ok(doc1 == doc2, "idle: lock.json is not rewritten (no renewals)")
    st, ls = a.lease()
    ok(ls.get("state") == "held" and st["shipping"],
       f"idle: the lease still counts as this writer's ({ls.get('state')})")
    exp2 = expiry(rep, a)
    a.say("w 5")
    ok("ok" in a.say("sync 10000"), "the next upload ships")
    doc3 = json.loads(rep.get("lock.json"))
    ok(expiry(rep, a) != exp2 and doc3.get("pid") == a.pid,
       "... after renewing the lease first")
    restores_to(url, d, a_db, "after idling")
    a.quit()
    cleanup(d)


def unreadable():
    """An unreadable lock.json stops uploads with what to do."""
    d, rep, url, a_db, _ = two("lease-bad")
    rep.put("lock.json", b"{not json")
    a = Writer(a_db)
    a.say(f"url {url}")
    a.say("w 5")
    e = a.say("sync 3000").get("err", "")
    ok("cannot be read" in e and "delete it" in e,
       f"a corrupt lock.json is named with what to do ({e[:160]})")
    rep.remove("lock.json")
    ok("ok" in a.say("sync 20000"), "once it is removed the writer ships")
    restores_to(url, d, a_db, "after the corrupt lease")
    a.quit()
    cleanup(d)


def lease_off():
    """lease=off writes no lease and says so in the status."""
    d, rep, url, a_db, _ = two("lease-off", "lease=off")
    a = Writer(a_db)
    a.say(f"url {url}")
    a.say("w 5")
    ok("ok" in a.say("sync 10000"), "lease=off ships")
    ok(a.lease()[1].get("state") == "off", "status: lease off")
    try:
        rep.get("lock.json")
        ok(False, "lease=off wrote no lock.json")
    except Exception:  # each replica kind says "absent" its own way
        ok(True, "lease=off wrote no lock.json")
    a.quit()
    cleanup(d)


def bad_params():
    """Bad lease parameters are refused when the URL is set."""
    d, rep, _, a_db, _ = two("lease-params", "")
    a = Writer(a_db)
    for p, want in (("lease=maybe", "bad lease=maybe"),
                    ("lease_ttl=10ms", "bad lease_ttl=10ms"),
                    ("lease_ttl=soon", "bad lease_ttl=soon")):
        e = a.say(f"url {with_params(rep.url, p)}").get("err", "")
        ok(want in e,
           f"{p} is refused: {e[:120]}")
    a.quit()
    cleanup(d)


run_cases(two_writers, race, renewing, crashed_holder, same_database, lost_lease, idle,
          unreadable, lease_off, bad_params)
done()
