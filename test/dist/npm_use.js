// Run by test/dist/npm.sh in a fresh project that installed the
// litestream-ext tarball: loads it with getLoadablePath() / load() into
// better-sqlite3, replicates and restores (TAP).
'use strict';
const fs = require('fs');
const path = require('path');
const proj = process.cwd();
const want = process.env.LITESTREAM_EXPECT_VERSION;
let n = 0, failed = 0;
function check(cond, what) {
  n++;
  if (!cond) failed++;
  console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${what}`);
}
const ext = require(require.resolve('litestream-ext', { paths: [proj] }));
const Database = require(path.join(process.env.LITESTREAM_SRCDIR, 'test',
  'clients', 'node', 'node_modules', 'better-sqlite3'));
const pkg = JSON.parse(fs.readFileSync(
  path.join(proj, 'node_modules', 'litestream-ext', 'package.json')));
check(pkg.version === want, `package.json version ${pkg.version}`);
const so = ext.getLoadablePath();
check(so.startsWith(path.join(proj, 'node_modules', 'litestream-ext') + '/') &&
  fs.existsSync(so), `getLoadablePath() is inside the project (${so})`);
let err = '';
try { ext.load({}); } catch (e) { err = String(e.message); }
check(/better-sqlite3.*node:sqlite.*allowExtension/.test(err),
  'load() of something that is not a database says what it takes');

const boot = new Database(':memory:');
boot.loadExtension(so);
check(boot.prepare('SELECT litestream_version() AS v').get().v === want,
  `better-sqlite3: loadExtension(getLoadablePath()), litestream_version() = ${want}`);
const dir = process.argv[2];
const db = new Database(path.join(dir, 'app.db'));
ext.load(db);  // again, through load(): harmless
const url = 'file://' + path.join(dir, 'replica');
check(db.pragma(`litestream_url = '${url}'`, { simple: true }) === url,
  'load(db) again, then PRAGMA litestream_url');
db.exec('CREATE TABLE kv(k INTEGER PRIMARY KEY, v BLOB)');
const ins = db.prepare('INSERT INTO kv VALUES (?, randomblob(64))');
db.transaction(() => { for (let i = 0; i < 200; i++) ins.run(i); })();
db.exec('UPDATE kv SET v = zeroblob(3) WHERE k % 3 = 0');
const txid = db.prepare('SELECT litestream_sync() AS t').get().t;
check(txid > 0, `litestream_sync() = ${txid}`);
const out = path.join(dir, 'copy.db');
const s = JSON.parse(db.prepare('SELECT litestream_restore(?, ?) AS s').get(url, out).s);
const copy = new Database(out, { readonly: true });
const q = 'SELECT k, hex(v) AS v FROM kv ORDER BY k';
const a = JSON.stringify(db.prepare(q).all());
const b = copy.prepare(q).all();
check(s.pages > 0 && JSON.stringify(b) === a && b.length === 200 &&
  copy.pragma('integrity_check', { simple: true }) === 'ok',
  `litestream_restore(): an identical copy (${b.length} rows)`);
copy.close();
db.close();
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
