# SPDX-License-Identifier: MIT
"""
Twisted's own AMP client against twine's `reactord --protocol amp`.

Usage: amp_client.py PORT

Calls every built-in command with Twisted's amp.AMP, checks each answer,
pipelines Delay calls whose answers come back out of order, and ends with a
Sum whose argument does not decode, which must be answered UNKNOWN and close
the connection. Prints one "ok NAME" line per check and exits 0 when all
passed; any failure prints "FAIL ..." and exits 1. The whole run is bounded
by a 20-second watchdog.
"""
import math
import sys
import time

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols import amp

from amp_commands import Delay, Divide, Echo, Sum, Time


class Missing(amp.Command):
    arguments = []
    response = []


class BadSum(amp.Command):
    """Sum as a sloppy client sends it: a String where an Integer belongs."""

    commandName = b"Sum"
    arguments = [(b"a", amp.String()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


failures = []


def check(name, condition, detail=""):
    if condition:
        print("ok", name, flush=True)
    else:
        print("FAIL", name, detail, flush=True)
        failures.append(name)


@defer.inlineCallbacks
def run(port):
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    closed = defer.Deferred()

    class Client(amp.AMP):
        def connectionLost(self, reason):
            amp.AMP.connectionLost(self, reason)
            if not closed.called:
                closed.callback(None)

    client = yield connectProtocol(endpoint, Client())

    r = yield client.callRemote(Echo, value=b"hello\x00\xffworld")
    check("echo", r["value"] == b"hello\x00\xffworld", repr(r))

    r = yield client.callRemote(Echo, value=b"x" * 65535)
    check("echo_largest_value", r["value"] == b"x" * 65535)

    r = yield client.callRemote(Sum, a=13, b=81)
    check("sum", r["total"] == 94, repr(r))

    r = yield client.callRemote(Sum, a=-(2**62), b=-(2**62))
    check("sum_negative", r["total"] == -(2**63), repr(r))

    r = yield client.callRemote(Divide, numerator=1, denominator=3)
    check("divide", r["result"] == 1 / 3, repr(r))

    r = yield client.callRemote(Divide, numerator=2**62 + 1, denominator=3)
    check("divide_correctly_rounded", r["result"] == (2**62 + 1) / 3, repr(r))

    try:
        yield client.callRemote(Divide, numerator=1, denominator=0)
        check("zero_division", False, "no error")
    except ZeroDivisionError as e:
        check("zero_division", str(e) == "division by zero", repr(e))

    before = time.time()
    r = yield client.callRemote(Time)
    after = time.time()
    check("time", before - 1 <= r["now"] <= after + 1, repr(r))

    r = yield client.callRemote(Delay, seconds=0.05)
    check("delay", r["done"] is True, repr(r))

    try:
        yield client.callRemote(Missing)
        check("unhandled", False, "no error")
    except amp.UnhandledCommand as e:
        check("unhandled", "Unhandled Command: b'Missing'" in str(e), repr(e))

    # The connection survived UNHANDLED and ZERO_DIVISION.
    r = yield client.callRemote(Sum, a=1, b=2)
    check("still_open_after_declared_errors", r["total"] == 3, repr(r))

    # Pipelined: all sent at once, answered as their timers go off.
    order = []

    def note(result, label):
        order.append(label)
        return result

    calls = []
    for label, seconds in [("slow", 0.4), ("fast", 0.0), ("middle", 0.2)]:
        d = client.callRemote(Delay, seconds=seconds)
        d.addCallback(note, label)
        calls.append(d)
    echoes = [client.callRemote(Echo, value=b"%d" % i) for i in range(50)]
    results = yield defer.gatherResults(calls + echoes)
    check("pipelined_delays_answered_out_of_order",
          order == ["fast", "middle", "slow"], repr(order))
    check("pipelined_echoes_matched",
          [r["value"] for r in results[3:]] == [b"%d" % i for i in range(50)])

    # Last: an argument that does not decode gets UNKNOWN, then the close.
    try:
        yield client.callRemote(BadSum, a=b"notanumber", b=2)
        check("broken_request_unknown", False, "no error")
    except amp.UnknownRemoteError as e:
        check("broken_request_unknown", "Unknown Error" in str(e), repr(e))
    yield closed
    check("broken_request_closes", True)


def main():
    port = int(sys.argv[1])
    reactor.callLater(20, lambda: (failures.append("watchdog"), reactor.stop()))

    def done(result):
        if reactor.running:
            reactor.stop()

    def crashed(failure):
        failures.append("exception")
        print("FAIL", failure.getTraceback(), flush=True)
        done(None)

    d = run(port)
    d.addCallbacks(done, crashed)
    reactor.run()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
