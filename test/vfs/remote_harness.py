"""Helpers of the read-replica (`litestream-remote`) tests.

The replica URL of every remote test comes from replica_url() only, so a
backend can be added in one place: LITESTREAM_TEST_REPLICA=file (the
default; the only backend of this branch) makes a directory replica.  Tests
that reach into the replica's files (to corrupt or move objects) call
replica_dir(), which is None for non-file replicas, and skip those checks.
"""
import json
import os
import sqlite3
import urllib.parse

KIND = os.environ.get("LITESTREAM_TEST_REPLICA", "file")


def replica_url(scratch_dir, name="replica"):
    """A new, empty replica URL for a test."""
    if KIND == "file":
        return "file://" + os.path.join(scratch_dir, name)
    print(f"1..0 # SKIP LITESTREAM_TEST_REPLICA={KIND} is not supported "
          "by this tree", flush=True)
    raise SystemExit(0)


def replica_dir(url):
    """The directory behind a file replica URL, else None."""
    return url[len("file://"):] if url.startswith("file://") else None


def remote_uri(url, name="remote.db", **opts):
    q = "vfs=litestream-remote&url=" + urllib.parse.quote(url, safe="")
    for k, v in opts.items():
        q += f"&{k}={urllib.parse.quote(str(v), safe='')}"
    return f"file:{name}?{q}"


def remote(url, **opts):
    """A connection to the replica through the remote VFS (autocommit)."""
    return sqlite3.connect(remote_uri(url, **opts), uri=True,
                           isolation_level=None, check_same_thread=False)


def requests(con):
    return json.loads(con.execute("PRAGMA litestream_requests")
                      .fetchone()[0])


def txid(con):
    return int(con.execute("PRAGMA litestream_txid").fetchone()[0], 16)


def writer_txid(con):
    """The TXID the writer connection last captured."""
    st = json.loads(con.execute("SELECT litestream_status()").fetchone()[0])
    return int(st["databases"][0]["txid"], 16)
