#!/usr/bin/python3
"""Every kind of connection a user has: an attached schema replicates as
main does (switched to WAL mode by the PRAGMA itself); a read-only
connection cannot change where a database replicates; shared-cache
connections, the backup API into a replicated database and VACUUM INTO
keep working."""
import os
import sqlite3

from harness import (cleanup, dump_hash, done, load, ok, replica_url,
                     restore_and_compare, scratch)

load()


def err_of(con, sql, *args):
    try:
        con.execute(sql, args).fetchall()
    except sqlite3.Error as e:
        return str(e)
    return None


d = scratch("connections")
main_db = os.path.join(d, "main.db")
aux_db = os.path.join(d, "aux.db")

# --- an attached schema ---------------------------------------------------
c = sqlite3.connect(main_db, isolation_level=None)
c.execute("ATTACH ? AS aux", (aux_db,))
c.execute("CREATE TABLE aux.t(x)")
c.execute("INSERT INTO aux.t VALUES (1), (2)")
ok(c.execute("PRAGMA aux.journal_mode").fetchone()[0] == "delete",
   "the attached schema starts in rollback-journal mode")
url = replica_url(d, "aux")
got = c.execute(f"PRAGMA aux.litestream_url = '{url}'").fetchone()
ok(got and got[0] == url, f"PRAGMA aux.litestream_url is accepted ({got})")
ok(c.execute("PRAGMA aux.journal_mode").fetchone()[0] == "wal" and
   c.execute("PRAGMA main.journal_mode").fetchone()[0] == "delete",
   "the PRAGMA switched aux (and only aux) to WAL mode")
c.execute("INSERT INTO aux.t VALUES (3)")
n = c.execute("SELECT litestream_sync('aux', 10000)").fetchone()[0]
out = os.path.join(d, "aux-out.db")
c.execute("SELECT litestream_restore(?, ?)", (url, out))
ok(dump_hash(out) == dump_hash(aux_db),
   f"the attached schema's replica restores identical (TXID {n})")

# A hint names the right schema when WAL mode cannot be had (inside a
# transaction).
c.execute("ATTACH ? AS other", (os.path.join(d, "other.db"),))
c.execute("CREATE TABLE other.t(x)")
c.execute("BEGIN")
c.execute("INSERT INTO other.t VALUES (1)")
e = err_of(c, f"PRAGMA other.litestream_url = '{replica_url(d, 'o')}'")
c.execute("ROLLBACK")
ok(e is not None and "other.journal_mode=WAL" in e,
   f"inside a transaction: the error names the schema: {e}")
c.close()

# --- read-only connections -------------------------------------------------
for what, con in [
        ("mode=ro", sqlite3.connect(f"file:{aux_db}?mode=ro", uri=True,
                                    isolation_level=None)),
        ("query_only", sqlite3.connect(aux_db, isolation_level=None))]:
    if what == "query_only":
        con.execute("PRAGMA query_only = 1")
    for sql in (f"PRAGMA litestream_url = '{replica_url(d, 'elsewhere')}'",
                "PRAGMA litestream_url = ''",
                "PRAGMA litestream_sync_interval = 50",
                "PRAGMA litestream_retention = 'off'"):
        e = err_of(con, sql)
        ok(e is not None and "read-only connection" in e,
           f"{what}: {sql.split('=')[0].strip()} is refused: {e}")
    ok(con.execute("PRAGMA litestream_url").fetchone()[0] == url,
       f"{what}: reading the URL works and it is unchanged")
    con.close()
w = sqlite3.connect(aux_db, isolation_level=None)
ok(w.execute("PRAGMA litestream_url").fetchone()[0] == url and
   w.execute("PRAGMA litestream_sync_interval").fetchone()[0] == "1000",
   "after the refusals the settings are as they were")

# --- shared cache, backup API, VACUUM INTO ---------------------------------
db = os.path.join(d, "shared.db")
a = sqlite3.connect(f"file:{db}?cache=shared", uri=True, isolation_level=None)
b = sqlite3.connect(f"file:{db}?cache=shared", uri=True, isolation_level=None)
surl = replica_url(d, "shared")
a.execute(f"PRAGMA litestream_url = '{surl}'")
a.execute("CREATE TABLE t(x)")
for i in range(50):
    (a if i % 2 else b).execute("INSERT INTO t VALUES (?)", (i,))
restore_and_compare(a, db, surl, os.path.join(d, "shared-out.db"),
                    "two shared-cache connections")
src = sqlite3.connect(aux_db)
src.backup(a)  # the backup API into a replicated database
restore_and_compare(a, db, surl, os.path.join(d, "backup-out.db"),
                    "the backup API into a replicated database")
into = os.path.join(d, "into.db")
a.execute("VACUUM INTO ?", (into,))
ok(dump_hash(into) == dump_hash(db), "VACUUM INTO from a replicated database")
for x in (src, a, b, w):
    x.close()
cleanup(d)
done()
