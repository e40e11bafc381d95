#!/usr/bin/python3
"""The oss:// backend (Alibaba Cloud OSS through its S3-compatible API)
against the signature-checking S3 server (s3rver) with an explicit
endpoint: Litestream's oss layout (<path>/<level %04x>/...), credentials
from OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET before the AWS variables, a
host in OSS's BUCKET.oss-REGION.aliyuncs.com form, replicate and restore
(several workloads, a multipart object), the read replica, and errors
that name OSS and its variables."""
import json
import os
import re
import sqlite3
import time

from harness import (cleanup, done, load, ok, restore_and_compare, scratch)
from servers import S3Server

load()
s3 = S3Server(buckets=("ossbucket",)).start()
for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
          "LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY",
          "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "AWS_REGION"):
    os.environ.pop(v, None)
# The second key pair of the server, so that a signature with the AWS
# variables' pair would be refused.
os.environ["OSS_ACCESS_KEY_ID"] = s3.key2
os.environ["OSS_ACCESS_KEY_SECRET"] = s3.secret2
os.environ["AWS_ACCESS_KEY_ID"] = "AKIANOTTHISONE"
os.environ["AWS_SECRET_ACCESS_KEY"] = "wrong"
EP = s3.endpoint
dirs = []


def fresh(name, url):
    d = scratch("oss-" + name)
    dirs.append(d)
    db = os.path.join(d, "app.db")
    con = sqlite3.connect(db, isolation_level=None)
    con.execute(f"PRAGMA litestream_url = '{url}'")
    con.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v)")
    return d, db, con


def status(con):
    return json.loads(con.execute("SELECT litestream_status()").fetchone()[0]
                      )["databases"][0]


def write(con, n=20, size=200):
    for _ in range(n):
        con.execute("INSERT INTO t(v) VALUES (randomblob(?))", (size,))


def wait_error(con, what, timeout=8.0):
    end = time.time() + timeout
    while time.time() < end:
        e = status(con)["last_error"]
        if e and what in e["message"]:
            return e["message"]
        time.sleep(0.1)
    e = status(con)["last_error"]
    return None if e is None else "(other) " + e["message"]


url = f"oss://ossbucket/app/db?endpoint={EP}"
d, db, con = fresh("basic", url)
write(con, 50)
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "oss with OSS_ACCESS_KEY_ID/SECRET")
keys = [k for k in s3.stored_keys("ossbucket") if k.startswith("app/") and
        k != "app/db/lock.json"]
ok(keys and all(re.fullmatch(r"app/db/000[0-9a-f]/[0-9a-f]{16}-[0-9a-f]{16}"
                             r"\.ltx", k) for k in keys),
   f"objects at <path>/<level %04x>/<min>-<max>.ltx (Litestream's oss "
   f"layout): {keys[:2]}")
meta = json.load(open(s3.object_path(keys[0], "ossbucket")
                      [:-len("._S3rver_object")] + "._S3rver_metadata.json"))
ok(meta.get("x-amz-meta-litestream-timestamp", "").endswith("Z"),
   f"each object carries its timestamp: {meta}")

# A big transaction: a multipart upload.
url = f"oss://ossbucket/mp/db?endpoint={EP}&part_size=1MiB"
d, db, con = fresh("multipart", url)
con.execute("BEGIN")
write(con, 1500, 1500)
con.execute("COMMIT")
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "oss multipart (several 1 MiB parts)")
con.close()

# The read replica.
url = f"oss://ossbucket/remote/db?endpoint={EP}"
d, db, con = fresh("remote", url)
write(con, 30)
con.execute("SELECT litestream_sync(10000)")
import urllib.parse  # noqa: E402
r = sqlite3.connect("file:r.db?vfs=litestream-remote&url=" +
                    urllib.parse.quote(url, safe=""), uri=True)
n = r.execute("SELECT count(*) FROM t").fetchone()[0]
ok(n == 30, f"the read replica reads the oss replica: {n} rows")
r.close()
con.close()

# A host in OSS's own form names the bucket (and the region).
url = f"oss://ossbucket.oss-cn-beijing.aliyuncs.com/host/db?endpoint={EP}"
d, db, con = fresh("host", url)
write(con, 10)
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "oss://BUCKET.oss-REGION.aliyuncs.com/PATH")
ok(any(k.startswith("host/db/") for k in s3.stored_keys("ossbucket")),
   "... stored in the bucket the host names")
con.close()

# Credentials: the AWS variables when the OSS pair is absent; errors say
# OSS and name its variables; nothing lost once fixed.
os.environ.pop("OSS_ACCESS_KEY_ID")
os.environ.pop("OSS_ACCESS_KEY_SECRET")
url = f"oss://ossbucket/creds/db?endpoint={EP}"
d, db, con = fresh("creds", url)
write(con, 10)
msg = wait_error(con, "InvalidAccessKeyId")
ok(msg and "OSS " in msg and not msg.startswith("(other)"),
   f"the AWS variables are used without the OSS pair (here a wrong one): "
   f"{msg!r}")
os.environ.pop("AWS_ACCESS_KEY_ID")
os.environ.pop("AWS_SECRET_ACCESS_KEY")
write(con, 10)
msg = wait_error(con, "no credentials for oss")
ok(msg and "OSS_ACCESS_KEY_ID" in msg, f"no credentials: {msg!r}")
os.environ["AWS_ACCESS_KEY_ID"] = s3.key
os.environ["AWS_SECRET_ACCESS_KEY"] = s3.secret
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "AWS variables fixed: every transaction replicated")
con.close()

e = None
try:
    sqlite3.connect(":memory:").execute("SELECT 1")
    c2 = sqlite3.connect(os.path.join(d, "x.db"))
    c2.execute("PRAGMA litestream_url = 'oss://B!/x'")
except sqlite3.Error as ex:
    e = str(ex)
ok(e and "bucket" in e, f"bad bucket name: {e!r}")

s3.stop()
for x in dirs:
    cleanup(x)
done()
