#!/usr/bin/python3
"""The abs:// backend (Azure Blob Storage) against Azurite on loopback with
authentication enforced, directly and through the fault-injecting proxy:
layout and metadata, uploads in blocks, listing pages, Shared Key and SAS
tokens, every credential / container / endpoint / URL error (a clear
message in status and from restore, the application keeps writing, every
transaction replicated once fixed; no secret in any message), and 5xx /
resets / truncated bodies (replication catches up, restores identical)."""
import json
import os
import re
import sqlite3
import time

from harness import (cleanup, done, dump_hash, load, ok, restore_and_compare,
                     scratch)
from servers import AzureServer, FaultProxy, free_port

load()
az = AzureServer(containers=("testcontainer", "other")).start()
for v in ("LITESTREAM_AZURE_ACCOUNT_KEY", "AZURE_STORAGE_KEY",
          "LITESTREAM_AZURE_SAS_TOKEN", "AZURE_STORAGE_SAS_TOKEN",
          "AZURE_STORAGE_ACCOUNT"):
    os.environ.pop(v, None)
os.environ["LITESTREAM_AZURE_ACCOUNT_KEY"] = az.key
EP = az.endpoint
ACC = az.account
dirs = []
seen = []  # every message the tests saw (checked for secrets at the end)


def fresh(name, url):
    d = scratch("abs-" + name)
    dirs.append(d)
    db = os.path.join(d, "app.db")
    con = sqlite3.connect(db, isolation_level=None)
    con.execute(f"PRAGMA litestream_url = '{url}'")
    if url:
        con.execute("PRAGMA litestream_sync_interval = 200")
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
        seen.append(str(e))
        return str(e)


def wait_error(con, what, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        e = status(con)["last_error"]
        if e and what in e["message"]:
            seen.append(e["message"])
            return e["message"]
        time.sleep(0.1)
    e = status(con)["last_error"]
    return None if e is None else "(other) " + e["message"]


def url_of(path, container="testcontainer", extra=""):
    return f"abs://{ACC}@{container}/{path}?endpoint={EP}{extra}"


# --- layout, metadata, counters ------------------------------------------
url = url_of("basic/db")
d, db, con = fresh("basic", url)
write(con, 50)
restore_and_compare(con, db, url, os.path.join(d, "out.db"), "abs basic")
blobs = [b for b in az.blobs("basic/") if b[0] != "basic/db/lock.json"]
names = [b[0] for b in blobs]
ok(names and all(re.fullmatch(r"basic/db/ltx/[0-9]/[0-9a-f]{16}-[0-9a-f]{16}"
                              r"\.ltx", n) for n in names) and
   any(n.startswith("basic/db/ltx/0/") for n in names),
   f"blobs at <path>/ltx/<level>/<min>-<max>.ltx (Litestream's abs layout): "
   f"{names[:2]}")
ts = blobs[0][2].get("litestreamtimestamp", "")
ok(re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", ts),
   f"metadata litestreamtimestamp is RFC 3339 UTC: {ts!r}")
c = status(con)["counters"]
ok(c["put"] >= 1 and c["list"] >= 1 and c["bytes_up"] > 0,
   f"request counters in status: {c}")
con.close()

# Names that need encoding: what is signed is what is sent.
url = url_of("odd%20dir/a+b%C3%A9/db")
d, db, con = fresh("odd", url)
write(con, 10)
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "a path with a space, '+' and UTF-8")
ok(any(b[0].startswith("odd dir/a+b\u00e9/db/ltx/0/")
       for b in az.blobs("odd ")),
   f"... stored under the decoded names: {[b[0] for b in az.blobs('odd ')][:1]}")
con.close()

# --- blocks, listing pages (through the proxy, which logs) ----------------
px = FaultProxy(az).start()
PEP = f"{px.endpoint}/{ACC}"
url = (f"abs://{ACC}@testcontainer/blocks/db?endpoint={PEP}"
       f"&block_size=256KiB&concurrency=3&max_results=2")
d, db, con = fresh("blocks", url)
con.execute("BEGIN")
write(con, 1500, 1500)
con.execute("COMMIT")
for i in range(4):  # more L0 objects than a listing page holds
    write(con, 2)
    con.execute("SELECT litestream_sync(10000)")
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "an object of several MB sent in 256 KiB blocks")
blocks = px.requests("PUT", "comp=block&")
lists = px.requests("PUT", "comp=blocklist")
ok(len(blocks) >= 4 and lists,
   f"Put Block x{len(blocks)} then Put Block List x{len(lists)}")
marks = px.requests("GET", "marker=")
ok(marks, f"listing with max_results=2 pages with markers ({len(marks)} "
          f"pages after the first)")
big = [b for b in az.blobs("blocks/") if b[1] > 256 * 1024]
ok(big and all(b[2].get("litestreamtimestamp") for b in big),
   f"the block blob carries its timestamp: {[(b[0], b[1]) for b in big]}")
con.close()

# --- faults through the proxy ---------------------------------------------
px.clear_log()
url = f"abs://{ACC}@testcontainer/faults/db?endpoint={PEP}&timeout=1s"
d, db, con = fresh("faults", url)
write(con, 10)
con.execute("SELECT litestream_sync(10000)")
rules = [px.add_rule("PUT", r"\.ltx", "status", code=503, count=2),
         px.add_rule("PUT", r"\.ltx", "status", code=500, count=1),
         px.add_rule("PUT", r"\.ltx", "reset", count=2),
         px.add_rule("PUT", r"\.ltx", "reset_after_upstream", count=1),
         px.add_rule("PUT", r"\.ltx", "stall", seconds=3, count=1)]
for i in range(20):
    write(con, 3)
    time.sleep(0.05)
con.execute("SELECT litestream_sync(30000)")
ok(all(r.applied == r.count for r in rules),
   f"every fault hit the uploads: {[r.applied for r in rules]}")
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "after 503/500/resets/stall: caught up")
px.clear_rules()
rg = [px.add_rule("GET", r"\.ltx", "truncate", count=2),
      px.add_rule("GET", r"\.ltx", "reset", count=1),
      px.add_rule("GET", "comp=list", "status", code=503, count=1)]
out = os.path.join(d, "out-faults.db")
con.execute("SELECT litestream_restore(?, ?)", (url, out)).fetchone()
ok(dump_hash(out) == dump_hash(db) and all(r.applied for r in rg),
   f"restore through truncated bodies, a reset and a 503 is identical: "
   f"{[r.applied for r in rg]}")
px.clear_rules()
always = px.add_rule(None, None, "status", code=503)
write(con, 10)
msg = wait_error(con, "503")
ok(msg is not None and "Azure PUT" in msg,
   f"persistent 503: status says {msg!r}")
write(con, 10)
px.remove_rule(always)
restore_and_compare(con, db, url, os.path.join(d, "out2.db"),
                    "503s stopped: every transaction replicated")
con.close()
px.stop()


# --- credentials: each error clear, writes go on, caught up once fixed ----
def credential_case(name, breakit, fixit, want, restore_want=None):
    url = url_of(f"cred-{name}/db")
    d, db, con = fresh("cred-" + name, url)
    write(con, 5)
    con.execute("SELECT litestream_sync(10000)")
    breakit()
    write(con, 10)
    msg = wait_error(con, want)
    ok(msg is not None and not msg.startswith("(other)") and want in msg,
       f"{name}: status says {msg!r}")
    e = err_of(con, "SELECT litestream_restore(?, ?)", url,
               os.path.join(d, "r.db"))
    if restore_want is False:  # only uploads are refused
        ok(e is None, f"{name}: the restore (reads only) works: {e!r}")
    else:
        rw = restore_want or want
        ok(e is not None and rw in e, f"{name}: restore fails with {e!r}")
    write(con, 10)  # the application keeps writing
    fixit()
    restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                        f"{name} fixed: every transaction replicated")
    con.close()


def setenv(**kv):
    for k, v in kv.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nIQ=="
credential_case("wrong-key",
                lambda: setenv(LITESTREAM_AZURE_ACCOUNT_KEY=wrong),
                lambda: setenv(LITESTREAM_AZURE_ACCOUNT_KEY=az.key),
                "the Shared Key in LITESTREAM_AZURE_ACCOUNT_KEY")
credential_case("key-not-base64",
                lambda: setenv(LITESTREAM_AZURE_ACCOUNT_KEY="not base64!"),
                lambda: setenv(LITESTREAM_AZURE_ACCOUNT_KEY=az.key),
                "is not base64")
credential_case("no-credentials",
                lambda: setenv(LITESTREAM_AZURE_ACCOUNT_KEY=None),
                lambda: setenv(AZURE_STORAGE_KEY=az.key),
                "no credentials for abs")
setenv(AZURE_STORAGE_KEY=None, LITESTREAM_AZURE_ACCOUNT_KEY=az.key)
credential_case("expired-sas",
                lambda: setenv(LITESTREAM_AZURE_SAS_TOKEN=az.sas(minutes=-5)),
                lambda: setenv(LITESTREAM_AZURE_SAS_TOKEN=az.sas()),
                "check its expiry (se)")
credential_case("read-only-sas",
                lambda: setenv(AZURE_STORAGE_SAS_TOKEN=az.sas("rl"),
                               LITESTREAM_AZURE_SAS_TOKEN=None),
                lambda: setenv(AZURE_STORAGE_SAS_TOKEN="?" + az.sas()),
                "AuthorizationPermissionMismatch", restore_want=False)
setenv(AZURE_STORAGE_SAS_TOKEN=None, LITESTREAM_AZURE_SAS_TOKEN=None)

# Missing container: clear error, then the container is created.
url = url_of("mc/db", container="later-container")
d, db, con = fresh("missing-container", url)
write(con, 10)
msg = wait_error(con, "ContainerNotFound")
ok(msg and "create the container first" in msg,
   f"missing container: status says {msg!r}")
e = err_of(con, "SELECT litestream_restore(?, ?)", url,
           os.path.join(d, "r.db"))
ok(e is not None and "ContainerNotFound" in e,
   f"missing container: restore fails with {e!r}")
write(con, 10)
az.create_container("later-container")
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "container created: every transaction replicated")
con.close()

# Unreachable endpoint.
dead = f"http://127.0.0.1:{free_port()}/{ACC}"
url = f"abs://{ACC}@testcontainer/dead/db?endpoint={dead}&retries=0"
d, db, con = fresh("unreachable", url)
write(con, 5)
msg = wait_error(con, "Couldn't connect")
ok(msg and "Azure" in msg, f"unreachable endpoint: status says {msg!r}")
e = err_of(con, "SELECT litestream_restore(?, ?)", url,
           os.path.join(d, "r.db"))
ok(e is not None and "Couldn't connect" in e,
   f"unreachable endpoint: restore fails with {e!r}")
con.close()

# --- URLs ----------------------------------------------------------------
d, db, con = fresh("urls", "")
for bad, want in [
        (f"abs://my-container@{ACC}/x?endpoint={EP}", "looks like the old "
         "order abs://CONTAINER@ACCOUNT"),
        (f"abs://Bad_Account@testcontainer/x?endpoint={EP}",
         "bad storage account name 'Bad_Account'"),
        (f"abs://{ACC}@ab/x?endpoint={EP}", "bad container name 'ab'"),
        (f"abs://{ACC}@a--b/x?endpoint={EP}", "bad container name"),
        ("abs://testcontainer/x", "no storage account"),
        (f"abs://{ACC}@testcontainer/x?endpoint=ftp://h", "bad endpoint"),
        (f"abs://{ACC}@testcontainer/x?endpoint={EP}&block_size=0",
         "block_size"),
        (f"abs://{ACC}@testcontainer/x?endpoint={EP}&concurrency=99",
         "concurrency")]:
    e = err_of(con, f"PRAGMA litestream_url = '{bad}'")
    ok(e is not None and want in e, f"{bad}: {e!r}")
setenv(AZURE_STORAGE_ACCOUNT=ACC)
url = f"abs://testcontainer/env/db?endpoint={EP}"
d, db, con = fresh("env-account", url)
write(con, 10)
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "abs://CONTAINER/PATH takes the account from "
                    "AZURE_STORAGE_ACCOUNT")
con.close()
setenv(AZURE_STORAGE_ACCOUNT=None)

sig = re.search(r"sig=([^&]+)", az.sas()).group(1)
leaks = [m for m in seen if az.key[:20] in m or wrong[:20] in m or
         "sig=" in m or sig[:10] in m]
ok(seen and not leaks, f"no key or SAS signature in {len(seen)} messages "
                       f"({leaks[:1]})")

az.stop()
for x in dirs:
    cleanup(x)
done()
