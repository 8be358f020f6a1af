# SPDX-License-Identifier: MIT
"""reactord --metrics and --access-log, from the outside.

Each case starts reactord on loopback, makes connections that end in known
ways (closed by the peer, idle, over-long, refused, AMP calls with every
outcome), scrapes /metrics over HTTP and parses it with Prometheus' own
parser (python3-prometheus-client's text_string_to_metric_families), and
checks the figures against what the connections did; then it checks the
access log lines, in text and JSON, and the totals logged at shutdown.
Every wait is bounded.

Run by tests/check_metrics.sh with REACTORD set.
"""
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import http.client

from prometheus_client.parser import text_string_to_metric_families

REACTORD = os.environ["REACTORD"]
SRCDIR = os.environ.get("TWINE_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
TMP = tempfile.mkdtemp(prefix="twine-metrics.")
failures = []


def check(cond, what):
    if cond:
        print("ok: " + what)
    else:
        print("FAIL: " + what)
        failures.append(what)


def wait_for(pred, timeout=10.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a UNIX socket: --metrics unix:PATH."""

    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.unix_path)


class Server:
    def __init__(self, name, args):
        self.log = os.path.join(TMP, name + ".log")
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen([REACTORD] + args, stdout=self.logf, stderr=subprocess.STDOUT)
        ready = wait_for(lambda: "running as pid" in self.text() or
                         re.search(r"\(pid \d+\) serving", self.text()), 15)
        if not ready:
            self.stop()
            raise SystemExit("FAIL: reactord %s did not start:\n%s" % (name, self.text()))
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", self.text())
        self.port = int(m.group(1)) if m else None
        m = re.search(r"serving metrics at /metrics on 127\.0\.0\.1:(\d+)", self.text())
        self.metrics_port = int(m.group(1)) if m else None
        m = re.search(r"serving metrics at /metrics on unix:(\S+)", self.text())
        self.metrics_path = m.group(1) if m else None

    def text(self):
        with open(self.log) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.logf.close()
        return rc

    def http(self, method="GET", path="/metrics"):
        if self.metrics_path is not None:
            c = UnixHTTPConnection(self.metrics_path)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=10)
        c.request(method, path)
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return r.status, r.getheader("Content-Type"), body

    def scrape(self):
        status, ctype, body = self.http()
        assert status == 200, (status, body)
        fams = {}
        for fam in text_string_to_metric_families(body):
            fams[fam.name] = fam
        return fams

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return s


def value(fams, family, **labels):
    """The sum of the samples of family whose labels include labels."""
    total = None
    for s in fams[family].samples:
        if s.name.endswith("_created"):
            continue
        if all(s.labels.get(k) == v for k, v in labels.items()):
            total = (total or 0) + s.value
    return total


def scrape_until(srv, pred, timeout=15.0):
    """Scrape until pred(families) holds (a worker may miss one scrape's
    deadline on a loaded machine); the last scrape either way."""
    end = time.monotonic() + timeout
    while True:
        fams = srv.scrape()
        if pred(fams) or time.monotonic() > end:
            return fams
        time.sleep(0.1)


def read_until_closed(s):
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data, "reset"
        if not chunk:
            return data, "eof"
        data += chunk


def access_records(text):
    """The access log records: (fields dict, raw message)."""
    recs = []
    for line in text.splitlines():
        m = re.search(r" info access: (.*)$", line)
        if m:
            recs.append(m.group(1))
    return recs


def parse_text_record(msg):
    return dict(kv.split("=", 1) for kv in msg.split())


# ------------------------------------------------------------------ line: closes by reason

def case_line():
    print("# line protocol: peer close, idle timeout, over-long line, max-connections")
    srv = Server("line", ["-p", "line", "-l", "tcp:0:interface=127.0.0.1", "-o", "max-length=16",
                          "--max-connections", "2", "--idle-timeout", "0.5", "--access-log",
                          "--metrics", "tcp:0:interface=127.0.0.1"])
    clients = {}
    try:
        # 1: a line echoed, then the client closes (reason peer).
        c = srv.connect()
        c.sendall(b"hello\r\n")
        got = b""
        while len(got) < 7:
            got += c.recv(100)
        check(got == b"hello\r\n", "the line is echoed")
        clients["peer"] = c.getsockname()
        c.close()
        wait_for(lambda: value(srv.scrape(), "twine_connections_closed", reason="peer") == 1)

        # 2 and 3 at once: the limit. 2 stays silent (idle timeout), 3 sends
        # an over-long line (too_long); 4 is refused while both are open.
        idle = srv.connect()
        clients["idle_timeout"] = idle.getsockname()
        long = srv.connect()
        clients["too_long"] = long.getsockname()
        wait_for(lambda: value(srv.scrape(), "twine_connections_open") == 2)
        fams = srv.scrape()
        check(value(fams, "twine_connections_open") == 2, "two connections open")
        over = srv.connect()
        data, how = read_until_closed(over)
        over.close()
        check(data == b"", "the connection over --max-connections is closed at once")
        long.sendall(b"x" * 40)
        data, how = read_until_closed(long)
        long.close()
        check(how == "eof", "the over-long line closes the connection in order (%s)" % how)
        data, how = read_until_closed(idle)  # the idle timeout closes it
        idle.close()
        check(how == "eof", "the idle connection is closed in order (%s)" % how)
        wait_for(lambda: value(srv.scrape(), "twine_connections_closed") == 3)

        fams = srv.scrape()
        L = {"listener": "tcp:0:interface=127.0.0.1", "protocol": "line"}
        check(value(fams, "twine_connections_accepted", **L) == 3, "accepted counts 3")
        check(value(fams, "twine_connections_open", **L) == 0, "none open at the end")
        check(value(fams, "twine_connections_refused", reason="max_connections", **L) == 1,
              "refused{max_connections} counts 1")
        check(value(fams, "twine_connections_refused", reason="descriptors", **L) == 0,
              "refused{descriptors} counts 0")
        for reason in ("peer", "idle_timeout", "too_long"):
            check(value(fams, "twine_connections_closed", reason=reason, **L) == 1,
                  "closed{%s} counts 1" % reason)
        check(value(fams, "twine_connections_closed", reason="local", **L) == 0,
              "closed{local} counts 0")
        check(value(fams, "twine_received_bytes", **L) == 7 + 40,
              "received bytes are the 7 + 40 sent")
        check(value(fams, "twine_sent_bytes", **L) == 7, "sent bytes are the 7 echoed")
        check(fams["twine_connections_accepted"].type == "counter", "accepted is a counter")
        check(fams["twine_connections_open"].type == "gauge", "open is a gauge")

        now = time.time()
        check(abs(value(fams, "process_start_time_seconds") - now) < 120,
              "process_start_time_seconds is about now")
        check(0 < value(fams, "reactord_uptime_seconds") < 120, "the uptime is positive")
        check(value(fams, "process_resident_memory_bytes") > 100000, "the RSS is there")
        check(value(fams, "process_open_fds") >= 4, "open descriptors are counted")
        check(value(fams, "process_max_fds") >= value(fams, "process_open_fds"),
              "the descriptor limit is there")
        check("twine_amp_calls" in fams and value(fams, "twine_amp_calls") is None,
              "no AMP samples for a protocol that is not AMP")

        status, ctype, body = srv.http("GET", "/")
        check(status == 404, "GET / is a 404 (%d)" % status)
        status, ctype, body = srv.http("HEAD", "/metrics")
        check(status == 200 and body == "", "HEAD /metrics is a 200 without a body")
        status, ctype, body = srv.http("GET", "/metrics")
        check(ctype == "text/plain; version=0.0.4; charset=utf-8",
              "the content type is text format 0.0.4 (%s)" % ctype)
        status, ctype, body = srv.http("POST", "/metrics")
        check(status != 200, "POST is refused (%d)" % status)
    finally:
        rc = srv.stop()
    check(rc == 0, "reactord exits 0 on SIGTERM")
    text = srv.text()
    recs = [parse_text_record(m) for m in access_records(text)]
    check(len(recs) == 3, "three access log lines (%d)" % len(recs))
    by_reason = {r["reason"]: r for r in recs}
    for reason, (host, port) in clients.items():
        r = by_reason.get(reason)
        check(r is not None and r["peer"] == "%s:%d" % (host, port),
              "the access line of the %s connection names its peer" % reason)
        if r is None:
            continue
        check(r["local"] == "127.0.0.1:%d" % srv.port and r["protocol"] == "line" and
              r["listener"] == "tcp:0:interface=127.0.0.1",
              "the %s line names the local endpoint, listener and protocol" % reason)
        check(float(r["duration"]) >= 0, "the %s line has a duration" % reason)
    if "peer" in by_reason:
        check(by_reason["peer"]["bytes_in"] == "7" and by_reason["peer"]["bytes_out"] == "7",
              "the peer line counts 7 bytes each way")
    if "too_long" in by_reason:
        check(by_reason["too_long"]["bytes_in"] == "40" and
              by_reason["too_long"]["bytes_out"] == "0", "the too_long line counts 40 in, 0 out")
    if "idle_timeout" in by_reason:
        check(float(by_reason["idle_timeout"]["duration"]) >= 0.5,
              "the idle connection lasted the idle timeout")
    m = re.search(r"totals for tcp:0:interface=127\.0\.0\.1: 3 accepted, 1 refused "
                  r"\(max_connections 1\), 3 closed \(([^)]*)\), 47 bytes received, "
                  r"7 bytes sent", text)
    check(m is not None, "the totals are logged at shutdown")
    if m:
        check(sorted(m.group(1).split(", ")) == ["idle_timeout 1", "peer 1", "too_long 1"],
              "the totals say why the connections closed")


# ------------------------------------------------------------------ amp: calls by outcome

def box(**kv):
    out = b""
    for k, v in kv.items():
        k = k.encode()
        v = v if isinstance(v, bytes) else str(v).encode()
        out += struct.pack(">H", len(k)) + k + struct.pack(">H", len(v)) + v
    return out + b"\0\0"


def read_box(s, buf):
    """One box from socket s; buf holds bytes read before. Returns (dict, rest)."""
    while True:
        at, d = 0, {}
        while True:
            if len(buf) < at + 2:
                break
            (kl,) = struct.unpack(">H", buf[at:at + 2])
            if kl == 0:
                return d, buf[at + 2:]
            if len(buf) < at + 2 + kl + 2:
                break
            key = buf[at + 2:at + 2 + kl]
            (vl,) = struct.unpack(">H", buf[at + 2 + kl:at + 4 + kl])
            if len(buf) < at + 4 + kl + vl:
                break
            d[key.decode()] = buf[at + 4 + kl:at + 4 + kl + vl]
            at += 4 + kl + vl
        chunk = s.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk


def case_amp():
    print("# amp protocol: calls by command and outcome, JSON access log, per-peer limit")
    srv = Server("amp", ["-p", "amp", "-l", "tcp:0:interface=127.0.0.1", "--access-log=json",
                         "--max-per-peer", "1", "--metrics", "tcp:0:interface=127.0.0.1"])
    try:
        c = srv.connect()
        buf = b""
        c.sendall(box(_command="Echo", _ask="1", value="hi"))
        ans, buf = read_box(c, buf)
        check(ans is not None and ans.get("value") == b"hi", "Echo answers")
        c.sendall(box(_command="Sum", _ask="2", a=1, b=2))
        ans, buf = read_box(c, buf)
        check(ans is not None and ans.get("total") == b"3", "Sum answers")
        c.sendall(box(_command="Divide", _ask="3", numerator=1, denominator=0))
        ans, buf = read_box(c, buf)
        check(ans is not None and ans.get("_error_code") == b"ZERO_DIVISION",
              "Divide by zero is an AMP error")
        c.sendall(box(_command="Nope", _ask="4"))
        ans, buf = read_box(c, buf)
        check(ans is not None and ans.get("_error_code") == b"UNHANDLED",
              "an unknown command is UNHANDLED")

        # A second connection from the same address is over --max-per-peer.
        extra = srv.connect()
        data, how = read_until_closed(extra)
        extra.close()
        check(data == b"", "a second connection from 127.0.0.1 is refused")

        # Bad arguments: UNKNOWN, and the connection closes (protocol error).
        c.sendall(box(_command="Sum", _ask="5", a="x", b=2))
        ans, buf = read_box(c, buf)
        check(ans is not None and ans.get("_error_code") == b"UNKNOWN",
              "bad arguments are answered UNKNOWN")
        data, how = read_until_closed(c)
        c.close()
        wait_for(lambda: value(srv.scrape(), "twine_connections_closed") == 1)
        fams = srv.scrape()
        A = {"protocol": "amp"}
        check(value(fams, "twine_amp_calls", command="Echo", outcome="ok", **A) == 1,
              "Echo counts 1 ok")
        check(value(fams, "twine_amp_calls", command="Sum", outcome="ok", **A) == 1,
              "Sum counts 1 ok")
        check(value(fams, "twine_amp_calls", command="Sum", outcome="bad_arguments", **A) == 1,
              "Sum counts 1 bad_arguments")
        check(value(fams, "twine_amp_calls", command="Divide", outcome="error", **A) == 1,
              "Divide counts 1 error")
        check(value(fams, "twine_amp_calls", command="Time", outcome="ok", **A) == 0,
              "Time counts 0")
        check(value(fams, "twine_amp_unhandled", **A) == 1, "one unhandled request")
        check("twine_amp_calls_made" in fams and fams["twine_amp_calls_made"].type == "counter"
              and value(fams, "twine_amp_calls_made") is None,
              "calls made: a counter family, without samples for a module that makes none")
        L = {"listener": "tcp:0:interface=127.0.0.1", "protocol": "amp"}
        check(value(fams, "twine_connections_refused", reason="per_peer_limit", **L) == 1,
              "refused{per_peer_limit} counts 1")
        check(value(fams, "twine_connections_refused", reason="factory", **L) == 0,
              "refused{factory} does not count the per-peer refusal again")
        check(value(fams, "twine_connections_closed", reason="protocol_error", **L) == 1,
              "closed{protocol_error} counts the connection with bad arguments")
        check(value(fams, "twine_connections_accepted", **L) == 1,
              "only the served connection counts as accepted")
    finally:
        rc = srv.stop()
    check(rc == 0, "reactord exits 0 on SIGTERM")
    recs = []
    for msg in access_records(srv.text()):
        try:
            recs.append(json.loads(msg))
        except ValueError:
            check(False, "the JSON access line parses: %r" % msg)
    check(len(recs) == 1, "one JSON access log line (%d)" % len(recs))
    if recs:
        r = recs[0]
        check(r.get("reason") == "protocol_error" and r.get("protocol") == "amp" and
              r.get("listener") == "tcp:0:interface=127.0.0.1" and
              r.get("local") == "127.0.0.1:%d" % srv.port and
              r.get("peer", "").startswith("127.0.0.1:") and
              isinstance(r.get("duration"), float) and r.get("bytes_in", 0) > 0 and
              r.get("bytes_out", 0) > 0, "the JSON access line has every field: %r" % r)


# ------------------------------------------------------------------ workers

def case_workers():
    print("# --workers 2: the supervisor serves every worker's figures")
    srv = Server("workers", ["-p", "echo", "-l", "tcp:0:interface=127.0.0.1", "--workers", "2",
                             "--metrics", "tcp:0:interface=127.0.0.1"])
    try:
        wait_for(lambda: "all 2 workers running" in srv.text())
        n = 20
        for i in range(n):
            c = srv.connect()
            c.sendall(b"ping")
            got = b""
            while len(got) < 4:
                got += c.recv(100)
            c.close()
        fams = scrape_until(srv, lambda f: value(f, "twine_connections_closed") == n and len(
            {s.labels.get("worker") for s in f["twine_connections_accepted"].samples}) == 2)
        check(value(fams, "twine_connections_accepted") == n,
              "the workers' accepted connections add up to %d" % n)
        check(value(fams, "twine_connections_closed", reason="peer") == n,
              "all %d closed by the peer" % n)
        check(value(fams, "twine_received_bytes") == 4 * n, "bytes in add up")
        workers = {s.labels.get("worker") for s in fams["twine_connections_accepted"].samples}
        check(workers == {"1", "2"}, "samples come labelled worker 1 and 2 (%s)" % workers)
        check(value(fams, "reactord_workers") == 2, "reactord_workers is 2")
        check(value(fams, "reactord_worker_restarts") == 0, "no restarts yet")
        rss = [s for s in fams["process_resident_memory_bytes"].samples]
        check({s.labels.get("worker") for s in rss} == {None, "1", "2"},
              "process figures of the supervisor (no label) and of each worker")

        pid = int(re.search(r"worker 1 running as pid (\d+)", srv.text()).group(1))
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: len(re.findall(r"worker 1 running as pid", srv.text())) == 2, 15)
        fams = scrape_until(srv, lambda f: value(f, "twine_connections_accepted", worker="1")
                            is not None and value(f, "reactord_workers") == 2)
        check(value(fams, "reactord_worker_restarts") == 1, "the restart is counted")
        check(value(fams, "twine_connections_accepted", worker="1") == 0,
              "the restarted worker counts from zero")
        check(value(fams, "reactord_workers") == 2, "both workers run again")
    finally:
        rc = srv.stop()
    check(rc == 0, "the supervisor exits 0 on SIGTERM")
    check(len(re.findall(r"worker \d: totals for tcp:0", srv.text())) >= 2,
          "each worker logs its totals at shutdown")


# ------------------------------------------------------------------ TLS handshakes

def make_certs():
    d = os.path.join(TMP, "certs")
    if not os.path.isdir(d):
        subprocess.run(["sh", os.path.join(SRCDIR, "tests", "tls", "mkcerts.sh"), d], check=True,
                       stdout=subprocess.DEVNULL, timeout=60)
    return d


def tls_client(port, certs, hostname="localhost"):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=hostname)


def case_tls(extra=()):
    label = " with --workers 2" if extra else ""
    print("# echo over ssl:%s: handshakes and their failures by reason" % label)
    certs = make_certs()
    ssl_ep = "ssl:0:interface=127.0.0.1:privateKey=%s/server.key:certKey=%s/server.pem" % (
        certs, certs)
    plain_ep = "tcp:0:interface=127.0.0.1"
    srv = Server("tls" + ("-workers" if extra else ""),
                 ["-p", "echo", "-l", ssl_ep, "-l", plain_ep, "--metrics",
                  "tcp:0:interface=127.0.0.1"] + list(extra))
    port = srv.port  # the first listener logged is the ssl: one
    try:
        if extra:
            wait_for(lambda: "all 2 workers running" in srv.text())
        # A completed handshake, an echo, then close_notify and FIN.
        c = tls_client(port, certs)
        c.sendall(b"ping")
        got = b""
        while len(got) < 4:
            got += c.recv(100)
        check(got == b"ping", "echo over ssl:")
        c.unwrap().close()
        # Bytes that are not TLS.
        p = socket.create_connection(("127.0.0.1", port), timeout=10)
        p.sendall(b"GET / HTTP/1.0\r\n\r\n")
        read_until_closed(p)
        p.close()
        # A client that refuses the server's name: its alert says so.
        try:
            tls_client(port, certs, hostname="wrong.example").close()
            check(False, "a client checking another name refuses the server")
        except ssl.SSLCertVerificationError:
            pass
        # A client that leaves before its ClientHello.
        q = socket.create_connection(("127.0.0.1", port), timeout=10)
        time.sleep(0.1)
        q.close()

        T = {"listener": ssl_ep, "protocol": "echo"}
        fams = scrape_until(srv, lambda f: value(f, "twine_connections_closed", **T) == 4)
        check(value(fams, "twine_connections_closed", **T) == 4, "four TLS connections closed")
        check(fams["twine_tls_handshakes"].type == "counter", "handshakes is a counter")
        check(value(fams, "twine_tls_handshakes", **T) == 1, "one handshake completed")
        for reason, n in (("protocol_error", 1), ("verify_failed", 1), ("peer_closed", 1),
                          ("timeout", 0), ("local", 0)):
            check(value(fams, "twine_tls_handshake_failures", reason=reason, **T) == n,
                  "handshake failures{%s} counts %d" % (reason, n))
        check(value(fams, "twine_connections_closed", reason="peer", **T) == 2,
              "the close_notify and the client that left count as closed by the peer")
        check(value(fams, "twine_connections_closed", reason="protocol_error", **T) == 2,
              "the bytes that are not TLS and the refused certificate count as protocol errors")
        check(value(fams, "twine_tls_handshakes", listener=plain_ep) is None,
              "no TLS samples for the plain listener")
        if extra:
            workers = {s.labels.get("worker") for s in fams["twine_tls_handshakes"].samples}
            check(workers == {"1", "2"}, "TLS samples come from each worker (%s)" % workers)
    finally:
        rc = srv.stop()
    check(rc == 0, "reactord exits 0 on SIGTERM")
    totals = re.findall(r"totals for ssl:0:[^:]*:[^:]*:[^ ]*: (.*)$", srv.text(), re.M)
    lines = [t for t in totals if "TLS handshakes" in t]
    check(len(lines) == (2 if extra else 1), "the totals at shutdown count the handshakes")
    if not extra and lines:
        check(re.search(r"1 TLS handshakes, 3 failed \((.*)\)$", lines[0]) is not None and
              all(x in lines[0] for x in ("protocol_error 1", "verify_failed 1",
                                          "peer_closed 1")),
              "the totals say why the handshakes failed: %s" % lines[0])


# ------------------------------------------------------------------ UNIX sockets

def case_unix():
    print("# unix: listener and unix: --metrics endpoint")
    sock = os.path.join(TMP, "line.sock")
    msock = os.path.join(TMP, "metrics.sock")
    ep = "unix:" + sock
    srv = Server("unix", ["-p", "line", "-l", ep, "-o", "max-length=16", "--access-log",
                          "--metrics", "unix:" + msock])
    try:
        check(srv.metrics_path == msock, "metrics are served on unix:%s" % msock)
        for n in range(3):
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            u.settimeout(10)
            u.connect(sock)
            u.sendall(b"hello\r\n")
            got = b""
            while len(got) < 7:
                got += u.recv(100)
            check(got == b"hello\r\n", "a line is echoed over the UNIX socket")
            u.close()
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        u.settimeout(10)
        u.connect(sock)
        u.sendall(b"y" * 40)
        read_until_closed(u)
        u.close()
        L = {"listener": ep, "protocol": "line"}
        fams = scrape_until(srv, lambda f: value(f, "twine_connections_closed", **L) == 4)
        check(value(fams, "twine_connections_accepted", **L) == 4,
              "accepted counts 4 under the unix: listener's label")
        check(value(fams, "twine_connections_closed", reason="peer", **L) == 3,
              "closed{peer} counts 3")
        check(value(fams, "twine_connections_closed", reason="too_long", **L) == 1,
              "closed{too_long} counts 1")
        check(value(fams, "twine_connections_open", **L) == 0, "none open")
        check(value(fams, "twine_received_bytes", **L) == 3 * 7 + 40, "bytes in: 3 * 7 + 40")
        check(value(fams, "twine_sent_bytes", **L) == 3 * 7, "bytes out: 3 * 7")
        check(value(fams, "process_open_fds") > 0, "the process figures come too")
        status, ctype, body = srv.http("GET", "/nope")
        check(status == 404, "GET /nope on the UNIX socket is a 404 (%d)" % status)
    finally:
        rc = srv.stop()
    check(rc == 0, "reactord exits 0 on SIGTERM")
    check(not os.path.exists(msock) and not os.path.exists(sock),
          "both socket files are removed at exit")
    recs = [parse_text_record(m) for m in access_records(srv.text())]
    check(len(recs) == 4 and all(r["listener"] == ep for r in recs),
          "four access lines name the unix: listener")
    check(re.search(r"totals for unix:\S+: 4 accepted, 0 refused, 4 closed", srv.text())
          is not None, "the totals at shutdown name the unix: listener")


# ------------------------------------------------------------------ operator mistakes

def run_fail(args):
    p = subprocess.run([REACTORD] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=20)
    return p.returncode, p.stderr.decode().strip()


def case_mistakes():
    print("# operator mistakes: one sentence and a sysexits code")
    rc, err = run_fail(["-p", "echo", "-l", "tcp:0", "--metrics", "tcp:99999"])
    check(rc == 64 and "--metrics" in err and "99999" in err and len(err.splitlines()) == 1,
          "a bad --metrics endpoint: 64 and one sentence (%d: %s)" % (rc, err))
    rc, err = run_fail(["-p", "echo", "-l", "tcp:0", "--metrics", "udp:9100"])
    check(rc == 64 and len(err.splitlines()) == 1,
          "a udp --metrics endpoint: 64 (%d: %s)" % (rc, err))
    rc, err = run_fail(["-p", "echo", "-l", "tcp:0", "--access-log=xml"])
    check(rc == 64 and "--access-log" in err, "--access-log=xml: 64 (%d: %s)" % (rc, err))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        for extra in ([], ["--workers", "2"]):
            rc, err = run_fail(["-p", "echo", "-l", "tcp:0:interface=127.0.0.1", "--metrics",
                                "tcp:%d:interface=127.0.0.1" % port] + extra)
            check(rc == 69 and "metrics" in err and str(port) in err and
                  len(err.splitlines()) == 1,
                  "a --metrics port in use%s: 69 and one sentence (%d: %s)" %
                  (" with --workers" if extra else "", rc, err))
    finally:
        busy.close()


for case in (case_mistakes, case_line, case_amp, case_workers, case_tls,
             lambda: case_tls(["--workers", "2"]), case_unix):
    try:
        case()
    except Exception as e:  # a crash of the test is a failure, with its reason
        import traceback
        traceback.print_exc()
        failures.append("%s raised %r" % (case.__name__, e))

subprocess.run(["rm", "-rf", TMP])
print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
