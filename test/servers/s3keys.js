// s3keys.js: preload (node -r) that adds access keys to s3rver's only
// account, next to the built-in S3RVER/S3RVER.
//   S3RVER_EXTRA_KEYS="AKIATESTKEY:testsecret[,ID:SECRET...]"
'use strict';
const path = require('path');
const pkgDir = path.dirname(
  require.resolve('@20minutes/s3rver/package.json', { paths: [__dirname] }));
const account = require(path.join(pkgDir, 'lib/models/account.js'));
for (const pair of (process.env.S3RVER_EXTRA_KEYS || '').split(',')) {
  const i = pair.indexOf(':');
  if (i > 0) account.DUMMY_ACCOUNT.createKeyPair(pair.slice(0, i), pair.slice(i + 1));
}
