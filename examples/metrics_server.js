// Serves litestream_metrics() on http://127.0.0.1:9090/metrics (Node with
// better-sqlite3; the extension loaded with db.loadExtension(path)).
//   node metrics_server.js /path/to/litestream.so app.db
const http = require("http");
const Database = require("better-sqlite3");

const [so, file] = process.argv.slice(2);
const db = new Database(file);
db.loadExtension(so);
const metrics = db.prepare("SELECT litestream_metrics() AS m");

http.createServer((req, res) => {
  if (req.url !== "/metrics") {
    res.writeHead(404).end();
    return;
  }
  const body = metrics.get().m;
  res.writeHead(200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"});
  res.end(body);
}).listen(9090, "127.0.0.1");
