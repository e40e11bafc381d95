#!/usr/bin/python3
"""Prints one line "N passed, N failed, N skipped" for CI from meson's
test logs (meson-logs/testlog.json of each build directory given).

Counts individual TAP results (ok / not ok / # SKIP), so a suite of 40
checks counts 40.  A test program that crashed or timed out before printing
its plan counts as one more failure, so a dying test can never look green.
The failures are listed just before that line (CI shows the log's tail).
"""
import json
import re
import sys

passed = failed = skipped = 0
failures = []
for d in sys.argv[1:]:
    try:
        lines = open(f"{d}/meson-logs/testlog.json").read().splitlines()
    except OSError:
        print(f"# no test log in {d}", file=sys.stderr)
        failed += 1
        continue
    for line in lines:
        t = json.loads(line)
        out = t.get("stdout") or ""
        p = f = s = 0
        for ln in out.splitlines():
            m = re.match(r"^(not ok|ok)\b(.*)$", ln)
            if not m:
                continue
            if re.search(r"#\s*SKIP", m.group(2), re.I):
                s += 1
            elif m.group(1) == "ok":
                p += 1
            else:
                f += 1
                failures.append(f"{d}: {t['name']}: {ln[:200]}")
        if t["result"] not in ("OK", "SKIP", "EXPECTEDFAIL") and f == 0:
            f = 1   # died, timed out or a bad plan: count it
            failures.append(f"{d}: {t['name']}: {t['result']}")
        if t["result"] == "SKIP" and p + f + s == 0:
            s = 1
        passed += p
        failed += f
        skipped += s
for ln in failures:
    print(f"# FAILED {ln}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
