#!/bin/bash
# The demo: load the extension into the sqlite3 shell and show its version.
set -euo pipefail
SO=${1:-build/litestream.so}
echo "litestream demo: loading ${SO}"
sqlite3 :memory: ".load ${SO%.so}" "SELECT 'litestream ' || litestream_version();"
