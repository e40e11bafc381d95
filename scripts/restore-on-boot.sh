#!/bin/sh
# Restore-on-boot (docs/deploy.md): before the application starts, restore
# its database from the replica unless the database is already there; on a
# first deployment (nothing in the replica yet) start empty.  Any other
# failure (replica unreachable, credentials refused, corrupt object) stops
# the boot with the reason, instead of starting on an empty database.
#
#   LITESTREAM_SO=/usr/lib/litestream.so \
#   LITESTREAM_URL=s3://bucket/app DB=/data/app.db  restore-on-boot.sh [cmd ...]
#
# With a command, runs it afterwards (exec), as a container entrypoint.
set -eu
: "${LITESTREAM_SO:?set LITESTREAM_SO to the path of litestream.so}"
: "${LITESTREAM_URL:?set LITESTREAM_URL to the replica URL}"
: "${DB:?set DB to the database path}"
sq() { printf "%s" "$1" | sed "s/'/''/g"; }
sqlite3 -bail :memory: ".load '${LITESTREAM_SO%.so}'" \
    "SELECT litestream_restore('$(sq "$LITESTREAM_URL")', '$(sq "$DB")', NULL,
                               'if-not-exists, if-replica-exists');"
[ $# -eq 0 ] || exec "$@"
