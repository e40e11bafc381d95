#!/bin/bash
# Loads the real litestream.so into the real sqlite3 shell (TAP).
# Also checks the .so never links or references libsqlite3 symbols directly:
# in a host with its own copy of SQLite the VFS would otherwise be registered
# in the wrong SQLite.
set -u
SO=${LITESTREAM_SO:?}
SHELL_BIN=${SQLITE3_SHELL:-sqlite3}
n=0; failed=0
check() { n=$((n+1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed+1)); fi; }

base=${SO%.so}
out=$("$SHELL_BIN" :memory: ".load $base" "SELECT litestream_version();" 2>&1)
[ "$out" = "$LITESTREAM_EXPECT_VERSION" ]; check $? "sqlite3 shell: .load then litestream_version() = '$out'"

# A second connection opened after the load gets the functions too.
out=$("$SHELL_BIN" :memory: ".load $base" ".open :memory:" "SELECT litestream_version();" 2>&1)
[ "$out" = "$LITESTREAM_EXPECT_VERSION" ]; check $? "functions on a connection opened after the load"

# Loading again, through .load (the C API) and through SQL, into the same
# connection, a new :memory: one and a database's own one, succeeds and
# leaves one litestream VFS and one set of functions.
nf="SELECT count(*) FROM pragma_function_list WHERE name LIKE 'litestream%';"
one=$("$SHELL_BIN" :memory: ".load $base" "$nf" 2>&1)
out=$("$SHELL_BIN" :memory: ".load $base" ".load $base" "SELECT load_extension('$base');" "SELECT load_extension('$base');" "$nf" 2>&1)
[ "$out" = "$(printf '\n\n%s' "$one")" ]; check $? "loading 4 times into one connection (.load twice, load_extension() twice): '$(echo $out)' ($one functions)"
out=$("$SHELL_BIN" :memory: ".load $base" ".open :memory:" "SELECT load_extension('$base');" "$nf" 2>&1)
[ "$out" = "$(printf '\n%s' "$one")" ]; check $? "load_extension() into a new :memory: connection: '$(echo $out)'"
tmp=$(mktemp -d)
out=$("$SHELL_BIN" :memory: ".load $base" ".open $tmp/app.db" "PRAGMA journal_mode=WAL;" "PRAGMA litestream_url='file://$tmp/replica';" "CREATE TABLE t(x);" "SELECT load_extension('$base');" ".load $base" "INSERT INTO t VALUES (1);" "SELECT litestream_sync() > 0;" "$nf" 2>&1)
[ "$out" = "$(printf 'wal\nfile://%s/replica\n\n1\n%s' "$tmp" "$one")" ]; check $? "load into the database's own connection while it replicates: '$(echo $out)'"
vfs=$("$SHELL_BIN" :memory: ".load $base" ".load $base" "SELECT load_extension('$base');" ".vfslist" 2>&1 | grep -c '^vfs.zName *= *"litestream"')
[ "$vfs" = 1 ]; check $? "one litestream VFS registered after three loads ($vfs)"
rm -rf "$tmp"

undef=$(nm -D --undefined-only "$SO" | grep -c ' sqlite3_')
[ "$undef" = 0 ]; check $? "no undefined sqlite3_* symbols in the .so ($undef found)"
needed=$(readelf -d "$SO" | grep NEEDED | grep -c sqlite)
[ "$needed" = 0 ]; check $? "the .so does not link libsqlite3"
exported=$(nm -D --defined-only "$SO" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^_' | sort | tr '\n' ' ')
[ "$exported" = "sqlite3_litestream_init " ]; check $? "only sqlite3_litestream_init is exported (got: $exported)"

echo "1..$n"
[ $failed = 0 ]
