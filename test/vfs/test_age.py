"""Client-side encryption compatible with age (docs/urls.md, "Encryption"),
through the real extension, on a directory replica (and on S3 as
`age-s3`, LITESTREAM_TEST_BACKEND=s3): keys from Debian's `age-keygen`;
objects carry no plaintext and Debian's `age -d` decrypts every one into an
LTX file that restores, from a plain replica, to the database; restore,
read replica and compaction with the identity; and every error: no
identity, a wrong one, a corrupt object, an encrypted replica without age
options, a plaintext one with an identity, a writer of the other kind."""
import json
import os
import shutil
import sqlite3
import subprocess
import time
import urllib.parse

from harness import (BACKEND, FileReplica, cleanup, diag, done, dump_hash,
                     load, make_replica, ok, run_cases, scratch)

load()
MARK = "plaintext-marker-7f3a"
AGE, KEYGEN = shutil.which("age"), shutil.which("age-keygen")


def sub(d, name):
    """A directory of one case (and, on S3, its own prefix)."""
    p = os.path.join(d, name)
    os.makedirs(p, exist_ok=True)
    return p


def keygen(d, name):
    """An identity file made by age-keygen, and its recipient."""
    path = os.path.join(d, name)
    subprocess.run([KEYGEN, "-o", path], check=True, capture_output=True)
    rcpt = subprocess.run([KEYGEN, "-y", path], check=True,
                          capture_output=True, text=True).stdout.strip()
    return path, rcpt


def with_age(url, rcpt=None, ident=None):
    q = []
    if rcpt:
        q.append("age_recipient=" + rcpt)
    if ident:
        q.append("age_identity_file=" + urllib.parse.quote(ident))
    return url + ("&" if "?" in url else "?") + "&".join(q)


def err_of(con, sql, args=()):
    try:
        con.execute(sql, args).fetchall()
        return None
    except sqlite3.Error as e:
        return str(e)


def status(con):
    return json.loads(con.execute("SELECT litestream_status()").fetchone()[0])


def wait_for(cond, seconds=30):
    """Polls cond() until true or the deadline; its last value."""
    end = time.time() + seconds
    while True:
        v = cond()
        if v or time.time() > end:
            return v
        time.sleep(0.05)


def writer(d, name, url, rows=40):
    db = os.path.join(d, name)
    con = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    con.execute(f"PRAGMA litestream_url = '{url}'")
    con.execute("PRAGMA litestream_sync_interval = 10")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT, b BLOB)")
    for i in range(rows):
        con.execute("INSERT INTO t(s, b) VALUES (?, randomblob(?))",
                    (f"{MARK} row {i} " * 20, 3000 if i % 5 else 70000))
        if i % 10 == 9 or i == rows - 1:  # several objects
            con.execute("SELECT litestream_sync(20000)").fetchone()
    return db, con


def all_keys(rep):
    return [rep.key(lv, lo, hi) for lv in range(10)
            for lo, hi in rep.objects(lv)]


def age_decrypt(data, ident):
    r = subprocess.run([AGE, "-d", "-i", ident], input=data,
                       capture_output=True)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def restore(con, url, out):
    """litestream_restore: (json, None) or (None, message); never leaves
    `out` behind on failure (checked by the callers)."""
    try:
        return con.execute("SELECT litestream_restore(?, ?)",
                           (url, out)).fetchone()[0], None
    except sqlite3.Error as e:
        return None, str(e)


def objects_are_age(d):
    """Every object is an age file without plaintext; `age -d` makes each
    an LTX file; those, as a plain replica, restore to the database."""
    d = sub(d, "objects_are_age")
    ident, rcpt = keygen(d, "key.txt")
    rep = make_replica(d, "enc")
    url = with_age(rep.url, rcpt, ident)
    db, con = writer(d, "a.db", url)
    snap = con.execute("SELECT litestream_snapshot()").fetchone()[0]
    keys = all_keys(rep)
    ok(len(keys) >= 2 and rep.objects(0) and rep.objects(9),
       f"objects at levels 0 and 9 ({len(keys)}; snapshot TXID {snap})")
    plain_found, not_age = [], []
    for k in keys:
        b = rep.get(k)
        if b"LTX1" in b or MARK.encode() in b:
            plain_found.append(k)
        if not b.startswith(b"age-encryption.org/v1\n"):
            not_age.append(k)
    ok(not plain_found and not not_age,
       f"no object holds the LTX magic or the rows' text, each is an age "
       f"file (plaintext: {plain_found}, not age: {not_age})")
    plain = FileReplica(os.path.join(d, "decrypted"))
    bad, sizes = [], {}
    for lv in range(10):
        for lo, hi in rep.objects(lv):
            rc, out, err = age_decrypt(rep.get(rep.key(lv, lo, hi)), ident)
            if rc != 0 or not out.startswith(b"LTX1"):
                bad.append((lv, lo, hi, rc, err[:80]))
            plain.put(plain.key(lv, lo, hi), out)
            sizes[(lv, lo, hi)] = len(out)
    ok(not bad, f"Debian's age -d decrypts every object ({len(keys)}) into "
                f"an LTX file (failures: {bad})")
    out = os.path.join(d, "from-decrypted.db")
    js, e = restore(con, plain.url, out)
    ok(js and dump_hash(out) == dump_hash(db),
       f"the decrypted objects, as a plain replica, restore to the "
       f"database ({e or 'identical'})")
    listed = {(lv, lo, hi): n for lv, lo, hi, n in con.execute(
        "SELECT level, min_txid, max_txid, size FROM litestream_ltx(?)",
        (url,))}
    ok(listed == sizes, "litestream_ltx lists the plaintext sizes")
    try:
        lock = json.loads(rep.get("lock.json"))
    except (OSError, KeyError, ValueError) as e:
        lock = {"error": str(e)}
    ok(isinstance(lock, dict) and lock.get("generation") is not None,
       f"the writer lease lock.json stays plain JSON, as Litestream reads it "
       f"({sorted(lock)[:6]})")
    con.close()


def restore_cases(d):
    """Restore with the identity (URL or environment), without it, with a
    wrong one, and of a corrupt object: nothing written on failure."""
    d = sub(d, "restore_cases")
    ident, rcpt = keygen(d, "key.txt")
    other, _ = keygen(d, "other.txt")
    rep = make_replica(d, "enc")
    url = with_age(rep.url, rcpt, ident)
    db, con = writer(d, "r.db", url)
    out = os.path.join(d, "out.db")
    js, e = restore(con, url, out)
    ok(js and dump_hash(out) == dump_hash(db),
       f"restore with the identity: identical ({e or 'ok'})")
    os.remove(out)
    os.environ["LITESTREAM_AGE_IDENTITY_FILE"] = ident
    try:
        js, e = restore(con, rep.url, out)
    finally:
        del os.environ["LITESTREAM_AGE_IDENTITY_FILE"]
    ok(js and dump_hash(out) == dump_hash(db),
       f"restore with LITESTREAM_AGE_IDENTITY_FILE: identical "
       f"({e or 'ok'})")
    os.remove(out)
    for what, u, want in [
            ("no age options", rep.url, "encrypted with age"),
            ("a wrong identity", with_age(rep.url, None, other),
             "none of the identities"),
            ("a missing identity file",
             with_age(rep.url, None, os.path.join(d, "nope.txt")),
             "cannot read the age identity file"),
            ("a recipient without identity", with_age(rep.url, rcpt),
             "needs an identity")]:
        js, e = restore(con, u, out)
        ok(js is None and e and want in e and not os.path.exists(out),
           f"restore with {what} fails, nothing written: {e}")
    # A modified byte in the last chunk of the newest L0 object.
    k = rep.key(0, *rep.objects(0)[-1])
    rep.corrupt(k, len(rep.get(k)) - 5)
    js, e = restore(con, url, out)
    ok(js is None and e and "corrupt" in e and not os.path.exists(out),
       f"restore of a corrupt object fails, nothing written: {e}")
    con.close()


def remote_cases(d):
    """The read replica with the identity; without one and with a wrong
    one it fails saying so."""
    d = sub(d, "remote_cases")
    ident, rcpt = keygen(d, "key.txt")
    other, _ = keygen(d, "other.txt")
    rep = make_replica(d, "enc")
    url = with_age(rep.url, rcpt, ident)
    db, con = writer(d, "m.db", url)

    def remote(u):
        q = "vfs=litestream-remote&url=" + urllib.parse.quote(u, safe="")
        return sqlite3.connect(f"file:{d}/remote-{len(u)}.db?{q}", uri=True,
                               isolation_level=None)

    r = remote(url)
    n = r.execute("SELECT count(*), min(s) FROM t").fetchone()
    ok(n[0] == 40 and n[1].startswith(MARK),
       f"read replica with the identity: {n[0]} rows")
    con.execute("INSERT INTO t(s) VALUES ('later')")
    con.execute("SELECT litestream_sync(20000)").fetchone()
    got = wait_for(lambda: r.execute(
        "SELECT count(*) FROM t").fetchone()[0] == 41)
    ok(got, "it follows the writer (new encrypted objects)")
    r.close()
    for what, u, want in [("no age options", rep.url, "encrypted with age"),
                          ("a wrong identity", with_age(rep.url, None, other),
                           "none of the identities")]:
        e = None
        try:
            remote(u).execute("SELECT count(*) FROM t").fetchone()
        except sqlite3.Error as x:
            e = str(x)
        ok(e and want in e, f"read replica with {what} fails: {e}")
    con.close()


def compaction(d):
    """Compaction reads and writes encrypted objects: levels 1 and 2 are
    age files, and restore from them is identical."""
    d = sub(d, "compaction")
    ident, rcpt = keygen(d, "key.txt")
    rep = make_replica(d, "enc")
    url = with_age(rep.url, rcpt, ident)
    db = os.path.join(d, "c.db")
    con = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    con.execute(f"PRAGMA litestream_url = '{url}'")
    con.execute("PRAGMA litestream_sync_interval = 10")
    con.execute("PRAGMA litestream_levels = '100ms,300ms'")
    con.execute("CREATE TABLE t(x)")
    for i in range(30):
        con.execute("INSERT INTO t VALUES (randomblob(5000))")
        con.execute("SELECT litestream_sync(20000)").fetchone()
    got = wait_for(lambda: rep.objects(1) and rep.objects(2))
    st = status(con)["databases"][0]["compaction"]
    ok(got, f"levels 1 and 2 written (compactions {st.get('compactions')}, "
            f"error {st.get('last_error')})")
    bad = [k for lv in (1, 2) for k in [rep.key(lv, lo, hi)
                                        for lo, hi in rep.objects(lv)]
           if age_decrypt(rep.get(k), ident)[1][:4] != b"LTX1"]
    ok(got and not bad, f"every compacted object is an age file of an LTX "
                        f"file (bad: {bad})")
    out = os.path.join(d, "c-out.db")
    js, e = restore(con, url, out)
    ok(js and dump_hash(out) == dump_hash(db),
       f"restore after compaction: identical ({e or 'ok'})")
    con.close()


def mixed(d):
    """A plaintext replica read with an identity, and writers of the other
    kind: each fails saying what to do, nothing is added to the replica."""
    d = sub(d, "mixed")
    ident, rcpt = keygen(d, "key.txt")
    prep = make_replica(d, "plain")
    db, con = writer(d, "p.db", prep.url, rows=3)
    out = os.path.join(d, "p-out.db")
    js, e = restore(con, with_age(prep.url, None, ident), out)
    ok(js is None and e and "is not encrypted" in e
       and not os.path.exists(out),
       f"a plaintext replica read with an identity fails: {e}")
    con.close()
    n_before = len(all_keys(prep))
    db2 = os.path.join(d, "p2.db")
    c2 = sqlite3.connect(db2, isolation_level=None)
    c2.execute(f"PRAGMA litestream_url = '{with_age(prep.url, rcpt, ident)}'")
    c2.execute("CREATE TABLE u(x)")
    e = err_of(c2, "SELECT litestream_sync(3000)")
    le = status(c2)["databases"][0]["last_error"]
    ok(e and le and "holds plaintext" in le["message"]
       and len(all_keys(prep)) == n_before,
       f"an encrypting writer on a plaintext replica stops: "
       f"{le and le['message']}")
    c2.close()
    erep = make_replica(d, "enc")
    db3, c3 = writer(d, "e.db", with_age(erep.url, rcpt, ident), rows=3)
    c3.close()
    n_before = len(all_keys(erep))
    c4 = sqlite3.connect(os.path.join(d, "e2.db"), isolation_level=None)
    c4.execute(f"PRAGMA litestream_url = '{erep.url}'")
    c4.execute("CREATE TABLE u(x)")
    e = err_of(c4, "SELECT litestream_sync(3000)")
    le = status(c4)["databases"][0]["last_error"]
    ok(e and le and "is encrypted with age" in le["message"]
       and len(all_keys(erep)) == n_before,
       f"a plain writer on an encrypted replica stops: "
       f"{le and le['message']}")
    c4.close()
    c5 = sqlite3.connect(os.path.join(d, "e3.db"), isolation_level=None)
    e = err_of(c5, f"PRAGMA litestream_url = "
                   f"'{with_age(erep.url, 'age1nope', ident)}'")
    ok(e and "is not an age X25519 recipient" in e,
       f"a bad recipient in PRAGMA litestream_url: {e}")
    c5.close()


def main():
    if not AGE or not KEYGEN:
        ok(False, "Debian's age and age-keygen are installed "
                  "(scripts/deps.sh test)")
        return done()
    diag(f"backend {BACKEND}, {subprocess.run([AGE, '--version'], capture_output=True, text=True).stdout.strip()}")
    d = scratch("age")
    try:
        run_cases(objects_are_age, restore_cases, remote_cases, compaction,
                  mixed, args=(d,))
    finally:
        cleanup(d)
    done()


main()
