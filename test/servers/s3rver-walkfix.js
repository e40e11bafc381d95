// s3rver-walkfix.js: preload (node -r) that fixes two listing bugs of
// s3rver 4.0.4, both in the directory walk under ListObjects:
// 1. With a delimiter, the walk skips every directory below a common
//    prefix, so a prefix is reported only when an object sits exactly one
//    level below it ("x/gen/abc/wal/1.ltx" alone never yields "x/gen/abc/").
// 2. The walk yields files in per-directory readdir order, which is not key
//    order ("a/x" comes before "a-1"), while pages continue after the last
//    key returned (key <= token is skipped): keys can vanish across pages.
// The replacement walks everything and yields object files sorted by key
// (UTF-8 byte order, like S3).  listObjects still filters by prefix,
// start-after and delimiter.  Must be loaded before s3rver's filesystem
// store, which copies `walk` out of utils when it is first required.
'use strict';
const fs = require('fs');
const path = require('path');
const pkgDir = path.dirname(
  require.resolve('@20minutes/s3rver/package.json', { paths: [__dirname] }));
const utils = require(path.join(pkgDir, 'lib/utils.js'));
const SUFFIX = /\._S3rver_[^/]*$/;

function collect(dir, out) {
  for (const name of fs.readdirSync(dir)) {
    const p = path.posix.join(dir, name);
    if (fs.statSync(p).isDirectory()) collect(p, out);
    else out.push({ p, k: Buffer.from(p.replace(SUFFIX, '')) });
  }
  return out;
}

utils.walk = function* walk(dir) {
  const files = collect(dir, []);
  files.sort((a, b) => Buffer.compare(a.k, b.k) || (a.p < b.p ? -1 : 1));
  for (const f of files) yield f.p;
};
