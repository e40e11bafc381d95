#!/usr/bin/python3
"""The cost of age encryption (docs/benchmarks.md, section o): the same
database replicated to a directory without and with `age_recipient`, then
restored, in MB/s of database and in CPU seconds per 100 MB.

  /usr/bin/python3 test/bench/age_bench.py [--so BUILD/litestream.so]
      [--mb 200] [--reps 3] [--out FILE.md]

Each round: a fresh database of MB megabytes of random blobs (lz4 cannot
shrink them, so every byte is encrypted), `PRAGMA litestream_url` and
`litestream_sync()` (the first full image: encoding, encryption, upload of
everything), then `litestream_restore()` (download, decryption, decoding,
integrity check).  Wall time and the process's CPU time (every thread)
per operation; the median of --reps rounds, plain and age interleaved.
The difference of CPU per MB between the two is what encryption costs;
its inverse is the MB/s one core encrypts or decrypts at.
"""
import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))

ap = argparse.ArgumentParser()
ap.add_argument("--so", default=os.path.join(root, "build-bench",
                                             "litestream.so"))
ap.add_argument("--mb", type=int, default=200)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--out")
args = ap.parse_args()

if not shutil.which("age-keygen"):
    sys.exit("age_bench.py: age-keygen is not installed (apt-get install age)")
so = os.path.abspath(args.so)
c = sqlite3.connect(":memory:")
c.enable_load_extension(True)
c.load_extension(so[:-3] if so.endswith(".so") else so)
work = tempfile.mkdtemp(prefix="ls-age-bench-")
key = os.path.join(work, "key.txt")
subprocess.run(["age-keygen", "-o", key], check=True, capture_output=True)
rcpt = subprocess.run(["age-keygen", "-y", key], check=True,
                      capture_output=True, text=True).stdout.strip()


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(f):
    t, u = time.time(), cpu()
    f()
    return time.time() - t, cpu() - u


def make_db(path):
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t(b BLOB)")
    con.execute("BEGIN")
    for _ in range(args.mb * 16):
        con.execute("INSERT INTO t VALUES (randomblob(65000))")
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return os.path.getsize(path) / 1e6


def one_round(i, mode):
    d = os.path.join(work, f"{mode}{i}")
    os.makedirs(d)
    db = os.path.join(d, "db")
    mb = make_db(db)
    url = "file://" + os.path.join(d, "rep")
    if mode == "age":
        url += f"?age_recipient={rcpt}&age_identity_file={key}"
    con = sqlite3.connect(db, isolation_level=None)

    def upload():
        con.execute(f"PRAGMA litestream_url = '{url}'")
        con.execute("SELECT litestream_sync(600000)").fetchone()

    up = timed(upload)
    out = os.path.join(d, "out.db")
    down = timed(lambda: c.execute("SELECT litestream_restore(?, ?)",
                                   (url, out)).fetchone())
    con.close()
    shutil.rmtree(d)
    return mb, up, down


res = {"plain": [], "age": []}
for i in range(args.reps):
    for mode in ("plain", "age"):
        res[mode].append(one_round(i, mode))
shutil.rmtree(work)

mb = res["plain"][0][0]
rows = []
for op, k in (("upload (first full image)", 1), ("restore", 2)):
    wall = {m: statistics.median(r[k][0] for r in res[m]) for m in res}
    cpus = {m: statistics.median(r[k][1] for r in res[m]) for m in res}
    extra = (cpus["age"] - cpus["plain"]) / mb
    rows.append(f"| {op} | {mb / wall['plain']:.0f} | {mb / wall['age']:.0f} "
                f"| {100 * cpus['plain'] / mb:.2f} | "
                f"{100 * cpus['age'] / mb:.2f} | "
                f"{(1 / extra) if extra > 0 else float('inf'):.0f} |")
text = [f"### o. age encryption: a {mb:.0f} MB database of random blobs, "
        f"file replica (median of {args.reps})",
        "",
        "| operation | plain MB/s | age MB/s | plain CPU s/100 MB | "
        "age CPU s/100 MB | age's extra CPU, as MB/s of one core |",
        "|---|---|---|---|---|---|"] + rows
try:  # the cipher alone, for scale
    sp = subprocess.run(["openssl", "speed", "-seconds", "1", "-bytes",
                         "65536", "-evp", "chacha20-poly1305"],
                        capture_output=True, text=True).stdout.split()
    text += ["", f"OpenSSL's ChaCha20-Poly1305 alone on 64 KiB chunks (openssl "
             f"speed): {float(sp[-1].rstrip('k')) / 1000:.0f} MB/s."]
except (OSError, ValueError, IndexError):
    pass
print("\n".join(text))
if args.out:
    with open(args.out, "a") as f:
        f.write("\n" + "\n".join(text) + "\n")
