#!/bin/bash
# The sqlite3 shell replicating and restoring, driven by a script of
# .load / PRAGMA / SQL exactly as a user would type it (TAP).
set -u
SO=${LITESTREAM_SO:?}
ROOT=${LITESTREAM_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
n=0; failed=0
check() { n=$((n+1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed+1)); fi; }

out=$(sqlite3 <<EOF2 2>&1
.load ${SO%.so}
.open $d/app.db
PRAGMA litestream_url = 'file://$d/replica';
CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
INSERT INTO notes(body) VALUES ('first'), ('second');
BEGIN; INSERT INTO notes(body) VALUES ('third'); COMMIT;
SELECT 'synced ' || litestream_sync();
SELECT json_extract(litestream_status(), '\$.databases[0].last_error') IS NULL;
SELECT json_extract(litestream_restore('file://$d/replica', '$d/copy.db'), '\$.pages') > 0;
.open $d/copy.db
SELECT group_concat(body, ',') FROM notes;
PRAGMA integrity_check;
EOF2
)
echo "$out" | sed 's/^/# /'
echo "$out" | grep -q '^synced [0-9]'; check $? "shell: litestream_sync() returns the replicated TXID"
[ "$(echo "$out" | sed -n 3p)" = 1 ]; check $? "shell: status has no error"
[ "$(echo "$out" | sed -n 4p)" = 1 ]; check $? "shell: litestream_restore() returns a summary"
[ "$(echo "$out" | sed -n 5p)" = "first,second,third" ]; check $? "shell: the restored copy holds every row"
[ "$(echo "$out" | sed -n 6p)" = ok ]; check $? "shell: the restored copy passes integrity_check"

# Reopening in a new shell resumes replication from the sidecar.
out2=$(sqlite3 <<EOF2 2>&1
.load ${SO%.so}
.open $d/app.db
PRAGMA litestream_url;
INSERT INTO notes(body) VALUES ('fourth');
SELECT litestream_sync() > 0;
EOF2
)
[ "$(echo "$out2" | sed -n 1p)" = "file://$d/replica" ]; check $? "shell: the URL is remembered across sessions"
out3=$(sqlite3 :memory: ".load ${SO%.so}" "SELECT json_extract(litestream_restore('file://$d/replica', '$d/copy2.db'), '\$.txid');" ".open $d/copy2.db" "SELECT count(*) FROM notes;" 2>&1)
[ "$(echo "$out3" | sed -n 2p)" = 4 ]; check $? "shell: the second session's row was replicated ($(echo $out3 | tr '\n' ' '))"

# Restore-on-boot (scripts/restore-on-boot.sh, docs/deploy.md): a first
# deployment starts empty, a new machine restores, an existing database is
# left as it is, a bad replica stops the boot.
boot=$ROOT/scripts/restore-on-boot.sh
r=$(LITESTREAM_SO=$SO LITESTREAM_URL="file://$d/none" DB="$d/boot.db" "$boot" 2>&1)
[ $? = 0 ] && [ ! -e "$d/boot.db" ] && echo "$r" | grep -q '"restored":false'
check $? "restore-on-boot, empty replica: starts with no database ($r)"
r=$(LITESTREAM_SO=$SO LITESTREAM_URL="file://$d/replica" DB="$d/boot.db" "$boot" sqlite3 "$d/boot.db" "SELECT count(*) FROM notes;" 2>&1)
[ "$(echo "$r" | tail -1)" = 4 ]
check $? "restore-on-boot, new machine: restored, then runs the command ($(echo $r | tr '\n' ' '))"
sqlite3 "$d/boot.db" "INSERT INTO notes(body) VALUES ('local');"
sum=$(md5sum < "$d/boot.db")
r=$(LITESTREAM_SO=$SO LITESTREAM_URL="file://$d/replica" DB="$d/boot.db" "$boot" 2>&1)
[ $? = 0 ] && [ "$(md5sum < "$d/boot.db")" = "$sum" ]
check $? "restore-on-boot, database present: left byte-identical ($r)"
r=$(LITESTREAM_SO=$SO LITESTREAM_URL="ftp://nowhere/x" DB="$d/boot2.db" "$boot" true 2>&1)
[ $? != 0 ] && echo "$r" | grep -q "unknown URL scheme" && [ ! -e "$d/boot2.db" ]
check $? "restore-on-boot, bad replica URL: the boot stops with the reason ($r)"

echo "1..$n"
[ $failed = 0 ]
