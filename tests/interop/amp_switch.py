# SPDX-License-Identifier: MIT
"""
Twisted's side of AMP protocol switches (ProtocolSwitchCommand).

Usage: amp_switch.py server
       amp_switch.py client PORT

Both speak the Switch command: a ProtocolSwitchCommand with a String
argument "name", declaring the error NO_SUCH. For the name "echo" the
responder switches to twisted.protocols.wire.Echo; any other name fails
with NO_SUCH, which switches nothing.

server: serves Switch and Sum with amp.AMP on 127.0.0.1, port 0; prints
"listening on 127.0.0.1:PORT" once ready, then runs until its standard
input closes, it is killed, or 60 seconds pass.

client: connects to 127.0.0.1:PORT; calls Switch with the name "none" and
expects NO_SUCH, checks the connection still answers Sum, then calls
Switch with "echo" and, once switched, sends PAYLOAD and expects it back
byte for byte. Exits 0 on success, 1 with the reason on stderr otherwise,
within 30 seconds.
"""
import sys

from twisted.internet import protocol, reactor, stdio
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols import amp, wire

# Every byte value, twice, and an AMP box's worth of look-alike bytes.
PAYLOAD = bytes(range(256)) * 2 + b"\x00\x08_command\x00\x03Sum\x00\x00"


class NoSuch(Exception):
    pass


class Switch(amp.ProtocolSwitchCommand):
    arguments = [(b"name", amp.String())]
    errors = {NoSuch: b"NO_SUCH"}


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Server(amp.AMP):
    @Switch.responder
    def switch(self, name):
        if name != b"echo":
            raise NoSuch("no such protocol")
        return wire.Echo()

    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}


class StopOnEOF(protocol.Protocol):
    def connectionLost(self, reason):
        if reactor.running:
            reactor.stop()


def serve():
    port = reactor.listenTCP(0, protocol.Factory.forProtocol(Server), interface="127.0.0.1")
    stdio.StandardIO(StopOnEOF())
    reactor.callLater(60, reactor.stop)
    print("listening on 127.0.0.1:%d" % port.getHost().port, file=sys.stderr, flush=True)
    reactor.run()
    return 0


class Expect(protocol.Protocol):
    """The protocol switched to: sends PAYLOAD, expects it back."""

    def __init__(self, result):
        self.result = result
        self.got = b""

    def connectionMade(self):
        self.transport.write(PAYLOAD)

    def dataReceived(self, data):
        self.got += data
        if len(self.got) >= len(PAYLOAD):
            if self.got == PAYLOAD:
                self.result.append("ok")
            else:
                self.result.append("echo differs: %r" % self.got)
            self.transport.loseConnection()
            reactor.stop()


class ExpectFactory(protocol.ClientFactory):
    def __init__(self, result):
        self.result = result

    def buildProtocol(self, addr):
        return Expect(self.result)


def client(port):
    result = []

    def fail(why):
        result.append(str(why))
        if reactor.running:
            reactor.stop()

    def connected(proto):
        d = proto.callRemote(Switch, ExpectFactory(result), name=b"none")

        def refused(f):
            f.trap(NoSuch)
            return proto.callRemote(Sum, a=20, b=22)

        def unexpected(_):
            raise AssertionError("Switch to 'none' succeeded")

        def summed(answer):
            if answer["total"] != 42:
                raise AssertionError("Sum answered %r" % answer)
            return proto.callRemote(Switch, ExpectFactory(result), name=b"echo")

        d.addCallbacks(unexpected, refused)
        d.addCallback(summed)
        d.addErrback(fail)

    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    connectProtocol(endpoint, amp.AMP()).addCallbacks(connected, fail)
    reactor.callLater(30, fail, "timed out")
    reactor.run()
    if result != ["ok"]:
        print("switch failed: %s" % result, file=sys.stderr)
        return 1
    return 0


def main():
    if sys.argv[1:2] == ["server"]:
        return serve()
    if sys.argv[1:2] == ["client"] and len(sys.argv) == 3:
        return client(int(sys.argv[2]))
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main())
