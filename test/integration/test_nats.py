#!/usr/bin/python3
"""The nats:// backend against a real nats-server -js on loopback
(servers.NatsServer), checked from the other side with the official npm
nats client (test/clients/nats/objstore.js): the object-store layout each
client reads of the other's objects, byte ranges, overwrite and delete,
restore and read replicas, a server killed in the middle of an upload and
restarted (nothing lost, no partial object), and wrong credentials,
missing permissions and an unreachable server (a clear error in
litestream_status() and from litestream_restore(), the application keeps
writing, nothing lost once fixed)."""
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

from harness import (cleanup, diag, done, dump_hash, load, ok,
                     restore_and_compare, scratch)
from servers import NODE, NatsServer, free_port

CLI = os.environ["LITESTREAM_NATS_CLI"]
JS = os.environ["LITESTREAM_NATS_JS"]

load()
USERS = [
    {"user": "lit", "password": "s3cret"},
    # may read the object store, not write it
    {"user": "ro", "password": "ro-pw",
     "permissions": {"publish": {"deny": ["$O.>",
                                          "$JS.API.STREAM.CREATE.>",
                                          "$JS.API.STREAM.PURGE.>"]}}},
    # may do nothing but receive replies
    {"user": "none", "password": "none-pw",
     "permissions": {"publish": {"deny": [">"]}}},
]
for v in ("LITESTREAM_NATS_USERNAME", "LITESTREAM_NATS_PASSWORD",
          "LITESTREAM_NATS_TOKEN", "LITESTREAM_NATS_CREDS"):
    os.environ.pop(v, None)
srv = NatsServer(users=USERS).start()
dirs = []


def url(path, user="lit", password="s3cret", **params):
    u = srv.url(path, user, password)
    return u + ("?" + urllib.parse.urlencode(params) if params else "")


def js(bucket, *args, check=True):
    """Runs the npm nats client (objstore.js) as user lit."""
    env = dict(os.environ, NATS_USER="lit", NATS_PASS="s3cret")
    env.pop("LD_PRELOAD", None)
    p = subprocess.run([NODE, JS, srv.address, bucket] + list(args),
                       capture_output=True, text=True, env=env, timeout=60)
    if check and p.returncode != 0:
        raise RuntimeError("objstore.js %s: %s" % (args, p.stderr))
    return p.stdout


def js_list(bucket):
    return {o["name"]: o for o in json.loads(js(bucket, "list"))}


class Cli:
    """One nats_cli process: one backend handle, commands one by one."""

    def __init__(self, u):
        env = dict(os.environ)
        # (under the sanitizer build nats_cli carries its own ASan runtime)
        env.pop("LD_PRELOAD", None)
        self.p = subprocess.Popen([CLI, u], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True,
                                  env=env)

    def __call__(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def close(self):
        self.p.stdin.close()
        self.p.wait(30)


def fresh(name, u, **pragmas):
    d = scratch("nats-" + name)
    dirs.append(d)
    db = os.path.join(d, "app.db")
    con = sqlite3.connect(db, isolation_level=None)
    for k, v in pragmas.items():
        con.execute(f"PRAGMA {k} = {v}")
    con.execute(f"PRAGMA litestream_url = '{u}'")
    con.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v)")
    return d, db, con


def status(con):
    return json.loads(con.execute("SELECT litestream_status()").fetchone()[0]
                      )["databases"][0]


def write(con, n=20, size=200):
    for _ in range(n):
        con.execute("INSERT INTO t(v) VALUES (randomblob(?))", (size,))


def err_of(con, sql, *args):
    try:
        con.execute(sql, args).fetchall()
        return None
    except sqlite3.Error as e:
        return str(e)


def wait_error(con, what, timeout=15.0):
    """Waits until litestream_status() shows an error containing `what`."""
    end = time.time() + timeout
    while time.time() < end:
        e = status(con)["last_error"]
        if e and what in e["message"]:
            return e["message"]
        time.sleep(0.1)
    e = status(con)["last_error"]
    return None if e is None else "(other) " + e["message"]


def stream_state(bucket):
    """The state of the bucket's stream, from the server's monitor."""
    u = ("http://%s:%d/jsz?streams=true" % (srv.host, srv.monitor_port))
    with urllib.request.urlopen(u, timeout=5) as r:
        jsz = json.loads(r.read())
    for acc in jsz.get("account_details", []):
        for st in acc.get("stream_detail", []):
            if st["name"] == "OBJ_" + bucket:
                return st["state"]
    return {}


def stream_msgs(bucket):
    """Messages in the bucket's stream."""
    return stream_state(bucket).get("messages")


def tmpfile(d, name, data):
    p = os.path.join(d, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def t_backend():
    """The backend directly: layout, ranges, listing, overwrite, delete,
    and what the npm client reads of it and it of the npm client's."""
    d = scratch("nats-cli")
    dirs.append(d)
    a = os.urandom(300000)  # 3 chunks of 128 KiB
    cli = Cli(url("cli/app"))
    r = cli("put ltx/0/a " + tmpfile(d, "a", a) + " 1796600000123")
    ok(r == "ok", f"put of 300000 bytes creates the bucket: {r}")
    ok(cli("put ltx/0/b " + tmpfile(d, "b", b"hello") + " 1796600000456")
       == "ok" and cli("put ltx/0/d/e " + tmpfile(d, "e", b"x")) == "ok",
       "put of small and nested objects")
    r = cli("list ltx/0/")
    ok(r == "ok 2 a:300000:1796600000123 b:5:1796600000456",
       f"list: one level, sorted, sizes, exact creation times: {r}")
    r = cli("list ltx/ deep")
    ok(r == "ok 3 0/a:300000:1796600000123 0/b:5:1796600000456 "
       "0/d/e:1:1700000000000", f"list_tree: every depth: {r}")
    ok(cli("list nothing/") == "ok 0", "a missing prefix lists empty")
    out = os.path.join(d, "out")
    bad = []
    for off, n in ((0, -1), (0, 1), (131071, 2), (131072, 131072),
                   (200000, -1), (299999, 10), (262143, 37857), (1, 299998)):
        r = cli(f"get ltx/0/a {off} {n} {out}")
        want = a[off:] if n < 0 else a[off:off + n]
        with open(out, "rb") as f:
            if r != f"ok {len(want)}" or f.read() != want:
                bad.append((off, n, r))
    ok(not bad, f"ranges within, across and past chunks: {bad}")
    r = cli("get ltx/0/a 400000 10")
    ok(r == "ok 0", f"a range past the end is empty: {r}")
    objs = js_list("cli")
    o = objs.get("app/ltx/0/a", {})
    ok(o.get("size") == 300000 and o.get("chunks") == 3 and
       o.get("timestamp") == "2026-12-06T23:33:20.123Z",
       f"the npm client lists our object with its timestamp: {o}")
    js("cli", "get", "app/ltx/0/a", out)
    with open(out, "rb") as f:
        ok(f.read() == a, "the npm client reads our object (its digest "
                          "checked)")

    big = os.urandom(400000)
    js("cli", "put", "app/ltx/1/js", tmpfile(d, "js", big),
       "2026-01-02T03:04:05.678Z")
    bad = []
    for off, n in ((0, -1), (131000, 1000), (399990, 100), (5, 262144)):
        r = cli(f"get ltx/1/js {off} {n} {out}")
        want = big[off:] if n < 0 else big[off:off + n]
        with open(out, "rb") as f:
            if r != f"ok {len(want)}" or f.read() != want:
                bad.append((off, n, r))
    ok(not bad, f"we read the npm client's object, in ranges too: {bad}")
    r = cli("list ltx/1/")
    ok(r == "ok 1 js:400000:1767323045678",
       f"its Litestream-Timestamp header is the creation time: {r}")

    # Overwrite: the cached index of the old object must not serve stale
    # bytes, and the old chunks go.
    before = stream_msgs("cli")
    a2 = os.urandom(200000)
    ok(cli("get ltx/0/a 131072 10 " + out) == "ok 10", "cached")
    js("cli", "put", "app/ltx/0/a", tmpfile(d, "a2", a2))
    r = cli(f"get ltx/0/a 131072 10 {out}")
    with open(out, "rb") as f:
        ok(r == "ok 10" and f.read() == a2[131072:131082],
           f"a range after another client replaced the object: new bytes "
           f"({r})")
    after = stream_msgs("cli")
    ok(after == before - 3 + 2, f"the replaced chunks were purged "
                                f"({before} -> {after} messages)")
    ok(cli("put ltx/0/a " + tmpfile(d, "a", a)) == "ok" and
       stream_msgs("cli") == after - 2 + 3, "and so are ours on overwrite")

    js("cli", "corrupt", "app/ltx/0/b")
    r = cli("get ltx/0/b 0 -1")
    ok(r.startswith("err CORRUPT ") and "SHA-256" in r,
       f"an object that fails its digest: {r}")

    r = cli("del ltx/0/a ltx/0/nope ltx/0/d/e")
    ok(r == "ok", f"del; a missing key is no error: {r}")
    r = cli("get ltx/0/a 0 -1")
    ok(r.startswith("err NOTFOUND ") and "'app/ltx/0/a' not found in bucket "
       "'cli'" in r, f"a deleted object is not found: {r}")
    ok(cli("list ltx/0/").startswith("ok 1 b:"), "nor listed")
    ok("app/ltx/0/a" not in js_list("cli"), "the npm client sees it deleted")
    ok(cli("del ltx/0/a") == "ok", "deleting again is no error")
    r = cli("counters")
    ok(r.startswith("ok 4 ") and r.split()[4] == "4",
       f"counters (put get list delete up down): {r}")
    cli.close()

    cli = Cli(url("missing/app"))
    r = cli("list .")
    r2 = cli("get ltx/0/a 0 -1")
    ok(r == "ok 0" and r2.startswith("err NOTFOUND ") and
       "bucket 'missing' does not exist" in r2 and
       cli("del ltx/0/a") == "ok" and stream_state("missing") == {},
       f"reads of a missing bucket: empty, not found, not created: {r2}")
    cli.close()


def t_replicate():
    """Replication and restore through the .so; the npm client lists the
    LTX objects, copies them, and we restore from its copies; a read
    replica serves the database and follows new writes."""
    u = url("app/db")
    d, db, con = fresh("replicate", u)
    write(con, 300, 500)
    con.execute("CREATE INDEX i ON t(v)")
    write(con, 50, 5000)
    restore_and_compare(con, db, u, os.path.join(d, "out.db"),
                        "replicate and restore")
    st = status(con)
    c = st["counters"]
    ok(st["last_error"] is None and c["put"] > 0 and c["list"] > 0 and
       c["bytes_up"] > 0, f"status: no error, counters {c}")
    ok(st.get("credential") == "the user and password in the URL",
       f"status names the credential: {st.get('credential')}")
    objs = js_list("app")
    names = sorted(n for n in objs if n.startswith("db/ltx/"))
    ltx = re.compile(r"db/ltx/[0-9]/[0-9a-f]{16}-[0-9a-f]{16}\.ltx$")
    odd = [(n, objs[n]["timestamp"]) for n in names
           if not ltx.match(n) or not objs[n]["timestamp"]]
    ok(names and not odd,
       f"the npm client lists the LTX objects, as Litestream names them, "
       f"with timestamps: {names[0]}... ({len(names)}; odd: {odd})")
    for n in names:
        p = os.path.join(d, "obj")
        js("app", "get", n, p)
        js("app", "put", "copy/" + n[len("db/"):], p, objs[n]["timestamp"])
    out = os.path.join(d, "copy.db")
    r = con.execute("SELECT litestream_restore(?, ?)",
                    (url("app/copy"), out)).fetchone()[0]
    ok(dump_hash(out) == dump_hash(db),
       f"a restore from the npm client's copies is identical: {r}")

    from remote_harness import remote, txid
    rc = remote(u, poll_ms=100)
    n = rc.execute("SELECT count(*), sum(length(v)) FROM t").fetchone()
    want = con.execute("SELECT count(*), sum(length(v)) FROM t").fetchone()
    ok(n == want, f"a read replica on nats serves the database: {n}")
    write(con, 10, 100)
    t = con.execute("SELECT litestream_sync(10000)").fetchone()[0]
    end = time.time() + 10
    while time.time() < end:
        rc.execute("BEGIN")
        n = rc.execute("SELECT count(*) FROM t").fetchone()[0]
        rc.execute("COMMIT")
        if n == want[0] + 10:
            break
        time.sleep(0.1)
    ok(n == want[0] + 10, f"and follows new writes (TXID {t}, {n} rows)")
    rc.close()
    con.close()


def t_server_down(how):
    """The server stops in the middle of an upload ("kill": SIGKILL, a
    crash; "term": SIGTERM, a clean shutdown) and comes back: the
    application keeps writing, nothing is lost, no object is partial, and
    no chunk of the cut upload is left over."""
    bucket = "down-" + how
    u = url(bucket + "/db", timeout="2s")
    # (no compaction meanwhile: its own handle would purge what a cut
    # upload of its left over only at its next compaction)
    d, db, con = fresh("down-" + how, u)
    con.execute("PRAGMA litestream_levels = '1h'")
    write(con, 10)
    con.execute("SELECT litestream_sync(10000)")
    con.execute("BEGIN")
    for _ in range(24):  # 24 MB: 190 chunks, a second or more of uploading
        con.execute("INSERT INTO t(v) VALUES (randomblob(1000000))")
    con.execute("COMMIT")
    before, end = stream_msgs(bucket), time.time() + 10
    while stream_msgs(bucket) < before + 20 and time.time() < end:
        time.sleep(0.01)  # until 20 chunks (2.5 MB) are in
    up = status(con)["counters"]["bytes_up"]
    srv.kill() if how == "kill" else srv.term()
    write(con, 30)  # the application keeps writing meanwhile
    time.sleep(1.5)
    e = status(con)["last_error"]
    diag(f"{how}: stopped after {up} bytes up; error while down: "
         f"{e['message'] if e else None}")
    ok(e is not None and "NATS" in e["message"],
       f"{how}: status shows the server is gone")
    srv.restart()
    write(con, 10)
    restore_and_compare(con, db, u, os.path.join(d, "out.db"),
                        f"{how}: server stopped mid-upload and restarted")
    objs = json.loads(js(bucket, "list"))
    bad = []
    for o in objs:
        p = os.path.join(d, "o")
        try:
            js(bucket, "get", o["name"], p)
            if os.path.getsize(p) != o["size"]:
                bad.append(o["name"])
        except RuntimeError as ex:
            bad.append(str(ex))
    ok(objs and not bad, f"{how}: every one of the {len(objs)} objects is "
                         f"whole (the npm client checks each digest): {bad}")
    metas = int(js(bucket, "metas"))
    msgs = stream_msgs(bucket)
    chunks = sum(o["chunks"] for o in objs)
    ok(msgs == chunks + metas,
       f"{how}: no chunk is left over from the cut upload: {msgs} "
       f"messages = {chunks} chunks + {metas} metadata")
    con.close()


def t_credentials():
    """A wrong password: a clear error in status and from restore, the
    application keeps writing; fixed, replication catches up."""
    good = url("auth/db")
    u = url("auth/db", password="wrong")
    d, db, con = fresh("auth", u)
    write(con, 30)
    m = wait_error(con, "refused the credentials")
    ok(m and "Authorization Violation" in m and "wrong" not in m and
       "LITESTREAM_NATS_PASSWORD" in m,
       f"wrong password: status says so, what to set, no secret: {m}")
    write(con, 30)
    ok(status(con)["txid"] > "0000000000000002", "the application keeps "
                                                 "writing")
    e = err_of(con, "SELECT litestream_restore(?, ?)", u,
               os.path.join(d, "bad.db"))
    ok(e and "refused the credentials" in e and "wrong" not in e,
       f"restore with the wrong password: {e}")
    con.execute(f"PRAGMA litestream_url = '{good}'")
    restore_and_compare(con, db, good, os.path.join(d, "out.db"),
                        "fixed password: nothing lost")
    con.close()

    # Credentials from the environment, read anew at every connection.
    os.environ["LITESTREAM_NATS_USERNAME"] = "lit"
    os.environ["LITESTREAM_NATS_PASSWORD"] = "nope"
    u = srv.url("auth/env")
    d, db, con = fresh("auth-env", u)
    write(con, 20)
    m = wait_error(con, "refused the credentials")
    ok(m is not None and "(other)" not in m,
       f"LITESTREAM_NATS_PASSWORD wrong: {m}")
    cred = status(con).get("credential")
    ok(cred == "LITESTREAM_NATS_USERNAME and LITESTREAM_NATS_PASSWORD",
       f"status names the variables: {cred}")
    os.environ["LITESTREAM_NATS_PASSWORD"] = "s3cret"
    restore_and_compare(con, db, u, os.path.join(d, "out.db"),
                        "LITESTREAM_NATS_PASSWORD fixed while running")
    con.close()
    del os.environ["LITESTREAM_NATS_USERNAME"]
    del os.environ["LITESTREAM_NATS_PASSWORD"]

    with NatsServer(token="t0ken") as ts:
        os.environ["LITESTREAM_NATS_TOKEN"] = "bad-token"
        u = ts.url("tok/db")
        d, db, con = fresh("token", u)
        write(con, 20)
        m = wait_error(con, "refused the credentials")
        ok(m and "bad-token" not in m, f"a wrong LITESTREAM_NATS_TOKEN: {m}")
        os.environ["LITESTREAM_NATS_TOKEN"] = "t0ken"
        restore_and_compare(con, db, u, os.path.join(d, "out.db"),
                            "LITESTREAM_NATS_TOKEN fixed")
        con.close()
        del os.environ["LITESTREAM_NATS_TOKEN"]


def t_permissions():
    """A user that may read but not write the bucket, one that may do
    nothing, and an unreachable server: clear errors, the application
    keeps writing."""
    u = url("perm/db", user="ro", password="ro-pw", timeout="1s")
    d = scratch("nats-perm-bucket")
    dirs.append(d)
    js("perm", "put", "other", tmpfile(d, "x", b"x"))  # the bucket exists
    d, db, con = fresh("perm", u)
    write(con, 20)
    t0 = time.time()
    m = wait_error(con, "Permissions Violation")
    ok(m and "refused" in m and "$O.perm.>" in m and "$O.perm.C." in m,
       f"no permission to write the bucket: {m} "
       f"({time.time() - t0:.1f} s)")
    write(con, 20)
    ok(status(con)["last_error"] is not None, "the application keeps "
                                              "writing")
    e = err_of(con, "SELECT litestream_restore(?, ?)",
               url("perm/db", user="none", password="none-pw",
                   timeout="1s"), os.path.join(d, "none.db"))
    ok(e and "Permissions Violation" in e,
       f"restore by a user without permissions: {e}")
    good = url("perm/db")
    con.execute(f"PRAGMA litestream_url = '{good}'")
    restore_and_compare(con, db, good, os.path.join(d, "out.db"),
                        "a user with permissions: nothing lost")
    con.close()

    port = free_port()
    u = f"nats://127.0.0.1:{port}/b/db?retries=1"
    d, db, con = fresh("unreachable", u)
    write(con, 5)
    m = wait_error(con, "no server available")
    ok(m and f"127.0.0.1:{port}" in m, f"an unreachable server: {m}")
    e = err_of(con, "SELECT litestream_restore(?, ?)", u,
               os.path.join(d, "x.db"))
    ok(e and "no server available" in e, f"restore from it: {e}")
    e = err_of(con, "SELECT litestream_restore(?, ?)", url("nobucket/db"),
               os.path.join(d, "y.db"))
    ok(e and "empty or does not exist" in e and
       stream_state("nobucket") == {},
       f"restore from a missing bucket (not created): {e}")
    con.close()
    for creds, want in (("/nonexistent/x.creds", "error opening file"),
                        (tmpfile(d, "bad.creds", b"junk"),
                         "no nkey user seed")):
        cli = Cli(srv.url("b/db") + "?creds=" + creds)
        r = cli("list .")
        cli.close()
        ok(r.startswith("err CANTOPEN ") and want in r and creds in r,
           f"a bad credentials file: {r}")
    with NatsServer(jetstream=False) as plain:
        c2 = sqlite3.connect(":memory:")
        e = err_of(c2, "SELECT litestream_restore(?, ?)",
                   plain.url("b/db"),
                   os.path.join(d, "z.db"))
        c2.close()
        ok(e and "no responders" in e and "nats-server -js" in e,
           f"a server without JetStream: {e}")
    os.environ["LITESTREAM_NATS_LIBRARY"] = "/nonexistent/libnats.so"
    cli = Cli(srv.url("b/db"))
    r = cli("list .")
    cli.close()
    del os.environ["LITESTREAM_NATS_LIBRARY"]
    ok(r.startswith("err CANTOPEN ") and "needs libnats" in r and
       "apt-get install libnats3.4" in r and "/nonexistent/libnats.so" in r,
       f"without libnats: {r}")
    for bad, want in (("nats://127.0.0.1:4222/", "names no bucket"),
                      ("nats://127.0.0.1:4222/a.b/db", "bad NATS bucket"),
                      ("nats://h/b/db?timeout=x", "bad timeout"),
                      ("nats://h:99999/b", "out of range")):
        e = err_of(con2 := sqlite3.connect(os.path.join(d, "u.db")),
                   f"PRAGMA litestream_url = '{bad}'")
        con2.close()
        ok(e and want in e, f"{bad}: {e}")


t_backend()
t_replicate()
t_server_down("kill")
t_server_down("term")
t_credentials()
t_permissions()
for d in dirs:
    cleanup(d)
srv.stop()
done()
