#!/usr/bin/python3
"""Instructions per 1-row commit, plain SQLite vs the extension, under
callgrind (deterministic, unlike wall-clock numbers on a shared machine).

  /usr/bin/python3 test/bench/callgrind.py [--so BUILD/litestream.so]
      [--base OTHER/litestream.so] [-n 20000] [--interval 1000] [--top 25]
      [--out FILE.md] [--keep DIR]

Builds test/bench/cg_driver.c against the system libsqlite3 and runs it
three times under `valgrind --tool=callgrind --separate-threads=yes`:
plain SQLite with N commits, the extension with N commits, and the
extension with 0 commits (its threads' start-up cost, subtracted).  The
driver zeroes the counters just before its first commit and dumps them right
after its last, so the writer thread's figures are exactly the commits.  The
extension's other threads are counted over the whole run minus the 0-commit
run, per transaction.

Prints (and with --out appends as markdown): the writer's instructions per
commit plain and with the extension, the difference (goal: <= 800), the
extension's functions on the writer thread (inclusive and self, per commit),
and per transaction each other thread of the extension with its own top
functions.  About a minute with the default N on this machine.
"""
import argparse
import glob
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
ap.add_argument("--base", help="another build to compare with (before)")
ap.add_argument("-n", type=int, default=20000)
ap.add_argument("--interval", type=int, default=1000)
ap.add_argument("--top", type=int, default=25)
ap.add_argument("--out")
ap.add_argument("--keep", help="keep the callgrind files in this directory")
args = ap.parse_args()

so = os.path.abspath(args.so)
if not os.path.exists(so):
    sys.exit(f"callgrind.py: {so} does not exist (build it first: "
             "make build, or ninja -C build-bench litestream.so)")
for tool in ("valgrind", "callgrind_annotate", "cc"):
    if not shutil.which(tool):
        sys.exit(f"callgrind.py: {tool} is not installed "
                 "(apt-get install valgrind gcc)")
ext = so[:-3] if so.endswith(".so") else so
base = os.path.abspath(args.base) if args.base else None
if base and not os.path.exists(base):
    sys.exit(f"callgrind.py: {base} does not exist")
base_ext = base[:-3] if base and base.endswith(".so") else base

work = args.keep or tempfile.mkdtemp(prefix="ls-callgrind-")
os.makedirs(work, exist_ok=True)
driver = os.path.join(work, "cg_driver")
subprocess.run(["cc", "-O2", "-o", driver, os.path.join(here, "cg_driver.c"),
                "-lsqlite3"], check=True)


def run(tag, n, with_ext, ext_path=None):
    """Runs the driver under callgrind; returns the output file prefix."""
    d = os.path.join(work, tag)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    prefix = os.path.join(d, "cg")
    cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes", "-q",
           f"--callgrind-out-file={prefix}.%p", driver,
           "-db", os.path.join(d, "db"), "-n", str(n),
           "-interval", str(args.interval)]
    if with_ext:
        cmd += ["-ext", ext_path or ext]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"callgrind.py: {' '.join(cmd)} failed:\n{p.stderr}")
    for sub in ("db-replica", "db-litestream"):
        shutil.rmtree(os.path.join(d, sub), ignore_errors=True)
    return prefix


def totals(path):
    with open(path) as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    return 0


def part(prefix, part_no, thread):
    """The file of one dump part (None: the final dump) of one thread."""
    pat = f"{prefix}.*.{part_no}-{thread:02d}" if part_no else \
        f"{prefix}.*[0-9]-{thread:02d}"
    fs = [f for f in glob.glob(pat)
          if part_no or re.search(r"\.\d+-\d+$", f)]
    return fs[0] if fs else None


def threads(prefix):
    """Thread numbers of the final dump."""
    out = []
    for f in glob.glob(f"{prefix}.*-*"):
        m = re.search(r"\.(\d+)-(\d+)$", f)
        if m:
            out.append(int(m.group(2)))
    return sorted(out)


LINE = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(\S.*?):(\S+) \[(.*)\]\s*$")


def functions(path, inclusive, so_path=None):
    """{function: Ir} of the extension's functions in one file."""
    so_name = os.path.basename(so_path or so)
    p = subprocess.run(["callgrind_annotate", "--threshold=100",
                        f"--inclusive={'yes' if inclusive else 'no'}", path],
                       capture_output=True, text=True, check=True)
    fns = {}
    for line in p.stdout.splitlines():
        m = LINE.match(line)
        if m and os.path.basename(m.group(4)) == so_name:
            fns[m.group(3)] = fns.get(m.group(3), 0) + \
                int(m.group(1).replace(",", ""))
    return fns


n = args.n
print(f"callgrind: {n} one-row commits, plain SQLite", file=sys.stderr)
plain = run("plain", n, False)
print(f"callgrind: {n} one-row commits, extension {so}", file=sys.stderr)
withx = run("ext", n, True)
print("callgrind: 0 commits, extension (start-up cost)", file=sys.stderr)
idle = run("ext0", 0, True)
if base:
    print(f"callgrind: {n} one-row commits, base {base}", file=sys.stderr)
    withb = run("base", n, True, base_ext)
    print("callgrind: 0 commits, base (start-up cost)", file=sys.stderr)
    idleb = run("base0", 0, True, base_ext)

w_plain = totals(part(plain, 1, 1)) / n
w_ext = totals(part(withx, 1, 1)) / n
added = w_ext - w_plain
inc = functions(part(withx, 1, 1), True)
slf = functions(part(withx, 1, 1), False)
if base:
    w_base = totals(part(withb, 1, 1)) / n
    incb = functions(part(withb, 1, 1), True, base)
    slfb = functions(part(withb, 1, 1), False, base)

lines = []
lines.append(f"### Writer thread, instructions per 1-row commit "
             f"(callgrind, {n} commits, WAL, synchronous=NORMAL, "
             f"sync interval {args.interval} ms)\n")
lines.append("| | Ir per commit |\n|---|---:|")
lines.append(f"| plain SQLite | {w_plain:,.0f} |")
lines.append(f"| with the extension | {w_ext:,.0f} |")
lines.append(f"| **added** | **{added:,.0f}** ({added / w_plain * 100:+.1f} %)"
             f"; goal <= 800: {'met' if added <= 800 else '**MISSED**'} |")
if base:
    lines.append(f"| base `{base}`: with the extension | {w_base:,.0f} |")
    lines.append(f"| base: added | {w_base - w_plain:,.0f} |")
lines.append("")
lines.append("The extension's functions on the writer thread, per commit "
             "(inclusive counts what they call, SQLite's unix VFS "
             "included):\n")
if base:
    lines.append("| function | inclusive, base | inclusive | self, base | "
                 "self |\n|---|---:|---:|---:|---:|")
    names = set(inc) | set(incb)
    for fn in sorted(names, key=lambda k: -max(inc.get(k, 0),
                                               incb.get(k, 0)))[:args.top]:
        lines.append(f"| `{fn}` | {incb.get(fn, 0) / n:,.0f} | "
                     f"{inc.get(fn, 0) / n:,.0f} | {slfb.get(fn, 0) / n:,.0f} "
                     f"| {slf.get(fn, 0) / n:,.0f} |")
else:
    lines.append("| function | inclusive | self |\n|---|---:|---:|")
    for fn in sorted(inc, key=lambda k: -inc[k])[:args.top]:
        lines.append(f"| `{fn}` | {inc[fn] / n:,.0f} | "
                     f"{slf.get(fn, 0) / n:,.0f} |")
lines.append("")

lines.append("### The extension's other threads, instructions per "
             "transaction\n")
lines.append("Whole run minus a run with 0 commits (start-up), divided by "
             "the commits; named by their top function.\n")
lines.append("| thread | Ir per transaction | top functions (self, per "
             "transaction) |\n|---|---:|---|")
def other_threads(withx, idle, so_path):
    """{top function: (Ir per transaction, description)} of the
    extension's threads other than the writer."""
    idle_by_top, out = {}, {}
    for t in threads(idle):
        if t == 1:
            continue
        f = part(idle, None, t)
        top = max(functions(f, True, so_path).items(), key=lambda kv: kv[1],
                  default=("?", 0))[0]
        idle_by_top[top] = idle_by_top.get(top, 0) + totals(f)
    for t in threads(withx):
        if t == 1:
            continue
        f = part(withx, None, t)
        fi = functions(f, True, so_path)
        top = max(fi.items(), key=lambda kv: kv[1], default=("?", 0))[0]
        total = totals(f) - idle_by_top.pop(top, 0)
        fs = functions(f, False, so_path)
        best = [k for k in sorted(fs, key=lambda k: -fs[k])[:6]
                if fs[k] / n >= 1 and total / n >= 1]
        desc = ", ".join(f"`{k}` {fs[k] / n:,.0f}" for k in best) or \
            "(about the same as with 0 commits)"
        out[top] = (total / n, desc)
    return out


now = other_threads(withx, idle, so)
if base:
    before = other_threads(withb, idleb, base)
    lines[-1] = ("| thread | Ir per transaction, base | Ir per transaction | "
                 "top functions (self, per transaction) |\n|---|---:|---:|---|")
    for top in sorted(set(now) | set(before)):
        b = f"{round(before[top][0]) + 0:,}" if top in before else "-"
        v, desc = now.get(top, (0, "(not in this build)"))
        lines.append(f"| `{top}` | {b} | {round(v) + 0:,} | {desc} |")
else:
    for top in sorted(now):
        v, desc = now[top]
        lines.append(f"| `{top}` | {round(v) + 0:,} | {desc} |")
lines.append("")

text = "\n".join(lines)
print(text)
if args.out:
    with open(args.out, "a") as f:
        f.write("\n## h. callgrind: instructions per commit\n\n" + text + "\n")
if not args.keep:
    shutil.rmtree(work, ignore_errors=True)
