# SPDX-License-Identifier: MIT
"""
A Twisted AMP server for twine's client to call.

Usage: amp_server.py [UNIX_SOCKET_PATH]

Serves Sum, Echo, Divide (declaring ZERO_DIVISION), Delay, Explain (which
fails with UNKNOWN and the description it is given), and the Types and
Refuse commands of amp_types.py, with Twisted's amp.AMP on 127.0.0.1, port
0, and also on UNIX_SOCKET_PATH when given.
Prints "listening on 127.0.0.1:PORT" once ready, then runs until its
standard input closes, it is killed, or 60 seconds pass.
"""
import sys

from twisted.internet import protocol, reactor, stdio, task
from twisted.protocols import amp

import amp_types


class Explain(amp.Command):
    arguments = [(b"why", amp.Unicode())]
    response = []


class Server(amp_types.TypesServer):
    """Delay answers once the delay has passed, so pipelined answers come
    back out of order."""

    @Explain.responder
    def explain(self, why):
        raise amp.RemoteAmpError(amp.UNKNOWN_ERROR_CODE, why)

    def delayed_answer(self, seconds):
        return task.deferLater(reactor, seconds, lambda: {"done": True})


class StopOnEOF(protocol.Protocol):
    def connectionLost(self, reason):
        if reactor.running:
            reactor.stop()


def main():
    factory = protocol.Factory.forProtocol(Server)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    if len(sys.argv) > 1 and sys.argv[1]:
        reactor.listenUNIX(sys.argv[1], factory)
    stdio.StandardIO(StopOnEOF())
    reactor.callLater(60, reactor.stop)
    print("listening on 127.0.0.1:%d" % port.getHost().port, file=sys.stderr, flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
