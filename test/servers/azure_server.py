"""AzureServer: Azurite's Blob service (npm azurite 3.35.0, pinned in
package-lock.json) on 127.0.0.1:<free port>, with authentication enforced
(Shared Key and SAS are checked, a bad signature gets 403), plus a small
stdlib REST client (Shared Key signer, account SAS maker) for the tests to
look at and manipulate what the extension stored.

The account is Azurite's well-known dev account (devstoreaccount1 and its
published key); the endpoint is path-style:
http://127.0.0.1:PORT/devstoreaccount1.  Data lives in memory
(--inMemoryPersistence): nothing is left on disk.  stop() terminates node
(SIGKILL after 3 s); the atexit hook of faultproxy.py stops it at exit, and
azurite-cli.js exits on its own when the Python process that started it
dies (even by SIGKILL).
"""

import base64
import datetime
import email.utils
import hashlib
import hmac
import os
import subprocess
import tempfile
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

from faultproxy import _live, _live_lock

HERE = os.path.dirname(os.path.abspath(__file__))
AZURITE = os.path.join(HERE, "node_modules", "azurite", "dist", "src",
                       "blob", "main.js")
VERSION = "2021-08-06"
STD = ["content-encoding", "content-language", "content-length",
       "content-md5", "content-type", "date", "if-modified-since",
       "if-match", "if-none-match", "if-unmodified-since", "range"]


class AzureServer:
    ACCOUNT = "devstoreaccount1"
    KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
           "K1SZFPTOtr/KBHBeksoGMGw==")

    def __init__(self, containers=("testcontainer",), ready_timeout=30.0,
                 node=None):
        from servers import NODE, free_port
        self._free_port = free_port
        self.node = node or NODE
        self.containers = list(containers)
        self.container = self.containers[0] if self.containers else None
        self.account, self.key = self.ACCOUNT, self.KEY
        self.host = "127.0.0.1"
        self.port = None
        self.endpoint = None
        self.proc = None
        self.ready_timeout = ready_timeout
        self._tmp = None
        self._log = None
        self.log_path = None

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        if not os.path.exists(AZURITE):
            raise RuntimeError("%s is missing: run scripts/deps.sh test"
                               % AZURITE)
        self._tmp = tempfile.mkdtemp(prefix="litestream-azurite-")
        self.log_path = os.path.join(self._tmp, "azurite.log")
        with _live_lock:
            _live.add(self)
        try:
            for attempt in range(3):
                if self._spawn(attempt == 2):
                    break
            for c in self.containers:
                self.create_container(c)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, last):
        self.port = self._free_port()
        self.endpoint = "http://%s:%d/%s" % (self.host, self.port,
                                             self.account)
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        env["AZURITE_PARENT_PID"] = str(os.getpid())
        env["AZURITE_ORPHAN_RMDIR"] = self._tmp
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.node, os.path.join(HERE, "azurite-cli.js"), "--blobHost",
             self.host, "--blobPort",
             str(self.port), "--inMemoryPersistence", "--silent",
             "--disableTelemetry", "--skipApiVersionCheck"],
            cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                text = self.log_text()
                if "EADDRINUSE" in text and not last:
                    self.proc = None
                    return False
                raise RuntimeError("azurite exited with code %d: %s"
                                   % (rc, text))
            try:
                self.request("GET", "", query={"comp": "list"})
                return True
            except (urllib.error.HTTPError, OSError):
                time.sleep(0.05)
        raise RuntimeError("azurite was not ready on %s: %s"
                           % (self.endpoint, self.log_text()))

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log:
            self._log.close()
            self._log = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        with _live_lock:
            _live.discard(self)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    # -- REST client (Shared Key) ------------------------------------------

    def sign(self, method, url, headers):
        """Adds x-ms-date, x-ms-version and Authorization to headers."""
        u = urllib.parse.urlsplit(url)
        h = {k.lower(): str(v) for k, v in headers.items()}
        h["x-ms-date"] = email.utils.formatdate(usegmt=True)
        h["x-ms-version"] = VERSION
        std = [h.get(x, "") for x in STD]
        if std[2] == "0":
            std[2] = ""
        canon = "".join(f"{k}:{h[k]}\n" for k in sorted(h)
                        if k.startswith("x-ms-"))
        res = f"/{self.account}{u.path}"  # the path as sent (encoded)
        q = {}
        for k, v in urllib.parse.parse_qsl(u.query, keep_blank_values=True):
            q.setdefault(k.lower(), []).append(v)
        for k in sorted(q):
            res += f"\n{k}:{','.join(sorted(q[k]))}"
        sts = method + "\n" + "\n".join(std) + "\n" + canon + res
        mac = hmac.new(base64.b64decode(self.key), sts.encode(),
                       hashlib.sha256).digest()
        h["authorization"] = "SharedKey %s:%s" % (
            self.account, base64.b64encode(mac).decode())
        return h

    def request(self, method, path, query=None, body=None, headers=None):
        """A signed request to <endpoint>/<path>; returns (status, headers,
        body); raises urllib.error.HTTPError for >= 400."""
        url = self.endpoint + "/" + urllib.parse.quote(path)
        if query:
            url += "?" + urllib.parse.urlencode(query)
        h = dict(headers or {})
        if body is not None:
            h["Content-Length"] = str(len(body))
            h.setdefault("Content-Type", "application/octet-stream")
        elif method == "PUT":
            h["Content-Length"] = "0"
        req = urllib.request.Request(url, data=body, method=method,
                                     headers=self.sign(method, url, h))
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()

    def create_container(self, name):
        try:
            self.request("PUT", name, {"restype": "container"})
        except urllib.error.HTTPError as e:
            if e.code != 409:
                raise

    def delete_container(self, name):
        self.request("DELETE", name, {"restype": "container"})

    def put(self, name, data, meta=None, container=None):
        h = {"x-ms-blob-type": "BlockBlob"}
        for k, v in (meta or {}).items():
            h["x-ms-meta-" + k] = v
        self.request("PUT", f"{container or self.container}/{name}",
                     body=data, headers=h)

    def get(self, name, container=None):
        return self.request("GET", f"{container or self.container}/{name}")[2]

    def head(self, name, container=None):
        return self.request("HEAD", f"{container or self.container}/{name}")[1]

    def delete(self, name, container=None):
        self.request("DELETE", f"{container or self.container}/{name}")

    def blobs(self, prefix="", container=None):
        """[(name, size, metadata dict)] of every blob under prefix."""
        out, marker = [], ""
        while True:
            q = {"restype": "container", "comp": "list", "prefix": prefix,
                 "include": "metadata"}
            if marker:
                q["marker"] = marker
            root = ET.fromstring(self.request(
                "GET", container or self.container, q)[2])
            for b in root.iter("Blob"):
                meta = {m.tag: m.text for m in (b.find("Metadata") or [])}
                out.append((b.findtext("Name"),
                            int(b.findtext("Properties/Content-Length")),
                            meta))
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return out

    def sas(self, permissions="rwdlac", minutes=60):
        """An account SAS token (no leading '?'), valid for `minutes`
        (negative: already expired)."""
        se = (datetime.datetime.now(datetime.timezone.utc) +
              datetime.timedelta(minutes=minutes)).strftime(
                  "%Y-%m-%dT%H:%M:%SZ")
        sv, ss, srt, spr = VERSION, "b", "sco", "https,http"
        sts = "\n".join([self.account, permissions, ss, srt, "", se, "", spr,
                         sv, "", ""])
        sig = base64.b64encode(hmac.new(base64.b64decode(self.key),
                                        sts.encode(),
                                        hashlib.sha256).digest()).decode()
        return urllib.parse.urlencode({"sv": sv, "ss": ss, "srt": srt,
                                       "sp": permissions, "se": se,
                                       "spr": spr, "sig": sig})
