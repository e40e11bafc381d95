"""The structure check (docs/architecture.md, "Layers"), run in `make test`.

Reads the C sources' #include lines and the function bodies, and fails on:
  1. an include that points upward: every folder may include headers of its
     own folder and of the folders below it in LAYERS, never above and never
     a peer of the same rank (storage/replicate and storage/reader);
  2. an include cycle between files; and, since a shared header can hide
     them, a call from a file into a function of a higher layer or a cycle
     of calls between .c files (inside a folder or across folders);
  3. an external library included by more than one file (house rule 4);
  4. a function over 120 lines or a file over 800 lines;
  5. a source or build file that cites a document outside the repository
     (the design is in docs/architecture.md and docs/ltx-format.md).
Prints TAP, one line per rule, with every offence as a diagnostic.

Usage: python3 test/layers.py [SOURCE_ROOT]
"""
import os
import re
import sys

# Bottom up; equal ranks are peers that must not include each other.
LAYERS = [
    ("storage/base", 0),
    ("storage/ltx", 1),
    ("storage/backend", 2),
    ("storage/local", 3),
    ("storage/restore", 4),
    ("storage/history", 5),
    ("storage/replicate", 6),
    ("storage/reader", 6),
    ("vfs", 7),
    ("sql", 8),
    ("ext", 9),
]
# External libraries and the header prefixes that mean them.
EXTERNAL = {
    "curl": ("curl/",),
    "OpenSSL": ("openssl/",),
    "jansson": ("jansson.h",),
    "lz4": ("lz4.h", "lz4frame.h", "lz4hc.h"),
    "SQLite": ("sqlite3.h", "sqlite3ext.h"),
    "libnats": ("nats/", "nats.h"),
}
MAX_FUNC = 120
MAX_FILE = 800
OUTSIDE_DOCS = re.compile(r"\b(DESIGN\.md|LTX\.md|STYLE\.md|TEST-SERVERS\.md"
                          r"|shared/docs|shared/testdata)\b")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), ".."))
n = 0
failed = 0


def check(cond, what, offences):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print(("ok" if cond else "not ok") + f" {n} - {what}")
    for o in offences[:40]:
        print("# " + o)
    if len(offences) > 40:
        print(f"# ... and {len(offences) - 40} more")


def folder_of(rel):
    for name, rank in LAYERS:
        if rel.startswith(name + "/"):
            return name, rank
    return None, None


def sources():
    out = []
    for top in [name.split("/")[0] for name, _ in LAYERS]:
        for d, _, fs in os.walk(os.path.join(root, top)):
            for f in fs:
                if f.endswith((".c", ".h")):
                    rel = os.path.relpath(os.path.join(d, f), root)
                    if rel not in out:
                        out.append(rel)
    return sorted(out)


def module(rel):
    """Include cycles are looked for between files; cycles between modules
    (x.c calling y.c calling x.c) are found in the call graph below."""
    return rel


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"),
                  text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def find_cycle(graph):
    """One cycle of the graph as a list of nodes, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {v: WHITE for v in graph}
    stack = []

    def visit(v):
        color[v] = GREY
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if color.get(w, WHITE) == GREY:
                return stack[stack.index(w):] + [w]
            if color.get(w, WHITE) == WHITE:
                c = visit(w)
                if c:
                    return c
        stack.pop()
        color[v] = BLACK
        return None

    for v in sorted(graph):
        if color[v] == WHITE:
            c = visit(v)
            if c:
                return c
    return None


def function_lengths(text):
    """(name, first line, lines) of every function definition, as the
    house format writes them: the name at the start of a line, the body's
    braces alone in column 0."""
    lines = text.split("\n")
    out = []
    i = 0
    while i < len(lines):
        if lines[i] == "{" and i > 0:
            j = i - 1
            while j > 0 and "(" not in lines[j]:
                j -= 1
            name = lines[j].split("(")[0].split()[-1] if lines[j].split(
                "(")[0].split() else "?"
            k = i + 1
            while k < len(lines) and lines[k] != "}":
                k += 1
            out.append((name.lstrip("*"), j + 1, k - j + 1))
            i = k
        i += 1
    return out


files = sources()
texts = {f: open(os.path.join(root, f), encoding="utf-8").read()
         for f in files}

# 1. Upward includes.
upward = []
upcalls = []
graph = {}
users = {lib: set() for lib in EXTERNAL}
for f in files:
    src, srank = folder_of(f)
    graph.setdefault(module(f), set())
    for kind, inc in INCLUDE.findall(texts[f]):
        if kind == "<":
            for lib, prefixes in EXTERNAL.items():
                if inc.startswith(prefixes):
                    users[lib].add(f)
            continue
        if not os.path.exists(os.path.join(root, inc)):
            upward.append(f"{f}: includes {inc}, which does not exist "
                          f"(write paths from the source root)")
            continue
        dst, drank = folder_of(inc)
        if dst is None:
            upward.append(f"{f}: includes {inc}, outside the layers")
            continue
        if dst != src and (drank > srank or drank == srank):
            upward.append(f"{f} ({src}) includes {inc} ({dst}): "
                          + ("upward" if drank > srank else "a peer"))
        if module(inc) != module(f):
            graph[module(f)].add(module(inc))
check(not upward, "no include points upward or sideways", upward)

# 2. Cycles.
cycles = []
g = {k: set(v) for k, v in graph.items()}
while True:
    c = find_cycle(g)
    if not c:
        break
    cycles.append(" -> ".join(c))
    g[c[0]].discard(c[1])  # report each cycle once, then look for more
check(not cycles, "no include cycle between files", cycles)

# 2b. The call graph: a shared header can hide a call cycle that the
# includes do not show, so calls between files are read as well.
defined = {}
for f in files:
    if f.endswith(".c"):
        body = texts[f].split("\n")
        for name, line, _ in function_lengths(texts[f]):
            head = " ".join(body[max(0, line - 3):line])
            if not re.search(r"\bstatic\b", head):
                defined.setdefault(name, f)
calls = {}
IDENT = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
for f in files:
    if not f.endswith(".c"):
        continue
    code = re.sub(r'"(\\.|[^"\\])*"', '""', strip_comments(texts[f]))
    for name in set(IDENT.findall(code)):
        d = defined.get(name)
        if d and d != f:
            calls.setdefault(f, set()).add(d)
            src, srank = folder_of(f)
            dst, drank = folder_of(d)
            if dst != src and drank >= srank:
                upcalls.append(f"{f} calls {name}() in {d}")
ccycles = []
g = {k: set(v) for k, v in calls.items()}
while True:
    c = find_cycle(g)
    if not c:
        break
    ccycles.append(" -> ".join(c))
    g[c[0]].discard(c[1])
check(not upcalls, "no call points upward or sideways", upcalls)
check(not ccycles, "no call cycle between files", ccycles)

# 3. External libraries.
many = [f"{lib} is included by {len(fs)} files: {', '.join(sorted(fs))}"
        for lib, fs in users.items() if len(fs) > 1]
check(not many, "each external library is included by one file", many)

# 4. Lengths.
long_fns = []
long_files = []
for f in files:
    nl = texts[f].count("\n")
    if nl > MAX_FILE:
        long_files.append(f"{f}: {nl} lines")
    if f.endswith(".c"):
        for name, line, ln in function_lengths(texts[f]):
            if ln > MAX_FUNC:
                long_fns.append(f"{f}:{line}: {name}() is {ln} lines")
check(not long_fns, f"no function over {MAX_FUNC} lines", long_fns)
check(not long_files, f"no source file over {MAX_FILE} lines", long_files)

# 5. Citations of documents outside the repository.
cites = []
extra = ["meson.build", "Makefile", "meson_options.txt"]
for d, _, fs in os.walk(os.path.join(root, "test")):
    if "node_modules" in d or "/corpus" in d or "/data" in d:
        continue
    for x in fs:
        if x.endswith((".c", ".h", ".py", ".js", ".sh", ".build")):
            extra.append(os.path.relpath(os.path.join(d, x), root))
for f in files + extra:
    p = os.path.join(root, f)
    if not os.path.exists(p) or f == "test/layers.py":
        continue
    text = texts.get(f) or open(p, encoding="utf-8").read()
    for i, line in enumerate(text.split("\n"), 1):
        m = OUTSIDE_DOCS.search(line)
        if m:
            cites.append(f"{f}:{i}: cites {m.group(1)}")
check(not cites, "no file cites a document outside the repository", cites)

print(f"1..{n}")
sys.exit(1 if failed else 0)
