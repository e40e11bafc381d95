"""Shared helpers for the Python-driven suites (TAP output, the real .so
loaded into Debian's /usr/bin/python3, scratch directories)."""
import hashlib
import os
import shutil
import sqlite3
import sys
import tempfile

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


def replica_url(d, name="replica"):
    """The replica URL of a test: a directory under d, or with
    LITESTREAM_TEST_BACKEND=s3 a prefix of the test S3 server's bucket."""
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


class FileReplica:
    """A replica on the local-directory backend, as the tests see it: its
    URL, and the few direct manipulations a test needs (introduce a gap,
    corrupt an object, lay out foreign files).  An S3 variant only has to
    provide the same methods (see make_replica)."""

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

    def remove(self, key):
        os.remove(self._path(key))

    def corrupt(self, key, offset):
        """Flips one byte of an object, keeping its size and time."""
        p = self._path(key)
        st = os.stat(p)
        with open(p, "r+b") as f:
            f.seek(offset)
            b = f.read(1)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0xFF]))
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))

    def copy_levels(self, other, levels):
        """Copies the objects of the given levels into replica `other`."""
        for lv in levels:
            src = os.path.join(self.root, "ltx", str(lv))
            if not os.path.isdir(src):
                continue
            for name in os.listdir(src):
                if name.endswith(".ltx"):
                    st = os.stat(os.path.join(src, name))
                    other.put(f"ltx/{lv}/{name}",
                              self.get(f"ltx/{lv}/{name}"),
                              st.st_mtime_ns // 1000000)


def make_replica(d, name="replica"):
    """The one place that decides where the tests' replicas live."""
    return FileReplica(os.path.join(d, name))
