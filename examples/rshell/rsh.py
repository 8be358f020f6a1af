#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""rsh: the client of the rshell module, with Python's standard library only.

    rsh.py [-n] ENDPOINT COMMAND [ARGUMENT...]

ENDPOINT is tcp:HOST:PORT or unix:PATH. The command and its arguments are
sent as they are, one frame each (no shell on either side: quoting is the
local shell's business alone). Our stdin is the command's, sent as it is
read until its end; with -n (as ssh -n) the command's stdin is empty and
ours is not read. The command's stdout and stderr are copied to ours as
they arrive; rsh.py then exits with the command's exit status,
128 + N for a command killed by signal N (as a shell reports it), and says
on stderr when the server killed it (time limit, output limit). A refusal
is printed on stderr and exits 126; a broken connection exits 125.
"""
import os
import socket
import struct
import sys
import threading

# The longest 'i' frame's data: the server's frame limit less the tag.
STDIN_CHUNK = 4096


def connect(endpoint):
    kind, _, rest = endpoint.partition(":")
    if kind == "unix" and rest:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(rest)
        return s
    host, _, port = rest.rpartition(":")
    if kind in ("tcp", "tcp6") and host and port.isdigit():
        return socket.create_connection((host.strip("[]"), int(port)))
    raise SystemExit("rsh.py: ENDPOINT is tcp:HOST:PORT or unix:PATH, not %r" % endpoint)


def send(s, tag, data=b""):
    s.sendall(struct.pack(">I", len(data) + 1) + tag + data)


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        more = s.recv(n - len(data))
        if not more:
            raise EOFError
        data += more
    return data


def frames(s):
    while True:
        (n,) = struct.unpack(">I", recv_exact(s, 4))
        if n == 0:
            raise EOFError
        body = recv_exact(s, n)
        yield body[:1], body[1:]


def pump_stdin(s):
    """Our stdin to the command, then its end. Runs beside the reader; the
    server stops reading while the command's stdin is full, and sendall then
    waits here."""
    try:
        while True:
            data = os.read(0, STDIN_CHUNK)
            if not data:
                break
            send(s, b"i", data)
        send(s, b"c")
    except OSError:
        pass  # the command ended and the connection closed meanwhile


def main(argv):
    args = argv[1:]
    keep_stdin = True
    if args[:1] == ["-n"]:
        keep_stdin = False
        args = args[1:]
    if len(args) < 2:
        sys.stderr.write("usage: rsh.py [-n] ENDPOINT COMMAND [ARGUMENT...]\n")
        return 2
    s = connect(args[0])
    for arg in args[1:]:
        send(s, b"a", os.fsencode(arg))
    send(s, b"s" if keep_stdin else b"r")
    if keep_stdin:
        threading.Thread(target=pump_stdin, args=(s,), daemon=True).start()
    out = {b"o": sys.stdout.buffer, b"e": sys.stderr.buffer}
    try:
        for tag, data in frames(s):
            if tag in out:
                out[tag].write(data)
                out[tag].flush()
            elif tag == b"x":
                words = data.decode("ascii").split()
                if len(words) > 2:
                    sys.stderr.write("rsh.py: the server killed the command: %s\n" % words[2])
                code = int(words[1])
                return code if words[0] == "exit" else 128 + code
            elif tag == b"!":
                sys.stderr.write("rsh.py: refused: %s\n" % data.decode("utf-8", "replace"))
                return 126
            else:
                sys.stderr.write("rsh.py: unknown frame %r\n" % tag)
                return 125
    except EOFError:
        sys.stderr.write("rsh.py: the connection closed before the command ended\n")
        return 125
    finally:
        s.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
