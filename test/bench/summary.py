#!/usr/bin/python3
"""Issue 12's goals against one `make bench` run: reads the markdown that
test/bench/run.sh writes (build-bench/bench-results.md) and prints one table
row per goal, with the figure and the section it comes from.

  /usr/bin/python3 test/bench/summary.py build-bench/bench-results.md

run.sh appends this table to the results itself; docs/benchmarks.md quotes
it.  A goal whose section was not run (BENCH_ONLY, BENCH_S3=0) says so.
"""
import re
import sys

text = open(sys.argv[1]).read()


def section(letter):
    """The text of section `letter` (all its parts, e.g. both m's)."""
    parts = re.split(r"(?m)^## ", text)
    return "\n".join(p for p in parts if p.startswith(letter + ". "))


def rows(sec):
    """Table rows of a section as lists of cells."""
    out = []
    for line in sec.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            out.append([c.strip() for c in line.strip().strip("|").split("|")])
    return out


def row(sec, first):
    for r in rows(sec):
        if r and r[0].startswith(first):
            return r
    return None


def verdict(ok):
    return "met" if ok else "**missed**"


goals = []


def add(goal, result, ok, where):
    goals.append((goal, result, "-" if ok is None else verdict(ok), where))


def ratio_goal(letter, first, goal_text, limit, col, where, label=""):
    sec = section(letter)
    r = row(sec, first) if sec else None
    if not r:
        add(goal_text, "not run", None, where)
        return
    v = float(r[col])
    add(goal_text, f"{label}{v:.3f}", v >= limit, where)


ratio_goal("a", "extension, sync interval 1000 ms",
           "1 writer, 1 s sync: >= 0.97x plain", 0.97, 3, "a")
ratio_goal("a", "extension, sync interval 100 ms",
           "1 writer, 100 ms sync: >= 0.97x plain", 0.97, 3, "a")
g = section("g")
for kind, title in (("threads", "4 writer threads on 4 connections"),
                    ("processes", "4 writer processes")):
    part = ""
    if g:
        m = re.search(r"### \d+ writer " + kind + r".*?(?=### |\Z)", g,
                      re.S)
        part = m.group(0) if m else ""
    for iv in ("1000", "100"):
        r = row(part, f"extension, sync interval {iv} ms") if part else None
        goal = f"{title}, {'1 s' if iv == '1000' else '100 ms'} sync: " \
            ">= 0.95x plain"
        if r:
            v = float(r[3])
            add(goal, f"{v:.3f}", v >= 0.95, "g")
        else:
            add(goal, "not run", None, "g")
h = section("h")
m = re.search(r"\*\*added\*\*\s*\|\s*\*\*([\d,]+)\*\*", h) if h else None
if m:
    v = int(m.group(1).replace(",", ""))
    add("writer thread: <= 800 added instructions per commit",
        f"+{v:,}", v <= 800, "h")
else:
    add("writer thread: <= 800 added instructions per commit", "not run",
        None, "h")
i = section("i")
for first, lim, goal in (("1", 16, "peak RSS, 1-row commits at full speed, "
                                   "1 s sync: <= plain + 16 MiB"),
                         ("one", 32, "peak RSS, one big transaction: "
                                     "<= plain + 32 MiB")):
    r = None
    for x in rows(i) if i else []:
        if x[0][:1].isdigit() == (first == "1") and x[0] != "workload":
            r = x
            break
    if r:
        v = float(r[3])
        add(goal, f"{v:+.1f} MB ({r[0]})", v <= lim, "i")
    else:
        add(goal, "not run", None, "i")
j = section("j")
r = row(j, "extension's threads") if j else None
d = row(j, "daemon") if j else None
if r:
    v = float(r[2])
    add("CPU of the extension's threads: <= 8 us/tx",
        f"{v:.2f} us/tx" + (f" (daemon {float(d[2]):.2f})" if d else ""),
        v <= 8, "j")
else:
    add("CPU of the extension's threads: <= 8 us/tx", "not run", None, "j")
k = section("k")
m = re.search(r"\*\*sidecar, all\*\*.*?\|\s*\*\*([\d.]+)\*\*", k) if k else None
if m:
    v = float(m.group(1))
    add("sidecar writes <= 0.2 bytes per WAL byte", f"{v:.3f}", v <= 0.2, "k")
else:
    add("sidecar writes <= 0.2 bytes per WAL byte", "not run", None, "k")
sec = section("l")
r1 = row(sec, "requests") if sec else None
r2 = row(sec, "wake-ups") if sec else None
if r1:
    add("idle: 0 requests", r1[1], int(r1[1]) == 0, "l")
    add("idle: <= 1 wake-up/s per database", r2[1], float(r2[1]) <= 1, "l")
else:
    add("idle: 0 requests, <= 1 wake-up/s", "not run", None, "l")
f = section("f")
re_ = row(f, "extension") if f else None
rd = row(f, "daemon") if f else None
if re_ and rd:
    a, b = float(re_[1].strip("*")), float(rd[1])
    add("restore from s3rver <= the daemon's time", f"{a:.2f} s vs {b:.2f} s",
        a <= b, "f")
else:
    add("restore from s3rver <= the daemon's time", "not run", None, "f")
dd = section("d")
r = row(dd, "extension `litestream_restore`") if dd else None
if r:
    v = float(r[4].strip("*"))
    add("restore from a directory <= 1.5x cp + sync", f"{v:.2f}x", v <= 1.5,
        "d")
else:
    add("restore from a directory <= 1.5x cp + sync", "not run", None, "d")
mm = section("m")
if mm and "Litestream VFS" in mm:
    behind = mm.count("**BEHIND**")
    ahead = mm.count(": ahead")
    add("read replica ahead of the Litestream VFS v0.5.17 on each "
        "measurement", f"ahead on {ahead}, behind on {behind}", behind == 0,
        "m")
else:
    add("read replica ahead of the Litestream VFS v0.5.17", "not run", None,
        "m")

print("| goal (issue 12) | this run | | section |")
print("|---|---|---|---|")
for goal, result, ok, where in goals:
    print(f"| {goal} | {result} | {ok} | {where} |")
