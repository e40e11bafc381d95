"""200 replicated databases in one process share the pool's workers
(storage/base/pool.c, docs/architecture.md 3): the process's thread count
stays within the pool's bound plus the one directory watcher
(storage/base/watch.c) plus a small constant while every database takes
transactions (not two threads per database), and every database
replicates and restores identical.  Runs on the local directory (vfs suite)
and on S3 (many-s3, integration suite)."""
import os
import resource
import sqlite3
import subprocess
import sys

# Before the extension is loaded: the pool sizes itself at its first task.
BOUND = 4
os.environ["LITESTREAM_POOL_THREADS"] = str(BOUND)

from harness import cleanup, done, dump_hash, load, ok, replica_url, scratch

N = int(os.environ.get("LITESTREAM_MANY_DBS", "200"))
# The application's own thread, and at most two short-lived helpers (the
# heartbeat's GET, a name lookup of libcurl).
SLACK = 3
# The process's one directory watcher ("ls-watch"), whatever the number of
# databases.
WATCHER = 1


def threads():
    """(count, {name: count}) of this process's threads."""
    names = {}
    tids = os.listdir("/proc/self/task")
    for t in tids:
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                n = f.read().strip()
        except OSError:
            continue
        names[n] = names.get(n, 0) + 1
    return len(tids), names


soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < min(hard, 16 * N):
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 16 * N), hard))

load()
base, _ = threads()
d = scratch("many")
dbs = []
for i in range(N):
    db = os.path.join(d, f"db{i}.db")
    url = replica_url(d, f"rep{i}")
    con = sqlite3.connect(db, isolation_level=None, timeout=30)
    con.execute(f"PRAGMA litestream_url = '{url}'")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, r, v)")
    dbs.append((db, url, con))

most, most_names = threads()
for rnd in range(6):
    for i, (db, url, con) in enumerate(dbs):
        con.execute("BEGIN")
        for k in range(1 + (i + rnd) % 4):
            con.execute("INSERT INTO t(r, v) VALUES (?, randomblob(?))",
                        (rnd, 50 + 37 * ((i * 7 + k) % 100)))
        con.execute("COMMIT")
    n, names = threads()
    if n > most:
        most, most_names = n, names
    if rnd == 3:
        dbs[rnd][2].execute("PRAGMA wal_checkpoint(TRUNCATE)")

synced = []
for db, url, con in dbs:
    synced.append(con.execute("SELECT litestream_sync(60000)").fetchone()[0])
n, names = threads()
if n > most:
    most, most_names = n, names
ok(all(synced), f"all {N} databases synced to their replicas")
pool = {k: v for k, v in most_names.items() if k.startswith("ls-")}
ok(most <= base + BOUND + WATCHER + SLACK and
   most_names.get("ls-watch", 0) <= WATCHER,
   f"{N} databases: at most {most} threads (before: {base}; pool bound "
   f"{BOUND}, {most_names.get('ls-watch', 0)} watcher; per-database threads "
   f"would be {2 * N}): {pool}")
ok(most_names.get("ls-spool", 0) <= 1 and
   most_names.get("ls-replicator", 0) + most_names.get("ls-compactor", 0)
   <= BOUND - 1,
   f"the lanes within the bound: {pool}")

bad = []
for i, (db, url, con) in enumerate(dbs):
    out = os.path.join(d, f"out{i}.db")
    con.execute("SELECT litestream_restore(?, ?)", (url, out)).fetchone()
    o = sqlite3.connect(f"file:{out}?vfs=unix", uri=True)
    ic = o.execute("PRAGMA integrity_check").fetchone()[0]
    o.close()
    if ic != "ok" or dump_hash(db) != dump_hash(out):
        bad.append(i)
ok(not bad, f"all {N} databases restore identical (different: {bad[:10]})")

for db, url, con in dbs:
    con.close()
n, names = threads()
ok(n <= base + BOUND + WATCHER + SLACK,
   f"after closing every database: {n} threads (the idle workers and the "
   f"watcher stay, within the bound)")
cleanup(d)

# A bad LITESTREAM_POOL_THREADS: the PRAGMA fails saying what to do, and the
# database still works (nothing lost).
d = scratch("many-bad")
code = f"""
import sqlite3
c = sqlite3.connect(':memory:')
c.enable_load_extension(True)
c.load_extension({os.environ['LITESTREAM_SO'][:-3]!r})
db = sqlite3.connect({os.path.join(d, 'a.db')!r}, isolation_level=None)
try:
    db.execute("PRAGMA litestream_url = 'file://{d}/rep'")
    print('no error')
except sqlite3.Error as e:
    print(e)
db.execute('CREATE TABLE t(x)')
db.execute('INSERT INTO t VALUES (1)')
print(db.execute('SELECT count(*) FROM t').fetchone()[0])
"""
env = dict(os.environ, LITESTREAM_POOL_THREADS="lots")
r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                   text=True, timeout=60)
lines = r.stdout.splitlines()
ok(r.returncode == 0 and len(lines) == 2 and
   "LITESTREAM_POOL_THREADS='lots'" in lines[0] and
   "from 3 to 64" in lines[0] and lines[1] == "1",
   f"a bad LITESTREAM_POOL_THREADS fails the PRAGMA with what to do, the "
   f"database keeps working: {r.stdout.strip()!r} {r.stderr[-300:]!r}")
cleanup(d)
done()
