// s3rver-atomicput.js: preload (node -r) that makes PUT atomic in s3rver
// 4.0.4.  The filesystem store streams a request body straight into
// <key>._S3rver_object, so a client that disconnects mid-body leaves a
// truncated object behind: listed, served with 200, replacing the old one.
// Real S3 stores nothing then.  Here the body goes to a temp file next to
// it (not listed: no ._S3rver_object suffix) that is renamed into place
// once complete, and removed if the body breaks off.  Parts of multipart
// uploads go through the same function.
'use strict';
const fs = require('fs');
const path = require('path');
const pkgDir = path.dirname(
  require.resolve('@20minutes/s3rver/package.json', { paths: [__dirname] }));
const Store = require(path.join(pkgDir, 'lib/stores/filesystem.js'));
const putContent = Store.prototype.putContent;
let seq = 0;

Store.prototype.putContent = async function (objectPath, content) {
  const tmp = `${objectPath}.partial-${process.pid}-${++seq}`;
  try {
    const result = await putContent.call(this, tmp, content);
    await fs.promises.rename(tmp, objectPath);
    return result;
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
};
