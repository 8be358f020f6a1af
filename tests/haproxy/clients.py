# SPDX-License-Identifier: MIT
"""Clients for tests/check_haproxy.sh, which puts HAProxy in front of two
reactord instances running the peerecho test module.

  clients.py peers PORT COUNT
      COUNT connections one after the other: each reads the server's
      "peer ADDRESS" line, which must be the client's own address, then
      must get an echo back. Prints one line per connection.

  clients.py drain PORT SECONDS THREADS PID AT [SOCKET SERVER]
      THREADS clients open connection after connection for SECONDS, each
      an echo exchange; AT seconds in, the backend whose reactord is PID
      is drained: with SOCKET and SERVER ("backend/server"), first in
      HAProxy (its runtime API's "set server SERVER state drain", then
      waiting until the server has no session left), then by SIGTERM to
      PID; without them by SIGTERM alone. Prints the count of exchanges
      that completed, and one line per exchange that failed with why,
      marked "reset" when the connection was reset rather than closed.
      Exit 0 only if none failed.

  clients.py stat SOCKET
      Prints HAProxy's "show stat" from its runtime API socket.

Every socket operation has a timeout, so nothing here can hang.
"""
import os
import signal
import socket
import sys
import threading
import time

TIMEOUT = 10


def exchange(port, payload):
    """One connection: the peer line, then payload echoed. Returns the
    peer line's address and the client's own address."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.settimeout(TIMEOUT)
        mine = "%s:%d" % s.getsockname()
        f = s.makefile("rb")
        line = f.readline()
        if not line.endswith(b"\n"):
            raise RuntimeError("no peer line (got %r)" % line)
        words = line.decode().split()
        if len(words) != 2 or words[0] != "peer":
            raise RuntimeError("unexpected greeting %r" % line)
        s.sendall(payload)
        got = f.read(len(payload))
        if got != payload:
            raise RuntimeError("echo returned %d of %d bytes" % (len(got), len(payload)))
        return words[1], mine


def peers(port, count):
    bad = 0
    for i in range(count):
        seen, mine = exchange(port, b"hello %d\n" % i)
        ok = seen == mine
        bad += not ok
        print("%s client %s, server saw %s" % ("ok" if ok else "MISMATCH", mine, seen))
    return 1 if bad else 0


def api(path, command):
    """One command on HAProxy's runtime API socket; its answer."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(TIMEOUT)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    return out.decode()


def sessions(path, server):
    """The server's current sessions (scur) in HAProxy's show stat."""
    backend, name = server.split("/")
    lines = api(path, "show stat").splitlines()
    cols = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        f = line.split(",")
        if f[0] == backend and f[1] == name:
            return int(f[cols.index("scur")])
    raise RuntimeError("no server %s in show stat" % server)


def drain(port, seconds, threads, pid, at, sock=None, server=None):
    done = []
    failed = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    payload = b"x" * 1024

    def client(n):
        i = 0
        while time.monotonic() < stop:
            i += 1
            try:
                exchange(port, payload)
                with lock:
                    done.append(1)
            except Exception as e:  # every failure is reported, none hidden
                kind = "reset" if isinstance(e, ConnectionResetError) else "closed"
                with lock:
                    failed.append("client %d exchange %d %s: %s: %s" %
                                  (n, i, kind, type(e).__name__, e))

    ts = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    time.sleep(at)
    if sock is not None:
        print(api(sock, "set server %s state drain" % server).strip() or
              "HAProxy drains %s" % server)
        deadline = time.monotonic() + TIMEOUT
        while sessions(sock, server) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    os.kill(pid, signal.SIGTERM)
    for t in ts:
        t.join()
    print("completed %d exchanges, %d failed" % (len(done), len(failed)))
    for f in failed:
        print("failed: " + f)
    return 1 if failed or not done else 0


def stat(path):
    sys.stdout.write(api(path, "show stat"))
    return 0


def main(argv):
    if argv[1] == "peers":
        return peers(int(argv[2]), int(argv[3]))
    if argv[1] == "drain":
        return drain(int(argv[2]), float(argv[3]), int(argv[4]), int(argv[5]), float(argv[6]),
                     *argv[7:9])
    if argv[1] == "stat":
        return stat(argv[2])
    print("unknown command %s" % argv[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
