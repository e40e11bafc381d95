#!/bin/bash
# `meson install` into a scratch root, then the embedding example built from
# that installed tree the way an application builds (pkg-config litestream,
# Debian's static libsqlite3.a) and run: it replicates and restores (TAP).
# And again with a bundled SQLite built with SQLITE_OMIT_LOAD_EXTENSION.
# Also: the installed litestream.so loads in the sqlite3 shell from the path
# pkg-config gives, and liblitestream.a defines one global symbol.
set -u
BUILD=${LITESTREAM_BUILDDIR:?}
SRC=${LITESTREAM_SRCDIR:?}
VERSION=${LITESTREAM_EXPECT_VERSION:?}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
n=0; failed=0
check() { n=$((n+1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed+1)); fi; }

out=$(meson install -C "$BUILD" --no-rebuild --destdir "$d/root" 2>&1)
check $? "meson install --destdir"
[ $failed = 0 ] || echo "$out" | tail -5 | sed 's/^/# /'
pc=$(find "$d/root" -name litestream.pc | head -1)
[ -n "$pc" ]; check $? "litestream.pc is installed (${pc#$d/root})"
# Relocated into the scratch root, as a package build would.
export PKG_CONFIG_PATH=$(dirname "$pc")
prefix=$(pkg-config --variable=prefix litestream)
pc() { pkg-config --define-variable=prefix="$d/root$prefix" "$@" litestream; }
ext=$(pc --variable=extension)
[ -f "$ext" ]; check $? "litestream.so is installed where pkg-config --variable=extension says (${ext#$d/root})"
[ "$(pc --modversion)" = "$VERSION" ]
check $? "pkg-config --modversion litestream = $VERSION"
for f in litestream.h liblitestream.a; do
    p=$(find "$d/root" -name "$f" | head -1)
    [ -n "$p" ]; check $? "$f is installed (${p#$d/root})"
done
if command -v sqlite3 >/dev/null; then
    v=$(sqlite3 :memory: ".load ${ext%.so}" "SELECT litestream_version();" 2>&1)
    [ "$v" = "$VERSION" ]; check $? "the installed litestream.so loads in the sqlite3 shell ($v)"
fi
g=$(nm -g --defined-only "$(find "$d/root" -name liblitestream.a)" | awk 'NF == 3 {print $3}')
[ "$g" = sqlite3_litestream_init ]
check $? "liblitestream.a defines one global symbol ($(echo $g | head -c 200))"

# The application: its own SQLite (Debian's libsqlite3.a), liblitestream.a.
libsqlite=$(pkg-config --variable=libdir sqlite3)/libsqlite3.a
flags=$(pc --cflags --libs)
echo "# cc embed.c $flags $libsqlite -lm"
out=$(${CC:-cc} -o "$d/embed" "$SRC/test/dist/embed.c" $flags "$libsqlite" -lm 2>&1)
check $? "the embedding example builds with pkg-config and libsqlite3.a"
[ -z "$out" ] || echo "$out" | head -20 | sed 's/^/# /'
[ -x "$d/embed" ] && ! readelf -d "$d/embed" | grep -q 'NEEDED.*libsqlite3'
check $? "the example does not link libsqlite3.so (SQLite is linked in)"
# Runs an embedding example: its TAP lines, numbered into this script's.
run_embed() { # LABEL PROGRAM
    mkdir "$d/work-$1"
    local out rc line
    out=$("$2" "$d/work-$1" "$VERSION" 2>&1)
    rc=$?
    last_out=$out
    while IFS= read -r line; do
        case $line in
            "ok "*) check 0 "$1: ${line#* - }" ;;
            "not ok "*) check 1 "$1: ${line#* - }" ;;
            "1.."*) ;;
            *) echo "# $line" ;;
        esac
    done <<<"$out"
    [ $rc = 0 ]; check $? "$1: the example exits 0"
}
run_embed libsqlite3.a "$d/embed"

# The same example with a bundled SQLite (an amalgamation compiled into the
# program, as Rust's and Go's bindings do) built with
# SQLITE_OMIT_LOAD_EXTENSION: automatic extensions get no API table there,
# and liblitestream.a needs none.  The amalgamation is the one
# better-sqlite3 carries (installed for the Node client tests).
amal=$SRC/test/clients/node/node_modules/better-sqlite3/deps/sqlite3
if [ -f "$amal/sqlite3.c" ]; then
    out=$(${CC:-cc} -O0 -w -DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_THREADSAFE=1 \
              -c -o "$d/sqlite3.o" "$amal/sqlite3.c" 2>&1 &&
          ${CC:-cc} -o "$d/embed-bundled" -I"$amal" "$SRC/test/dist/embed.c" \
              "$d/sqlite3.o" $flags -lm 2>&1)
    check $? "the example builds with a bundled SQLite without extension loading"
    [ -z "$out" ] || echo "$out" | head -20 | sed 's/^/# /'
    run_embed bundled "$d/embed-bundled"
    echo "$last_out" | grep -q "with SQLITE_OMIT_LOAD_EXTENSION"
    check $? "bundled: ... and that SQLite has no extension loading"
else
    n=$((n+1)); echo "ok $n # SKIP no SQLite amalgamation (better-sqlite3 in test/clients/node is not installed)"
fi
echo "1..$n"
[ $failed = 0 ]
