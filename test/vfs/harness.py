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
