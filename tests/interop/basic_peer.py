# SPDX-License-Identifier: MIT
"""
A Twisted peer for twine's interop tests: Twisted's own LineReceiver,
Int32StringReceiver and NetstringReceiver (twisted.protocols.basic), as a
server or as a client, speaking a tiny echo protocol:

  - every message received is sent back unchanged, except
  - "gen N", which is answered with one message of N bytes of b"g".

Usage:
  basic_peer.py server KIND MAX         listen on 127.0.0.1, print "PORT n"
  basic_peer.py client KIND MAX PORT    run the client scenario, print "OK"

KIND is line, int32 or netstring; MAX is the receiver's MAX_LENGTH. The
client scenario checks the peer's receiver and Twisted's at the boundary:
a message of exactly MAX is accepted both ways, and MAX + 1 is refused
both ways (the peer closes; Twisted's receiver reports it).
Exit status 0 means success; anything else prints the reason on stdout.
"""

import sys

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.protocols import basic

KINDS = {
    "line": basic.LineReceiver,
    "int32": basic.Int32StringReceiver,
    "netstring": basic.NetstringReceiver,
}

TIMEOUT = 30


def make_protocol(kind, max_length, serving):
    base = KINDS[kind]

    class Peer(base):
        MAX_LENGTH = max_length

        def connectionMade(self):
            self.received = defer.DeferredQueue()
            self.exceeded = False
            self.closed = defer.Deferred()

        def send(self, data):
            if kind == "line":
                self.sendLine(data)
            else:
                self.sendString(data)

        def message(self, data):
            if serving:
                if data.startswith(b"gen "):
                    self.send(b"g" * int(data[4:]))
                else:
                    self.send(data)
            else:
                self.received.put(data)

        def lineReceived(self, line):
            self.message(line)

        def stringReceived(self, string):
            self.message(string)

        def lineLengthExceeded(self, line):
            self.exceeded = True
            return base.lineLengthExceeded(self, line)

        def lengthLimitExceeded(self, length):
            self.exceeded = True
            return base.lengthLimitExceeded(self, length)

        def connectionLost(self, reason):
            if getattr(self, "brokenPeer", 0):
                self.exceeded = True  # NetstringReceiver's over-long refusal
            self.received.put(None)
            self.closed.callback(None)

    return Peer


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def payload(kind, n, fill=None):
    if fill is not None:
        return fill * n
    if kind == "line":  # no CR or LF inside a line
        return bytes(b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36] for i in range(n))
    return bytes(i % 256 for i in range(n))


@defer.inlineCallbacks
def client(kind, max_length, port):
    factory = protocol.Factory.forProtocol(make_protocol(kind, max_length, False))
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5)

    # 1. echoes, pipelined, up to and including exactly MAX in both directions
    p = yield endpoint.connect(factory)
    sent = [b"hello", b""] + [b"m%d" % i for i in range(100)] + [payload(kind, max_length)]
    for m in sent:
        p.send(m)
    for i, m in enumerate(sent):
        got = yield p.received.get()
        check(got == m, "echo %d: sent %d bytes, got %r" % (i, len(m), got if got is None else len(got)))
    p.send(b"gen %d" % max_length)
    got = yield p.received.get()
    check(got == b"g" * max_length, "a message of exactly MAX from the peer was not received")
    check(not p.exceeded, "Twisted refused a message of exactly MAX")
    p.transport.loseConnection()
    yield p.closed

    # 2. MAX + 1 to the peer: it must close without answering
    p = yield endpoint.connect(factory)
    p.send(payload(kind, max_length + 1))
    got = yield p.received.get()
    check(got is None, "the peer answered a message of MAX + 1 bytes")
    yield p.closed

    # 3. MAX + 1 from the peer: Twisted's receiver must refuse it
    p = yield endpoint.connect(factory)
    p.send(b"gen %d" % (max_length + 1))
    got = yield p.received.get()
    check(got is None, "Twisted accepted a message of MAX + 1 bytes")
    yield p.closed
    check(p.exceeded, "Twisted's receiver did not report MAX + 1 as too long")


def main(argv):
    role, kind, max_length = argv[1], argv[2], int(argv[3])
    result = {"status": 1}

    def timeout():
        print("FAIL: timed out after %d seconds" % TIMEOUT, flush=True)
        reactor.stop()

    watchdog = reactor.callLater(TIMEOUT if role == "client" else 2 * TIMEOUT, timeout)
    if role == "server":
        factory = protocol.Factory.forProtocol(make_protocol(kind, max_length, True))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        print("PORT %d" % port.getHost().port, flush=True)
        result["status"] = 0
    else:
        d = client(kind, max_length, int(argv[4]))

        def done(_):
            print("OK", flush=True)
            result["status"] = 0

        def failed(f):
            print("FAIL: %s" % f.getErrorMessage(), flush=True)

        def stop(_):
            if watchdog.active():
                watchdog.cancel()
            reactor.stop()

        d.addCallbacks(done, failed).addBoth(stop)
    reactor.run()
    return result["status"]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
