#!/bin/bash
# The read replica in the real sqlite3 shell (TAP): a database replicated by
# one shell is opened by another through `litestream-remote`, by url= and by
# LITESTREAM_REPLICA_URL; time travel by PRAGMA; writes refused; a clear
# error without a URL.
set -u
SO=${LITESTREAM_SO:?}
SHELL_BIN=${SQLITE3_SHELL:-sqlite3}
base=${SO%.so}
n=0; failed=0
check() { n=$((n+1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed+1)); fi; }

d=$(mktemp -d /tmp/ls-remote-shell-XXXXXX)
trap 'rm -rf "$d"' EXIT
# The replica URL comes from the one place the remote tests take it from.
url=$(PYTHONPATH="${LITESTREAM_SRCDIR:-.}/test/vfs" /usr/bin/python3 -c \
    'import sys, remote_harness; print(remote_harness.replica_url(sys.argv[1]))' "$d")
case $url in
*"# SKIP"*) echo "$url"; exit 0 ;;
esac
enc=$(/usr/bin/python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$url")

first=$("$SHELL_BIN" :memory: ".load $base" ".open $d/app.db" \
    "PRAGMA litestream_url = '$url';" \
    "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);" \
    "SELECT litestream_sync();" 2>&1 | tail -1)
last=$("$SHELL_BIN" :memory: ".load $base" ".open $d/app.db" \
    "INSERT INTO t SELECT x + 3 FROM t;" "SELECT litestream_sync();" 2>&1 | tail -1)
[ -n "$first" ] && [ "$last" -gt "$first" ]; check $? "writer shell replicated TXIDs $first and $last"

open=".open file:replica.db?vfs=litestream-remote&url=$enc"
out=$("$SHELL_BIN" :memory: ".load $base" "$open" "SELECT count(*), sum(x) FROM t;" 2>&1)
[ "$out" = "6|21" ]; check $? "remote shell reads the latest state: '$out'"

out=$(LITESTREAM_REPLICA_URL=$url "$SHELL_BIN" :memory: ".load $base" \
    ".open file:replica.db?vfs=litestream-remote" "SELECT count(*) FROM t;" 2>&1)
[ "$out" = "6" ]; check $? "URL from LITESTREAM_REPLICA_URL: '$out'"

out=$("$SHELL_BIN" :memory: ".load $base" "$open" \
    "PRAGMA litestream_txid = $first;" "SELECT count(*) FROM t;" \
    "PRAGMA litestream_time = 'latest';" "SELECT count(*) FROM t;" 2>&1 | tr '\n' ' ')
printf -v want '%016x 3 ' "$first"
[[ "$out" == "$want"* ]] && [[ "$out" == *" 6 " ]]; check $? "PRAGMA litestream_txid / litestream_time time travel: '$out'"

out=$("$SHELL_BIN" :memory: ".load $base" "$open" "INSERT INTO t VALUES (9);" 2>&1)
[[ "$out" == *"readonly"* ]]; check $? "writes refused: '$out'"

out=$("$SHELL_BIN" :memory: ".load $base" ".open file:replica.db?vfs=litestream-remote" 2>&1)
[[ "$out" == *"no replica URL"* ]]; check $? "no URL: '$out'"

echo "1..$n"
[ $failed = 0 ]
