#!/bin/bash
# The demo: replicate a database to a local directory while writing to it,
# restore the replica into a new file, and show that both agree.
set -euo pipefail
SO=${1:-build/litestream.so}
SO=$(cd "$(dirname "$SO")" && pwd)/$(basename "$SO")
out=${DEMO_DIR:-$(pwd)/demo-out}
rm -rf "$out" && mkdir -p "$out"
echo "litestream demo in $out"
/usr/bin/python3 - "$SO" "$out" <<'PY'
import json, sqlite3, sys, hashlib
so, out = sys.argv[1], sys.argv[2]
boot = sqlite3.connect(":memory:")
boot.enable_load_extension(True)
boot.load_extension(so[:-3])
db = sqlite3.connect(f"{out}/app.db", isolation_level=None)
url = f"file://{out}/replica"
print("PRAGMA litestream_url =", db.execute(f"PRAGMA litestream_url = '{url}'").fetchone()[0])
db.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT, qty INT)")
for i in range(1000):
    db.execute("INSERT INTO orders(item, qty) VALUES (?, ?)", (f"item-{i}", i % 7))
txid = db.execute("SELECT litestream_sync()").fetchone()[0]
print(f"wrote 1000 transactions; replicated up to TXID {txid}")
print("restore:", db.execute("SELECT litestream_restore(?, ?)", (url, f"{out}/restored.db")).fetchone()[0])
def digest(p):
    c = sqlite3.connect(f"file:{p}?vfs=unix", uri=True)
    return hashlib.sha256("".join(c.iterdump()).encode()).hexdigest()
a, b = digest(f"{out}/app.db"), digest(f"{out}/restored.db")
print("source   sha256:", a)
print("restored sha256:", b)
print("status:", json.dumps(json.loads(db.execute("SELECT litestream_status()").fetchone()[0]), indent=2))
if a != b:
    sys.exit("demo FAILED: the restored database differs")
print("demo OK: the restored database is identical to the source")
PY
