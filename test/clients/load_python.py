#!/usr/bin/python3
"""Loads the real litestream.so into Debian's /usr/bin/python3 (TAP).

Loading is idempotent and thread-safe: any number of loads, through the C
API or SQL, into any connection (the same one, a new :memory: one, the
database's own one), before or after databases are opened, from several
threads at once, each succeed and leave one set of functions per
connection."""
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading

so = os.environ["LITESTREAM_SO"]
want = os.environ["LITESTREAM_EXPECT_VERSION"]
base = so[:-3]
n = 0
failed = 0


def check(cond, what):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print(("ok" if cond else "not ok") + f" {n} - {what}", flush=True)


def version(c):
    return c.execute("SELECT litestream_version()").fetchone()[0]


def nfuncs(c):
    """How many litestream_* functions (name, arity) the connection has."""
    return c.execute("SELECT count(*) FROM pragma_function_list "
                     "WHERE name LIKE 'litestream%'").fetchone()[0]


def sql_load(c):
    """Loads through SQL; None or the error."""
    try:
        c.execute("SELECT load_extension(?)", (base,)).fetchall()
    except sqlite3.Error as e:
        return str(e)
    return None


def conn(path=":memory:"):
    c = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    c.enable_load_extension(True)
    return c


# The first load of the process may itself come from several threads at
# once: run that in a fresh interpreter.
if len(sys.argv) > 1 and sys.argv[1] == "--threads":
    errs = []
    barrier = threading.Barrier(8)

    def worker(i):
        try:
            c = conn(os.path.join(sys.argv[2], f"t{i}.db") if i % 2 else
                     ":memory:")
            barrier.wait()
            for _ in range(5):
                e = sql_load(c) if i % 3 else c.load_extension(base)
                if e:
                    errs.append(e)
            if version(c) != want:
                errs.append(f"thread {i}: wrong version")
            errs.append(nfuncs(c))
        except Exception as e:  # reported below
            errs.append(f"thread {i}: {e}")
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(repr(errs))
    sys.exit(0)

con = conn()
con.load_extension(base)
check(version(con) == want, f"python: litestream_version() = {version(con)!r}")
per_conn = nfuncs(con)
check(per_conn > 5, f"python: {per_conn} litestream functions after a load")
# Connections opened later get the functions through the auto-extension.
con2 = sqlite3.connect(":memory:")
check(version(con2) == want, "python: a later connection has the functions")
# Loading again through the C API, on another connection.
con3 = conn()
con3.load_extension(base)
check(version(con3) == want,
      "python: loading again on another connection works (C API)")

# Through SQL: twice into the same connection, into a new :memory: one.
e1, e2 = sql_load(con), sql_load(con)
check(e1 is None and e2 is None,
      f"python: SELECT load_extension() twice into the same connection "
      f"({e1 or e2})")
check(nfuncs(con) == per_conn, "python: ... still one set of functions")
mem = conn()
e = sql_load(mem)
check(e is None, f"python: SELECT load_extension() into a new :memory: "
      f"connection ({e})")
check(nfuncs(mem) == per_conn and version(mem) == want,
      "python: ... which has one set of functions")

# Into the database's own connection, while its database is replicated.
d = tempfile.mkdtemp(prefix="ls-load-")
db = conn(os.path.join(d, "app.db"))
db.execute("PRAGMA journal_mode=WAL")
db.execute(f"PRAGMA litestream_url = 'file://{d}/replica'")
db.execute("CREATE TABLE t(x)")
db.execute("INSERT INTO t VALUES (1)")
for how, f in (("SQL", sql_load), ("the C API", lambda c: c.load_extension(base))):
    e = f(db)
    check(e is None, f"python: load through {how} into the database's own "
          f"connection ({e})")
check(nfuncs(db) == per_conn, "python: ... still one set of functions")
rep = db.execute("SELECT litestream_sync()").fetchone()[0]
check(rep >= 2, f"python: ... and it still replicates (TXID {rep})")
# A connection opened after all those loads is still on the litestream VFS.
late = conn(os.path.join(d, "late.db"))
late.execute("PRAGMA journal_mode=WAL")
e = sql_load(late)
st = late.execute("SELECT litestream_status()").fetchone()[0]
check(e is None and '"schema":"main"' in st and "not_replicable\":[]" in st,
      "python: a database opened after repeated loads goes through the VFS")

# From 8 threads at once, as the first loads of a fresh process.
r = subprocess.run([sys.executable, __file__, "--threads", d],
                   capture_output=True, text=True, timeout=120)
out = r.stdout.strip()
check(r.returncode == 0 and out == repr([per_conn] * 8),
      f"python: 8 threads loading at once (40 loads, SQL and C API) all "
      f"succeed with one set of functions each ({out} {r.stderr.strip()})")
print(f"1..{n}")
sys.exit(1 if failed else 0)
