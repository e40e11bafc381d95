"""Test servers on loopback for the integration tests (stdlib only).

Import everything from here: S3Server lives in this file, FaultProxy in
faultproxy.py (re-exported).

S3Server    runs @20minutes/s3rver 4.0.4 (checks SigV4 signatures) from
            test/servers/node_modules, with preloads: s3keys.js (more
            access keys), s3rver-walkfix.js (correct ListObjects) and
            s3rver-atomicput.js (a PUT cut off mid-body stores nothing),
            s3rver-conditional.js (If-None-Match / If-Match on PUT, as
            real S3: s3rver alone ignores them).
FaultProxy  an HTTP/1.1 reverse proxy that injects faults (error statuses,
            connection resets, stalls, truncated bodies, delays) by rules
            the test adds and clears while it runs, and logs every request.

Test scripts put test/servers on sys.path (meson sets PYTHONPATH).  Nothing
here prints: errors are exceptions, request records are in FaultProxy.log.

No node process outlives its test: stop() terminates it (SIGKILL after 3 s),
an atexit hook stops every server still running, and s3rver-cli.js exits on
its own when the Python process that started it dies (even by SIGKILL),
removing the server's temp dir.

Threads: S3Server is used from one test thread; FaultProxy is thread-safe
(see faultproxy.py).
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

from faultproxy import FAULTS, FaultProxy, Request, Rule, _live, _live_lock
from filehosts import SftpServer, WebdavServer  # noqa: F401 (re-exported)

__all__ = ["free_port", "S3Server", "FaultProxy", "Rule", "Request",
           "FAULTS", "HERE", "S3RVER_PKG", "NODE", "AzureServer",
           "GcsAuthServer", "SftpServer", "WebdavServer",
           "NatsServer"]

HERE = os.path.dirname(os.path.abspath(__file__))
S3RVER_PKG = os.path.join(HERE, "node_modules", "@20minutes", "s3rver")


def _node():
    """The node s3rver runs on: $LITESTREAM_NODE (meson sets it to the node
    it found), else the one scripts/deps.sh test installs in test/tools/node
    (Node 20; Debian 12's own is 18), else node on PATH."""
    if os.environ.get("LITESTREAM_NODE"):
        return os.environ["LITESTREAM_NODE"]
    for arch in ("x64", "arm64"):
        local = os.path.join(os.path.dirname(HERE), "tools", "node",
                             "node_modules", "node-linux-" + arch, "bin",
                             "node")
        if os.access(local, os.X_OK):
            return local
    return "node"


NODE = _node()

# One registry of running servers and proxies, stopped at exit (its home
# is faultproxy.py, which needs no server).


def free_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# S3Server


class S3Server:
    """@20minutes/s3rver on 127.0.0.1:<free port>, data under a temp dir.

    Objects live at <data_dir>/<bucket>/<key>._S3rver_object (next to
    ._S3rver_metadata.json and ._S3rver_object.md5); multipart uploads in
    progress at <data_dir>/<bucket>/._S3rver_uploads/<uploadId>/.
    Credentials: .key/.secret (S3RVER/S3RVER, built in) and .key2/.secret2
    (the first of extra_keys); .keys maps every key id to its secret.
    The temp dir (data and s3rver.log) is removed by stop() unless keep
    (default: $LITESTREAM_KEEP_SERVERS is set).
    """

    DEFAULT_KEY = "S3RVER"
    DEFAULT_SECRET = "S3RVER"

    def __init__(self, buckets=("testbucket",),
                 extra_keys=(("AKIATESTKEY", "testsecret"),), *,
                 data_dir=None, verbose=False, walkfix=True, atomic_put=True,
                 conditional=True, keep=None,
                 ready_timeout=15.0, node=None):
        self.buckets = list(buckets)
        self.bucket = self.buckets[0] if self.buckets else None
        self.key, self.secret = self.DEFAULT_KEY, self.DEFAULT_SECRET
        self.extra_keys = [tuple(kv) for kv in extra_keys]
        self.key2, self.secret2 = (self.extra_keys[0] if self.extra_keys
                                   else (None, None))
        self.keys = dict([(self.key, self.secret)] + self.extra_keys)
        self.host = "127.0.0.1"
        self.port = None
        self.endpoint = None
        self.pid = None
        self.proc = None
        self._data_dir_arg = data_dir
        self.data_dir = data_dir
        self.log_path = None
        self.verbose = verbose
        self.walkfix = walkfix
        self.atomic_put = atomic_put
        self.conditional = conditional
        self.keep = (bool(os.environ.get("LITESTREAM_KEEP_SERVERS"))
                     if keep is None else keep)
        self.ready_timeout = ready_timeout
        self.node = node or NODE
        self._tmp = None
        self._log = None

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return "S3Server(%s, data_dir=%s)" % (self.endpoint, self.data_dir)

    def start(self):
        """Start node, wait until it serves (ready_timeout), return self."""
        if self.proc is not None:
            raise RuntimeError("S3Server already started")
        cli = os.path.join(HERE, "s3rver-cli.js")
        if not os.path.exists(os.path.join(S3RVER_PKG, "package.json")):
            raise RuntimeError("%s is missing: run scripts/deps.sh test"
                               % S3RVER_PKG)
        self._tmp = tempfile.mkdtemp(prefix="litestream-s3rver-")
        self.data_dir = self._data_dir_arg or os.path.join(self._tmp, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_path = os.path.join(self._tmp, "s3rver.log")
        with _live_lock:
            _live.add(self)
        try:
            for attempt in range(3):
                if self._spawn(cli, attempt == 2):
                    return self
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, cli, last):
        """One start attempt; False when the port was taken meanwhile."""
        self.port = free_port()
        self.endpoint = "http://%s:%d" % (self.host, self.port)
        args = [self.node, "-r", os.path.join(HERE, "s3keys.js")]
        if self.walkfix:
            args += ["-r", os.path.join(HERE, "s3rver-walkfix.js")]
        if self.atomic_put:
            args += ["-r", os.path.join(HERE, "s3rver-atomicput.js")]
        if self.conditional:
            args += ["-r", os.path.join(HERE, "s3rver-conditional.js")]
        args += [cli, "-d", self.data_dir, "-a", self.host,
                 "-p", str(self.port)]
        if not self.verbose:
            args.append("--silent")
        for b in self.buckets:
            args += ["--configure-bucket", b]
        env = dict(os.environ)
        # Under the sanitizer build the test's interpreter runs with the ASan
        # runtime preloaded; the server must not inherit it.
        env.pop("LD_PRELOAD", None)
        env["NODE_OPTIONS"] = (env.get("NODE_OPTIONS", "") +
                               " --openssl-legacy-provider").strip()
        env["S3RVER_EXTRA_KEYS"] = ",".join("%s:%s" % kv
                                            for kv in self.extra_keys)
        env["S3RVER_PARENT_PID"] = str(os.getpid())
        if not self.keep:
            env["S3RVER_ORPHAN_RMDIR"] = self._tmp
        if self._log:
            self._log.close()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=HERE, env=env,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                text = self.log_text()
                if "EADDRINUSE" in text and not last:
                    self.proc = None
                    return False
                raise RuntimeError("s3rver exited with code %d before it was "
                                   "ready; log %s:\n%s"
                                   % (rc, self.log_path, text))
            if ("S3rver listening on" in self.log_text()
                    and _port_open(self.host, self.port)):
                return True
            time.sleep(0.05)
        raise RuntimeError("s3rver was not ready on %s after %.0f s; "
                           "log %s:\n%s" % (self.endpoint, self.ready_timeout,
                                            self.log_path, self.log_text()))

    def stop(self):
        """SIGTERM node, SIGKILL after 3 s, reap it; remove the temp dir
        unless keep.  Idempotent."""
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
        if self._tmp and not self.keep:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        with _live_lock:
            _live.discard(self)

    @property
    def running(self):
        """True while the node process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        """The server's stdout+stderr so far ("" if none)."""
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def object_path(self, key, bucket=None):
        """Path of the file that holds an object's bytes."""
        return os.path.join(self.data_dir, bucket or self.bucket,
                            key + "._S3rver_object")

    def stored_keys(self, bucket=None):
        """Sorted keys that have an object file on disk (complete or not)."""
        root = os.path.join(self.data_dir, bucket or self.bucket)
        keys = []
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if x != "._S3rver_uploads"]
            for f in files:
                if f.endswith("._S3rver_object"):
                    rel = os.path.relpath(os.path.join(d, f), root)
                    keys.append(rel[:-len("._S3rver_object")])
        return sorted(keys)

    def pending_uploads(self, bucket=None):
        """Ids of multipart uploads started and never completed (s3rver
        cannot abort them: DELETE ?uploadId= answers 405)."""
        d = os.path.join(self.data_dir, bucket or self.bucket,
                         "._S3rver_uploads")
        try:
            return sorted(os.listdir(d))
        except OSError:
            return []


from azure_server import AzureServer  # noqa: E402 (needs NODE, free_port)
from gcs_auth import GcsAuthServer  # noqa: E402


# --------------------------------------------------------------------------
# NatsServer


class NatsServer:
    """Debian's nats-server with JetStream on 127.0.0.1:<free port>, its
    store and config in a temp dir.

    users: list of {"user", "password"[, "permissions"]} (nats-server's
    authorization users; permissions as in its config), or token: one
    token, or neither (no authentication); jetstream=False: a server
    without JetStream.  The server dies with the
    Python process that started it (PR_SET_PDEATHSIG).  kill() stops it
    with SIGKILL (a crash), term() with SIGTERM (a clean shutdown), and
    restart() starts it again on the same port and store.  stop() also removes the temp
    dir unless keep (default: $LITESTREAM_KEEP_SERVERS is set).
    """

    BIN = "/usr/sbin/nats-server"

    def __init__(self, users=None, token=None, jetstream=True, keep=None,
                 ready_timeout=15.0):
        self.users = users
        self.token = token
        self.jetstream = jetstream
        self.host = "127.0.0.1"
        self.port = self.monitor_port = None
        self.proc = None
        self.keep = (bool(os.environ.get("LITESTREAM_KEEP_SERVERS"))
                     if keep is None else keep)
        self.ready_timeout = ready_timeout
        self._tmp = None
        self._log = None

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def address(self):
        """host:port, as a URL's authority."""
        return "%s:%d" % (self.host, self.port)

    def url(self, path, user=None, password=None):
        """nats://[user:password@]host:port/path (path = bucket[/prefix])."""
        auth = "%s:%s@" % (user, password) if user else ""
        return "nats://%s%s/%s" % (auth, self.address, path)

    def _config(self):
        import json
        cfg = {"listen": self.address,
               "http": "%s:%d" % (self.host, self.monitor_port)}
        if self.jetstream:
            cfg["jetstream"] = {"store_dir": os.path.join(self._tmp, "store"),
                                "max_mem": 64 << 20, "max_file": 1 << 30}
        if self.users:
            cfg["authorization"] = {"users": self.users}
        elif self.token:
            cfg["authorization"] = {"token": self.token}
        path = os.path.join(self._tmp, "nats.conf")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    def start(self):
        """Start nats-server, wait until JetStream is up, return self."""
        if self.proc is not None:
            raise RuntimeError("NatsServer already started")
        if not os.access(self.BIN, os.X_OK):
            raise RuntimeError("%s is missing: run scripts/deps.sh test"
                               % self.BIN)
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="litestream-nats-")
            self.port, self.monitor_port = free_port(), free_port()
        with _live_lock:
            _live.add(self)
        try:
            self._spawn()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self):
        import ctypes
        import signal
        import urllib.request
        libc = ctypes.CDLL(None, use_errno=True)

        def die_with_parent():
            libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG

        conf = self._config()
        self.log_path = os.path.join(self._tmp, "nats.log")
        self._log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        self.proc = subprocess.Popen([self.BIN, "-c", conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=die_with_parent)
        url = ("http://%s:%d/healthz%s"
               % (self.host, self.monitor_port,
                  "?js-enabled-only=true" if self.jetstream else ""))
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nats-server exited with code %d; log %s:"
                                   "\n%s" % (self.proc.returncode,
                                             self.log_path, self.log_text()))
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if b'"ok"' in r.read():
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("nats-server was not ready on %s after %.0f s; "
                           "log %s:\n%s" % (self.address, self.ready_timeout,
                                            self.log_path, self.log_text()))

    def _reap(self, sig):
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log:
            self._log.close()
            self._log = None

    def kill(self):
        """SIGKILL the server; its store stays for restart()."""
        import signal
        self._reap(signal.SIGKILL)

    def term(self):
        """SIGTERM the server (a clean shutdown); its store stays for
        restart()."""
        import signal
        self._reap(signal.SIGTERM)

    def restart(self):
        """Start the server again on the same port and store."""
        self._spawn()
        return self

    def stop(self):
        """Stop the server (SIGTERM) and remove the temp dir unless keep.
        Idempotent."""
        import signal
        self._reap(signal.SIGTERM)
        if self._tmp and not self.keep:
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
        except (OSError, AttributeError, TypeError):
            return ""
