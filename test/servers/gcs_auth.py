"""GcsAuthServer: a Google OAuth2 token endpoint and a Bearer-checking
pass-through to the test S3 server, for gs:// with a service-account key
(stdlib + the `openssl` command; no Google server runs offline).

  POST /token   the JWT-bearer grant: checks the assertion's RS256
                signature with the public half of the key it generated,
                and its claims (iss, scope, aud, iat, exp); answers
                {"access_token", "expires_in": ttl, "token_type": "Bearer"}
                or 400 {"error": "invalid_grant", "error_description"}.
  anything else must carry "Authorization: Bearer <a token it issued, not
                expired>" (else 401 with an XML error); it is forwarded to
                the S3 server without the Authorization header (s3rver
                serves anonymous requests).

.key_path is a service-account JSON key whose token_uri points here;
.endpoint is the URL for gs://BUCKET/PATH?endpoint=...  Counters:
.issued (tokens), .refused (grants refused), .forwarded, .unauthorized;
.claims holds the claims of the last grant.  Set .refuse to a text to
refuse every grant with it, .deny to answer 403 AccessDenied to requests
with a valid token (an account without a role on the bucket).
"""

import base64
import http.client
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse

from faultproxy import _live, _live_lock

SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class GcsAuthServer:
    EMAIL = "litestream-test@test-project.iam.gserviceaccount.com"

    def __init__(self, s3, ttl=3600):
        self.s3 = s3
        self.ttl = ttl
        self.refuse = None
        self.deny = False  # valid tokens get 403 AccessDenied (no role)
        self.issued = self.refused = self.forwarded = self.unauthorized = 0
        self.claims = None
        self.tokens = {}  # token -> expiry (time.time())
        self.lock = threading.Lock()
        self.httpd = None
        self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="litestream-gcsauth-")
        self.priv = os.path.join(self.dir, "key.pem")
        self.pub = os.path.join(self.dir, "pub.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", self.priv],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", self.priv, "-pubout",
                        "-out", self.pub], check=True, capture_output=True)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _send(self, status, body, headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def handle_any(self):
                body = self._body()
                if self.command == "POST" and self.path == "/token":
                    st, out = owner._grant(body)
                    return self._send(st, json.dumps(out).encode(),
                                      [("Content-Type", "application/json")])
                if owner.deny and owner._bearer_ok(
                        self.headers.get("Authorization")):
                    return self._send(403, (
                        b"<?xml version='1.0' encoding='UTF-8'?><Error>"
                        b"<Code>AccessDenied</Code><Message>Access denied."
                        b"</Message></Error>"),
                        [("Content-Type", "application/xml")])
                if not owner._bearer_ok(self.headers.get("Authorization")):
                    return self._send(401, (
                        b"<?xml version='1.0' encoding='UTF-8'?><Error>"
                        b"<Code>AuthenticationRequired</Code><Message>"
                        b"Bearer token missing, unknown or expired</Message>"
                        b"</Error>"), [("Content-Type", "application/xml")])
                st, hdrs, out = owner._forward(self.command, self.path,
                                               self.headers, body)
                self._send(st, out, hdrs)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.token_uri = self.endpoint + "/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.key_path = self.write_key()
        with _live_lock:
            _live.add(self)
        return self

    def write_key(self, path=None, **override):
        """Writes a service-account key file (fields overridable)."""
        with open(self.priv) as f:
            pem = f.read()
        key = {"type": "service_account", "project_id": "test-project",
               "private_key_id": "0123456789abcdef", "private_key": pem,
               "client_email": self.EMAIL, "client_id": "1",
               "token_uri": self.token_uri}
        key.update(override)
        path = path or os.path.join(self.dir, "sa.json")
        with open(path, "w") as f:
            json.dump({k: v for k, v in key.items() if v is not None}, f)
        return path

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        with _live_lock:
            _live.discard(self)

    running = property(lambda self: self.httpd is not None)

    # -- the token endpoint -------------------------------------------------

    def _verify(self, jwt):
        """The claims of a valid assertion, else raises ValueError."""
        parts = jwt.split(".")
        if len(parts) != 3:
            raise ValueError("not a JWT")
        hdr = json.loads(_b64url(parts[0]))
        if hdr.get("alg") != "RS256" or hdr.get("typ") != "JWT":
            raise ValueError("header %r" % hdr)
        if hdr.get("kid") != "0123456789abcdef":
            raise ValueError("kid %r" % hdr.get("kid"))
        sig = os.path.join(self.dir, "sig-%d" % threading.get_ident())
        with open(sig, "wb") as f:
            f.write(_b64url(parts[2]))
        r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", self.pub,
                            "-signature", sig],
                           input=(parts[0] + "." + parts[1]).encode(),
                           capture_output=True)
        os.unlink(sig)
        if r.returncode != 0 or b"Verified OK" not in r.stdout:
            raise ValueError("bad RS256 signature")
        c = json.loads(_b64url(parts[1]))
        now = time.time()
        if c.get("iss") != self.EMAIL:
            raise ValueError("iss %r" % c.get("iss"))
        if c.get("aud") != self.token_uri:
            raise ValueError("aud %r" % c.get("aud"))
        if SCOPE not in str(c.get("scope", "")).split():
            raise ValueError("scope %r" % c.get("scope"))
        iat, exp = c.get("iat"), c.get("exp")
        if not (isinstance(iat, int) and isinstance(exp, int) and
                iat <= now + 60 and exp > now and 0 < exp - iat <= 3600):
            raise ValueError("iat/exp %r/%r" % (iat, exp))
        return c

    def _grant(self, body):
        q = dict(urllib.parse.parse_qsl(body.decode()))
        try:
            if q.get("grant_type") != GRANT:
                raise ValueError("grant_type %r" % q.get("grant_type"))
            claims = self._verify(q.get("assertion", ""))
            if self.refuse:
                raise ValueError(self.refuse)
        except (ValueError, KeyError, json.JSONDecodeError) as e:
            with self.lock:
                self.refused += 1
            return 400, {"error": "invalid_grant",
                         "error_description": str(e)}
        with self.lock:
            self.issued += 1
            tok = "ya29.test-%d-%s" % (self.issued, os.urandom(8).hex())
            self.tokens[tok] = time.time() + self.ttl
            self.claims = claims
        return 200, {"access_token": tok, "expires_in": self.ttl,
                     "token_type": "Bearer"}

    # -- the pass-through ---------------------------------------------------

    def _bearer_ok(self, auth):
        if not auth or not auth.startswith("Bearer "):
            ok = False
        else:
            with self.lock:
                ok = self.tokens.get(auth[7:], 0) > time.time()
        with self.lock:
            if ok:
                self.forwarded += 1
            else:
                self.unauthorized += 1
        return ok

    def _forward(self, method, path, headers, body):
        c = http.client.HTTPConnection(self.s3.host, self.s3.port, timeout=30)
        h = {k: v for k, v in headers.items()
             if k.lower() not in ("authorization", "host", "connection",
                                  "content-length")}
        c.request(method, path, body=body if body else None, headers=h)
        r = c.getresponse()
        out = r.read()
        hdrs = [(k, v) for k, v in r.getheaders()
                if k.lower() not in ("transfer-encoding", "connection",
                                     "content-length")]
        c.close()
        return r.status, hdrs, out
