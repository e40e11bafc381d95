#!/usr/bin/python3
"""The Python wheel (scripts/dist.py, `make dist`) installed as a user would:
into a fresh venv made by Debian's /usr/bin/python3, offline
(pip install --no-index), then litestream_ext.load() into the standard
sqlite3 module, replicate and restore (TAP)."""
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

BUILD = os.environ["LITESTREAM_BUILDDIR"]
SRC = os.environ["LITESTREAM_SRCDIR"]
SO = os.environ["LITESTREAM_SO"]
VERSION = os.environ["LITESTREAM_EXPECT_VERSION"]
n = 0
failed = 0

# Runs in the venv's Python; prints what it saw as JSON.
USE = r'''
import importlib.metadata, json, os, sqlite3, sys
import litestream_ext
d = sys.argv[1]
out = {"version": litestream_ext.__version__,
       "dist_version": importlib.metadata.version("litestream-ext"),
       "path": litestream_ext.loadable_path()}

def sql_loading(c):
    try:
        c.execute("SELECT load_extension('/nonexistent/x')").fetchall()
    except sqlite3.Error as e:
        return "not authorized" not in str(e)
    return True

boot = sqlite3.connect(":memory:")
litestream_ext.load(boot)
out["loaded_version"] = boot.execute("SELECT litestream_version()").fetchone()[0]
out["after_load_sql_loading"] = sql_loading(boot)
if hasattr(boot, "getconfig"):
    out["after_load_c_loading"] = boot.getconfig(
        sqlite3.SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION)
# A connection that had loading enabled keeps it.
on = sqlite3.connect(":memory:")
on.enable_load_extension(True)
litestream_ext.load(on)
out["kept_enabled"] = sql_loading(on)
try:
    litestream_ext.load(object())
    out["no_loading_error"] = None
except RuntimeError as e:
    out["no_loading_error"] = str(e)

db = sqlite3.connect(os.path.join(d, "app.db"), isolation_level=None)
url = "file://" + os.path.join(d, "replica")
out["url"] = db.execute(f"PRAGMA litestream_url = '{url}'").fetchone()[0]
db.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v BLOB)")
db.execute("BEGIN")
for i in range(300):
    db.execute("INSERT INTO kv VALUES (?, randomblob(80))", (i,))
db.execute("COMMIT")
db.execute("DELETE FROM kv WHERE k % 5 = 0")
out["txid"] = db.execute("SELECT litestream_sync()").fetchone()[0]
copy = os.path.join(d, "copy.db")
out["restore"] = json.loads(db.execute(
    "SELECT litestream_restore(?, ?)", (url, copy)).fetchone()[0])
c = sqlite3.connect(copy)
q = "SELECT k, v FROM kv ORDER BY k"
out["rows"] = len(c.execute(q).fetchall())
out["same"] = c.execute(q).fetchall() == db.execute(q).fetchall()
out["integrity"] = c.execute("PRAGMA integrity_check").fetchone()[0]
print(json.dumps(out))
'''


def check(cond, what):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print(("ok" if cond else "not ok") + f" {n} - {what}", flush=True)


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, **kw)


d = tempfile.mkdtemp(prefix="ls-wheel-")
try:
    r = run(["/usr/bin/python3", os.path.join(SRC, "scripts", "dist.py"),
             BUILD, os.path.join(d, "dist"), "--so", SO])
    check(r.returncode == 0, "scripts/dist.py makes the artifacts")
    for line in (r.stdout + r.stderr).splitlines():
        print("# " + line)
    whls = glob.glob(os.path.join(d, "dist", "*.whl"))
    arch = platform.machine()
    ok = (len(whls) == 1 and os.path.basename(whls[0]).startswith(
        f"litestream_ext-{VERSION}-py3-none-manylinux_2_")
        and whls[0].endswith(f"_{arch}.whl"))
    check(ok, f"the wheel: {[os.path.basename(w) for w in whls]} "
          f"({os.path.getsize(whls[0]) if whls else 0} bytes)")
    venv = os.path.join(d, "venv")
    r = run(["/usr/bin/python3", "-m", "venv", venv])
    check(r.returncode == 0, f"/usr/bin/python3 -m venv {r.stderr.strip()}")
    py = os.path.join(venv, "bin", "python")
    r = run([py, "-m", "pip", "install", "--no-index", "--no-cache-dir",
             "--disable-pip-version-check", "-q"] + whls[:1])
    check(r.returncode == 0,
          f"pip install --no-index (offline) {r.stderr.strip()[-300:]}")
    work = os.path.join(d, "work")
    os.mkdir(work)
    r = run([py, "-c", USE, work], cwd=d, timeout=120)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        out = {}
        print("# " + (r.stdout + r.stderr).replace("\n", "\n# "))
    check(out.get("version") == VERSION and
          out.get("dist_version") == VERSION,
          f"litestream_ext.__version__ and the distribution's version are "
          f"{VERSION} ({out.get('version')}, {out.get('dist_version')})")
    check(out.get("path", "").startswith(venv + "/") and
          os.path.isfile(out.get("path", "")),
          f"loadable_path() is the .so inside the venv ({out.get('path')})")
    check(out.get("loaded_version") == VERSION,
          f"litestream_ext.load(conn), then litestream_version() = "
          f"{out.get('loaded_version')}")
    check(out.get("after_load_sql_loading") is False and
          out.get("after_load_c_loading", 0) in (0, False),
          "load() leaves extension loading disabled as it was")
    check(out.get("kept_enabled") is True,
          "load() leaves it enabled on a connection that had it enabled")
    check("cannot load extensions" in (out.get("no_loading_error") or ""),
          "a connection without extension loading gets a clear "
          "RuntimeError")
    check(out.get("url", "").endswith("/replica") and
          out.get("txid", 0) > 0,
          f"PRAGMA litestream_url, litestream_sync() = {out.get('txid')}")
    check(out.get("restore", {}).get("pages", 0) > 0 and
          out.get("rows") == 240 and out.get("same") is True and
          out.get("integrity") == "ok",
          f"litestream_restore(): an identical copy ({out.get('rows')} "
          f"rows, integrity {out.get('integrity')})")
finally:
    shutil.rmtree(d, ignore_errors=True)
print(f"1..{n}")
sys.exit(1 if failed else 0)
