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
// The node this runs on: test/tools/node (scripts/deps.sh test installs
// it) when it is there, which meson finds before any node on PATH.
console.log(`# node ${process.version} (${process.execPath})`);
const major = Number(process.versions.node.split('.')[0]);
check(major >= 20, `node ${process.version} is one better-sqlite3 12 supports (20 or later)`);
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

// Loading again (better-sqlite3 loads through the C API only; SQL
// load_extension() stays disabled there): into the same connection, a new
// one and a database's own one, and from worker threads at once.  Each
// load succeeds and leaves one set of functions.
const fs = require('fs');
const os = require('os');
const { Worker } = require('worker_threads');
const nf = (c) => c.prepare("SELECT count(*) AS n FROM pragma_function_list " +
                            "WHERE name LIKE 'litestream%'").get().n;
const load = (c, times) => {
  try {
    for (let i = 0; i < times; i++) c.loadExtension(so);
    return null;
  } catch (e) {
    return e.message;
  }
};
const one = nf(db);
let e = load(db, 3);
check(e === null && nf(db) === one, `node: loadExtension() 3 more times into one connection; one set of ${one} functions (${e})`);
const db3 = new Database(':memory:');
e = load(db3, 2);
check(e === null && nf(db3) === one, `node: loadExtension() into a new connection (${e})`);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ls-load-node-'));
const app = new Database(path.join(dir, 'app.db'));
app.pragma('journal_mode = WAL');
app.pragma(`litestream_url = 'file://${dir}/replica'`);
app.exec('CREATE TABLE t(x)');
e = load(app, 2);
app.exec('INSERT INTO t VALUES (1)');
const txid = app.prepare('SELECT litestream_sync() AS t').get().t;
check(e === null && nf(app) === one && txid >= 2,
      `node: loads into the database's own connection; it still replicates (TXID ${txid}, ${e})`);
app.close();
fs.rmSync(dir, { recursive: true, force: true });

const src = `
const { parentPort, workerData } = require('worker_threads');
const Database = require(workerData.mod);
const c = new Database(':memory:');
let r;
try {
  for (let i = 0; i < 10; i++) c.loadExtension(workerData.so);
  r = c.prepare("SELECT count(*) AS n FROM pragma_function_list " +
                "WHERE name LIKE 'litestream%'").get().n;
} catch (e) { r = e.message; }
parentPort.postMessage(r);`;
const mod = path.join(__dirname, 'node', 'node_modules', 'better-sqlite3');
Promise.all([...Array(4).keys()].map(() => new Promise((resolve) => {
  const w = new Worker(src, { eval: true, workerData: { so, mod } });
  w.on('message', resolve);
  w.on('error', (err) => resolve(err.message));
}))).then((res) => {
  check(res.every((r) => r === one),
        `node: 4 worker threads loading 10 times each at once (${res.join(', ')})`);
  console.log(`1..${n}`);
  process.exit(failed ? 1 : 0);
});
