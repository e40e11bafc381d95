"""FaultProxy: an HTTP/1.1 reverse proxy that injects faults (stdlib only).

Sits between a client under test and an upstream server (s3rver).  Requests
pass through byte for byte, the Host header included, so SigV4 signatures
stay valid.  The test adds rules at any time; a matching request then gets
a fault instead of (or on top of) the upstream's answer:

  status                answer `code` (503; 500 InternalError, 503
                        ServiceUnavailable, 429 SlowDown) with an S3 XML
                        error body after reading the whole request; the
                        upstream is not contacted
  reset                 read the whole request, then close with RST
  reset_after_upstream  forward the request (the write happens), read the
                        answer (its status in the record's `upstream`), then
                        close with RST instead of relaying it
  stall                 read the whole request, answer nothing for `seconds`,
                        then close (sooner when the rule is removed with
                        end_stalls=True)
  truncate              forward, then send the head with the full
                        Content-Length but only `fraction` (or `nbytes`) of
                        the body, then close
  delay                 wait `seconds`, then forward normally
  append                forward, then relay the answer with `text` added
                        after its body (Content-Length counting it), then
                        close: a server that wrote its error after a
                        response it had begun (golang.org/x/net/webdav)

Every request is logged (Request records: connection number, method,
path+query, status sent, body bytes in/out, fault, forwarded) and counted
by method.

Threads: one accept thread and one daemon thread per client connection.
Rules, log and counters are guarded by one lock, so the test may change
rules from its own thread at any time.  stop() wakes stalls and delays,
shuts every socket down and joins the threads; nothing is printed.
"""

import atexit
import re
import socket
import struct
import threading
import time
from email.utils import formatdate

_live = set()  # proxies and servers (servers.py) started, not stopped
_live_lock = threading.Lock()


def _stop_all():
    with _live_lock:
        items = list(_live)
    for item in items:
        try:
            item.stop()
        except Exception:
            pass


atexit.register(_stop_all)

FAULTS = {
    # fault: allowed params and their defaults
    "status": {"code": 503, "s3code": None, "message": None,
               "retry_after": None},
    "reset": {},
    "reset_after_upstream": {},
    "stall": {"seconds": 5.0},
    "truncate": {"fraction": 0.5, "nbytes": None},
    "delay": {"seconds": 1.0},
    "append": {"text": "Internal Server Error"},
}

_S3CODES = {500: "InternalError", 503: "ServiceUnavailable", 429: "SlowDown"}
_REASONS = {100: "Continue", 200: "OK", 400: "Bad Request",
            403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}


class Rule:
    """One fault rule; .matched and .applied count requests."""

    def __init__(self, method, path_regex, fault, count, every, params):
        if fault not in FAULTS:
            raise ValueError("unknown fault %r (one of %s)"
                             % (fault, ", ".join(FAULTS)))
        unknown = set(params) - set(FAULTS[fault])
        if unknown:
            raise TypeError("fault %r takes no %s" % (fault, sorted(unknown)))
        if every < 1 or (count is not None and count < 0):
            raise ValueError("every must be >= 1 and count >= 0 or None")
        self.method = method.upper() if method else None
        self.path_regex = path_regex
        self._re = re.compile(path_regex) if path_regex else None
        self.fault = fault
        self.count = count
        self.every = every
        self.params = dict(FAULTS[fault], **params)
        self.matched = 0
        self.applied = 0
        self.ended = threading.Event()  # remove_rule(end_stalls=True)

    def __repr__(self):
        return ("Rule(%s %s %s %s count=%s every=%d applied=%d)"
                % (self.method or "*", self.path_regex or "*", self.fault,
                   self.params, self.count, self.every, self.applied))

    def _take(self, method, path):
        if self.method and self.method != method:
            return False
        if self._re and not self._re.search(path):
            return False
        self.matched += 1
        if self.count is not None and self.applied >= self.count:
            return False
        if self.matched % self.every:
            return False
        self.applied += 1
        return True


class Request:
    """Log record of one request seen by the proxy."""

    __slots__ = ("conn", "method", "path", "status", "bytes_in", "bytes_out",
                 "fault", "forwarded", "error", "started", "finished",
                 "upstream")

    def __init__(self, conn, method, path):
        self.conn = conn            # client connection number (1, 2, ...)
        self.method = method
        self.path = path            # path + query, as sent
        self.status = None          # status sent to the client (None: none)
        self.bytes_in = 0           # request body bytes read from the client
        self.bytes_out = 0          # response body bytes sent to the client
        self.fault = None           # fault applied, or None
        self.forwarded = False      # the request reached the upstream
        self.error = None           # what went wrong, if anything
        self.started = time.monotonic()
        self.finished = None        # set when the proxy is done with it
        self.upstream = None        # the upstream's status, when forwarded

    @property
    def done(self):
        return self.finished is not None

    def __repr__(self):
        return ("<%d %s %s -> %s in=%d out=%d fault=%s%s>"
                % (self.conn, self.method, self.path, self.status,
                   self.bytes_in, self.bytes_out, self.fault,
                   " error=%s" % self.error if self.error else ""))


class _Closed(Exception):
    """The peer closed the connection."""


class _Stream:
    """Buffered reader over a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise _Closed()
        self.buf += data

    def readline(self, limit=65536):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise ValueError("header line too long")
            self._fill()

    def read(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_to_eof(self):
        try:
            while True:
                self._fill()
        except _Closed:
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data


def _read_head(stream, first=False):
    """Read a start line and headers.  Returns (raw, start_line, headers) or
    None if the peer closed before sending anything (first=True only)."""
    lines = []
    while True:
        try:
            line = stream.readline()
        except _Closed:
            if first and not lines:
                return None
            raise
        if not lines and line in (b"\r\n", b"\n"):
            continue  # tolerate stray CRLF between messages
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            break
        if len(lines) > 200:
            raise ValueError("too many header lines")
    headers = []
    for line in lines[1:-1]:
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip().lower(), value.strip()))
    start = lines[0].decode("latin-1").strip()
    return b"".join(lines), start, headers


def _hdr(headers, name, default=None):
    for k, v in headers:
        if k == name:
            return v
    return default


def _read_body(stream, headers):
    """Body framed by chunked or Content-Length.  Returns (raw, decoded)."""
    if "chunked" in (_hdr(headers, "transfer-encoding") or "").lower():
        raw, dec = bytearray(), bytearray()
        while True:
            line = stream.readline()
            raw += line
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:  # trailers until the empty line
                    t = stream.readline()
                    raw += t
                    if t in (b"\r\n", b"\n"):
                        return bytes(raw), bytes(dec)
            chunk = stream.read(size)
            raw += chunk + stream.read(2)
            dec += chunk
    n = int(_hdr(headers, "content-length") or 0)
    data = stream.read(n) if n else b""
    return data, data


def _rst(sock):
    """Close with RST instead of FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _reframed_head(rhead, length):
    """An answer's head for a body of `length` bytes, then close."""
    lines = rhead.decode("latin-1").split("\r\n")
    lines = [ln for ln in lines[:-2] if not ln.lower().startswith(
        ("content-length:", "transfer-encoding:", "connection:"))]
    lines += ["Content-Length: %d" % length, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class FaultProxy:
    """HTTP/1.1 reverse proxy on 127.0.0.1:<free port> with fault rules.

    upstream: (host, port), "http://host:port", or an S3Server.

    Requests are passed through byte for byte (the Host header too, so SigV4
    signatures stay valid); each request gets a fresh upstream connection;
    client connections are kept alive as the client and upstream allow.
    """

    def __init__(self, upstream, *, port=None, idle_timeout=60.0,
                 upstream_timeout=60.0):
        if isinstance(upstream, str):
            m = re.match(r"^(?:https?://)?([^:/]+):(\d+)", upstream)
            if not m:
                raise ValueError("upstream %r is not host:port" % upstream)
            upstream = (m.group(1), int(m.group(2)))
        elif hasattr(upstream, "port") and hasattr(upstream, "host"):
            upstream = (upstream.host, upstream.port)
        self.upstream = tuple(upstream)
        self.host = "127.0.0.1"
        self.port = port
        self.endpoint = None
        self.idle_timeout = idle_timeout
        self.upstream_timeout = upstream_timeout
        self.connections = 0
        self._rules = []
        self._log = []
        self._counts = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = None
        self._accept_thread = None
        self._threads = set()
        self._socks = set()

    def __enter__(self):
        if self._listener is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __repr__(self):
        return "FaultProxy(%s -> %s:%d)" % ((self.endpoint,) + self.upstream)

    # -- test-facing API ---------------------------------------------------

    def start(self):
        """Listen and start the accept thread; return self."""
        if self._listener is not None:
            raise RuntimeError("FaultProxy already started")
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.host, self.port or 0))
        ls.listen(64)
        ls.settimeout(0.1)
        self._listener = ls
        self.port = ls.getsockname()[1]
        self.endpoint = "http://%s:%d" % (self.host, self.port)
        self._stopping.clear()
        with _live_lock:
            _live.add(self)
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="faultproxy-accept", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self):
        """Stop accepting, end stalls, close every socket, join threads.
        Idempotent."""
        self._stopping.set()
        if self._accept_thread:
            self._accept_thread.join(2)
            self._accept_thread = None
        if self._listener:
            self._listener.close()
            self._listener = None
        with self._lock:
            socks = list(self._socks)
            threads = list(self._threads)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked on it
            except OSError:
                pass
        for t in threads:
            t.join(2)
        with _live_lock:
            _live.discard(self)

    def add_rule(self, method=None, path_regex=None, fault="status",
                 count=None, every=1, **params):
        """Add a rule: requests matching method (any if None) and path_regex
        (re.search on path+query; any if None) get `fault` on every
        `every`-th match, `count` times (None: always).  Rules are tried in
        the order added; the first that fires wins.  Returns the Rule."""
        rule = Rule(method, path_regex, fault, count, every, params)
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove_rule(self, rule, end_stalls=False):
        """Remove one rule (no error if already gone).  end_stalls: the
        requests it is stalling end now (closed, as after `seconds`)."""
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)
        if end_stalls:
            rule.ended.set()

    def clear_rules(self):
        """Remove all rules: everything passes through again."""
        with self._lock:
            self._rules.clear()

    @property
    def rules(self):
        """Copy of the current rule list."""
        with self._lock:
            return list(self._rules)

    @property
    def log(self):
        """Copy of the request log (Request records, oldest first)."""
        with self._lock:
            return list(self._log)

    @property
    def counts(self):
        """Copy of {method: number of requests received}."""
        with self._lock:
            return dict(self._counts)

    def requests(self, method=None, path_regex=None, fault=None):
        """Log records filtered by method, path regex (re.search), fault."""
        rx = re.compile(path_regex) if path_regex else None
        return [r for r in self.log
                if (method is None or r.method == method.upper())
                and (rx is None or rx.search(r.path))
                and (fault is None or r.fault == fault)]

    def clear_log(self):
        """Forget logged requests and method counts."""
        with self._lock:
            self._log.clear()
            self._counts.clear()

    def wait_idle(self, timeout=5.0):
        """Wait until every logged request is done; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(r.done for r in self.log):
                return True
            time.sleep(0.01)
        return False

    # -- internals ---------------------------------------------------------

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            sock.settimeout(self.idle_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                conn = self.connections
                self._socks.add(sock)
            t = threading.Thread(target=self._serve, args=(sock, conn),
                                 name="faultproxy-%d" % conn, daemon=True)
            with self._lock:
                self._threads.add(t)
            t.start()

    def _serve(self, sock, conn):
        state = {"closed": False}
        try:
            stream = _Stream(sock)
            while not self._stopping.is_set():
                try:
                    head = _read_head(stream, first=True)
                except (OSError, ValueError, _Closed):
                    break
                if head is None:
                    break
                if not self._handle(sock, stream, head, conn, state):
                    break
        except Exception:
            pass
        finally:
            with self._lock:
                self._socks.discard(sock)
                self._threads.discard(threading.current_thread())
            if not state["closed"]:
                try:
                    sock.close()
                except OSError:
                    pass

    def _pick(self, method, path):
        with self._lock:
            self._counts[method] = self._counts.get(method, 0) + 1
            for rule in self._rules:
                if rule._take(method, path):
                    return rule
        return None

    def _handle(self, sock, stream, head, conn, state):
        """Serve one request; return True to keep the connection."""
        raw, start, headers = head
        parts = start.split(" ")
        method = parts[0].upper()
        path = parts[1] if len(parts) > 1 else ""
        version = parts[2] if len(parts) > 2 else "HTTP/1.0"
        rec = Request(conn, method, path)
        rule = self._pick(method, path)
        rec.fault = rule.fault if rule else None
        with self._lock:
            self._log.append(rec)
        conn_hdr = (_hdr(headers, "connection") or "").lower()
        keep = ("close" not in conn_hdr and
                (version == "HTTP/1.1" or "keep-alive" in conn_hdr))
        expect = (_hdr(headers, "expect") or "").lower() == "100-continue"
        try:
            fault = rule.fault if rule else None
            p = rule.params if rule else {}
            if fault in ("status", "reset", "stall"):
                if expect:
                    sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body, _ = _read_body(stream, headers)
                rec.bytes_in = len(body)
                if fault == "status":
                    self._send_status(sock, rec, p, keep)
                    return keep
                if fault == "reset":
                    state["closed"] = True
                    _rst(sock)
                    return False
                end = time.monotonic() + p["seconds"]  # stall
                while (not self._stopping.is_set() and
                       not rule.ended.is_set() and time.monotonic() < end):
                    rule.ended.wait(min(0.05, max(0.0,
                                                  end - time.monotonic())))
                return False
            if fault == "delay":
                self._stopping.wait(p["seconds"])
            return self._forward(sock, stream, raw, headers, method, rec,
                                 rule, keep, expect, state)
        except Exception as e:
            rec.error = "%s: %s" % (type(e).__name__, e)
            return False
        finally:
            rec.finished = time.monotonic()

    def _send_status(self, sock, rec, p, keep):
        code = int(p["code"])
        s3code = p["s3code"] or _S3CODES.get(code, "InternalError")
        msg = p["message"] or "Injected by FaultProxy (%s)" % s3code
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s"
                "</Code><Message>%s</Message><Resource>%s</Resource>"
                "<RequestId>FAULTPROXY</RequestId></Error>"
                % (s3code, msg, rec.path.split("?")[0])).encode()
        if rec.method == "HEAD":
            body = b""
        hdrs = ["HTTP/1.1 %d %s" % (code, _REASONS.get(code, "Error")),
                "Date: %s" % formatdate(usegmt=True),
                "Content-Type: application/xml",
                "Content-Length: %d" % len(body),
                "x-amz-request-id: FAULTPROXY",
                "Connection: %s" % ("keep-alive" if keep else "close")]
        if p["retry_after"] is not None:
            hdrs.append("Retry-After: %s" % p["retry_after"])
        sock.sendall(("\r\n".join(hdrs) + "\r\n\r\n").encode() + body)
        rec.status = code
        rec.bytes_out = len(body)

    def _forward(self, sock, stream, raw, headers, method, rec, rule, keep,
                 expect, state):
        """Forward the request, then relay (or spoil) the answer."""
        fault = rule.fault if rule else None
        up = socket.create_connection(self.upstream,
                                      timeout=self.upstream_timeout)
        with self._lock:
            self._socks.add(up)
        try:
            has_body = (_hdr(headers, "content-length", "0") != "0" or
                        _hdr(headers, "transfer-encoding") is not None)
            resp, early = self._exchange(sock, stream, up, raw, headers,
                                         method, rec, expect and has_body)
        finally:
            with self._lock:
                self._socks.discard(up)
            up.close()
        if early:
            keep = False  # the client may or may not send the body now
        rhead, rstart, rheaders, rraw, rdec, to_eof = resp
        status = int(rstart.split(" ")[1])
        rec.upstream = status
        if fault == "reset_after_upstream":
            state["closed"] = True
            _rst(sock)
            return False
        if fault == "truncate":
            self._send_truncated(sock, rec, rule.params, rhead, rdec, status)
            return False
        if fault == "append":
            body = rdec + rule.params["text"].encode()
            sock.sendall(_reframed_head(rhead, len(body)) + body)
            rec.status = status
            rec.bytes_out = len(body)
            return False
        sock.sendall(rhead + rraw)
        rec.status = status
        rec.bytes_out = len(rdec)
        rconn = (_hdr(rheaders, "connection") or "").lower()
        return keep and not to_eof and "close" not in rconn

    def _exchange(self, sock, stream, up, raw, headers, method, rec,
                  expect):
        """Send the request upstream and read the answer.  With Expect:
        100-continue the upstream decides: its 100 Continue is relayed to
        the client before the body is read; a final answer instead is
        returned at once (early=True).  Returns (response, early)."""
        ustream = _Stream(up)
        if expect:
            up.sendall(raw)
            final = None
            up.settimeout(min(3.0, self.upstream_timeout))
            try:
                final = _read_head(ustream)
            except socket.timeout:  # upstream silent: let the body come
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            up.settimeout(self.upstream_timeout)
            if final is not None and final[1].split(" ")[1] == "100":
                sock.sendall(final[0])
                final = None
            if final is not None:
                rec.forwarded = True
                return self._read_response(ustream, method, final), True
            raw = b""
        body, _ = _read_body(stream, headers)
        rec.bytes_in = len(body)
        up.sendall(raw + body)
        rec.forwarded = True
        return self._read_response(ustream, method), False

    def _send_truncated(self, sock, rec, p, rhead, rdec, status):
        """Head with the full Content-Length, part of the body, close."""
        newhead = _reframed_head(rhead, len(rdec))
        n = (p["nbytes"] if p["nbytes"] is not None
             else int(len(rdec) * p["fraction"]))
        n = max(0, min(n, len(rdec) - 1))
        if rdec:
            sock.sendall(newhead + rdec[:n])
            rec.bytes_out = n
        else:  # nothing to cut short but the head
            sock.sendall(newhead[:len(newhead) // 2])
        rec.status = status
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _read_response(self, ustream, method, head=None):
        """Read one final response: (raw head, start, headers, raw body,
        decoded body, framed by EOF)."""
        while True:
            if head is None:
                head = _read_head(ustream)
            status = int(head[1].split(" ")[1])
            if status >= 200 or status == 101:
                break
            head = None  # an unrequested 1xx: drop it
        raw, start, headers = head
        if method == "HEAD" or status in (204, 304):
            return raw, start, headers, b"", b"", False
        if ("chunked" in (_hdr(headers, "transfer-encoding") or "").lower()
                or _hdr(headers, "content-length") is not None):
            braw, bdec = _read_body(ustream, headers)
            return raw, start, headers, braw, bdec, False
        data = ustream.read_to_eof()
        return raw, start, headers, data, data, True
