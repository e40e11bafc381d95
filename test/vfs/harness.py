"""Shared helpers for the Python-driven suites (TAP output, the real .so
loaded into Debian's /usr/bin/python3, scratch directories)."""
import hashlib
import os
import shutil
import sqlite3
import sys
import tempfile
import time

SO = os.environ["LITESTREAM_SO"][:-3]
_n = 0
_failed = 0


def ok(cond, what):
    global _n, _failed
    _n += 1
    if not cond:
        _failed += 1
    print(("ok" if cond else "not ok") + f" {_n} - {what}", flush=True)
    return cond


def diag(msg):
    for line in str(msg).splitlines():
        print("# " + line, flush=True)


def done():
    print(f"1..{_n}", flush=True)
    sys.exit(1 if _failed else 0)


def selected(name):
    """True if the case `name` is to run: every case, or with
    LITESTREAM_TEST_CASE=a,b only those (docs/architecture.md, "Tests")."""
    only = os.environ.get("LITESTREAM_TEST_CASE")
    return not only or name in only.split(",")


def run_cases(*cases, args=()):
    """Runs the cases (functions, called with args) that selected() allows;
    a case that raises is a failure, and the next one still runs.  A name
    in LITESTREAM_TEST_CASE that matches no case is a failure too."""
    names = [c.__name__ for c in cases]
    for want in filter(None, os.environ.get("LITESTREAM_TEST_CASE",
                                            "").split(",")):
        ok(want in names, f"LITESTREAM_TEST_CASE names a case: {want} "
                          f"(cases: {', '.join(names)})")
    for c in cases:
        if not selected(c.__name__):
            continue
        try:
            c(*args)
        except Exception as e:  # a crash of the case is a failure
            ok(False, f"{c.__name__} raised {type(e).__name__}: {e}")


def load():
    """Loads the extension once per process (it stays loaded)."""
    c = sqlite3.connect(":memory:")
    c.enable_load_extension(True)
    c.load_extension(SO)
    return c


BACKEND = os.environ.get("LITESTREAM_TEST_BACKEND", "file")
_s3 = None


def s3_server():
    """The S3 server of this test process (started on first use, stopped at
    exit), with its credentials in the environment for the extension."""
    global _s3
    if _s3 is None:
        sys.path.insert(0, os.path.join(os.environ["LITESTREAM_SRCDIR"],
                                        "test", "servers"))
        from servers import S3Server
        _s3 = S3Server().start()
        os.environ["AWS_ACCESS_KEY_ID"] = _s3.key
        os.environ["AWS_SECRET_ACCESS_KEY"] = _s3.secret
    return _s3


_az = None


def az_server():
    """The Azurite server of this test process (LITESTREAM_TEST_BACKEND=abs;
    started on first use, stopped at exit), its key in the environment."""
    global _az
    if _az is None:
        sys.path.insert(0, os.path.join(os.environ["LITESTREAM_SRCDIR"],
                                        "test", "servers"))
        from servers import AzureServer
        _az = AzureServer().start()
        os.environ["LITESTREAM_AZURE_ACCOUNT_KEY"] = _az.key
    return _az


_host = None


def host_server():
    """The SFTP or WebDAV server of this test process
    (LITESTREAM_TEST_BACKEND=sftp or webdav; started on first use, stopped
    at exit), with the SFTP key in the environment for the extension."""
    global _host
    if _host is None:
        sys.path.insert(0, os.path.join(os.environ["LITESTREAM_SRCDIR"],
                                        "test", "servers"))
        from servers import SftpServer, WebdavServer
        _host = (SftpServer() if BACKEND == "sftp" else WebdavServer()).start()
        if BACKEND == "sftp":
            os.environ["LITESTREAM_SFTP_KEY_PATH"] = _host.key_path
        else:
            os.environ.update(_host.env())
    return _host


_nats = None


def nats_server():
    """The NATS server of this test process (nats-server -js, started on
    first use, stopped at exit), without authentication."""
    global _nats
    if _nats is None:
        sys.path.insert(0, os.path.join(os.environ["LITESTREAM_SRCDIR"],
                                        "test", "servers"))
        from servers import NatsServer
        _nats = NatsServer().start()
    return _nats


def replica_url(d, name="replica"):
    """The replica URL of a test: a directory under d, or with
    LITESTREAM_TEST_BACKEND=s3 a prefix of the test S3 server's bucket
    (abs: of the test Azurite's container; sftp, webdav: a directory of the
    test SFTP or WebDAV server; nats: a prefix of the bucket "litestream" of
    the test NATS server)."""
    if BACKEND in ("abs", "sftp", "webdav"):
        return make_replica(d, name).url
    if BACKEND == "nats":
        prefix = os.path.basename(d.rstrip("/")) + "/" + name
        return nats_server().url("litestream/" + prefix)
    if BACKEND == "s3":
        s = s3_server()
        prefix = os.path.basename(d.rstrip("/")) + "/" + name
        return f"s3://{s.bucket}/{prefix}?endpoint={s.endpoint}"
    return "file://" + os.path.join(d, name)


def scratch(name):
    d = tempfile.mkdtemp(prefix=f"ls-{name}-")
    return d


def cleanup(d):
    shutil.rmtree(d, ignore_errors=True)


def dump_hash(path):
    """SHA-256 of the database's SQL dump (content, not layout)."""
    c = sqlite3.connect(f"file:{path}?vfs=unix", uri=True)
    h = hashlib.sha256()
    for line in c.iterdump():
        h.update(line.encode())
    c.close()
    return h.hexdigest()


def restore_and_compare(con, src, replica_url, out, what):
    """Syncs, restores into `out`, and checks content + integrity."""
    txid = con.execute("SELECT litestream_sync(10000)").fetchone()[0]
    js = con.execute("SELECT litestream_restore(?, ?)",
                     (replica_url, out)).fetchone()[0]
    o = sqlite3.connect(f"file:{out}?vfs=unix", uri=True)
    ic = o.execute("PRAGMA integrity_check").fetchone()[0]
    o.close()
    same = dump_hash(src) == dump_hash(out)
    ok(ic == "ok" and same,
       f"{what}: restore at TXID {txid} identical, integrity {ic}")
    return js


class Replica:
    """What every test replica offers on top of its backend's primitives
    (key, objects, get, put, overwrite, created_ms)."""

    def corrupt(self, key, offset):
        """Flips one byte of an object, keeping its size and time."""
        b = self.get(key)[offset]
        self.overwrite(key, offset, bytes([b ^ 0xFF]))

    def copy_levels(self, other, levels):
        """Copies the objects of the given levels into replica `other`."""
        for lv in levels:
            for lo, hi in self.objects(lv):
                k = self.key(lv, lo, hi)
                other.put(other.key(lv, lo, hi), self.get(k),
                          self.created_ms(k))


class FileReplica(Replica):
    """A replica on the local-directory backend, as the tests see it: its
    URL, and the few direct manipulations a test needs (introduce a gap,
    corrupt or move an object, lay out foreign files).  S3Replica provides
    the same methods (see make_replica).  Keys are relative to the replica
    (key(level, lo, hi)); created_ms is an object's creation time as the
    backend lists it (here: the file's mtime)."""

    def __init__(self, root):
        self.root = root
        self.url = "file://" + root

    def key(self, level, lo, hi):
        return f"ltx/{level}/{lo:016x}-{hi:016x}.ltx"

    def _path(self, key):
        return os.path.join(self.root, key)

    def put(self, key, data, created_ms=None):
        p = self._path(key)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        if created_ms is not None:
            os.utime(p, ns=(created_ms * 1000000, created_ms * 1000000))

    def get(self, key):
        with open(self._path(key), "rb") as f:
            return f.read()

    def size(self, key):
        return os.path.getsize(self._path(key))

    def created_ms(self, key):
        return os.stat(self._path(key)).st_mtime_ns // 1000000

    def remove(self, key):
        os.remove(self._path(key))

    def objects(self, level):
        """Sorted (min, max) TXIDs of the objects of a level."""
        try:
            names = os.listdir(os.path.join(self.root, "ltx", str(level)))
        except FileNotFoundError:
            return []
        return sorted(_ltx_range(n) for n in names if _ltx_range(n))

    def move(self, key, new_key):
        """Renames an object (atomically; keeps its bytes and time)."""
        p = self._path(new_key)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        os.rename(self._path(key), p)

    def overwrite(self, key, offset, data):
        """Overwrites bytes of an object in place, keeping its time."""
        p = self._path(key)
        st = os.stat(p)
        with open(p, "r+b") as f:
            f.seek(offset)
            f.write(data)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))



def _ltx_range(name):
    """(min, max) of an object name "<min 16 hex>-<max 16 hex>.ltx"."""
    if len(name) != 37 or not name.endswith(".ltx") or name[16] != "-":
        return None
    try:
        return int(name[:16], 16), int(name[17:33], 16)
    except ValueError:
        return None


def _s3_time(ms):
    """x-amz-meta-litestream-timestamp of Unix ms, as storage/backend/s3_client.c writes
    it (RFC 3339 UTC, trailing zeros of the fraction dropped)."""
    import datetime
    t = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    frac = f".{ms % 1000:03d}".rstrip("0") if ms % 1000 else ""
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


class S3Replica(Replica):
    """A replica under a prefix of the test S3 server (s3_server()), with
    FileReplica's methods.  Objects are at "<prefix>/<level %04x>/<min>-
    <max>.ltx" (the s3 layout of storage/backend/layout.c).  The manipulations
    work on s3rver's data directory, which it serves from directly: an
    object is <key>._S3rver_object, its x-amz-meta-* headers are in
    <key>._S3rver_metadata.json and its MD5 (the ETag) in
    <key>._S3rver_object.md5.  s3rver reports the object file's mtime as
    LastModified (whole seconds, like S3), which is what the s3 backend
    lists as an object's creation time, so created_ms sets that mtime (and
    the litestream-timestamp header, as the extension's own PUTs do).
    Every file is written under a temporary name (s3rver lists only names
    ending in ._S3rver_object) and renamed into place, the object file
    last, so a concurrent GET or LIST sees the old object or the new one."""

    OBJ, META, MD5 = "._S3rver_object", "._S3rver_metadata.json", \
        "._S3rver_object.md5"

    def __init__(self, server, prefix):
        self.server = server
        self.prefix = prefix
        self.url = (f"s3://{server.bucket}/{prefix}"
                    f"?endpoint={server.endpoint}")

    def key(self, level, lo, hi):
        return f"{level:04x}/{lo:016x}-{hi:016x}.ltx"

    def _base(self, key):
        """Data-dir path of an object, without s3rver's suffixes."""
        return os.path.join(self.server.data_dir, self.server.bucket,
                            self.prefix, key)

    @staticmethod
    def _write(path, data, mtime_ms=None):
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        if mtime_ms is not None:
            os.utime(tmp, ns=(mtime_ms * 1000000, mtime_ms * 1000000))
        os.rename(tmp, path)

    def _put_meta(self, base, created_ms):
        import json
        meta = {"content-type": "binary/octet-stream",
                "x-amz-meta-litestream-timestamp": _s3_time(created_ms)}
        self._write(base + self.META,
                    json.dumps(meta, indent=2).encode())

    def put(self, key, data, created_ms=None):
        base = self._base(key)
        os.makedirs(os.path.dirname(base), exist_ok=True)
        if created_ms is None:
            created_ms = int(time.time() * 1000)
        self._put_meta(base, created_ms)
        self._write(base + self.MD5, hashlib.md5(data).hexdigest().encode())
        self._write(base + self.OBJ, data, created_ms)

    def get(self, key):
        with open(self._base(key) + self.OBJ, "rb") as f:
            return f.read()

    def size(self, key):
        return os.path.getsize(self._base(key) + self.OBJ)

    def created_ms(self, key):
        return os.stat(self._base(key) + self.OBJ).st_mtime_ns // 1000000

    def remove(self, key):
        base = self._base(key)
        os.remove(base + self.OBJ)
        for sfx in (self.META, self.MD5):
            try:
                os.remove(base + sfx)
            except FileNotFoundError:
                pass

    def objects(self, level):
        """Sorted (min, max) TXIDs of the objects of a level."""
        try:
            names = os.listdir(os.path.dirname(self._base(self.key(level, 0,
                                                                   0))))
        except FileNotFoundError:
            return []
        return sorted(_ltx_range(n[:-len(self.OBJ)]) for n in names
                      if n.endswith(self.OBJ)
                      and _ltx_range(n[:-len(self.OBJ)]))

    def move(self, key, new_key):
        """Renames an object: its headers and MD5 first, then the object
        file (atomically; bytes and time kept), then the old headers go."""
        src, dst = self._base(key), self._base(new_key)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        for sfx in (self.META, self.MD5):
            try:
                with open(src + sfx, "rb") as f:
                    self._write(dst + sfx, f.read())
            except FileNotFoundError:
                pass
        os.rename(src + self.OBJ, dst + self.OBJ)
        for sfx in (self.META, self.MD5):
            try:
                os.remove(src + sfx)
            except FileNotFoundError:
                pass

    def overwrite(self, key, offset, data):
        """Overwrites bytes of an object in place, keeping its size and
        time; the stored MD5 (ETag) follows the new content, as S3's
        would for an object uploaded with these bytes."""
        base = self._base(key)
        st = os.stat(base + self.OBJ)
        b = bytearray(self.get(key))
        b[offset:offset + len(data)] = data
        self._write(base + self.MD5, hashlib.md5(b).hexdigest().encode())
        self._write(base + self.OBJ, bytes(b), st.st_mtime_ns // 1000000)



class AbsReplica(Replica):
    """A replica under a prefix of the test Azurite's container
    (az_server()), with FileReplica's methods, through Azurite's REST API:
    blobs at "<prefix>/ltx/<level>/<min>-<max>.ltx" with the metadata
    litestreamtimestamp, which the abs backend lists as the creation time."""

    def __init__(self, server, prefix):
        self.server = server
        self.prefix = prefix
        self.url = (f"abs://{server.account}@{server.container}/{prefix}"
                    f"?endpoint={server.endpoint}")

    def key(self, level, lo, hi):
        return f"ltx/{level}/{lo:016x}-{hi:016x}.ltx"

    def _name(self, key):
        return f"{self.prefix}/{key}"

    def put(self, key, data, created_ms=None):
        if created_ms is None:
            created_ms = int(time.time() * 1000)
        self.server.put(self._name(key), data,
                        {"litestreamtimestamp": _s3_time(created_ms)})

    def get(self, key):
        return self.server.get(self._name(key))

    def _meta(self, key):
        for name, size, meta in self.server.blobs(self._name(key)):
            if name == self._name(key):
                return size, meta
        raise FileNotFoundError(key)

    def size(self, key):
        return self._meta(key)[0]

    def created_ms(self, key):
        import datetime
        import re
        ts = {k.lower(): v for k, v in self._meta(key)[1].items()}
        m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z",
                         ts["litestreamtimestamp"])
        t = datetime.datetime.strptime(m[1], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.timezone.utc)
        return int(t.timestamp()) * 1000 + int((m[2] or "0").ljust(3, "0")[:3])

    def remove(self, key):
        self.server.delete(self._name(key))

    def objects(self, level):
        pre = self._name(f"ltx/{level}/")
        return sorted(r for r in (_ltx_range(n[len(pre):]) for n, _, _ in
                                  self.server.blobs(pre)) if r)

    def move(self, key, new_key):
        ms = self.created_ms(key)
        self.put(new_key, self.get(key), ms)
        self.remove(key)

    def overwrite(self, key, offset, data):
        ms = self.created_ms(key)
        b = bytearray(self.get(key))
        b[offset:offset + len(data)] = data
        self.put(key, bytes(b), ms)


class HostedReplica(FileReplica):
    """A replica on the SFTP or WebDAV test server: a FileReplica on the
    directory the server serves, under the server's URL."""

    def __init__(self, server, prefix):
        super().__init__(os.path.join(server.data_dir, prefix))
        self.url = server.url(prefix)


def make_replica(d, name="replica"):
    """The one place that decides where the tests' replicas live: a
    directory under d, or with LITESTREAM_TEST_BACKEND=s3 the prefix of the
    test S3 server that replica_url(d, name) names."""
    if BACKEND == "abs":
        return AbsReplica(az_server(),
                          os.path.basename(d.rstrip("/")) + "/" + name)
    if BACKEND in ("sftp", "webdav"):
        return HostedReplica(host_server(),
                             os.path.basename(d.rstrip("/")) + "/" + name)
    if BACKEND == "s3":
        return S3Replica(s3_server(),
                         os.path.basename(d.rstrip("/")) + "/" + name)
    return FileReplica(os.path.join(d, name))
