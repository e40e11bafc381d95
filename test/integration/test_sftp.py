#!/usr/bin/python3
"""The sftp:// backend against OpenSSH's sshd on loopback (SftpServer):
layout, key and password logins, host key pinning and known_hosts, every
credential, host key and permission error (a clear message in status and
from restore, the application keeps writing, nothing lost once fixed), an
object replaced in place, and the server killed in the middle of an upload
then restarted (no partial object is ever visible, nothing is lost)."""
import json
import os
import pwd
import sqlite3
import subprocess
import time
import urllib.parse

from harness import done, load, ok, restore_and_compare, scratch
from hostcheck import Checks
from servers import SftpServer
from filehosts import SFTP_USER, fingerprint

load()
srv = SftpServer(password_user=True).start()
KEY = srv.key_path
for v in ("LITESTREAM_SFTP_KEY_PATH", "LITESTREAM_SFTP_PASSWORD"):
    os.environ.pop(v, None)
user = pwd.getpwnam(SFTP_USER)
H = Checks("sftp", lambda: [srv.password])
fresh, status, write, err_of = H.fresh, H.status, H.write, H.err_of
wait_error, error_then_fix = H.wait_error, H.error_then_fix


def user_dir(name):
    """A directory of the server owned by the password user."""
    p = os.path.join(srv.data_dir, name)
    os.makedirs(p, exist_ok=True)
    os.chown(p, user.pw_uid, user.pw_gid)
    return p


# --- layout, counters, key login ---------------------------------------------
os.environ["LITESTREAM_SFTP_KEY_PATH"] = KEY
url = srv.url("basic/db")
con = H.basic(url, os.path.join(srv.data_dir, "basic/db"))
shown = con.execute("PRAGMA litestream_url").fetchone()[0]
ok(srv.fingerprint in urllib.parse.unquote(shown),
   f"the pinned host key is shown: {shown}")
# One SSH connection, kept: more uploads, no new login.
con.execute("PRAGMA litestream_sync_interval = 100")
logins, puts = srv.log_text().count("Accepted "), status(con)["counters"]["put"]
for _ in range(10):
    write(con, 1)
    time.sleep(0.15)
con.execute("SELECT litestream_sync(10000)")
puts = status(con)["counters"]["put"] - puts
logins = srv.log_text().count("Accepted ") - logins
ok(puts >= 3 and logins == 0,
   f"the connection is reused: {puts} uploads, {logins} new logins")
con.close()

# ?key_path= instead of the environment; the fingerprint's '+' unencoded.
os.environ.pop("LITESTREAM_SFTP_KEY_PATH")
url = srv.url("kp/db", key_path=KEY).replace("%2B", "+")
d, db, con = fresh("key-path", url)
write(con, 10)
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "key from ?key_path=")
con.close()

# --- the password user ---------------------------------------------------------
user_dir("pw")
url = srv.url("pw/db", user=f"{SFTP_USER}:{srv.password}")
d, db, con = fresh("password", url)
write(con, 10)
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "password in the URL")
js = json.dumps(status(con)) + con.execute("PRAGMA litestream_url"
                                           ).fetchone()[0]
ok(srv.password not in js and "REDACTED" in js,
   "the password is never shown (status, PRAGMA litestream_url)")
con.close()
os.environ["LITESTREAM_SFTP_PASSWORD"] = srv.password
url = srv.url("pw/db2", user=SFTP_USER)
d, db, con = fresh("password-env", url)
write(con, 10)
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "password from LITESTREAM_SFTP_PASSWORD")
con.close()
os.environ.pop("LITESTREAM_SFTP_PASSWORD")


# --- errors, then fixed ----------------------------------------------------------
def set_env(k, v):
    def f():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    return f


user_dir("e1")
error_then_fix("wrong-password", srv.url("e1/db", user=SFTP_USER),
               "Authentication failure",
               set_env("LITESTREAM_SFTP_PASSWORD", "wrong-password"),
               set_env("LITESTREAM_SFTP_PASSWORD", srv.password))
os.environ.pop("LITESTREAM_SFTP_PASSWORD")

other = os.path.join(srv._tmp, "other_key")
subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other],
               check=True, env={k: v for k, v in os.environ.items()
                                if k != "LD_PRELOAD"})
H.other_fp = fingerprint(other + ".pub")
error_then_fix("wrong-key", srv.url("e2/db"), "Authentication failure",
               set_env("LITESTREAM_SFTP_KEY_PATH", other),
               set_env("LITESTREAM_SFTP_KEY_PATH", KEY))

error_then_fix("no-credentials", srv.url("e3/db"), "no credentials",
               set_env("LITESTREAM_SFTP_KEY_PATH", None),
               set_env("LITESTREAM_SFTP_KEY_PATH", KEY))

# Host keys through a known_hosts file: unknown, then known.
kh = os.path.join(srv._tmp, "known_hosts")
open(kh, "w").close()
error_then_fix("unknown-host", srv.url("e4/db", host_key=None,
                                       known_hosts=kh),
               srv.fingerprint, lambda: None,
               lambda: open(kh, "w").write(srv.known_hosts_line()))

# A known_hosts line with another key for the host: "changed".
with open(other + ".pub") as f:
    typ, blob = f.read().split()[:2]


def bad_kh():
    with open(kh, "w") as f:
        f.write("[127.0.0.1]:%d %s %s\n" % (srv.port, typ, blob))


error_then_fix("changed-host-key", srv.url("e5/db", host_key=None,
                                           known_hosts=kh),
               "CHANGED", bad_kh,
               lambda: open(kh, "w").write(srv.known_hosts_line()))

# No permission on the replica directory (root's, mode 0700), then one
# the user may not create (in root's directory, mode 0755).
os.environ["LITESTREAM_SFTP_PASSWORD"] = srv.password
ro = os.path.join(srv.data_dir, "ro")
os.makedirs(ro + "/db/ltx/0", exist_ok=True)
os.chmod(ro + "/db", 0o700)


def grant(p):
    def f():
        for dp, dn, _ in os.walk(p):
            os.chown(dp, user.pw_uid, user.pw_gid)
        os.chmod(p, 0o755)
    return f


error_then_fix("no-permission", srv.url("ro/db", user=SFTP_USER),
               "Permission denied: give the SFTP user read and write access",
               lambda: None, grant(ro + "/db"))
os.makedirs(os.path.join(srv.data_dir, "ro2"), exist_ok=True)
d, db, con = fresh("no-mkdir", srv.url("ro2/db", user=SFTP_USER))
write(con, 5)
msg = wait_error(con, "mkdir")
ok(msg is not None and "Permission denied" in msg and "ro2/db" in msg,
   f"a directory it may not create: {msg!r}")
grant(os.path.join(srv.data_dir, "ro2"))()
restore_and_compare(con, db, srv.url("ro2/db", user=SFTP_USER),
                    os.path.join(d, "o.db"), "no-mkdir: fixed, replicated")
con.close()
os.environ.pop("LITESTREAM_SFTP_PASSWORD")

# The server down, then back on the same port.
os.environ["LITESTREAM_SFTP_KEY_PATH"] = KEY
error_then_fix("server-down", srv.url("e6/db"), "127.0.0.1", srv.kill,
               srv.restart)

# --- an object that exists already is replaced (SFTP v3 rename) --------------
H.replace_existing(srv.url("replace/db"),
                   os.path.join(srv.data_dir, "replace/db"))

# --- compaction, retention (deletes), litestream_ltx() ----------------------
H.compact_and_delete(srv.url("compact/db"), os.path.join(srv.data_dir, "compact/db"))

# --- the server killed in the middle of an upload, then restarted ------------
H.kill_mid_upload(srv, srv.url("kill/db"),
                  os.path.join(srv.data_dir, "kill/db"))

# --- the host key changed on the server, the URL pins the old one ------------
url = srv.url("rekey/db")
old = srv.fingerprint
d, db, con = fresh("rekey", url)
write(con, 5)
con.execute("SELECT litestream_sync(10000)")
srv.rekey()
write(con, 5)
msg = wait_error(con, srv.fingerprint)
ok(msg is not None and old in msg and srv.fingerprint in msg,
   f"host key changed under a pinned URL: {msg!r}")
e = err_of(con, "SELECT litestream_restore(?, ?)", url,
           os.path.join(d, "r.db"))
ok(e is not None and srv.fingerprint in e, f"restore refuses it too: {e!r}")
url = srv.url("rekey/db")
con.execute("PRAGMA litestream_url = '%s'" % url)
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "the new key pinned: every transaction replicated")
con.close()

# --- several pinned keys: the server shows one of its keys ------------------
url = srv.url("multi/db", host_key=H.other_fp + "," + srv.fingerprint)
d, db, con = fresh("multi-pin", url)
write(con, 5)
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "host_key lists two fingerprints, the server's second")
con.close()

# --- bad URLs ------------------------------------------------------------------
d = scratch("sftp-badurl")
H.dirs.append(d)
con = sqlite3.connect(os.path.join(d, "app.db"), isolation_level=None)
for bad, what in (("sftp://127.0.0.1:22/x", "no user"),
                  ("sftp://u@127.0.0.1/x?host_key=abc", "host_key"),
                  ("sftp://u@127.0.0.1/x?host_key=SHA256:short",
                   "host_key"),
                  ("sftp://u@127.0.0.1/x?host_key=" + srv.fingerprint + ",",
                   "host_key")):
    e = err_of(con, f"PRAGMA litestream_url = '{bad}'")
    ok(e is not None and what in e, f"{bad}: {e!r}")
con.close()

srv.stop()
H.cleanup()
done()
