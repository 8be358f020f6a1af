# SPDX-License-Identifier: MIT
"""Twisted's own servers for the workloads of bench/run, to compare against.

Each is the plain, idiomatic Twisted way of writing the server, on the
default (epoll) reactor:

    echo  Protocol.dataReceived -> transport.write
    line  LineReceiver (delimiter b"\\r\\n") echoing every line with sendLine
    amp   an AMP server answering the Echo command (value: String)

Usage: /usr/bin/python3 twisted_servers.py echo|line|amp PORT
It binds 127.0.0.1 (PORT 0 picks a free port) and prints
"listening on 127.0.0.1:PORT" once it accepts connections.
"""

import sys

from twisted.internet import protocol, reactor
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


def main(argv):
    if len(argv) != 3 or argv[1] not in PROTOCOLS or not argv[2].isdigit():
        sys.stderr.write("usage: twisted_servers.py echo|line|amp PORT\n")
        return 2
    factory = protocol.Factory.forProtocol(PROTOCOLS[argv[1]])
    port = reactor.listenTCP(int(argv[2]), factory, backlog=511, interface="127.0.0.1")
    print("listening on 127.0.0.1:%d" % port.getHost().port, flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
