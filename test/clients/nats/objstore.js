// The other side of the nats backend's tests: the official NATS client
// (npm nats, pinned in package-lock.json) reads and writes the object
// store the extension uses, so each side is checked against the other.
//
//   node objstore.js SERVER BUCKET list            JSON: [{name, size, chunks,
//                                                   digest, timestamp}] of the
//                                                   live objects, by name
//   node objstore.js SERVER BUCKET get NAME FILE   the object's bytes into FILE
//                                                   (the client checks the
//                                                   SHA-256 digest)
//   node objstore.js SERVER BUCKET put NAME FILE [TIME]
//                                                   stores FILE as NAME, with
//                                                   Litestream-Timestamp TIME
//   node objstore.js SERVER BUCKET delete NAME
//   node objstore.js SERVER BUCKET metas           the number of metadata
//                                                   subjects (deleted too)
//   node objstore.js SERVER BUCKET corrupt NAME    publishes NAME's metadata
//                                                   again with a wrong digest
//
// SERVER is host:port; NATS_USER and NATS_PASS give the credentials.
// Prints errors on stderr and exits 1.
"use strict";
const fs = require("fs");
const { connect, headers } = require("nats");

// The Litestream-Timestamp header of raw metadata ({key: [values]}).
function stamp(h) {
  const v = h ? h["Litestream-Timestamp"] : undefined;
  return Array.isArray(v) ? v[0] : v || "";
}

async function main() {
  const [server, bucket, cmd, name, file, time] = process.argv.slice(2);
  const opts = { servers: server, timeout: 5000 };
  if (process.env.NATS_USER) {
    opts.user = process.env.NATS_USER;
    opts.pass = process.env.NATS_PASS || "";
  }
  const nc = await connect(opts);
  try {
    const os = await nc.jetstream().views.os(bucket);
    if (cmd === "list") {
      const infos = await os.list();
      const out = infos.filter((i) => !i.deleted).map((i) => ({
        name: i.name,
        size: i.size,
        chunks: i.chunks,
        digest: i.digest,
        timestamp: stamp(i.headers),
      }));
      out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      process.stdout.write(JSON.stringify(out) + "\n");
    } else if (cmd === "get") {
      const data = await os.getBlob(name);
      if (data === null) throw new Error(`no object ${name}`);
      fs.writeFileSync(file, data);
    } else if (cmd === "put") {
      const meta = { name };
      if (time) {
        meta.headers = headers();
        meta.headers.set("Litestream-Timestamp", time);
      }
      await os.putBlob(meta, new Uint8Array(fs.readFileSync(file)));
    } else if (cmd === "corrupt") {
      const subj = `$O.${bucket}.M.` + Buffer.from(name).toString("base64")
        .replace(/\+/g, "-").replace(/\//g, "_");
      const jsm = await nc.jetstreamManager();
      const m = await jsm.streams.getMessage(`OBJ_${bucket}`,
        { last_by_subj: subj });
      const info = JSON.parse(new TextDecoder().decode(m.data));
      const d = info.digest;
      info.digest = d.slice(0, 10) + (d[10] === "A" ? "B" : "A") + d.slice(11);
      const h = headers();
      h.set("Nats-Rollup", "sub");
      await nc.jetstream().publish(subj, JSON.stringify(info), { headers: h });
    } else if (cmd === "metas") {
      const jsm = await nc.jetstreamManager();
      const si = await jsm.streams.info(`OBJ_${bucket}`,
        { subjects_filter: `$O.${bucket}.M.>` });
      process.stdout.write(Object.keys(si.state.subjects || {}).length + "\n");
    } else if (cmd === "delete") {
      await os.delete(name);
    } else {
      throw new Error(`unknown command ${cmd}`);
    }
  } finally {
    await nc.close();
  }
}

main().catch((e) => {
  process.stderr.write(`objstore.js: ${e && e.message ? e.message : e}\n`);
  process.exit(1);
});
