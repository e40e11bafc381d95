#!/usr/bin/python3
"""The s3:// and gs:// backends against a real S3 server that checks SigV4
signatures (@20minutes/s3rver on loopback), directly and through a
fault-injecting proxy: layout and metadata, multipart, listing pages, key
encoding, virtual-host addressing, every credential / bucket / endpoint
error (clear message, the application keeps writing, nothing lost once
fixed), and 5xx / 429 / resets / stalls / truncated bodies (replication
catches up, the restore is identical, no object is half-written)."""
import json
import os
import re
import sqlite3
import struct
import sys
import time

from harness import (cleanup, diag, done, dump_hash, load, ok,
                     restore_and_compare, scratch)
from servers import FaultProxy, S3Server, free_port

load()
s3 = S3Server(buckets=("testbucket", "gsbucket")).start()
KEY, SECRET = s3.key, s3.secret
os.environ["AWS_ACCESS_KEY_ID"] = KEY
os.environ["AWS_SECRET_ACCESS_KEY"] = SECRET
for v in ("AWS_SESSION_TOKEN", "GOOGLE_HMAC_ACCESS_ID", "GOOGLE_HMAC_SECRET",
          "AWS_REGION"):
    os.environ.pop(v, None)
dirs = []


def fresh(name, url, **pragmas):
    d = scratch("s3-" + name)
    dirs.append(d)
    db = os.path.join(d, "app.db")
    con = sqlite3.connect(db, isolation_level=None)
    for k, v in pragmas.items():
        con.execute(f"PRAGMA {k} = {v}")
    con.execute(f"PRAGMA litestream_url = '{url}'")
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


def wait_error(con, what, timeout=8.0):
    """Waits until litestream_status() shows an error containing `what`."""
    end = time.time() + timeout
    while time.time() < end:
        e = status(con)["last_error"]
        if e and what in e["message"]:
            return e["message"]
        time.sleep(0.1)
    e = status(con)["last_error"]
    return None if e is None else "(other) " + e["message"]


def ltx_sane(path):
    """A stored object is a whole LTX file: magic, a trailer whose file
    checksum has bit 63 set, and an index that ends where the trailer
    begins."""
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 100 + 16 + 8 or b[:4] != b"LTX1":
        return False
    fck = struct.unpack(">Q", b[-8:])[0]
    idx_len = struct.unpack(">Q", b[-24:-16])[0]
    return fck >> 63 == 1 and 0 < idx_len < len(b) - 116


def all_objects_sane(prefix):
    """The LTX objects under prefix (not the writer lease lock.json) and
    those that are not whole LTX files."""
    keys = [k for k in s3.stored_keys() if k.startswith(prefix) and
            not k.endswith("/lock.json")]
    bad = [k for k in keys if not ltx_sane(s3.object_path(k))]
    return keys, bad


EP = s3.endpoint

# --- layout, metadata, counters -------------------------------------------
d, db, con = fresh("basic", f"s3://testbucket/basic/db?endpoint={EP}")
write(con, 50)
restore_and_compare(con, db, f"s3://testbucket/basic/db?endpoint={EP}",
                    os.path.join(d, "out.db"), "s3 basic")
keys = [k for k in s3.stored_keys() if k.startswith("basic/")]
ok("basic/db/lock.json" in keys, "the writer lease at <path>/lock.json")
keys.remove("basic/db/lock.json")
ok(keys and all(re.fullmatch(r"basic/db/000[0-9]/[0-9a-f]{16}-[0-9a-f]{16}"
                             r"\.ltx", k) for k in keys) and
   any(k.startswith("basic/db/0000/") for k in keys),
   f"objects at <path>/<level %04x>/<min>-<max>.ltx: {keys[:2]}")
ok(not any("/0009/" in k for k in keys),
   "the first full image is the day's snapshot: nothing uploaded twice")
meta = json.load(open(s3.object_path(keys[0])[:-len("._S3rver_object")] +
                      "._S3rver_metadata.json"))
ts = meta.get("x-amz-meta-litestream-timestamp", "")
ok(ts.endswith("Z") and ts[:2] == "20" and "T" in ts,
   f"x-amz-meta-litestream-timestamp is RFC 3339 UTC: {ts!r}")
st = status(con)
c = st["counters"]
ok(c["put"] >= 1 and c["list"] >= 1 and c["bytes_up"] > 0,
   f"request counters in status: {c}")
con.close()

# --- multipart, listing pages, request count per interval ------------------
px = FaultProxy(s3).start()
url = (f"s3://testbucket/mp/db?endpoint={px.endpoint}&part_size=1MiB"
       f"&max_keys=2")
d, db, con = fresh("mp", url)
con.execute("BEGIN")
write(con, 3000, 1500)  # ~4.5 MB in one transaction
con.execute("COMMIT")
con.execute("SELECT litestream_sync(20000)")
parts = px.requests("PUT", r"partNumber=")
done_mp = px.requests("POST", r"uploadId=")
ok(len(parts) >= 4 and len(done_mp) == 1,
   f"4.5 MB objects go as multipart uploads ({len(parts)} parts, "
   f"{len(done_mp)} completions)")
for i in range(6):
    write(con, 5)
    con.execute("SELECT litestream_sync(10000)")
px.clear_log()
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "multipart object + 7 more L0 files, listed 2 per page")
lists = px.requests("GET", r"list-type=2")
tokens = [r for r in lists if "continuation-token=" in r.path]
ok(len(tokens) >= 3, f"listing pages with continuation tokens: "
                     f"{len(lists)} LIST, {len(tokens)} with a token")
# Requests per second at 20 txn/s with a 1 s sync interval.
px.clear_log()
t0 = time.time()
while time.time() - t0 < 3.0:
    write(con, 1)
    time.sleep(0.05)
time.sleep(1.2)
puts = len(px.requests("PUT", r"/0000/"))  # L0 (not compaction, snapshot)
ok(1 <= puts <= 5, f"3 s of 20 txn/s at a 1 s sync interval: {puts} L0 "
                   f"PUTs (at most one per interval)")
con.close()

# --- key encoding ----------------------------------------------------------
# ('&' is left out: s3rver 4.0.4 escapes it twice in listings, "&amp;amp;")
enc = "dir%20with%20space/%C3%BCn%2B%3D%7Ex"
url = f"s3://testbucket/{enc}?endpoint={EP}"
d, db, con = fresh("enc", url)
write(con, 10)
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "path with spaces, UTF-8, + = ~ in the key")
ok(any(k.startswith("dir with space/ün+=~x/0000/") for k in s3.stored_keys()),
   "objects under the decoded path 'dir with space/ün+=~x/'")
con.close()

# --- gs:// (HMAC keys, ltx/<level>/ layout) --------------------------------
os.environ["GOOGLE_HMAC_ACCESS_ID"] = s3.key2
os.environ["GOOGLE_HMAC_SECRET"] = s3.secret2
url = f"gs://gsbucket/app?endpoint={EP}"
d, db, con = fresh("gs", url)
write(con, 10)
restore_and_compare(con, db, url, os.path.join(d, "out.db"), "gs:// replica")
gk = [k for k in s3.stored_keys("gsbucket") if k != "app/lock.json"]
ok(gk and all(re.fullmatch(r"app/ltx/[0-9]/[0-9a-f]{16}-[0-9a-f]{16}\.ltx",
                           k) for k in gk) and
   any(k.startswith("app/ltx/0/") for k in gk),
   f"gs objects at <path>/ltx/<level>/: {gk[:1]}")
os.environ.pop("GOOGLE_HMAC_ACCESS_ID")
os.environ["GOOGLE_HMAC_SECRET"] = "not-used-without-the-id"
con.close()

# Virtual-host addressing (force_path_style=false) is not tested here:
# s3rver 4.0.4 signs a virtual-host request's resource as "/<bucket>/<key>"
# (aws-sdk v2 behaviour), where S3 signs the path as sent ("/<key>"), so a
# correctly signed request is refused by it.


# --- credential, bucket and endpoint errors --------------------------------
def error_then_fix(name, url, what, breaks, fixes, restore_url=None):
    d, db, con = fresh(name, url)
    breaks()
    write(con, 20)
    msg = wait_error(con, what)
    ok(msg is not None and what in msg, f"{name}: status says {msg!r}")
    js = json.dumps(status(con))
    ok(SECRET not in js and "wrongsecret" not in js,
       f"{name}: no secret in status")
    out = os.path.join(d, "early.db")
    e = err_of(con, "SELECT litestream_restore(?, ?)", restore_url or url,
               out)
    ok(e is not None and what in e and not os.path.exists(out),
       f"{name}: restore fails with {e!r}")
    write(con, 20)  # the application keeps working
    n = con.execute("SELECT count(*) FROM t").fetchone()[0]
    ok(n == 40, f"{name}: the application kept writing ({n} rows)")
    fixes()
    restore_and_compare(con, db, restore_url or url, os.path.join(d, "o.db"),
                        f"{name}: fixed, every transaction replicated")
    con.close()


# From here on the second key pair, whose secret differs from its key id,
# so that "no secret in status" means something.
KEY, SECRET = s3.key2, s3.secret2
os.environ["AWS_ACCESS_KEY_ID"] = KEY
os.environ["AWS_SECRET_ACCESS_KEY"] = SECRET


def set_env(k, v):
    def f():
        os.environ[k] = v
    return f


error_then_fix("wrong-secret", f"s3://testbucket/e1?endpoint={EP}",
               "SignatureDoesNotMatch",
               set_env("AWS_SECRET_ACCESS_KEY", "wrongsecret"),
               set_env("AWS_SECRET_ACCESS_KEY", SECRET))
error_then_fix("unknown-key", f"s3://testbucket/e2?endpoint={EP}",
               "InvalidAccessKeyId",
               set_env("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN"),
               set_env("AWS_ACCESS_KEY_ID", KEY))


def unset_creds():
    os.environ.pop("AWS_ACCESS_KEY_ID", None)
    os.environ.pop("AWS_SECRET_ACCESS_KEY", None)


def reset_creds():
    os.environ["AWS_ACCESS_KEY_ID"] = KEY
    os.environ["AWS_SECRET_ACCESS_KEY"] = SECRET


error_then_fix("no-credentials", f"s3://testbucket/e3?endpoint={EP}",
               "AWS_ACCESS_KEY_ID", unset_creds, reset_creds)


def make_bucket(name):
    import subprocess
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    subprocess.run(["curl", "-sS", "--fail", "-X", "PUT",
                    "--aws-sigv4", "aws:amz:us-east-1:s3",
                    "--user", f"{KEY}:{SECRET}",
                    "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                    f"{EP}/{name}"], check=True, capture_output=True,
                   env=env)


error_then_fix("missing-bucket", f"s3://nobucket/e4?endpoint={EP}",
               "NoSuchBucket", lambda: None, lambda: make_bucket("nobucket"))
port = free_port()
late = FaultProxy(s3, port=port)
error_then_fix("unreachable", f"s3://testbucket/e5?endpoint="
               f"http://127.0.0.1:{port}&retries=1",
               "127.0.0.1", lambda: None, late.start)
late.stop()

# Bad endpoint URLs and parameters: refused when set, with the reason.
d = scratch("s3-badurl")
dirs.append(d)
con = sqlite3.connect(os.path.join(d, "app.db"), isolation_level=None)
for bad, what in (("endpoint=ftp://x", "endpoint"),
                  ("endpoint=http://", "endpoint"),
                  ("endpoint=http://h/x/y", "endpoint"),
                  ("endpoint=http://h%20x", "endpoint"),
                  ("force_path_style=maybe", "force_path_style"),
                  ("part_size=1x", "part_size"),
                  ("timeout=-1", "timeout"),
                  ("timeout=30", "timeout"),
                  ("concurrency=0", "concurrency"),
                  ("concurrency=4x", "concurrency"),
                  ("max_keys=5000", "max_keys"),
                  ("retries=x", "retries")):
    e = err_of(con, f"PRAGMA litestream_url = 's3://testbucket/x?{bad}'")
    ok(e is not None and what in e, f"s3 URL with {bad}: {e!r}")
e = err_of(con, "SELECT litestream_restore(?, ?)",
           "s3://testbucket/x?endpoint=ftp://x", os.path.join(d, "r.db"))
ok(e is not None and "endpoint" in e, f"restore with a bad endpoint: {e!r}")
e = err_of(con, "PRAGMA litestream_url = 's3://B!/x'")
ok(e is not None and "bucket" in e, f"bad bucket name: {e!r}")
con.close()

# --- faults through the proxy ----------------------------------------------
px.clear_rules()
url = f"s3://testbucket/faults/db?endpoint={px.endpoint}&timeout=1s"
d, db, con = fresh("faults", url)
write(con, 10)
con.execute("SELECT litestream_sync(10000)")
rules = [
    px.add_rule("PUT", r"\.ltx", "status", code=503, count=2),
    px.add_rule("PUT", r"\.ltx", "status", code=429, count=2),
    px.add_rule("PUT", r"\.ltx", "status", code=500, count=1),
    px.add_rule("PUT", r"\.ltx", "reset", count=2),
    px.add_rule("PUT", r"\.ltx", "reset_after_upstream", count=2),
    px.add_rule("PUT", r"\.ltx", "stall", seconds=3, count=1),
]
t0 = time.time()
for i in range(30):
    write(con, 3)
    time.sleep(0.05)
txid = con.execute("SELECT litestream_sync(30000)").fetchone()[0]
applied = {r.fault + str(r.params.get("code", "")): r.applied for r in rules}
ok(all(r.applied == r.count for r in rules),
   f"every fault hit the uploads: {applied}")
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    f"after 503/429/500/resets/stall: caught up at {txid}")
# Multipart parts failing, then a whole part stalled.
px.clear_rules()
px.clear_log()
mp = f"s3://testbucket/faults/mp?endpoint={px.endpoint}&timeout=1s" \
     f"&part_size=1MiB"
d2, db2, con2 = fresh("faults-mp", mp)
rr = [px.add_rule("PUT", "partNumber=2", "reset", count=1),
      px.add_rule("PUT", "partNumber=3", "status", code=503, count=1),
      px.add_rule("POST", "uploadId=", "reset_after_upstream", count=1)]
con2.execute("BEGIN")
write(con2, 2500, 1500)
con2.execute("COMMIT")
restore_and_compare(con2, db2, mp, os.path.join(d2, "out.db"),
                    "multipart with a reset part, a 503 part and a lost "
                    "completion answer")
ok(all(r.applied == 1 for r in rr), f"multipart faults applied: {rr}")
heads = px.requests("HEAD")
completes = px.requests("POST", "uploadId=")
ok(heads and len(completes) >= 2,
   f"the completion whose answer was lost is settled by a HEAD "
   f"({len(heads)} HEAD, {len(completes)} completion attempts)")
con2.close()
# Downloads: truncated bodies and resets on GET during a restore.
px.clear_rules()
rg = [px.add_rule("GET", r"\.ltx", "truncate", count=2),
      px.add_rule("GET", r"\.ltx", "reset", count=1),
      px.add_rule("GET", "list-type", "status", code=503, count=1)]
out = os.path.join(d, "out-faults.db")
js = con.execute("SELECT litestream_restore(?, ?)", (url, out)).fetchone()[0]
ok(dump_hash(out) == dump_hash(db) and all(r.applied for r in rg),
   f"restore through truncated bodies, a reset and a 503 is identical: "
   f"{[r.applied for r in rg]}")
# A server that keeps failing: clear error, writes go on, then catch-up.
px.clear_rules()
always = px.add_rule(None, None, "status", code=503)
write(con, 10)
msg = wait_error(con, "503")
ok(msg is not None and "ServiceUnavailable" in msg,
   f"persistent 503: status says {msg!r}")
write(con, 10)
px.remove_rule(always)
restore_and_compare(con, db, url, os.path.join(d, "out2.db"),
                    "503s stopped: every transaction replicated")
keys, bad = all_objects_sane("faults/")
ok(keys and not bad, f"no half-written object among {len(keys)} "
                     f"({bad[:3]})")
con.close()

px.stop()
s3.stop()
for x in dirs:
    cleanup(x)
done()
