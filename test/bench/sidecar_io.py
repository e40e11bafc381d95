#!/usr/bin/python3
"""Bytes the extension writes under <db>-litestream/ (the sidecar: spool
segments, position page, locks) per byte SQLite writes to the WAL, for 1-row
commits (docs/benchmarks.md, section k).

  /usr/bin/python3 test/bench/sidecar_io.py [--so BUILD/litestream.so]
      [--driver BUILD/cg_driver] [-n 20000] [--interval 1000] [--out FILE.md]

Runs test/bench/cg_driver (built here if --driver is not given) under
`strace -f -y` tracing the write system calls of every thread, and adds up
the bytes each call wrote by the file it wrote to: the WAL, the sidecar
(by kind), the replica (file://), the database.  strace slows the writer
several times, so the uploads keep up: this is the "uploads keep up" case.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))

ap = argparse.ArgumentParser()
ap.add_argument("--so", default=os.path.join(root, "build-bench",
                                             "litestream.so"))
ap.add_argument("--driver")
ap.add_argument("-n", type=int, default=20000)
ap.add_argument("--interval", type=int, default=1000)
ap.add_argument("--out")
args = ap.parse_args()

for tool in ("strace", "cc"):
    if not shutil.which(tool):
        sys.exit(f"sidecar_io.py: {tool} is not installed "
                 "(apt-get install strace gcc)")
so = os.path.abspath(args.so)
ext = so[:-3] if so.endswith(".so") else so
work = tempfile.mkdtemp(prefix="ls-sidecar-io-")
driver = args.driver
if not driver:
    driver = os.path.join(work, "cg_driver")
    subprocess.run(["cc", "-O2", "-o", driver,
                    os.path.join(here, "cg_driver.c"), "-lsqlite3"],
                   check=True)
db = os.path.join(work, "db")
trace = os.path.join(work, "trace")
cmd = ["strace", "-f", "-y", "-qq", "-s", "0", "-e", "signal=none",
       "-e", "trace=write,pwrite64,writev,pwritev,pwritev2",
       "-o", trace, driver, "-db", db, "-n", str(args.n), "-interval",
       str(args.interval), "-ext", ext]
p = subprocess.run(cmd, capture_output=True, text=True)
if p.returncode != 0:
    sys.exit(f"sidecar_io.py: {' '.join(cmd)} failed:\n{p.stderr}")

CALL = re.compile(r"^\d+\s+\w+\((\d+)<([^>]*)>.*\)\s+=\s+(\d+)")
by = {}
sidecar = db + "-litestream/"
for line in open(trace, errors="replace"):
    m = CALL.match(line)
    if not m:
        continue
    path, n = m.group(2), int(m.group(3))
    if path == db + "-wal":
        k = "WAL"
    elif path.startswith(sidecar):
        name = os.path.basename(path)
        if name.endswith(".seg"):
            k = "sidecar: spool segments (*.seg)"
        else:
            k = "sidecar: " + re.sub(r"\d+", "N", name)
    elif path.startswith(db + "-replica/"):
        k = "replica (file://)"
    elif path == db:
        k = "database (checkpoints)"
    else:
        k = "other: " + re.sub(r"\d+", "N", os.path.basename(path))
    by[k] = by.get(k, 0) + n
shutil.rmtree(work, ignore_errors=True)

wal = by.get("WAL", 0)
side = sum(v for k, v in by.items() if k.startswith("sidecar"))
lines = [f"{args.n} 1-row commits, sync interval {args.interval} ms, "
         f"file replica, under `strace -f` (uploads keep up).\n",
         "| written to | bytes | per WAL byte |", "|---|---:|---:|"]
for k in sorted(by, key=lambda k: -by[k]):
    lines.append(f"| {k} | {by[k]:,} | {by[k] / wal if wal else 0:.3f} |")
ratio = side / wal if wal else 0
lines.append(f"| **sidecar, all** | **{side:,}** | **{ratio:.3f}** "
             f"(goal <= 0.2: {'met' if ratio <= 0.2 else '**MISSED**'}) |")
text = "\n".join(lines) + "\n"
print(text)
if args.out:
    with open(args.out, "a") as f:
        f.write("\n## k. sidecar disk writes per WAL byte\n\n" + text)
