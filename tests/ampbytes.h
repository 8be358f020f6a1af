/* SPDX-License-Identifier: MIT */
/*
 * Twisted's bytes for one AMP exchange, Sum(a=13, b=81) and its answer,
 * which the box, parser and protocol tests compare twine's bytes with.
 * They are static so that each test may take their sizeof.
 */
#ifndef TWINE_TESTS_AMPBYTES_H
#define TWINE_TESTS_AMPBYTES_H

/*
 * Golden bytes, produced once with Twisted 22.4 (/usr/bin/python3):
 *
 *   from twisted.protocols import amp
 *   from twisted.internet.testing import StringTransport
 *   class Sum(amp.Command):
 *       arguments = [(b'a', amp.Integer()), (b'b', amp.Integer())]
 *       response = [(b'total', amp.Integer())]
 *   c = amp.AMP(); t = StringTransport(); c.makeConnection(t)
 *   c.callRemote(Sum, a=13, b=81); t.value()        # SUM_REQUEST
 *   # and the answer of an AMP server whose Sum responder returns a + b,
 *   # fed SUM_REQUEST:                               # SUM_ANSWER
 *
 * (tests/interop/amp_golden.py prints them again; check_amp_interop
 * compares twine's live output with Twisted's.)
 */
static const unsigned char SUM_REQUEST[] = {
    0x00, 0x04, '_', 'a', 's', 'k', 0x00, 0x01, '1',
    0x00, 0x08, '_', 'c', 'o', 'm', 'm', 'a', 'n', 'd', 0x00, 0x03, 'S', 'u', 'm',
    0x00, 0x01, 'a', 0x00, 0x02, '1', '3',
    0x00, 0x01, 'b', 0x00, 0x02, '8', '1',
    0x00, 0x00,
};

static const unsigned char SUM_ANSWER[] = {
    0x00, 0x07, '_', 'a', 'n', 's', 'w', 'e', 'r', 0x00, 0x01, '1',
    0x00, 0x05, 't', 'o', 't', 'a', 'l', 0x00, 0x02, '9', '4',
    0x00, 0x00,
};

#endif
