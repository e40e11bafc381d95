#!/bin/bash
# The npm package (scripts/dist.py, `make dist`) installed as a user would:
# `npm install` of the tarball into a fresh project, offline, then
# test/dist/npm_use.js loads it into better-sqlite3 (the one the Node client
# tests use), replicates and restores (TAP).
set -u
BUILD=${LITESTREAM_BUILDDIR:?}
SRC=${LITESTREAM_SRCDIR:?}
VERSION=${LITESTREAM_EXPECT_VERSION:?}
NODE=${LITESTREAM_NODE:-}
if [ -z "$NODE" ] || ! command -v npm >/dev/null; then
    echo "1..0 # SKIP node or npm is not installed (scripts/deps.sh test installs them)"
    exit 0
fi
# npm runs on the tests' Node, as in scripts/deps.sh.
export PATH="$(dirname "$NODE"):$PATH"
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
n=0; failed=0
check() { n=$((n+1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed+1)); fi; }

out=$(/usr/bin/python3 "$SRC/scripts/dist.py" "$BUILD" "$d/dist" --so "${LITESTREAM_SO:?}" 2>&1)
check $? "scripts/dist.py makes the artifacts"
tgz=$d/dist/litestream-ext-$VERSION.tgz
[ -f "$tgz" ]; check $? "litestream-ext-$VERSION.tgz ($(stat -c %s "$tgz" 2>/dev/null) bytes)"
mkdir -p "$d/app" "$d/work"
echo '{"name": "app", "version": "1.0.0", "private": true}' >"$d/app/package.json"
out=$(cd "$d/app" && npm install --offline --no-audit --no-fund \
          --cache "$d/npm-cache" --loglevel=error "$tgz" 2>&1)
check $? "npm install --offline of the tarball into a fresh project"
[ -z "$out" ] || echo "$out" | tail -5 | sed 's/^/# /'
out=$(cd "$d/app" && "$NODE" "$SRC/test/dist/npm_use.js" "$d/work" 2>&1)
rc=$?
while IFS= read -r line; do
    case $line in
        "ok "*) check 0 "node: ${line#* - }" ;;
        "not ok "*) check 1 "node: ${line#* - }" ;;
        "1.."*) ;;
        *) echo "# $line" ;;
    esac
done <<<"$out"
[ $rc = 0 ]; check $? "node exits 0"
echo "1..$n"
[ $failed = 0 ]
