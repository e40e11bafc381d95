#!/usr/bin/python3
"""The webdav:// and webdavs:// backends against rclone serve webdav on
loopback (WebdavServer): layout, counters, credentials in the URL and in
the environment, TLS, every credential and permission error (a clear
message in status and from restore, the application keeps writing, nothing
lost once fixed), an object replaced in place, and the server killed in
the middle of an upload then restarted (no partial object is ever visible,
nothing is lost)."""
import json
import os
import pwd
import re
import sqlite3
import time

from harness import (diag, done, dump_hash, load, ok, restore_and_compare,
                     scratch)
from hostcheck import Checks, ltx_sane, objects
from servers import FaultProxy, WebdavServer

load()
srv = WebdavServer().start()
for k in ("LITESTREAM_WEBDAV_USERNAME", "LITESTREAM_WEBDAV_PASSWORD"):
    os.environ.pop(k, None)
H = Checks("webdav", lambda: [srv.password])
fresh, status, write, err_of = H.fresh, H.status, H.write, H.err_of


def set_env(**kv):
    def f():
        for k, v in kv.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return f


creds = set_env(**srv.env())
no_creds = set_env(LITESTREAM_WEBDAV_USERNAME=None,
                   LITESTREAM_WEBDAV_PASSWORD=None)

# --- layout, counters, credentials in the URL --------------------------------
url = srv.url("basic/db", auth=True)
con = H.basic(url, os.path.join(srv.data_dir, "basic/db"))
js = json.dumps(status(con)) + con.execute("PRAGMA litestream_url"
                                           ).fetchone()[0]
ok(srv.password not in js and "REDACTED" in js,
   "the password is never shown (status, PRAGMA litestream_url)")
con.close()

# Credentials from the environment.
creds()
url = srv.url("env/db")
d, db, con = fresh("env", url)
write(con, 10)
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "credentials from LITESTREAM_WEBDAV_USERNAME/_PASSWORD")
con.close()

# --- errors, then fixed ----------------------------------------------------------
H.error_then_fix("wrong-password", srv.url("e1/db"), "HTTP 401",
                 set_env(LITESTREAM_WEBDAV_PASSWORD="wrong"), creds)
H.error_then_fix("no-credentials", srv.url("e2/db"),
                 "give a user name and password", no_creds, creds)
H.error_then_fix("server-down", srv.url("e3/db"), "127.0.0.1", srv.kill,
                 srv.restart)

# Missing permission on the collection: a server running as nobody, in a
# directory owned by root.
if os.geteuid() == 0:
    nob = WebdavServer(as_user="nobody").start()
    os.chmod(nob._tmp, 0o755)
    os.chmod(nob.data_dir, 0o755)
    os.environ.update(nob.env())
    H.secrets = lambda: [srv.password, nob.password]
    u = pwd.getpwnam("nobody")
    # rclone answers 404 for a collection it may not read: restore can
    # only say there is no replica.
    H.error_then_fix("no-permission", nob.url("ro/db"), "write access",
                     lambda: None,
                     lambda: os.chown(nob.data_dir, u.pw_uid, u.pw_gid),
                     restore_what="does not exist")
    nob.stop()
    creds()
else:
    ok(True, "# SKIP no-permission: needs root to run the server as nobody")

# --- an object that exists already is replaced (MOVE with Overwrite) ---------
H.replace_existing(srv.url("replace/db"),
                   os.path.join(srv.data_dir, "replace/db"))

# --- compaction, retention (deletes), litestream_ltx() ----------------------
H.compact_and_delete(srv.url("compact/db"), os.path.join(srv.data_dir, "compact/db"))

# --- the server killed in the middle of an upload, then restarted ------------
H.kill_mid_upload(srv, srv.url("kill/db"),
                  os.path.join(srv.data_dir, "kill/db"))

# --- transient failures through a fault-injecting proxy ----------------------
px = FaultProxy(srv).start()
url = f"webdav://127.0.0.1:{px.port}/faults/db"
d, db, con = fresh("faults", url)
write(con, 10)
con.execute("SELECT litestream_sync(10000)")
# The faults hit the LTX objects' requests only: the writer lease's
# renewals (lock.json, MOVE with Overwrite: F) come at times of their own.
LTX = r"\.ltx\.[0-9a-f]{16}\.tmp"
rules = [
    px.add_rule("PUT", LTX, "status", code=503, count=2),
    px.add_rule("PUT", LTX, "status", code=429, count=1),
    px.add_rule("PUT", LTX, "reset", count=1),
    px.add_rule("MOVE", LTX, "status", code=502, count=1),
    px.add_rule("MOVE", LTX, "reset_after_upstream", count=1),
    px.add_rule("PROPFIND", None, "reset", count=1),
    px.add_rule("PROPFIND", None, "truncate", fraction=0.5, count=1),
]
for i in range(20):
    write(con, 3)
    time.sleep(0.05)
txid = con.execute("SELECT litestream_sync(30000)").fetchone()[0]
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    f"after 5xx/429/resets/truncation: caught up at {txid}")
applied = {r.method + " " + r.fault + str(r.params.get("code", "")):
           r.applied for r in rules}
ok(all(r.applied == r.count for r in rules),
   f"every fault hit the requests (uploads, restore): {applied}")
# The LTX objects' requests alone (the lease's run beside them).
ltx_log = [r for r in px.log if ".ltx" in r.path]
lost = next(r for r in ltx_log if r.fault == "reset_after_upstream")
# That object's requests alone: the compactor's uploads run beside it.
obj = re.sub(r"\.[0-9a-f]{16}\.tmp$", "", lost.path)
ltx_log = [r for r in ltx_log if r.path.startswith(obj)]
log = [(r.method, r.status) for r in ltx_log]
i = ltx_log.index(lost)
diag(f"the MOVE whose answer was lost: the server answered it "
     f"{ltx_log[i].upstream}; then {log[i + 1:i + 4]}")
# rclone may still list the source for a moment after answering a MOVE
# 201 (then a second MOVE is what must happen, and it answers 201 again);
# what matters: once the source is found gone, no MOVE follows.
if log[i + 1] == ("PROPFIND", 207):
    ok(log[i + 2][0] == "MOVE",
       f"a MOVE whose answer was lost, its source still listed by the "
       f"server, is sent again: {log[i:i + 4]}")
else:
    ok(log[i + 1:i + 3] == [("PROPFIND", 404), ("PROPFIND", 207)] and
       "MOVE" not in [m for m, _ in log[i + 1:i + 4]],
       f"a MOVE whose answer was lost is not sent again (with Overwrite: T "
       f"it would delete what it moved): its source is gone, the object "
       f"there: {log[i:i + 4]}")
ltx, other = objects(os.path.join(srv.data_dir, "faults/db"))
ok(all(ltx_sane(p) for p in ltx), f"every object is whole ({len(ltx)})")
con.execute("SELECT litestream_sync(30000)")
con.close()  # from here only the restores below send requests
# rclone's answer when a member vanished during its walk: the 207's XML,
# then "Internal Server Error" (seen in CI: a restore while compacting).
# The listing is asked again.
rc = load()
spoil = px.add_rule("PROPFIND", None, "append", count=1)
out = os.path.join(d, "out2.db")
e = err_of(rc, "SELECT litestream_restore(?, ?)", url, out)
ok(e is None and spoil.applied == 1 and dump_hash(out) == dump_hash(db),
   f"a listing followed by the server's error text is asked again: the "
   f"restore is identical ({e!r})")
# A server that always spoils its listings: a clear error once the
# retries are spent, nothing restored.
px.add_rule("PROPFIND", None, "append")
t0 = time.time()
e = err_of(rc, "SELECT litestream_restore(?, ?)", url,
           os.path.join(d, "spoiled.db"))
ok(e is not None and "bad answer" in e and "after the root element" in e
   and not os.path.exists(os.path.join(d, "spoiled.db")),
   f"listings always followed by an error: restore fails in "
   f"{time.time() - t0:.1f} s, clearly: {e!r}")
px.clear_rules()
rc.close()
px.stop()

# --- webdavs:// (TLS, a self-signed certificate) ------------------------------
tls = WebdavServer(tls=True).start()
os.environ.update(tls.env())
H.secrets = lambda: [srv.password, tls.password]
url = tls.url("tls/db")
d, db, con = fresh("tls", url)
write(con, 10)
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "webdavs:// with skip_verify=true")
e = err_of(con, "SELECT litestream_restore(?, ?)",
           url.replace("?skip_verify=true", ""), os.path.join(d, "v.db"))
ok(e is not None and "certificate" in e,
   f"webdavs:// verifies the certificate: {e!r}")
con.close()
tls.stop()

# --- bad URLs ------------------------------------------------------------------
d = scratch("webdav-badurl")
H.dirs.append(d)
con = sqlite3.connect(os.path.join(d, "app.db"), isolation_level=None)
for bad, what in (("webdav:///x", "host"), ("webdav://h:0/x", "port")):
    e = err_of(con, f"PRAGMA litestream_url = '{bad}'")
    ok(e is not None and what in e, f"{bad}: {e!r}")
con.close()

srv.stop()
H.cleanup()
done()
