// s3rver-conditional.js: preload (node -r) that gives s3rver 4.0.4 the
// conditional PUTs of real S3 (since 2024): "If-None-Match: *" stores the
// object only if the key is absent, "If-Match: ETAG" only if the current
// object has that ETag; otherwise 412 PreconditionFailed and nothing is
// stored.  s3rver itself ignores both headers (it overwrites), so the
// writer lease (storage/backend/s3_cond.c) could not be tested without it.
// The check and the write run under a per-key queue, so two conditional
// PUTs of one key never interleave (node runs one request at a time only
// between awaits).
'use strict';
const fs = require('fs');
const path = require('path');
const pkgDir = path.dirname(
  require.resolve('@20minutes/s3rver/package.json', { paths: [__dirname] }));
const ctrl = require(path.join(pkgDir, 'lib/controllers/object.js'));
const S3Error = require(path.join(pkgDir, 'lib/models/error.js'));
const putObject = ctrl.putObject;
const queues = new Map();

async function serialized(key, fn) {
  const prev = queues.get(key) || Promise.resolve();
  let release;
  const mine = new Promise((r) => { release = r; });
  const tail = prev.then(() => mine);
  queues.set(key, tail);
  await prev;
  try {
    return await fn();
  } finally {
    release();
    if (queues.get(key) === tail) queues.delete(key);
  }
}

// The current ETag of an object (quoted), or null when it does not exist.
async function currentEtag(ctx) {
  const { bucket, key } = ctx.params;
  if (!(await ctx.store.existsObject(bucket, key))) return null;
  const p = ctx.store.getResourcePath(bucket, key, 'object');
  const md5 = await fs.promises.readFile(`${p}.md5`, 'utf8');
  return `"${md5.trim()}"`;
}

const unquote = (s) => s.trim().replace(/^W\//, '').replace(/^"|"$/g, '');

ctrl.putObject = async function conditionalPut(ctx) {
  const ifNone = ctx.headers['if-none-match'];
  const ifMatch = ctx.headers['if-match'];
  if (!ifNone && !ifMatch) return putObject.call(this, ctx);
  return serialized(`${ctx.params.bucket}/${ctx.params.key}`, async () => {
    const etag = await currentEtag(ctx);
    const holds = ifNone
      ? ifNone.trim() === '*' && etag === null
      : etag !== null && unquote(ifMatch) === unquote(etag);
    if (!holds) {
      throw new S3Error('PreconditionFailed',
        'At least one of the pre-conditions you specified did not hold',
        { Condition: ifNone ? 'If-None-Match' : 'If-Match' });
    }
    return putObject.call(this, ctx);
  });
};
