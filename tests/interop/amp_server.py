"""
A Twisted AMP server for twine's client to call.

Usage: amp_server.py [UNIX_SOCKET_PATH]

Serves Sum, Echo, Divide (declaring ZERO_DIVISION) and Delay with Twisted's
amp.AMP on 127.0.0.1, port 0, and also on UNIX_SOCKET_PATH when given.
Prints "listening on 127.0.0.1:PORT" once ready, then runs until its
standard input closes, it is killed, or 60 seconds pass.
"""
import sys

from twisted.internet import protocol, reactor, stdio, task
from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Echo(amp.Command):
    arguments = [(b"value", amp.String())]
    response = [(b"value", amp.String())]


class Divide(amp.Command):
    arguments = [(b"numerator", amp.Integer()), (b"denominator", amp.Integer())]
    response = [(b"result", amp.Float())]
    errors = {ZeroDivisionError: b"ZERO_DIVISION"}


class Delay(amp.Command):
    arguments = [(b"seconds", amp.Float())]
    response = [(b"done", amp.Boolean())]


class Server(amp.AMP):
    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}

    @Echo.responder
    def echo(self, value):
        return {"value": value}

    @Divide.responder
    def divide(self, numerator, denominator):
        return {"result": numerator / denominator}

    @Delay.responder
    def delay(self, seconds):
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
