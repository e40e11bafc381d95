// s3rver-cli.js: starts @20minutes/s3rver 4.0.4 (its npm tarball lacks the
// bin/s3rver.js the package.json names).  Same flags as the s3rver CLI:
//   node -r ./s3keys.js -r ./s3rver-walkfix.js s3rver-cli.js -d DIR -p PORT ...
// Exits when its parent process (S3RVER_PARENT_PID, else the one at start)
// goes away (checked twice a second), so a test runner that dies without
// cleaning up does not leave a server behind; it then also removes the
// directory named by S3RVER_ORPHAN_RMDIR, if set (the runner's temp dir).
'use strict';
const fs = require('fs');
const path = require('path');
const pkgDir = path.dirname(
  require.resolve('@20minutes/s3rver/package.json', { paths: [__dirname] }));
const parent = Number(process.env.S3RVER_PARENT_PID) || process.ppid;
setInterval(() => {
  if (process.ppid === parent) return;
  const dir = process.env.S3RVER_ORPHAN_RMDIR;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}, 500).unref();
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
require(path.join(pkgDir, 'lib/cli.js')).parseAsync(process.argv)
  .catch((err) => { console.error(err); process.exit(1); });
