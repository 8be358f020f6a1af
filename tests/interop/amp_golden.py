# SPDX-License-Identifier: MIT
"""
Twisted's own bytes for AMP exchanges, for twine to match byte for byte.

Usage: amp_golden.py

Prints one line per exchange, fields separated by spaces:

    client NAME REQUEST_HEX
        what Twisted's amp.AMP client writes for a callRemote
    server NAME REQUEST_HEX ANSWER_HEX
        what Twisted's amp.AMP server (with the commands of twine's amp
        module) writes back when it receives REQUEST

The transport is Twisted's StringTransport, so no network is involved.
"""
import binascii

from twisted.internet.testing import StringTransport
from twisted.logger import globalLogBeginner
from twisted.protocols import amp

from amp_commands import Delay, Divide, Echo, Server, Sum
from amp_types import SAMPLE, Refuse, Types, TypesServer


def hexed(data):
    return binascii.hexlify(data).decode("ascii")


def client(name, command, **kw):
    proto = amp.AMP()
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.callRemote(command, **kw)
    print("client", name, hexed(transport.value()))


def server(name, server_class=Server, **box):
    request = amp.AmpBox(**box).serialize()
    answer(name, server_class, request)


def answer(name, server_class, request):
    proto = server_class()
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(request)
    print("server", name, hexed(request), hexed(transport.value()))


def client_request(command, **kw):
    proto = amp.AMP()
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.callRemote(command, **kw)
    return transport.value()


def main():
    # The broken requests below make Twisted log tracebacks; they are expected.
    globalLogBeginner.beginLoggingTo([lambda event: None], redirectStandardIO=False)
    client("sum", Sum, a=13, b=81)
    client("echo", Echo, value=b"\x00hello\xff")
    client("divide", Divide, numerator=-7, denominator=2)
    client("delay", Delay, seconds=0.1)
    client("types", Types, **SAMPLE)

    server("sum", _command=b"Sum", _ask=b"1", a=b"13", b=b"81")
    server("sum_any_key_order", b=b"81", _ask=b"ff", a=b" -13 ", _command=b"Sum")
    server("echo", _command=b"Echo", _ask=b"2", value=b"\x00hello\xff")
    server("divide_third", _command=b"Divide", _ask=b"3", numerator=b"1", denominator=b"3")
    server("divide_big", _command=b"Divide", _ask=b"4", numerator=b"4611686018427387905",
           denominator=b"3")
    server("divide_float_repr", _command=b"Divide", _ask=b"5", numerator=b"1",
           denominator=b"100000")
    server("zero_division", _command=b"Divide", _ask=b"6", numerator=b"1", denominator=b"0")
    server("delay_zero", _command=b"Delay", _ask=b"7", seconds=b"0")
    server("unhandled", _command=b"Nope", _ask=b"8")
    server("unhandled_quoted", _command=b"it's", _ask=b"9")
    server("bad_argument", _command=b"Sum", _ask=b"a", a=b"notanumber", b=b"1")
    server("missing_argument", _command=b"Sum", _ask=b"b", a=b"1")

    # Every type, as Twisted's client sends it and as it arrives loosely written.
    answer("types", TypesServer, client_request(Types, **SAMPLE))
    rows = (b"\x00\x01a\x00\x02+0\x00\x01b\x00\x00\x00\x00"
            b"\x00\x01a\x00\x19 0_018446744073709551616\t\x00\x01b\x00\x02\xc3\xa9"
            b"\x00\x04when\x00\x202000-02-29T00:00:00.000000+00:00\x00\x00"
            b"\x00\x01a\x00\x01")
    server("types_loose", TypesServer, _command=b"Types", _ask=b"c",
           big=b" -0_99999999999999999999 ", dec=b" 1_0.50e0\x1c",
           decs=b"\x00\x04-nan\x00\x03inf\x00\x06.0e-08\x00\x04snan",
           when=b" 201/+1/ 3T 4x05:06.0_0007+00:99", path=b"/", rows=rows)
    server("types_big_integer", TypesServer, _command=b"Types", _ask=b"d",
           big=b"1" * 4300, dec=b"0", decs=b"", when=b"2000-01-01T00:00:00.000000-00:00",
           path=b"/", rows=b"")
    server("undeclared_error", TypesServer, _command=b"Refuse", _ask=b"e")


if __name__ == "__main__":
    main()
