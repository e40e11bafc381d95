// litestream-ext: the litestream SQLite extension, packaged for Node.
//
//   const Database = require('better-sqlite3');
//   const litestream = require('litestream-ext');
//   litestream.load(new Database(':memory:'));   // once per process
//   const db = new Database('app.db');           // opened after: replicable
//   db.pragma("litestream_url = 's3://my-bucket/app'");
//
// getLoadablePath() is the path of litestream.so for any SQLite host.
'use strict';
const fs = require('fs');
const path = require('path');

const NO_LIBS = ' (litestream.so needs libcurl, OpenSSL 3, jansson and lz4 ' +
  'from the system: on Debian/Ubuntu, apt-get install libcurl4 libssl3 ' +
  'libjansson4 liblz4-1)';
const NODE_SQLITE = ' (node:sqlite loads extensions only from a database ' +
  'opened with new DatabaseSync(file, { allowExtension: true }), Node ' +
  '22.13/23.5 and later)';

// The absolute path of litestream.so inside this package.
function getLoadablePath() {
  return path.join(__dirname, 'lib', 'litestream.so');
}

// Loads the extension into db: a better-sqlite3 Database, or a node:sqlite
// DatabaseSync opened with { allowExtension: true }.  The first load
// registers the litestream VFS and SQL functions for the whole process:
// databases opened after it can be replicated.  Loading again is harmless.
// Throws with what to do when the host refuses extensions or the library's
// dependencies are missing.
function load(db) {
  if (!db || typeof db.loadExtension !== 'function') {
    throw new TypeError('litestream-ext: load(db) takes a better-sqlite3 ' +
      'Database or a node:sqlite DatabaseSync' + NODE_SQLITE);
  }
  try {
    db.loadExtension(getLoadablePath());
  } catch (e) {
    const msg = String(e && e.message);
    if (/cannot open shared object file/.test(msg) &&
        fs.existsSync(getLoadablePath())) {
      e.message = msg + NO_LIBS;
    } else if (/extension.*disabled|allowExtension/i.test(msg)) {
      e.message = msg + NODE_SQLITE;
    }
    throw e;
  }
}

module.exports = { getLoadablePath, load };
