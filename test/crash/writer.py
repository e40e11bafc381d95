#!/usr/bin/python3
"""Crash-test writer: replicates DB to URL and commits numbered rows until
it is killed, printing each sequence number after its COMMIT returned
(the acknowledgement the parent relies on).  Mixes 1-row transactions, big
transactions that spill, rollbacks and checkpoints of every mode."""
import random
import sqlite3
import sys

so, db, url, seed, start = sys.argv[1], sys.argv[2], sys.argv[3], int(
    sys.argv[4]), int(sys.argv[5])
rnd = random.Random(seed)
boot = sqlite3.connect(":memory:")
boot.enable_load_extension(True)
boot.load_extension(so)
con = sqlite3.connect(db, isolation_level=None)
con.execute("PRAGMA cache_size=20")
con.execute(f"PRAGMA litestream_url = '{url}'")
con.execute("PRAGMA litestream_sync_interval = 50")
con.execute("CREATE TABLE IF NOT EXISTS t(seq INTEGER PRIMARY KEY, v BLOB)")
seq = start
out = sys.stdout
while True:
    r = rnd.random()
    if r < 0.05:
        mode = rnd.choice(["PASSIVE", "FULL", "RESTART", "TRUNCATE"])
        con.execute(f"PRAGMA wal_checkpoint({mode})")
        continue
    if r < 0.10:
        con.execute("BEGIN")
        for _ in range(rnd.randint(1, 300)):
            con.execute("INSERT INTO t(v) VALUES (randomblob(300))")
        con.execute("ROLLBACK")
        continue
    n = 1 if r < 0.85 else rnd.randint(50, 600)
    con.execute("BEGIN")
    for _ in range(n):
        seq += 1
        con.execute("INSERT INTO t(seq, v) VALUES (?, randomblob(?))",
                    (seq, rnd.randint(10, 900)))
    con.execute("COMMIT")
    out.write(f"{seq}\n")
    out.flush()
