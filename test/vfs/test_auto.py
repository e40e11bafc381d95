#!/usr/bin/python3
"""litestream_auto(dir, url[, pattern]): every database opened under a
directory replicates to url/<path relative to dir> by itself, with its own
TXIDs; the pattern; nested directories; databases outside, behind
symlinks or '..', in memory, opened through another VFS; a URL set with
the PRAGMA wins; a database that cannot be switched to WAL mode keeps the
open working and says why; calling again replaces or extends the rules;
turning them off; bad arguments; LITESTREAM_AUTO_DIR/_URL at load.
With LITESTREAM_TEST_BACKEND=s3 every replica is an s3:// prefix."""
import hashlib
import json
import os
import resource
import sqlite3
import subprocess
import sys
import urllib.parse

from harness import (BACKEND, cleanup, done, dump_hash, load, ok,
                     replica_url, run_cases, scratch, SO)

N_MANY = int(os.environ.get("AUTO_DATABASES", "200"))

# About 8 descriptors per open replicated database: make room for them.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 16 * N_MANY + 256
if soft < want and (hard == resource.RLIM_INFINITY or hard > soft):
    resource.setrlimit(resource.RLIMIT_NOFILE,
                       (want if hard == resource.RLIM_INFINITY
                        else min(want, hard), hard))

ctl = load()


def fresh(f):
    """A case starts with no rule, whatever the one before left."""
    def g(d):
        auto(None)
        f(d)
    g.__name__ = f.__name__
    return g


def auto(*args):
    """litestream_auto(...) on the control connection: the rules (parsed)."""
    q = ",".join("?" * len(args))
    return json.loads(ctl.execute(f"SELECT litestream_auto({q})",
                                  args).fetchone()[0])


def err_of(con, sql, *args):
    try:
        con.execute(sql, args).fetchall()
    except sqlite3.Error as e:
        return str(e)
    return None


def child(base, rel):
    """What the rules make of base for a database at rel (docs/sql.md)."""
    if base.startswith("/"):
        return base.rstrip("/") + "/" + rel
    path, q, query = base.partition("?")
    return (path.rstrip("/") + "/" + urllib.parse.quote(rel, safe="/") +
            q + query)


def url_of(path):
    c = sqlite3.connect(path)
    u = c.execute("PRAGMA litestream_url").fetchone()[0]
    c.close()
    return u


def status(con):
    return json.loads(con.execute("SELECT litestream_status()").fetchone()[0])


def touched(path):
    return os.path.exists(path + "-litestream")


def write(path, n, isolation_level=None):
    """Opens path (the rules apply), creates t and commits n inserts."""
    c = sqlite3.connect(path, isolation_level=isolation_level)
    c.execute("CREATE TABLE IF NOT EXISTS t(x)")
    for i in range(n):
        c.execute("INSERT INTO t VALUES (?)", (f"{path}:{i}",))
    return c


def content(path):
    """dump_hash() of a path that may hold URI characters ('?', '#')."""
    q = urllib.parse.quote(path)
    return dump_hash(q) if q == path else dump_hash_quoted(q)


def dump_hash_quoted(q):
    c = sqlite3.connect(f"file:{q}?vfs=unix", uri=True)
    h = hashlib.sha256()
    for line in c.iterdump():
        h.update(line.encode())
    c.close()
    return h.hexdigest()


def restores_identical(con, url, path, out):
    """Syncs con (None: synced already), restores url into out and compares
    with the database at path."""
    if con is not None:
        con.execute("SELECT litestream_sync(30000)")
    if os.path.exists(out):
        os.remove(out)
    ctl.execute("SELECT litestream_restore(?, ?)", (url, out))
    return dump_hash(out) == content(path)


def many(d):
    """N databases in nested directories, each to its own prefix."""
    root = os.path.join(d, "many")
    base = replica_url(d, "rep-many")
    rels = []
    for i in range(N_MANY):
        sub = ["", f"g{i % 7}", f"g{i % 7}/h{i % 3}/deep"][i % 3]
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        rels.append(os.path.join(sub, f"tenant{i:04d}.db"))
    auto(root, base)
    cons = [write(os.path.join(root, r), 1 + i % 4)
            for i, r in enumerate(rels)]
    bad_url, bad_txid = [], []
    for i, (r, c) in enumerate(zip(rels, cons)):
        if c.execute("PRAGMA litestream_url").fetchone()[0] != child(base, r):
            bad_url.append(r)
        c.execute("SELECT litestream_sync(60000)")
        db = status(c)["databases"][0]
        # The switch to WAL mode is TXID 1, CREATE TABLE 2, then one per
        # insert.
        if int(db["txid"], 16) != 3 + i % 4 or \
                int(db["replicated_txid"], 16) != 3 + i % 4:
            bad_txid.append((r, db["txid"], db["replicated_txid"]))
    ok(not bad_url, f"{N_MANY} databases: each replicates to url/<relative "
                    f"path> ({bad_url[:3]})")
    ok(not bad_txid, f"{N_MANY} databases: each has its own TXIDs "
                     f"({bad_txid[:3]})")
    for c in cons:
        c.close()
    out = os.path.join(d, "restored.db")
    bad = [r for r in rels
           if not restores_identical(None, child(base, r),
                                     os.path.join(root, r), out)]
    ok(not bad, f"{N_MANY} databases: each prefix restores identical "
                f"({bad[:3]})")
    auto(None)


def pattern(d):
    """A glob on the file name, and one on the relative path."""
    root = os.path.join(d, "pat")
    base = replica_url(d, "rep-pat")
    for sub in ("tenants/a", "tenants/b/x", "other"):
        os.makedirs(os.path.join(root, sub))
    rules = auto(root, base, "*.db")
    ok(rules == [{"dir": root, "url": base, "pattern": "*.db"}],
       f"the rule is listed ({rules})")
    for rel, want in (("x.db", True), ("x.sqlite", False),
                      ("other/y.db", True), ("other/y.db3", False)):
        write(os.path.join(root, rel), 1).close()
        ok((url_of(os.path.join(root, rel)) == child(base, rel)) == want and
           touched(os.path.join(root, rel)) == want,
           f"pattern '*.db': {rel} {'replicates' if want else 'untouched'}")
    auto(root, base, "tenants/*/data.db")
    for rel, want in (("tenants/a/data.db", True),
                      ("tenants/b/x/data.db", False),
                      ("other/data.db", False), ("data.db", False)):
        c = write(os.path.join(root, rel), 2)
        got = c.execute("PRAGMA litestream_url").fetchone()[0]
        if want:
            ok(got == child(base, rel) and restores_identical(
                c, got, os.path.join(root, rel), os.path.join(d, "p.db")),
               f"pattern 'tenants/*/data.db': {rel} replicates, restores "
               f"identical")
        else:
            ok(got == "" and not touched(os.path.join(root, rel)),
               f"pattern 'tenants/*/data.db': {rel} untouched ({got!r})")
        c.close()
    auto(None)


def nested_rules(d):
    """The most specific directory whose pattern matches wins."""
    root = os.path.join(d, "nest")
    os.makedirs(os.path.join(root, "vip", "deeper"))
    outer, inner = replica_url(d, "rep-outer"), replica_url(d, "rep-inner")
    auto(root, outer)
    auto(os.path.join(root, "vip"), inner, "*.db")
    for rel, want in (("a.db", child(outer, "a.db")),
                      ("vip/b.db", child(inner, "b.db")),
                      ("vip/deeper/c.db", child(inner, "deeper/c.db")),
                      ("vip/d.sqlite", child(outer, "vip/d.sqlite"))):
        c = write(os.path.join(root, rel), 1)
        got = c.execute("PRAGMA litestream_url").fetchone()[0]
        ok(got == want and restores_identical(
            c, got, os.path.join(root, rel), os.path.join(d, "n.db")),
           f"nested rules: {rel} -> {got}")
        c.close()
    auto(None)


def outside(d):
    """Outside dir, behind '..' or a symlink out: untouched; a symlink
    from outside into dir: replicates under its real path."""
    root = os.path.join(d, "in")
    out = os.path.join(d, "in2")  # a sibling sharing the prefix "in"
    os.makedirs(os.path.join(root, "sub"))
    os.makedirs(out)
    os.symlink(out, os.path.join(root, "link-out"))
    os.symlink(os.path.join(root, "sub"), os.path.join(d, "link-in"))
    write(os.path.join(out, "target.db"), 1).close()
    os.symlink(os.path.join(out, "target.db"), os.path.join(root, "f.db"))
    base = replica_url(d, "rep-in")
    auto(root, base)
    for what, p, real in (
            ("a sibling directory", os.path.join(out, "s.db"), None),
            ("'..' out of dir", os.path.join(root, "sub", "..", "..", "in2",
                                             "dots.db"), None),
            ("a symlinked directory out of dir",
             os.path.join(root, "link-out", "l.db"), None),
            ("a symlinked file out of dir", os.path.join(root, "f.db"),
             os.path.join(out, "target.db"))):
        write(p, 1).close()
        real = real or os.path.realpath(p)
        ok(url_of(p) == "" and not touched(real) and not touched(p),
           f"{what}: untouched ({p})")
    p = os.path.join(d, "link-in", "via.db")
    c = write(p, 2)
    got = c.execute("PRAGMA litestream_url").fetchone()[0]
    ok(got == child(base, "sub/via.db") and restores_identical(
        c, got, p, os.path.join(d, "o.db")),
       f"a symlink from outside into dir: replicates as sub/via.db ({got})")
    c.close()
    c = write(os.path.join(root, "sub", "..", "up.db"), 1)
    got = c.execute("PRAGMA litestream_url").fetchone()[0]
    ok(got == child(base, "up.db"),
       f"'..' that stays inside dir: replicates as up.db ({got})")
    c.close()
    os.symlink(root, os.path.join(d, "root-link"))
    rules = auto(os.path.join(d, "root-link"), base)
    ok([r["dir"] for r in rules] == [root],
       f"a rule given through a symlink names the real directory ({rules})")
    auto(None)


def pragma_wins(d):
    """A URL set with the PRAGMA (or replication stopped with '') wins."""
    root = os.path.join(d, "own")
    os.makedirs(root)
    base, own, later = (replica_url(d, "rep-auto"), replica_url(d, "rep-own"),
                        replica_url(d, "rep-later"))
    c = write(os.path.join(root, "mine.db"), 1)
    c.execute(f"PRAGMA litestream_url = '{own}'")
    c.close()
    auto(root, base)
    c = write(os.path.join(root, "mine.db"), 1)
    ok(c.execute("PRAGMA litestream_url").fetchone()[0] == own,
       "a database configured before the rule keeps its own URL")
    c.close()
    c = write(os.path.join(root, "moved.db"), 1)
    ok(c.execute("PRAGMA litestream_url").fetchone()[0] ==
       child(base, "moved.db"), "a new database gets the rule's URL")
    c.execute(f"PRAGMA litestream_url = '{later}'")
    c.close()
    c = write(os.path.join(root, "moved.db"), 1)
    got = c.execute("PRAGMA litestream_url").fetchone()[0]
    ok(got == later and restores_identical(
        c, later, os.path.join(root, "moved.db"), os.path.join(d, "m.db")),
       f"the PRAGMA changed it afterwards: that URL stays ({got})")
    c.execute("PRAGMA litestream_url = ''")
    c.close()
    c = write(os.path.join(root, "moved.db"), 1)
    ok(c.execute("PRAGMA litestream_url").fetchone()[0] == "" and
       not status(c)["databases"][0]["replicating"],
       "PRAGMA litestream_url = '' stopped it: the rule does not restart it")
    c.close()
    auto(None)


def ignored(d):
    """:memory:, temp, another VFS: nothing to do, nothing reported."""
    root = os.path.join(d, "ign")
    os.makedirs(root)
    auto(root, replica_url(d, "rep-ign"))
    for what, con in (("':memory:'", sqlite3.connect(":memory:")),
                      ("a temporary database", sqlite3.connect("")),
                      ("a shared in-memory database",
                       sqlite3.connect("file:mem1?mode=memory&cache=shared",
                                       uri=True))):
        con.execute("CREATE TABLE t(x)")
        s = status(con)
        ok(s["databases"] == [] and
           all("in-memory" in n["reason"] for n in s["not_replicable"]),
           f"{what}: opens, ignored ({s['not_replicable']})")
        con.close()
    p = os.path.join(root, "plain.db")
    con = sqlite3.connect(f"file:{p}?vfs=unix", uri=True)
    con.execute("CREATE TABLE t(x)")
    con.close()
    ok(not touched(p), "a database opened through another VFS: untouched")
    auto(None)


def no_wal(d):
    """A database the rule cannot switch to WAL mode: the open works, the
    reason is in litestream_status(); the next writer configures it."""
    root = os.path.join(d, "nowal")
    os.makedirs(root)
    p = os.path.join(root, "ro.db")
    write(p, 2).close()
    base = replica_url(d, "rep-nowal")
    auto(root, base)
    ro = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    n = ro.execute("SELECT count(*) FROM t").fetchone()[0]
    s = status(ro)["databases"][0]
    err = (s.get("last_error") or {}).get("message", "")
    ok(n == 2 and not s["replicating"] and "litestream_auto" in err and
       "read-only connection" in err and p in err,
       f"opened read-only: the open works, status says why: {err}")
    ro.close()
    ok(url_of(p) == child(base, "ro.db"),
       "the next connection that may write starts replicating it")

    p = os.path.join(root, "busy.db")
    auto(None)
    holder = write(p, 1, isolation_level=None)
    holder.execute("BEGIN")
    holder.execute("SELECT count(*) FROM t").fetchone()
    auto(root, base)
    c = sqlite3.connect(p, isolation_level=None)
    s = status(c)["databases"][0]
    err = (s.get("last_error") or {}).get("message", "")
    ok(not s["replicating"] and "WAL" in err and "litestream_auto" in err,
       f"another connection in a transaction: the open works, status says "
       f"why: {err}")
    ok(c.execute("SELECT count(*) FROM t").fetchone()[0] == 1,
       "... and the connection reads")
    c.close()
    holder.execute("COMMIT")
    holder.close()
    c = write(p, 1)
    got = c.execute("PRAGMA litestream_url").fetchone()[0]
    ok(got == child(base, "busy.db") and restores_identical(
        c, got, p, os.path.join(d, "b.db")),
       "once the transaction ended, the next open replicates it")
    c.close()
    auto(None)


def again(d):
    """Again with the same dir replaces its rule, another dir extends; a
    NULL URL removes one rule, NULL every rule."""
    a, b = os.path.join(d, "ra"), os.path.join(d, "rb")
    os.makedirs(a)
    os.makedirs(b)
    u1, u2, u3 = (replica_url(d, "rep-u1"), replica_url(d, "rep-u2"),
                  replica_url(d, "rep-u3"))
    auto(a, u1)
    write(os.path.join(a, "first.db"), 1).close()
    rules = auto(a, u2, "*.db")
    ok(rules == [{"dir": a, "url": u2, "pattern": "*.db"}],
       f"the same dir again replaces its rule ({rules})")
    write(os.path.join(a, "second.db"), 1).close()
    ok(url_of(os.path.join(a, "second.db")) == child(u2, "second.db") and
       url_of(os.path.join(a, "first.db")) == child(u1, "first.db"),
       "new databases follow the new rule; configured ones keep their URL")
    rules = auto(b, u3)
    ok(len(rules) == 2 and auto() == rules,
       f"another dir extends the rules; litestream_auto() lists them")
    rules = auto(a, None)
    ok(rules == [{"dir": b, "url": u3, "pattern": None}],
       f"litestream_auto(dir, NULL) removes that rule only ({rules})")
    write(os.path.join(a, "third.db"), 1).close()
    ok(url_of(os.path.join(a, "third.db")) == "",
       "... and its directory's new databases are left alone")
    ok(auto(None) == [], "litestream_auto(NULL) removes every rule")
    write(os.path.join(b, "after.db"), 1).close()
    ok(not touched(os.path.join(b, "after.db")),
       "with no rule, nothing is touched")


def bad_args(d):
    """Each bad argument is refused, saying what is expected; the rules
    stay as they were."""
    root = os.path.join(d, "bad")
    os.makedirs(root)
    f = os.path.join(root, "file")
    open(f, "w").close()
    keep = auto(root, replica_url(d, "rep-keep"))
    cases = [
        (("rel/dir", "/x"), "must be an absolute path"),
        ((os.path.join(d, "nope"), "/x"), "does not exist: create it"),
        ((f, "/x"), "cannot be used: Not a directory"),
        ((root, "ftp://x/y"), "unknown URL scheme 'ftp'"),
        ((root, "s3://"), "missing bucket"),
        ((root, "relative/replica"), "must be absolute"),
        ((root, "file://" + root), "would be the database"),
        ((root, root + "/"), "would be the database"),
        ((root, "/x", ""), "the pattern is a glob"),
        ((root, "/x", "/abs/*.db"), "the pattern is a glob"),
        ((root,), "litestream_auto(dir, url[, pattern])"),
        ((42, "/x"), "text arguments"),
        ((None, "/x"), "litestream_auto(dir, url[, pattern])"),
        ((root, None, "*.db"), "litestream_auto(dir, url[, pattern])"),
    ]
    for args, want in cases:
        q = ",".join("?" * len(args))
        e = err_of(ctl, f"SELECT litestream_auto({q})", *args)
        ok(e is not None and want in e, f"litestream_auto{args}: {e}")
    ok(auto() == keep, "after the refusals the rules are as they were")
    auto(None)


def env(d):
    """LITESTREAM_AUTO_DIR and _URL (and _PATTERN) are read at load; a bad
    or half setting fails the load, saying which variable."""
    root = os.path.join(d, "env")
    os.makedirs(root)
    base = replica_url(d, "rep-env")
    prog = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(':memory:')\n"
        "c.enable_load_extension(True)\n"
        "try:\n"
        "    c.load_extension(sys.argv[1])\n"
        "except sqlite3.Error as e:\n"
        "    print('LOAD:', e); sys.exit(0)\n"
        "for p in sys.argv[2:]:\n"
        "    d = sqlite3.connect(p, isolation_level=None)\n"
        "    d.execute('CREATE TABLE t(x)')\n"
        "    u = d.execute('PRAGMA litestream_url').fetchone()[0]\n"
        "    print(u)\n"
        "    if u:\n"
        "        d.execute('SELECT litestream_sync(30000)')\n"
        "    d.close()\n")

    def run(extra, *paths):
        e = dict(os.environ)
        for k in ("LITESTREAM_AUTO_DIR", "LITESTREAM_AUTO_URL",
                  "LITESTREAM_AUTO_PATTERN"):
            e.pop(k, None)
        e.update(extra)
        r = subprocess.run(["/usr/bin/python3", "-c", prog, SO] + list(paths),
                           env=e, capture_output=True, text=True, timeout=120)
        return (r.stdout + r.stderr).splitlines()

    got = run({"LITESTREAM_AUTO_DIR": root, "LITESTREAM_AUTO_URL": base,
               "LITESTREAM_AUTO_PATTERN": "*.db"},
              os.path.join(root, "e.db"), os.path.join(root, "e.txt"))
    ok(got == [child(base, "e.db"), ""],
       f"LITESTREAM_AUTO_DIR/_URL/_PATTERN at load ({got})")
    for extra, want in (
            ({"LITESTREAM_AUTO_DIR": root},
             "LITESTREAM_AUTO_DIR is set but LITESTREAM_AUTO_URL is not"),
            ({"LITESTREAM_AUTO_URL": base},
             "LITESTREAM_AUTO_URL is set but LITESTREAM_AUTO_DIR is not"),
            ({"LITESTREAM_AUTO_DIR": "rel", "LITESTREAM_AUTO_URL": base},
             "must be an absolute path"),
            ({"LITESTREAM_AUTO_DIR": root, "LITESTREAM_AUTO_URL": "ftp://x"},
             "unknown URL scheme")):
        got = run(extra)
        ok(len(got) == 1 and got[0].startswith("LOAD:") and want in got[0],
           f"{sorted(extra)}: the load fails: {got}")


def names(d):
    """File names a URL must escape ('%', '#', '?', spaces) replicate to
    the prefix of their own name."""
    root = os.path.join(d, "names")
    os.makedirs(os.path.join(root, "a b"))
    base = replica_url(d, "rep-names")
    auto(root, base)
    # '&' in an s3:// prefix does not restore from s3rver (a backend
    # matter, not the rules'): only on the file backend.
    amp = "+plus&amp;.db" if BACKEND == "file" else "+plus;.db"
    for rel in ("a b/100% #1?.db", amp):
        c = write(os.path.join(root, rel), 2)
        got = c.execute("PRAGMA litestream_url").fetchone()[0]
        ok(got == child(base, rel) and restores_identical(
            c, got, os.path.join(root, rel), os.path.join(d, "x.db")),
           f"{rel!r} replicates to {got}, restores identical")
        c.close()
    auto(None)


d = scratch("auto")
run_cases(*[fresh(f) for f in (many, pattern, nested_rules, outside,
                                pragma_wins, ignored, no_wal, again,
                                bad_args, env, names)], args=(d,))
cleanup(d)
done()
