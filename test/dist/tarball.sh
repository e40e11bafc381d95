#!/bin/bash
# The release tarball (scripts/dist.py, `make dist`), unpacked and used as
# its README says: checksums, then .load in the sqlite3 shell, replicate,
# restore (TAP).  Also what the .so inside must be: stripped, exporting
# the entry point only, needing no newer glibc than the wheel's tag says.
set -u
BUILD=${LITESTREAM_BUILDDIR:?}
SRC=${LITESTREAM_SRCDIR:?}
VERSION=${LITESTREAM_EXPECT_VERSION:?}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
n=0; failed=0
check() { n=$((n+1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed+1)); fi; }
if ! command -v sqlite3 >/dev/null; then
    echo "1..0 # SKIP the sqlite3 shell is not installed (scripts/deps.sh test installs it)"
    exit 0
fi

out=$(/usr/bin/python3 "$SRC/scripts/dist.py" "$BUILD" "$d/dist" --so "${LITESTREAM_SO:?}" 2>&1)
check $? "scripts/dist.py makes the artifacts"
echo "$out" | sed 's/^/# /'
arch=$(uname -m)
# A .so whose litestream_version() is not meson.build's (a stale build,
# here one with its version string patched) is refused, saying so.
/usr/bin/python3 - "$LITESTREAM_SO" "$d/stale.so" "$VERSION" <<'EOF2'
import sys
src, dst, v = sys.argv[1], sys.argv[2], sys.argv[3].encode()
b = open(src, "rb").read()
old = b"\0" + v + b"\0"
new = b"\0" + bytes(c if c in b"." else ord("9") for c in v) + b"\0"
assert b.count(old) == 1, b.count(old)
open(dst, "wb").write(b.replace(old, new))
EOF2
out=$(/usr/bin/python3 "$SRC/scripts/dist.py" "$BUILD" "$d/stale-dist" --so "$d/stale.so" 2>&1)
rc=$?
[ $rc != 0 ] && echo "$out" | grep -q "reports version 9.9.9, meson.build says $VERSION: rebuild it" &&
    [ ! -e "$d/stale-dist/litestream-$VERSION-linux-$arch.tar.gz" ]
check $? "a .so reporting another version is refused ($out)"
tgz=$d/dist/litestream-$VERSION-linux-$arch.tar.gz
[ -f "$tgz" ]; check $? "litestream-$VERSION-linux-$arch.tar.gz ($(stat -c %s "$tgz" 2>/dev/null) bytes)"
tar -C "$d" -xzf "$tgz"
top=$d/litestream-$VERSION-linux-$arch
[ "$(cd "$top" && ls | tr '\n' ' ')" = "LICENSE README.md SHA256SUMS litestream.so " ]
check $? "it holds litestream.so, README.md, LICENSE, SHA256SUMS ($(ls "$top" | tr '\n' ' '))"
(cd "$top" && sha256sum --quiet -c SHA256SUMS)
check $? "sha256sum -c SHA256SUMS"
so=$top/litestream.so
! readelf -S "$so" | grep -qE '\.symtab|\.debug_'
check $? "litestream.so is stripped ($(stat -c %s "$so") bytes)"
exports=$(nm -D --defined-only "$so" | awk '{print $3}' | tr '\n' ' ')
[ "$exports" = "sqlite3_litestream_init " ]
check $? "it exports the entry point only ($exports)"
glibc=$(objdump -T "$so" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
tag=$(ls "$d/dist" | grep -o 'manylinux_[0-9]*_[0-9]*' | tr _ .)
[ "${glibc#GLIBC_}" = "${tag#manylinux.}" ]
check $? "it needs glibc symbols up to $glibc, as the wheel's tag says ($tag)"
echo "# needs: $(readelf -d "$so" | grep NEEDED | grep -o '\[.*\]' | tr '\n' ' ')"

cd "$top" || exit 1
out=$(sqlite3 <<EOF2 2>&1
.load ./litestream
SELECT litestream_version();
.open $d/app.db
PRAGMA litestream_url = 'file://$d/replica';
CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
INSERT INTO notes(body) VALUES ('first'), ('second');
BEGIN; INSERT INTO notes(body) VALUES ('third'); COMMIT;
SELECT 'synced ' || litestream_sync();
SELECT json_extract(litestream_restore('file://$d/replica', '$d/copy.db'), '\$.pages') > 0;
.open $d/copy.db
SELECT group_concat(body, ',') FROM notes;
PRAGMA integrity_check;
EOF2
)
echo "$out" | sed 's/^/# /'
[ "$(echo "$out" | sed -n 1p)" = "$VERSION" ]; check $? "shell: .load ./litestream from the unpacked tarball, litestream_version() = $VERSION"
[ "$(echo "$out" | sed -n 2p)" = "file://$d/replica" ]; check $? "shell: PRAGMA litestream_url"
echo "$out" | grep -q '^synced [1-9]'; check $? "shell: litestream_sync()"
[ "$(echo "$out" | sed -n 4p)" = 1 ]; check $? "shell: litestream_restore()"
[ "$(echo "$out" | sed -n 5p)" = "first,second,third" ]; check $? "shell: the restored copy holds every row"
[ "$(echo "$out" | sed -n 6p)" = ok ]; check $? "shell: the restored copy passes integrity_check"
echo "1..$n"
[ $failed = 0 ]
