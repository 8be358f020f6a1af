# SPDX-License-Identifier: MIT
"""Twisted's AMP StartTLS, as a peer for twine's.

    amp_tls.py client HOST PORT CA     StartTLS, then Sum(a=13, b=81) over TLS
    amp_tls.py server CERT KEY         an AMP server answering StartTLS and Sum

The client prints "total=94 peer=<subject CN>" and exits 0, or 1 on a
failure or after 10 s. The server prints "PORT n" once listening and
serves until its standard input closes.
"""
import sys

from twisted.internet import endpoints, protocol, reactor, ssl, stdio
from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


def finish(code):
    finish.code = code
    if reactor.running:
        reactor.stop()


finish.code = 1


class Server(amp.AMP):
    certificate = None

    @amp.StartTLS.responder
    def start_tls(self):
        return {"tls_localCertificate": self.certificate}

    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}


class Quit(protocol.Protocol):
    def connectionLost(self, reason):
        finish(0)


def failed(f):
    sys.stdout.write("failed: %s\n" % f.getErrorMessage())
    sys.stdout.flush()
    finish(1)


def run_client(host, port, ca):
    with open(ca, "rb") as fh:
        authority = ssl.Certificate.loadPEM(fh.read())
    ep = endpoints.TCP4ClientEndpoint(reactor, host, port)

    def connected(proto):
        d = proto.callRemote(amp.StartTLS, tls_verifyAuthorities=[authority])
        d.addCallback(lambda _: proto.callRemote(Sum, a=13, b=81))

        def answered(result):
            cert = proto.transport.getPeerCertificate()
            cn = cert.get_subject().CN if cert is not None else None
            sys.stdout.write("total=%d peer=%s\n" % (result["total"], cn))
            sys.stdout.flush()
            proto.transport.loseConnection()
            finish(0)

        d.addCallback(answered)
        d.addErrback(failed)

    ep.connect(protocol.Factory.forProtocol(amp.AMP)).addCallbacks(connected, failed)
    reactor.callLater(10, finish, 1)


def run_server(cert, key):
    with open(cert, "rb") as c, open(key, "rb") as k:
        Server.certificate = ssl.PrivateCertificate.loadPEM(c.read() + k.read())
    ep = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")

    def listening(port):
        sys.stdout.write("PORT %d\n" % port.getHost().port)
        sys.stdout.flush()
        stdio.StandardIO(Quit())

    ep.listen(protocol.Factory.forProtocol(Server)).addCallbacks(listening, failed)
    reactor.callLater(60, finish, 1)


def main(argv):
    if argv[1] == "client":
        run_client(argv[2], int(argv[3]), argv[4])
    elif argv[1] == "server":
        run_server(argv[2], argv[3])
    else:
        sys.exit("unknown mode %s" % argv[1])
    reactor.run()
    return finish.code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
