#!/usr/bin/python3
"""gs:// with a Google service-account key (GOOGLE_APPLICATION_CREDENTIALS).

No Google server runs offline, so the token exchange goes to the token
endpoint of test/servers/gcs_auth.py, which verifies the JWT's RS256
signature with the public half of the key and its claims (iss, scope, aud,
iat, exp), and the object requests go through its Bearer-checking
pass-through to s3rver (which serves them anonymously).  Checked: replicate
and restore with Bearer tokens only, the cache (few tokens for many
requests), refresh before expiry (a 4 s token: never a request with an
expired one), the read replica, HMAC keys still preferred when set, and
each bad key file (missing, unreadable, not JSON, not a service account,
bad private key), a refusing and an unreachable token endpoint: a clear
message in status and from restore, the application keeps writing, every
transaction replicated once fixed, no secret in any message."""
import json
import os
import sqlite3
import time
import urllib.parse

from harness import (cleanup, done, load, ok, restore_and_compare, scratch)
from servers import GcsAuthServer, S3Server, free_port

load()
s3 = S3Server(buckets=("gsbucket",)).start()
g = GcsAuthServer(s3, ttl=4).start()
for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
          "GOOGLE_HMAC_ACCESS_ID", "GOOGLE_HMAC_SECRET",
          "LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY"):
    os.environ.pop(v, None)
os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = g.key_path
EP = g.endpoint
dirs = []
seen = []


def fresh(name, url):
    d = scratch("gs-" + name)
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


def wait_error(con, what, timeout=12.0):
    """Waits (writing on: a cached token is only refetched when it is
    due) until status shows an error containing `what`."""
    end = time.time() + timeout
    while time.time() < end:
        write(con, 1)
        e = status(con)["last_error"]
        if e and what in e["message"]:
            seen.append(e["message"])
            return e["message"]
        time.sleep(0.1)
    e = status(con)["last_error"]
    return None if e is None else "(other) " + e["message"]


# --- the test endpoint really checks (else the tests below prove nothing) --
def grant(claims, pem=None, alg="RS256"):
    """POSTs a JWT-bearer grant with these claims, signed with pem (default:
    the key's own private half) by the openssl command; (status, body)."""
    import base64
    import subprocess
    import urllib.error
    import urllib.request

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": alg, "typ": "JWT",
                           "kid": "0123456789abcdef"}).encode())
    body = head + "." + b64(json.dumps(claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign",
                          pem or g.priv], input=body.encode(),
                         capture_output=True, check=True).stdout
    form = urllib.parse.urlencode({
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": body + "." + b64(sig)}).encode()
    try:
        with urllib.request.urlopen(g.token_uri, form, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


now = int(time.time())
good = {"iss": g.EMAIL, "scope": "https://www.googleapis.com/auth/"
        "devstorage.read_write", "aud": g.token_uri, "iat": now,
        "exp": now + 3600}
st, body = grant(good)
ok(st == 200 and "access_token" in body, f"test endpoint: a good JWT gets "
                                         f"a token ({st})")
other = os.path.join(g.dir, "other.pem")
import subprocess  # noqa: E402
subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                "rsa_keygen_bits:2048", "-out", other], check=True,
               capture_output=True)
for what, claims, pem in [
        ("signed with another key", good, other),
        ("another issuer", dict(good, iss="x@y"), None),
        ("another audience", dict(good, aud="https://x/token"), None),
        ("no storage scope", dict(good, scope="openid"), None),
        ("expired", dict(good, iat=now - 7200, exp=now - 3600), None)]:
    st, body = grant(claims, pem)
    ok(st == 400 and "invalid_grant" in body,
       f"test endpoint refuses a JWT {what}: {st} {body[:60]}")
import urllib.request  # noqa: E402
req = urllib.request.Request(g.endpoint + "/gsbucket?list-type=2",
                             headers={"Authorization": "Bearer forged"})
try:
    urllib.request.urlopen(req, timeout=10)
    st = 200
except urllib.error.HTTPError as e:
    st = e.code
ok(st == 401, f"test pass-through refuses an unknown token: {st}")
g.issued = g.unauthorized = g.refused = 0

# --- replicate, restore, cache, refresh ----------------------------------
url = f"gs://gsbucket/sa/db?endpoint={EP}"
d, db, con = fresh("basic", url)
write(con, 30)
restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                    "gs with a service-account key (Bearer tokens)")
keys = [k for k in s3.stored_keys("gsbucket") if k.startswith("sa/") and
        k != "sa/db/lock.json"]
ok(keys and all(k.startswith("sa/db/ltx/") for k in keys),
   f"objects at <path>/ltx/<level>/... (the gs layout): {keys[:2]}")
c = g.claims or {}
ok(c.get("iss") == g.EMAIL and c.get("aud") == g.token_uri and
   "devstorage.read_write" in c.get("scope", "") and
   c.get("exp", 0) - c.get("iat", 0) == 3600,
   f"the JWT's claims, checked with its RS256 signature: {c}")
ok(g.issued >= 1 and g.unauthorized <= 1 and g.refused == 0,
   f"every request carried a valid token ({g.issued} tokens, "
   f"{g.forwarded} requests, {g.unauthorized} refused)")
# Refresh: 4 s tokens (refreshed 1 s before they expire) over 7 s of
# writes; the pass-through refuses any expired token.
issued0, fwd0 = g.issued, g.forwarded
t0 = time.time()
while time.time() - t0 < 7:
    write(con, 2)
    con.execute("SELECT litestream_sync(10000)")
    time.sleep(0.3)
# Refreshed ahead of expiry, a token is never refused unless a request is
# held up for over a second between signing and arrival (a loaded
# machine); a refused one is replaced and the request sent again.
ok(g.issued - issued0 >= 1 and g.unauthorized <= 2,
   f"tokens refreshed before expiry: {g.issued - issued0} new tokens for "
   f"{g.forwarded - fwd0} requests in 7 s, {g.unauthorized} refused "
   f"(and sent again with a new token)")
ok(g.forwarded - fwd0 > 3 * (g.issued - issued0),
   "tokens are cached: several requests per token")
# The server forgets every token (revoked): the 401 is answered with a
# new token at once, not after the cached one's time is up.
with g.lock:
    g.tokens.clear()
issued0 = g.issued
write(con, 3)
e = None
try:
    con.execute("SELECT litestream_sync(10000)")
except sqlite3.Error as ex:
    e = str(ex)
ok(e is None and g.issued > issued0,
   f"a token the server refuses (401) is replaced at once: "
   f"{g.issued - issued0} new token(s), sync error {e!r}")
r = sqlite3.connect("file:r.db?vfs=litestream-remote&url=" +
                    urllib.parse.quote(url, safe=""), uri=True)
n = r.execute("SELECT count(*) FROM t").fetchone()[0]
ok(n == con.execute("SELECT count(*) FROM t").fetchone()[0],
   f"the read replica reads through service-account tokens: {n} rows")
r.close()
con.close()

# HMAC keys set: they win (requests signed, straight to s3rver).
os.environ["GOOGLE_HMAC_ACCESS_ID"] = s3.key
os.environ["GOOGLE_HMAC_SECRET"] = s3.secret
issued0 = g.issued
url_h = f"gs://gsbucket/hmac/db?endpoint={s3.endpoint}"
d, db, con = fresh("hmac", url_h)
write(con, 10)
restore_and_compare(con, db, url_h, os.path.join(d, "out.db"),
                    "gs with HMAC keys (GOOGLE_APPLICATION_CREDENTIALS set "
                    "too)")
ok(g.issued == issued0, "no token fetched when HMAC keys are set")
con.close()
os.environ.pop("GOOGLE_HMAC_ACCESS_ID")
os.environ.pop("GOOGLE_HMAC_SECRET")


# --- bad keys and token endpoints ----------------------------------------
def key_case(name, breakit, want, fixit=None):
    url = f"gs://gsbucket/bad-{name}/db?endpoint={EP}"
    d, db, con = fresh("bad-" + name, url)
    write(con, 5)
    con.execute("SELECT litestream_sync(10000)")
    breakit(d)
    write(con, 10)
    msg = wait_error(con, want)
    ok(msg is not None and not msg.startswith("(other)"),
       f"{name}: status says {msg!r}")
    try:
        con.execute("SELECT litestream_restore(?, ?)",
                    (url, os.path.join(d, "r.db"))).fetchall()
        e = None
    except sqlite3.Error as ex:
        e = str(ex)
        seen.append(e)
    ok(e is not None and want in e, f"{name}: restore fails with {e!r}")
    write(con, 10)
    (fixit or (lambda: None))()
    os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = g.key_path
    g.refuse = None
    restore_and_compare(con, db, url, os.path.join(d, "out.db"),
                        f"{name} fixed: every transaction replicated")
    con.close()


def setcred(path):
    os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = path


def write_file(d, name, text):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


key_case("missing", lambda d: setcred(os.path.join(d, "nope.json")),
         "cannot read the Google service-account key")
key_case("unreadable", lambda d: setcred(d),  # a directory
         "cannot read the Google service-account key")
key_case("not-json", lambda d: setcred(write_file(d, "k.json", "{nope")),
         "is not JSON")
key_case("not-a-service-account",
         lambda d: setcred(write_file(d, "k.json", json.dumps(
             {"type": "authorized_user", "client_id": "x",
              "refresh_token": "y"}))),
         "is not a service-account key")
key_case("bad-private-key",
         lambda d: setcred(g.write_key(os.path.join(d, "k.json"),
                                       private_key="-----BEGIN PRIVATE KEY-"
                                                   "----\nAAAA\n-----END "
                                                   "PRIVATE KEY-----\n")),
         "is not an RSA private key")
key_case("refused", lambda d: setattr(g, "refuse", "account disabled"),
         "refused the service account")
key_case("no-role-on-the-bucket", lambda d: setattr(g, "deny", True),
         "the service-account key in GOOGLE_APPLICATION_CREDENTIALS",
         fixit=lambda: setattr(g, "deny", False))
dead = f"http://127.0.0.1:{free_port()}/token"
key_case("unreachable-token-endpoint",
         lambda d: setcred(g.write_key(os.path.join(d, "k.json"),
                                       token_uri=dead)),
         "cannot reach the token endpoint")

with open(g.priv) as f:
    pem_line = f.read().splitlines()[1]
leaks = [m for m in seen if pem_line[:20] in m or "ya29." in m or
         "assertion" in m]
ok(seen and not leaks, f"no private key, token or JWT in {len(seen)} "
                       f"messages ({leaks[:1]})")

g.stop()
s3.stop()
for x in dirs:
    cleanup(x)
done()
