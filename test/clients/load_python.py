#!/usr/bin/python3
"""Loads the real litestream.so into Debian's /usr/bin/python3 (TAP)."""
import os
import sqlite3
import sys

so = os.environ["LITESTREAM_SO"]
want = os.environ["LITESTREAM_EXPECT_VERSION"]
n = 0
failed = 0


def check(cond, what):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print(("ok" if cond else "not ok") + f" {n} - {what}", flush=True)


con = sqlite3.connect(":memory:")
con.enable_load_extension(True)
con.load_extension(so[:-3])
v = con.execute("SELECT litestream_version()").fetchone()[0]
check(v == want, f"python: litestream_version() = {v!r}")
# Connections opened later get the functions through the auto-extension.
con2 = sqlite3.connect(":memory:")
v2 = con2.execute("SELECT litestream_version()").fetchone()[0]
check(v2 == want, "python: a later connection has the functions")
# Loading twice is harmless.
con3 = sqlite3.connect(":memory:")
con3.enable_load_extension(True)
con3.load_extension(so[:-3])
check(con3.execute("SELECT litestream_version()").fetchone()[0] == want,
      "python: loading again on another connection works")
print(f"1..{n}")
sys.exit(1 if failed else 0)
