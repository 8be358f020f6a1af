# SPDX-License-Identifier: MIT
"""
Commands that carry every AMP argument type twine has beyond those of its
amp module -- Integers past 64 bits, Decimal, DateTime, Path, ListOf and
AmpList -- and a server that echoes them, plus one whose responder raises
an AMP error the command does not declare. check_amp_interop.c declares
the same commands in C.

Shared by amp_golden.py (Twisted's bytes for them) and amp_server.py
(Twisted serving them to twine's client).
"""
import datetime
import decimal

from twisted.protocols import amp
from twisted.python import filepath

import amp_commands

ROW = [
    (b"a", amp.Integer()),
    (b"b", amp.Unicode()),
    (b"when", amp.DateTime(optional=True)),
]
VALUES = [
    (b"big", amp.Integer()),
    (b"dec", amp.Decimal()),
    (b"decs", amp.ListOf(amp.Decimal())),
    (b"when", amp.DateTime()),
    (b"path", amp.Path()),
    (b"rows", amp.AmpList(ROW)),
]


class Types(amp.Command):
    arguments = VALUES
    response = VALUES


class Refuse(amp.Command):
    arguments = []
    response = []


def tz(sign, hours, minutes):
    return amp._FixedOffsetTZInfo.fromSignHoursMinutes(sign, hours, minutes)


# The values twine's client sends in check_amp_interop.c, as Python objects.
SAMPLE = {
    "big": -(2**70),
    "dec": decimal.Decimal("-1.50E-9"),
    "decs": [decimal.Decimal("NaN12"), decimal.Decimal("-Infinity"), decimal.Decimal("0E+3"),
             decimal.Decimal("-sNaN")],
    "when": datetime.datetime(2024, 2, 29, 23, 59, 59, 5, tzinfo=tz("-", 3, 30)),
    "path": filepath.FilePath("/tmp/\u00e9 x"),
    "rows": [
        {"a": 2**64, "b": "\u00e9t\u00e9", "when": None},
        {"a": -1, "b": "", "when": datetime.datetime(1, 1, 1, tzinfo=amp.utc)},
    ],
}


class TypesServer(amp_commands.Server):
    @Types.responder
    def types(self, **values):
        return values

    @Refuse.responder
    def refuse(self):
        raise amp.RemoteAmpError(b"NOT_DECLARED", "said so")
