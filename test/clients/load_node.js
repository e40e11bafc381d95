// Loads the real litestream.so into Node through better-sqlite3 (TAP).
// better-sqlite3 carries its own copy of SQLite: this proves the extension
// uses the API table it is handed, not a libsqlite3 of its own.
'use strict';
const path = require('path');
const so = process.env.LITESTREAM_SO;
const want = process.env.LITESTREAM_EXPECT_VERSION;
let n = 0, failed = 0;
function check(cond, what) {
  n++;
  if (!cond) failed++;
  console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${what}`);
}
let Database;
try {
  Database = require(path.join(__dirname, 'node', 'node_modules', 'better-sqlite3'));
} catch (e) {
  check(false, 'better-sqlite3 is installed (run make test): ' + e.message);
  console.log(`1..${n}`);
  process.exit(1);
}
const db = new Database(':memory:');
db.loadExtension(so);
const v = db.prepare('SELECT litestream_version() AS v').get().v;
check(v === want, `node: litestream_version() = ${v}`);
const db2 = new Database(':memory:');
const v2 = db2.prepare('SELECT litestream_version() AS v').get().v;
check(v2 === want, 'node: a later connection has the functions');
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
