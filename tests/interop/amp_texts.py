# SPDX-License-Identifier: MIT
"""
Random Integer, Decimal and DateTime texts, and what Twisted makes of them.

Usage: amp_texts.py COUNT SEED OUTPUT

Writes COUNT lines per type to OUTPUT, "TYPE HEX RESULT": TYPE is integer,
decimal or datetime, HEX the value's bytes as sent on the wire ("-" for
none), RESULT the bytes Twisted's argument type sends back after decoding
them (its fromString, then toString), or ERR when it refuses them. The texts are mutations of
valid ones, so that both sides of every rule get exercised.
"""
import binascii
import random
import sys

from twisted.protocols import amp

ALPHABET = "0123456789._eE+-nNaAsSiIfFtTyY \t\x0b\x1c_"
WORDS = ["nan", "snan", "inf", "infinity", "1e", "e-", "0.", "00", ".0", "-", "_",
         "1e999999999999999999", "e-1999999999999999997", "9" * 30]
DATETIMES = [b"2000-02-29T23:59:59.999999+05:30", b"0001-01-01T00:00:00.000000-00:00",
             b"9999-12-31T23:59:59.999999+23:59", b"1900-02-28T12:00:00.000000-12:45"]
DATETIME_BYTES = b"0123456789+-_ :T.x\x1c\t"


def decimal_text(rng):
    if rng.random() < 0.3:
        return "".join(rng.choice(WORDS + list(ALPHABET)) for _ in range(rng.randint(1, 5)))
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 12)))


def integer_text(rng):
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 60)))
    text = list(rng.choice(["", "+", "-", " ", "\t-"]) + digits + rng.choice(["", " ", "\n"]))
    for _ in range(rng.randint(0, 2)):
        text.insert(rng.randrange(len(text) + 1), rng.choice("_ x-"))
    return "".join(text)


def datetime_text(rng):
    text = bytearray(rng.choice(DATETIMES))
    for _ in range(rng.randint(1, 4)):
        text[rng.randrange(len(text))] = rng.choice(DATETIME_BYTES)
    return bytes(text)


def result(argument, data):
    try:
        value = argument.fromString(data)
        if isinstance(argument, amp.DateTime):
            value.utcoffset()  # Python builds any offset, but refuses to use a day or more
        return argument.toString(value).decode("ascii")
    except Exception:
        return "ERR"


def main():
    count, seed = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    out = open(sys.argv[3], "w")
    for name, argument, make in [("integer", amp.Integer(), integer_text),
                                 ("decimal", amp.Decimal(), decimal_text),
                                 ("datetime", amp.DateTime(), datetime_text)]:
        for _ in range(count):
            data = make(rng)
            if isinstance(data, str):
                data = data.encode("ascii")
            print(name, binascii.hexlify(data).decode("ascii") or "-", result(argument, data),
                  file=out)
    out.close()


if __name__ == "__main__":
    main()
