"""Helpers of the read-replica (`litestream-remote`) tests.

The replica of every remote test comes from replica_url() / replica()
only, which defer to harness.make_replica: a directory under the test's
scratch directory by default, with LITESTREAM_TEST_BACKEND=s3 a prefix of
the test's S3 server (harness.s3_server()).  Tests that reach into the
replica (to corrupt or move objects) do it through replica(url), which has
the same methods on both backends.
"""
import json
import os
import sqlite3
import urllib.parse

import harness

KIND = harness.BACKEND
_replicas = {}  # url -> harness replica object


def replica_url(scratch_dir, name="replica"):
    """A new, empty replica URL for a test."""
    rep = harness.make_replica(scratch_dir, name)
    _replicas[rep.url] = rep
    return rep.url


def replica(url):
    """The replica object (harness.FileReplica or S3Replica) behind a URL
    that replica_url() returned, or behind any file:// URL."""
    if url not in _replicas and url.startswith("file://"):
        _replicas[url] = harness.FileReplica(url[len("file://"):])
    return _replicas[url]


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
