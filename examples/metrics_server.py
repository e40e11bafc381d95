"""Serves litestream_metrics() on http://HOST:PORT/metrics for Prometheus.

    import sqlite3, metrics_server
    con = sqlite3.connect("app.db")          # extension loaded before
    metrics_server.serve(con, port=9090)     # a daemon thread

The connection is only used to call the function: every database this
process replicates is in the output, whichever connection asks.
"""
import http.server
import threading


def serve(con, host="127.0.0.1", port=9090):
    """Starts the server in a daemon thread; returns it (.server_address)."""
    lock = threading.Lock()  # a sqlite3 connection is not for two threads

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/metrics":
                self.send_error(404)
                return
            with lock:
                body = con.execute("SELECT litestream_metrics()").fetchone()[0]
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type",
                             "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
