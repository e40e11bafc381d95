#!/usr/bin/python3
"""The writer half of test_remote_follow.py (run as its own process).

    remote_writer.py SO DB URL SECONDS RECORDS

Replicates DB to URL with a 100 ms sync interval and moves money between
accounts in one transaction per transfer, so the total never changes.  A
quarter of the way through it runs VACUUM, half way it changes the page
size (journal_mode DELETE, page_size 8192, VACUUM, back to WAL), at three
quarters a connection without the extension transfers money (so the next
TXID the extension captures is a full image).  About every 300 ms it syncs
and appends {"txid", "ms", "check"} to RECORDS (one JSON object a line):
the replicated TXID, the wall clock after it, and sum(id * balance) at it.
At the end it prints one JSON line: the final TXID, the page sizes used and
the full images the status reports.
"""
import json
import random
import sqlite3
import sys
import time

so, db, url, seconds, records = sys.argv[1:6]
seconds = float(seconds)
ACCOUNTS, TOTAL_EACH = 500, 1000

boot = sqlite3.connect(":memory:")
boot.enable_load_extension(True)
boot.load_extension(so)
con = sqlite3.connect(db, isolation_level=None)
con.execute(f"PRAGMA litestream_url = '{url}'")
con.execute("PRAGMA litestream_sync_interval = 100")
# The table and its accounts in one transaction: every replicated state
# that has the table holds the whole total.
con.execute("BEGIN")
con.execute("CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER,"
            " pad TEXT)")
for i in range(1, ACCOUNTS + 1):
    con.execute("INSERT INTO accounts VALUES (?, ?, ?)",
                (i, TOTAL_EACH, "p" * 4000))
con.execute("COMMIT")

rnd = random.Random(6)
out = open(records, "a")
page_sizes = set()


def transfer(c):
    a, b = rnd.sample(range(1, ACCOUNTS + 1), 2)
    amount = rnd.randint(1, 50)
    c.execute("BEGIN IMMEDIATE")
    c.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?",
              (amount, a))
    c.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?",
              (amount, b))
    c.execute("COMMIT")


def record():
    t = con.execute("SELECT litestream_sync(10000)").fetchone()[0]
    check = con.execute("SELECT sum(id * balance) FROM accounts").fetchone()[0]
    ms = int(time.time() * 1000)
    out.write(json.dumps({"txid": t, "ms": ms, "check": check}) + "\n")
    out.flush()
    time.sleep(0.005)  # the next object is created strictly later


start = time.time()
done = set()
last_record = 0.0
while time.time() - start < seconds:
    frac = (time.time() - start) / seconds
    if frac > 0.25 and "vacuum" not in done:
        done.add("vacuum")
        con.execute("VACUUM")
    if frac > 0.5 and "page_size" not in done:
        done.add("page_size")
        con.execute("PRAGMA journal_mode = DELETE")
        con.execute("PRAGMA page_size = 8192")
        con.execute("VACUUM")
        con.execute("PRAGMA journal_mode = WAL")
    if frac > 0.75 and "plain" not in done:
        done.add("plain")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        plain = sqlite3.connect(f"file:{db}?vfs=unix", uri=True,
                                isolation_level=None, timeout=10)
        for _ in range(5):
            transfer(plain)
        plain.close()
    transfer(con)
    page_sizes.add(con.execute("PRAGMA page_size").fetchone()[0])
    if time.time() - last_record > 0.3:
        record()
        last_record = time.time()
    time.sleep(0.002)
record()
final = con.execute("SELECT litestream_sync(10000)").fetchone()[0]
st = json.loads(con.execute("SELECT litestream_status()").fetchone()[0])
print(json.dumps({"final": final, "page_sizes": sorted(page_sizes),
                  "full_images": st["databases"][0]["full_images"],
                  "done_ms": int(time.time() * 1000)}), flush=True)
