"""SFTP and WebDAV test servers on loopback (stdlib only), re-exported by
servers.py.

SftpServer    OpenSSH's sshd (Debian openssh-server, /usr/sbin/sshd) on
              127.0.0.1:<free port> in the foreground (-D -e), with its own
              config, host key, pid file and authorized_keys in a temp dir;
              never the system's sshd or its files.  SFTP only
              (ForceCommand internal-sftp).  Users: root by key (.key_path),
              and, when asked (password_user=True), the system user
              litestream-sftp by key or by a password made for this run
              (created with useradd if missing, its password locked again
              at stop).  Needs root.
WebdavServer  rclone serve webdav (Debian rclone) on 127.0.0.1:<free port>
              with Basic auth (.user / .password made for this run),
              serving .data_dir; as_user runs it as another user (setpriv),
              so the file permissions of .data_dir apply.

Both serve a plain directory (.data_dir) in which the backends write the
file layout "<path>/ltx/<level>/<min>-<max>.ltx": tests read and change the
replica there directly.  Each server runs with TZ=UTC, dies with the
process that started it (setpriv --pdeathsig), and stop() removes its temp
dir unless keep.  restart() stops and starts it again on the same port
with the same keys and data.

Threads: one test thread per server.
"""

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

from faultproxy import _live, _live_lock

SSHD = "/usr/sbin/sshd"
SFTP_USER = "litestream-sftp"


def _descendants(pid):
    """The pids of every process below pid (from /proc)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def _free_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    """The environment of a tool: without the sanitizer runtime that the
    sanitizer build preloads into the test's interpreter."""
    e = dict(os.environ)
    e.pop("LD_PRELOAD", None)
    return e


def _run(*args, input=None):
    return subprocess.run(list(args), check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, input=input,
                          env=_env()).stdout


def _keygen(path):
    if os.path.exists(path):
        os.remove(path)
        os.remove(path + ".pub")
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path)


def fingerprint(pub_path):
    """The "SHA256:..." fingerprint of a public key file (ssh-keygen -l)."""
    return _run("ssh-keygen", "-lf", pub_path, "-E", "sha256").split()[1]


class _Server:
    """start/stop/restart of one foreground process that logs to a file."""

    name = "server"

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def log_text(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def _spawn(self, args, ready, env=None):
        e = _env()
        e["TZ"] = "UTC"
        e.update(env or {})
        log = open(self.log_path, "ab")
        # setpriv --pdeathsig: the server gets SIGTERM when the test
        # process dies (no preexec_fn: a fork of a threaded process must
        # not run Python code before exec).
        if args[0] != "setpriv":
            args = ["setpriv"] + args
        args = args[:1] + ["--pdeathsig", "TERM"] + args[1:]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     env=e)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with code %d; log %s:\n%s"
                                   % (self.name, self.proc.returncode,
                                      self.log_path, self.log_text()))
            if ready():
                return
            time.sleep(0.02)
        raise RuntimeError("%s not ready after 15 s; log:\n%s"
                           % (self.name, self.log_text()))

    def kill(self):
        """Stops the server at once (SIGKILL), with every process it forked
        (sshd serves each connection from a child), keeping keys and data."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for pid in _descendants(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def _halt(self):
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self):
        """Stops the server and starts it again on the same port."""
        self._halt()
        self._launch()
        return self

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Stops the server; removes its temp dir unless keep.  Idempotent."""
        self._halt()
        self._cleanup()
        if self._tmp and not self.keep:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        with _live_lock:
            _live.discard(self)

    def _cleanup(self):
        pass

    def start(self):
        if self.proc is not None:
            raise RuntimeError("%s already started" % self.name)
        self._tmp = tempfile.mkdtemp(prefix="litestream-%s-" % self.name)
        os.chmod(self._tmp, 0o755)
        self.data_dir = os.path.join(self._tmp, "data")
        os.makedirs(self.data_dir)
        self.log_path = os.path.join(self._tmp, self.name + ".log")
        with _live_lock:
            _live.add(self)
        try:
            self._prepare()
            for attempt in range(3):  # the free port may be taken meanwhile
                try:
                    self._launch()
                    break
                except RuntimeError as e:
                    if "in use" not in str(e) or attempt == 2:
                        raise
                    self.port = _free_port()
        except BaseException:
            self.stop()
            raise
        return self


class SftpServer(_Server):
    """sshd on 127.0.0.1:<port> serving SFTP only (see the module doc).

    .key_path      the client's private key (root and litestream-sftp)
    .host_key_path the server's host key (.pub next to it)
    .fingerprint   its "SHA256:..." fingerprint
    .password      litestream-sftp's password (password_user=True)
    """

    name = "sshd"

    def __init__(self, password_user=False, keep=None):
        self.password_user = password_user
        self.keep = (bool(os.environ.get("LITESTREAM_KEEP_SERVERS"))
                     if keep is None else keep)
        self.host, self.port, self.proc = "127.0.0.1", None, None
        self._tmp = self.data_dir = self.log_path = None
        self.password = None
        self._lock = None

    def __repr__(self):
        return "SftpServer(127.0.0.1:%s, data_dir=%s)" % (self.port,
                                                          self.data_dir)

    def _prepare(self):
        if os.geteuid() != 0:
            raise RuntimeError("SftpServer needs root (sshd)")
        if not os.access(SSHD, os.X_OK):
            raise RuntimeError("%s is missing: run scripts/deps.sh test"
                               % SSHD)
        os.makedirs("/run/sshd", exist_ok=True)
        self.host_key_path = os.path.join(self._tmp, "host_key")
        self.key_path = os.path.join(self._tmp, "client_key")
        _keygen(self.host_key_path)
        _keygen(self.key_path)
        self.fingerprint = fingerprint(self.host_key_path + ".pub")
        auth = os.path.join(self._tmp, "authorized_keys")
        shutil.copy(self.key_path + ".pub", auth)
        os.chmod(auth, 0o644)
        os.chmod(self.key_path, 0o600)
        if self.password_user:
            self._make_user()
        self.port = _free_port()

    def _make_user(self):
        """litestream-sftp with a password made for this run.  A lock held
        until stop() keeps two tests from changing it under each other."""
        import fcntl
        self._lock = open("/tmp/litestream-sftp-user.lock", "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            _run("id", SFTP_USER)
        except subprocess.CalledProcessError:
            _run("useradd", "--system", "--no-create-home", "--home-dir",
                 "/nonexistent", "--shell", "/usr/sbin/nologin", SFTP_USER)
        self.password = secrets.token_hex(12)
        _run("chpasswd", input="%s:%s\n" % (SFTP_USER, self.password))

    def _cleanup(self):
        if self.password is not None:
            subprocess.run(["usermod", "--lock", SFTP_USER], env=_env(),
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            self.password = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def rekey(self):
        """A new host key (the server "changed"), then a restart."""
        _keygen(self.host_key_path)
        self.fingerprint = fingerprint(self.host_key_path + ".pub")
        self.kill()  # open connections too: they would keep the old key
        self._launch()
        return self

    def known_hosts_line(self):
        """The known_hosts line of this server's host key."""
        with open(self.host_key_path + ".pub") as f:
            typ, blob = f.read().split()[:2]
        return "[127.0.0.1]:%d %s %s\n" % (self.port, typ, blob)

    def _launch(self):
        t = self._tmp
        conf = os.path.join(t, "sshd_config")
        with open(conf, "w") as f:
            f.write("\n".join([
                "Port %d" % self.port, "ListenAddress 127.0.0.1",
                "HostKey " + self.host_key_path,
                "PidFile " + os.path.join(t, "sshd.pid"),
                "AuthorizedKeysFile " + os.path.join(t, "authorized_keys"),
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication yes",
                "KbdInteractiveAuthentication no", "UsePAM no",
                "StrictModes no", "MaxStartups 100",
                "Subsystem sftp internal-sftp",
                "ForceCommand internal-sftp", ""]))
        start = len(self.log_text())
        self._spawn([SSHD, "-D", "-e", "-f", conf],
                    lambda: "Server listening" in self.log_text()[start:])

    def url(self, path, user="root", **params):
        """sftp:// URL of a directory under data_dir, host key pinned."""
        import urllib.parse
        q = {"host_key": self.fingerprint}
        q.update(params)
        qs = urllib.parse.urlencode({k: v for k, v in q.items()
                                     if v is not None})
        return "sftp://%s@127.0.0.1:%d%s?%s" % (
            user, self.port, os.path.join(self.data_dir, path), qs)


class WebdavServer(_Server):
    """rclone serve webdav on 127.0.0.1:<port> (see the module doc)."""

    name = "rclone"

    def __init__(self, as_user=None, as_group="nogroup", tls=False,
                 keep=None):
        self.as_user, self.as_group = as_user, as_group
        self.tls = tls
        self.keep = (bool(os.environ.get("LITESTREAM_KEEP_SERVERS"))
                     if keep is None else keep)
        self.host, self.port, self.proc = "127.0.0.1", None, None
        self._tmp = self.data_dir = self.log_path = None
        self.user, self.password = "litestream", secrets.token_hex(12)

    def __repr__(self):
        return "WebdavServer(127.0.0.1:%s, data_dir=%s)" % (self.port,
                                                            self.data_dir)

    def _prepare(self):
        if shutil.which("rclone") is None:
            raise RuntimeError("rclone is missing: run scripts/deps.sh test")
        self.port = _free_port()
        if self.tls:  # a self-signed certificate for 127.0.0.1
            self.cert = os.path.join(self._tmp, "cert.pem")
            self.key = os.path.join(self._tmp, "key.pem")
            _run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                 "-subj", "/CN=127.0.0.1", "-addext",
                 "subjectAltName=IP:127.0.0.1", "-keyout", self.key,
                 "-out", self.cert)
            os.chmod(self.key, 0o644)

    def _launch(self):
        import socket
        args = ["rclone", "serve", "webdav", self.data_dir, "--addr",
                "127.0.0.1:%d" % self.port, "--user", self.user, "--pass",
                self.password, "--config", "/dev/null",
                "--dir-cache-time", "0s"]  # see changes made on disk
        if self.tls:
            args += ["--cert", self.cert, "--key", self.key]
        if self.as_user:
            args = ["setpriv", "--reuid=" + self.as_user,
                    "--regid=" + self.as_group, "--clear-groups"] + args

        def ready():
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5):
                    return True
            except OSError:
                return False
        self._spawn(args, ready)

    def env(self):
        """The credentials as the extension reads them from the
        environment (LITESTREAM_WEBDAV_USERNAME, _PASSWORD)."""
        return {"LITESTREAM_WEBDAV_USERNAME": self.user,
                "LITESTREAM_WEBDAV_PASSWORD": self.password}

    def url(self, path, scheme=None, auth=False):
        """webdav:// URL of a directory under data_dir (credentials in it
        with auth=True, else from env())."""
        cred = "%s:%s@" % (self.user, self.password) if auth else ""
        scheme = scheme or ("webdavs" if self.tls else "webdav")
        return "%s://%s127.0.0.1:%d/%s%s" % (
            scheme, cred, self.port, path,
            "?skip_verify=true" if scheme == "webdavs" else "")
