# SPDX-License-Identifier: MIT
"""Twisted's own servers for the workloads of bench/run, to compare against.

Each is the plain, idiomatic Twisted way of writing the server, on the
default (epoll) reactor:

    echo  Protocol.dataReceived -> transport.write
    line  LineReceiver (delimiter b"\\r\\n") echoing every line with sendLine
    amp   an AMP server answering the Echo command (value: String)

Usage: /usr/bin/python3 twisted_servers.py echo|line|amp PORT [--tls CERT KEY]
It binds 127.0.0.1 (PORT 0 picks a free port) and prints
"listening on 127.0.0.1:PORT" once it accepts connections.

With --tls the same protocol is served over TLS the way a Twisted
application usually does it: an "ssl:" strports endpoint made by
serverFromString (privateKey=KEY, certKey=CERT, Twisted's default TLS
options), which needs pyOpenSSL (python3-openssl).
"""

import sys

from twisted.internet import endpoints, protocol, reactor
from twisted.protocols import amp, basic


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class LineEcho(basic.LineReceiver):
    delimiter = b"\r\n"

    def lineReceived(self, line):
        self.sendLine(line)


class EchoCommand(amp.Command):
    commandName = b"Echo"
    arguments = [(b"value", amp.String())]
    response = [(b"value", amp.String())]


class AmpEcho(amp.AMP):
    @EchoCommand.responder
    def echo(self, value):
        return {"value": value}


PROTOCOLS = {"echo": Echo, "line": LineEcho, "amp": AmpEcho}


def strports_quote(value):
    """@value as one field of a strports description."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def listening(port):
    print("listening on 127.0.0.1:%d" % port.getHost().port, flush=True)


ERRORS = []


def failed(failure):
    ERRORS.append(failure)
    sys.stderr.write("twisted_servers.py: cannot listen: %s\n" % failure.getErrorMessage())
    if reactor.running:
        reactor.stop()


def main(argv):
    tls = len(argv) == 6 and argv[3] == "--tls"
    if len(argv) not in (3, 6) or (len(argv) == 6 and not tls) \
            or argv[1] not in PROTOCOLS or not argv[2].isdigit():
        sys.stderr.write("usage: twisted_servers.py echo|line|amp PORT [--tls CERT KEY]\n")
        return 2
    factory = protocol.Factory.forProtocol(PROTOCOLS[argv[1]])
    if tls:
        description = "ssl:%d:privateKey=%s:certKey=%s:interface=127.0.0.1:backlog=511" % (
            int(argv[2]), strports_quote(argv[5]), strports_quote(argv[4]))
        d = endpoints.serverFromString(reactor, description).listen(factory)
        d.addCallbacks(listening, failed)
    else:
        listening(reactor.listenTCP(int(argv[2]), factory, backlog=511, interface="127.0.0.1"))
    if not ERRORS:
        reactor.run()
    return 1 if ERRORS else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
