"""Self-test of the S3 test infrastructure (test/servers/servers.py).

Proves, with the curl command line as the client, what the S3 backend tests
rely on: @20minutes/s3rver stores and lists objects and really checks SigV4
signatures (both configured key pairs), the walk fix makes delimiter and
paged listings correct, the atomic-put fix keeps torn uploads out,
FaultProxy passes requests through unchanged (keep-alive, Expect:
100-continue, chunked bodies), each fault is seen by a client as intended,
and no node process survives its test, even when the Python process that
started it dies.  TAP output.
"""
import http.server
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "servers"))
import servers  # noqa: E402
from servers import FaultProxy, S3Server  # noqa: E402

_n = 0
_failed = 0
TMP = tempfile.mkdtemp(prefix="ls-servers-test-")


def ok(cond, what, detail=None):
    global _n, _failed
    _n += 1
    if not cond:
        _failed += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (_n, what), flush=True)
    if not cond and detail is not None:
        diag(detail)
    return cond


def diag(msg):
    for line in str(msg).splitlines():
        print("# " + line, flush=True)


def curl(url, *args, key="S3RVER", secret="S3RVER", max_time=10, sign=True):
    """Run curl; return (exit code, http status, body bytes, stderr)."""
    out = os.path.join(TMP, "body")
    if os.path.exists(out):
        os.unlink(out)
    cmd = ["curl", "-sS", "-o", out, "-w", "%{http_code}",
           "--max-time", str(max_time)]
    if sign:
        cmd += ["--aws-sigv4", "aws:amz:us-east-1:s3",
                "--user", "%s:%s" % (key, secret),
                "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]
    r = subprocess.run(cmd + list(args) + [url], capture_output=True)
    body = open(out, "rb").read() if os.path.exists(out) else b""
    status = int(r.stdout or 0)
    return r.returncode, status, body, r.stderr.decode(errors="replace")


def put(base, name, data, *args, **kw):
    path = os.path.join(TMP, "upload")
    with open(path, "wb") as f:
        f.write(data)
    return curl(base + "/testbucket/" + name, "-T", path, *args, **kw)


def q(s):
    return urllib.parse.quote(s, safe="")


def list_all(base, prefix, max_keys, delimiter=None):
    """ListObjectsV2 page by page (query in sorted order for curl 7.88).
    Returns (keys, common prefixes, pages) or raises on an error."""
    keys, prefixes, pages, token = [], [], 0, None
    while True:
        params = []
        if token:
            params.append("continuation-token=" + q(token))
        if delimiter:
            params.append("delimiter=" + q(delimiter))
        params += ["list-type=2", "max-keys=%d" % max_keys,
                   "prefix=" + q(prefix)]
        rc, st, body, err = curl(base + "/testbucket?" + "&".join(params))
        if rc or st != 200:
            raise RuntimeError("list page %d: rc=%d status=%d %s %s"
                               % (pages, rc, st, body[:300], err))
        text = body.decode()
        pages += 1
        keys += re.findall(r"<Key>([^<]*)</Key>", text)
        prefixes += re.findall(
            r"<CommonPrefixes><Prefix>([^<]*)</Prefix>", text)
        m = re.search(r"<NextContinuationToken>([^<]*)<", text)
        if "<IsTruncated>true" not in text:
            return keys, prefixes, pages
        if not m or pages > 20:
            raise RuntimeError("truncated page without a token: " + text)
        token = m.group(1)


def node_pids_for(needle):
    """PIDs of live processes whose command line contains needle."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open("/proc/%s/stat" % d) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmd and state != "Z":
            pids.append(int(d))
    return pids


def wait_gone(needle, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not node_pids_for(needle):
            return True
        time.sleep(0.05)
    return False


def test_s3rver(s3, px):
    e = s3.endpoint
    rc, st, body, err = put(e, "db/gen/0001.ltx", b"hello\n")
    ok(rc == 0 and st == 200, "PUT directly -> 200", (rc, st, body, err))
    ok(os.path.exists(s3.object_path("db/gen/0001.ltx")),
       "object stored as <data_dir>/<bucket>/<key>._S3rver_object")
    rc, st, body, err = curl(e + "/testbucket/db/gen/0001.ltx")
    ok(st == 200 and body == b"hello\n", "GET directly returns the bytes",
       (rc, st, body, err))
    keys, _, _ = list_all(e, "db/", 1000)
    ok(keys == ["db/gen/0001.ltx"], "LIST directly finds the key", keys)

    rc, st, body, err = curl(e + "/testbucket/db/gen/0001.ltx",
                             secret="WRONGSECRET")
    ok(st == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body,
       "wrong secret -> 403 SignatureDoesNotMatch", (st, body[:200]))
    rc, st, body, err = curl(e + "/testbucket/db/gen/0001.ltx",
                             key="AKIANOSUCHKEY", secret="x")
    ok(st == 403 and b"<Code>InvalidAccessKeyId</Code>" in body,
       "unknown key id -> 403 InvalidAccessKeyId", (st, body[:200]))
    rc, st, body, err = curl(e + "/nosuchbucket/x")
    ok(st == 404 and b"<Code>NoSuchBucket</Code>" in body,
       "missing bucket -> 404 NoSuchBucket", (st, body[:200]))
    rc, st, body, err = put(e, "k2/obj", b"second key", key=s3.key2,
                            secret=s3.secret2)
    rc2, st2, body2, _ = curl(e + "/testbucket/k2/obj", key=s3.key2,
                              secret=s3.secret2)
    ok(st == 200 and st2 == 200 and body2 == b"second key",
       "second key pair %s works for PUT and GET" % s3.key2, (st, st2, body))
    rc, st, body, err = curl(e + "/testbucket/k2/obj", key=s3.key2,
                             secret=s3.secret)
    ok(st == 403, "second key with the wrong secret -> 403", st)


def test_s3rver_fixes(s3, px):
    e = s3.endpoint
    # The atomic-put fix: a body that breaks off stores nothing.
    put(e, "torn/old", b"A" * 1000)
    for name in ("torn/old", "torn/new"):
        c = socket.create_connection((s3.host, s3.port))
        c.sendall(b"PUT /testbucket/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                  b"Content-Length: 100000\r\n\r\n" % (name.encode(),
                                                         s3.port)
                  + b"B" * 50000)
        time.sleep(0.2)
        c.close()
    time.sleep(0.3)
    rc, st, body, err = curl(e + "/testbucket/torn/old")
    ok(body == b"A" * 1000 and s3.stored_keys() and
       "torn/new" not in s3.stored_keys() and
       not [f for f in os.listdir(os.path.dirname(s3.object_path("torn/x")))
            if "partial" in f],
       "a PUT cut off mid-body stores nothing (old object intact)",
       (st, len(body), s3.stored_keys()))

    # The walk fix: deep common prefixes, and key order across pages.
    for k in ("x/generations/abc/wal/1.ltx", "x/generations/top.txt",
              "o/a/x", "o/a-1", "o/a"):
        put(e, k, b"x")
    keys, prefixes, _ = list_all(e, "x/generations/", 1000, delimiter="/")
    ok(keys == ["x/generations/top.txt"] and
       prefixes == ["x/generations/abc/"],
       "delimiter listing reports a prefix with only deeper objects",
       (keys, prefixes))
    keys, _, pages = list_all(e, "o/", 1)
    ok(keys == ["o/a", "o/a-1", "o/a/x"] and pages == 3,
       "paged listing returns keys in byte order, none lost", (keys, pages))


def test_multipart(s3, px):
    """Multipart works, but cannot be aborted."""
    e = s3.endpoint
    rc, st, body, err = curl(e + "/testbucket/mp.bin?uploads=", "-X", "POST")
    m = re.search(rb"<UploadId>([^<]+)<", body)
    ok(st == 200 and m, "multipart: initiate", (st, body[:200]))
    up = m.group(1).decode() if m else "none"
    part = os.urandom(300 * 1024)
    hdrs = os.path.join(TMP, "hdrs")
    rc, st, _, _ = put(e, "mp.bin?partNumber=1&uploadId=" + q(up), part,
                       "-D", hdrs)
    etag = re.search(r"(?im)^etag:\s*(\S+)", open(hdrs).read())
    xml = ("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
           "<ETag>%s</ETag></Part></CompleteMultipartUpload>"
           % (etag.group(1) if etag else ""))
    rc, st, body, err = curl(e + "/testbucket/mp.bin?uploadId=" + q(up),
                             "-X", "POST", "--data-binary", xml)
    rc2, st2, body2, _ = curl(e + "/testbucket/mp.bin")
    ok(st == 200 and body2 == part and not s3.pending_uploads(),
       "multipart: upload part + complete gives the bytes back",
       (st, body[:200], st2, len(body2)))
    rc, st, body, err = curl(e + "/testbucket/mp2.bin?uploads=", "-X", "POST")
    m = re.search(rb"<UploadId>([^<]+)<", body)
    up = m.group(1).decode() if m else "none"
    rc, st, body, err = curl(e + "/testbucket/mp2.bin?uploadId=" + q(up),
                             "-X", "DELETE")
    ok(st == 405 and s3.pending_uploads() == [up],
       "multipart: abort is 405 and the upload stays in ._S3rver_uploads",
       (st, s3.pending_uploads()))


def test_proxy_passthrough(s3, px):
    e = px.endpoint
    rc, st, body, err = put(e, "p/one", b"via proxy")
    rc2, st2, body2, _ = curl(e + "/testbucket/p/one")
    ok(st == 200 and st2 == 200 and body2 == b"via proxy",
       "PUT + GET through the proxy", (rc, st, err, st2, body2))
    keys, _, _ = list_all(e, "p/", 1000)
    ok(keys == ["p/one"], "LIST through the proxy", keys)
    recs = px.requests(path_regex=r"^/testbucket/p/one$")
    ok([(r.method, r.status, r.bytes_in, r.bytes_out) for r in recs] ==
       [("PUT", 200, 9, 0), ("GET", 200, 0, 9)],
       "proxy log: method, path, status, bytes in/out", recs)
    rc, st, body, err = curl(e + "/testbucket/p/one", "-I")
    rc2, st2, _, _ = curl(e + "/testbucket/p/gone", "-X", "DELETE")
    ok(rc == 0 and st == 200 and rc2 == 0 and st2 == 204,
       "HEAD (no body) and DELETE (204) through the proxy", (rc, st, err))
    rc, st, body, err = curl(e + "/testbucket/p/one", secret="WRONG")
    ok(st == 403 and b"SignatureDoesNotMatch" in body,
       "wrong secret through the proxy -> 403", st)

    px.clear_log()
    out1, out2 = os.path.join(TMP, "o1"), os.path.join(TMP, "o2")
    r = subprocess.run(
        ["curl", "-sS", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user",
         "S3RVER:S3RVER", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
         "-o", out1, e + "/testbucket/p/one",
         "-o", out2, e + "/testbucket/p/one"], capture_output=True)
    conns = {x.conn for x in px.log}
    ok(r.returncode == 0 and len(px.log) == 2 and len(conns) == 1,
       "keep-alive: two requests on one client connection", px.log)

    big = os.urandom(200 * 1024)
    path = os.path.join(TMP, "big")
    with open(path, "wb") as f:
        f.write(big)
    rc, st, body, err = curl(e + "/testbucket/p/big", "-T", path, "-v",
                             "-H", "Expect: 100-continue")
    rc2, st2, body2, _ = curl(e + "/testbucket/p/big")
    ok(st == 200 and "HTTP/1.1 100 Continue" in err and body2 == big,
       "Expect: 100-continue is forwarded and the body arrives",
       (st, err[-500:]))
    r = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
         "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "S3RVER:S3RVER",
         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-T", "-",
         e + "/testbucket/p/chunked"], input=b"chunk" * 1000,
        capture_output=True)
    rec = px.requests("PUT", "/p/chunked")
    rc2, st2, body2, _ = curl(e + "/testbucket/p/chunked")
    ok(r.stdout == b"200" and body2 == b"chunk" * 1000 and rec and
       rec[0].bytes_in > 5000,
       "chunked request body passes through", (r.stdout, r.stderr, rec))


def test_proxy_paging(s3, px):
    e = px.endpoint
    for i in range(5):
        put(e, "pages/k%d" % i, b"%d" % i)
    px.clear_log()
    try:
        keys, _, pages = list_all(e, "pages/", 2)
    except RuntimeError as ex:
        keys, pages = str(ex), 0
    ok(keys == ["pages/k%d" % i for i in range(5)] and pages == 3 and
       len(px.requests("GET", "continuation-token=")) == 2,
       "max-keys=2 listing over 3 pages with continuation tokens via proxy",
       (keys, pages))


def test_fault_statuses(s3, px):
    e = px.endpoint
    put(s3.endpoint, "f/obj", b"F" * 10000)
    for code, s3code in ((500, "InternalError"), (503, "ServiceUnavailable"),
                         (429, "SlowDown")):
        px.add_rule("PUT", r"^/testbucket/f/new", "status", code=code)
        rc, st, body, err = put(e, "f/new%d" % code, b"data")
        px.clear_rules()
        rec = px.requests("PUT", "/f/new%d" % code)
        ok(st == code and ("<Code>%s</Code>" % s3code).encode() in body and
           rec and not rec[0].forwarded and rec[0].bytes_in == 4 and
           "f/new%d" % code not in s3.stored_keys(),
           "status %d: %s body, request read, upstream untouched"
           % (code, s3code), (st, body[:200], rec))


def test_fault_resets(s3, px):
    e = px.endpoint
    px.add_rule("GET", "/f/obj", "reset")
    rc, st, body, err = curl(e + "/testbucket/f/obj")
    ok(rc == 56 and px.requests(fault="reset"),
       "reset on GET -> curl error 56", (rc, err))
    rc, st, body, err = put(e, "f/reset", b"never stored")
    ok(rc == 0 and st == 200, "reset rule only matches GET", (rc, st))
    px.clear_rules()
    px.add_rule("PUT", fault="reset")
    rc, st, body, err = put(e, "f/reset-put", b"never stored")
    px.clear_rules()
    ok(rc == 56 and "f/reset-put" not in s3.stored_keys(),
       "reset on PUT -> curl 56, nothing stored", (rc, err))
    px.add_rule("PUT", fault="reset_after_upstream")
    rc, st, body, err = put(e, "f/written", b"stored anyway")
    px.clear_rules()
    rc2, st2, body2, _ = curl(s3.endpoint + "/testbucket/f/written")
    ok(rc == 56 and body2 == b"stored anyway",
       "reset_after_upstream -> curl 56, but the write happened", (rc, err))


def test_fault_timing(s3, px):
    e = px.endpoint
    px.add_rule(fault="stall", seconds=5)
    t = time.monotonic()
    rc, st, body, err = curl(e + "/testbucket/f/obj", max_time=1)
    t = time.monotonic() - t
    px.clear_rules()
    ok(rc == 28 and t < 2.5, "stall -> curl --max-time 1 times out (28)",
       (rc, t, err))

    px.add_rule("GET", fault="truncate")
    rc, st, body, err = curl(e + "/testbucket/f/obj")
    px.clear_rules()
    rec = px.requests(fault="truncate")
    ok(rc == 18 and rec and rec[-1].bytes_out == 5000,
       "truncate -> curl error 18 after half the body", (rc, err, rec))

    px.add_rule("GET", fault="delay", seconds=0.5)
    t = time.monotonic()
    rc, st, body, err = curl(e + "/testbucket/f/obj")
    t = time.monotonic() - t
    px.clear_rules()
    ok(rc == 0 and st == 200 and len(body) == 10000 and t >= 0.5,
       "delay 0.5 s -> answer arrives late but intact", (rc, st, t))


def test_rule_counting(s3, px):
    e = px.endpoint
    px.add_rule("GET", "/f/obj", "status", count=2, code=503)
    sts = [curl(e + "/testbucket/f/obj")[1] for _ in range(3)]
    px.clear_rules()
    ok(sts == [503, 503, 200], "count=2: two faults, then pass", sts)
    r = px.add_rule("GET", "/f/obj", "status", every=2, code=500)
    sts = [curl(e + "/testbucket/f/obj")[1] for _ in range(4)]
    px.remove_rule(r)
    ok(sts == [200, 500, 200, 500] and r.applied == 2,
       "every=2: every second matching request", sts)
    ok(px.counts.get("GET", 0) > 10 and px.counts.get("PUT", 0) > 5,
       "counters by method", px.counts)


class _Chunky(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in (b"alpha-", b"beta-", b"gamma"):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *a):
        pass


def test_chunked_upstream():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Chunky)
    srv.daemon_threads = True
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        with FaultProxy(("127.0.0.1", srv.server_address[1])) as px:
            rc, st, body, err = curl(px.endpoint + "/c", sign=False)
            ok(rc == 0 and body == b"alpha-beta-gamma",
               "chunked upstream response relayed", (rc, body, err))
            px.add_rule(fault="truncate")
            rc, st, body, err = curl(px.endpoint + "/c", sign=False)
            ok(rc == 18 and body == b"alpha-be",
               "truncate of a chunked response -> curl 18", (rc, body))
    finally:
        srv.shutdown()
        srv.server_close()


CHILD = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
from servers import S3Server
s = S3Server(buckets=["b"]).start()
print(s.pid, s.data_dir, flush=True)
if sys.argv[2] == "exception":
    raise RuntimeError("test dies with an exception")
time.sleep(60)   # the parent kills us with SIGKILL
"""


def test_no_leftovers(s3, px):
    pid, data_dir, port = s3.pid, s3.data_dir, px.port
    px.stop()
    s3.stop()
    ok(not os.path.exists("/proc/%d" % pid) and not node_pids_for(data_dir),
       "after stop() no node process of this server remains")
    ok(not os.path.exists(data_dir), "stop() removed the temp dir")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        closed = False
    except OSError:
        closed = True
    ok(closed, "after stop() the proxy port is closed")

    here = servers.HERE
    for mode in ("exception", "sigkill"):
        p = subprocess.Popen([sys.executable, "-c", CHILD, here, mode],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = p.stdout.readline().decode().split()
        if mode == "sigkill":
            p.kill()
        p.wait(10)
        p.stdout.close()
        p.stderr.close()
        needle = line[1] if len(line) == 2 else "<no server started>"
        ok(len(line) == 2 and wait_gone(needle, 3),
           "python dies (%s): its node process exits too" % mode, line)
        tmp = os.path.dirname(needle)
        deadline = time.monotonic() + 2
        while os.path.exists(tmp) and time.monotonic() < deadline:
            time.sleep(0.05)
        ok(len(line) == 2 and not os.path.exists(tmp),
           "python dies (%s): the server's temp dir is removed" % mode, tmp)


def main():
    if not os.path.exists(os.path.join(servers.S3RVER_PKG, "package.json")):
        print("1..0 # SKIP s3rver is not installed: run scripts/deps.sh test")
        return
    print("# node %s (%s)" % (subprocess.run([servers.NODE, "--version"],
                                             capture_output=True,
                                             text=True).stdout.strip(),
                              servers.NODE))
    t0 = time.monotonic()
    s3 = S3Server(buckets=["testbucket"])
    px = None
    try:
        s3.start()
        ok(s3.running and s3.port and
           s3.endpoint == "http://127.0.0.1:%d" % s3.port,
           "s3rver ready in %.2f s at %s" % (time.monotonic() - t0,
                                             s3.endpoint))
        px = FaultProxy((s3.host, s3.port)).start()
        for step in (test_s3rver, test_s3rver_fixes, test_multipart,
                     test_proxy_passthrough, test_proxy_paging,
                     test_fault_statuses,
                     test_fault_resets, test_fault_timing,
                     test_rule_counting):
            try:
                step(s3, px)
            except Exception as ex:
                ok(False, "%s raised %r" % (step.__name__, ex))
                px.clear_rules()
        test_chunked_upstream()
        test_no_leftovers(s3, px)
    except Exception as ex:
        ok(False, "unexpected %r" % ex)
        diag(s3.log_text())
    finally:
        if px:
            px.stop()
        s3.stop()
        subprocess.run(["rm", "-rf", TMP])
    diag("took %.1f s" % (time.monotonic() - t0))
    print("1..%d" % _n, flush=True)
    sys.exit(1 if _failed else 0)


if __name__ == "__main__":
    main()
