// Node (better-sqlite3, which carries its own SQLite) replicating and
// restoring through the extension (TAP).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const so = process.env.LITESTREAM_SO;
let n = 0, failed = 0;
function check(cond, what) {
  n++;
  if (!cond) failed++;
  console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${what}`);
}
const Database = require(path.join(__dirname, 'node', 'node_modules', 'better-sqlite3'));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ls-node-'));
const boot = new Database(':memory:');
boot.loadExtension(so);
const db = new Database(path.join(dir, 'app.db'));
const url = 'file://' + path.join(dir, 'replica');
check(db.pragma(`litestream_url = '${url}'`, { simple: true }) === url,
  'node: PRAGMA litestream_url starts replication');
db.exec('CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB)');
const ins = db.prepare('INSERT INTO kv VALUES (?, randomblob(64))');
const many = db.transaction((k) => { for (let i = 0; i < 50; i++) ins.run(`${k}-${i}`); });
for (let i = 0; i < 20; i++) ins.run(`single-${i}`);
many('batch');
const txid = db.prepare('SELECT litestream_sync() AS t').get().t;
check(txid > 0, `node: litestream_sync() = ${txid}`);
const out = path.join(dir, 'copy.db');
const summary = JSON.parse(db.prepare('SELECT litestream_restore(?, ?) AS s').get(url, out).s);
check(summary.txid && summary.pages > 0, `node: restore summary ${JSON.stringify(summary)}`);
const copy = new Database(out, { readonly: true });
const a = db.prepare('SELECT k, hex(v) AS v FROM kv ORDER BY k').all();
const b = copy.prepare('SELECT k, hex(v) AS v FROM kv ORDER BY k').all();
check(JSON.stringify(a) === JSON.stringify(b) && a.length === 70,
  `node: the restored copy is identical (${b.length} rows)`);
check(copy.pragma('integrity_check', { simple: true }) === 'ok', 'node: integrity_check ok');
copy.close();
db.close();
fs.rmSync(dir, { recursive: true, force: true });
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
