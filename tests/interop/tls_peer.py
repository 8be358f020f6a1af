# SPDX-License-Identifier: MIT
"""Twisted's TLS, as a peer for twine's TLS tests.

    tls_peer.py client HOST PORT ROOTS TEXT        tls: client, echo of TEXT
    tls_peer.py line-client HOST PORT ROOTS N      tls: LineReceiver, N lines
    tls_peer.py server CERT KEY                    ssl: echo server
    tls_peer.py line-server CERT KEY               ssl: LineReceiver server
    tls_peer.py starttls-server CERT KEY           tcp: echo after STARTTLS
    tls_peer.py starttls-client HOST PORT CA TEXT  tcp:, then startTLS

Clients print what came back and exit 0 once it is all there, 1 on a
failure or after 10 s. Servers print "PORT n" once listening and serve
until their standard input closes. The line server greets each client
with "hello from twisted", answers each line with "echo:" and the line,
and prints "CLOSED" and the type of the reason when a connection ends. The STARTTLS exchange is the one the
twine tests speak: "STARTTLS\\n" in the clear, "GO\\n" back, then TLS both
ways.
"""
import sys

from twisted.internet import defer, endpoints, protocol, reactor, ssl, stdio
from twisted.protocols import basic


def finish(code):
    finish.code = code
    if reactor.running:
        reactor.stop()


finish.code = 1


class Collect(protocol.Protocol):
    done = None  # the exit code, once everything came back

    def __init__(self, text):
        self.text = text
        self.got = b""

    def connectionMade(self):
        self.transport.write(self.text)

    def dataReceived(self, data):
        self.got += data
        if len(self.got) >= len(self.text):
            sys.stdout.write(self.got.decode("latin-1") + "\n")
            sys.stdout.flush()
            # Stop once the close (close_notify, then FIN) is done.
            self.done = 0 if self.got == self.text else 1
            self.transport.loseConnection()

    def connectionLost(self, reason):
        if self.done is None:
            sys.stdout.write("lost: %s\n" % reason.getErrorMessage())
        finish(1 if self.done is None else self.done)


class Lines(basic.LineReceiver):
    def __init__(self, count):
        self.count = count
        self.seen = 0

    def connectionMade(self):
        for i in range(self.count):
            self.sendLine(b"line %d" % i)

    def lineReceived(self, line):
        if line != b"line %d" % self.seen:
            sys.stdout.write("unexpected %r\n" % line)
            finish(1)
            return
        self.seen += 1
        if self.seen == self.count:
            sys.stdout.write("%d lines\n" % self.count)
            self.done = True
            self.transport.loseConnection()

    def connectionLost(self, reason):
        finish(0 if getattr(self, "done", False) else 1)


class LineServer(basic.LineReceiver):
    def connectionMade(self):
        self.sendLine(b"hello from twisted")

    def lineReceived(self, line):
        self.sendLine(b"echo:" + line)

    def connectionLost(self, reason):
        sys.stdout.write("CLOSED %s\n" % reason.type.__name__)
        sys.stdout.flush()


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


class StartTLSServer(protocol.Protocol):
    options = None

    def connectionMade(self):
        self.buf = b""
        self.tls = False

    def dataReceived(self, data):
        if self.tls:
            self.transport.write(data)
            return
        self.buf += data
        if self.buf == b"STARTTLS\n":
            self.transport.write(b"GO\n")
            self.transport.startTLS(self.options)
            self.tls = True


class StartTLSClient(Collect):
    options = None

    def connectionMade(self):
        self.transport.write(b"STARTTLS\n")
        self.clear = b""

    def dataReceived(self, data):
        if self.clear is not None:
            self.clear += data
            if self.clear == b"GO\n":
                self.clear = None
                self.transport.startTLS(self.options)
                self.transport.write(self.text)
            return
        Collect.dataReceived(self, data)


class Quit(protocol.Protocol):
    def connectionLost(self, reason):
        finish(0)


def failed(f):
    sys.stdout.write("failed: %s\n" % f.getErrorMessage())
    finish(1)


def listening(port):
    sys.stdout.write("PORT %d\n" % port.getHost().port)
    sys.stdout.flush()
    stdio.StandardIO(Quit())


def main(argv):
    mode = argv[1]
    if mode in ("client", "line-client"):
        host, port, roots, arg = argv[2:6]
        desc = "tls:%s:%s:trustRoots=%s" % (host, port, roots)
        ep = endpoints.clientFromString(reactor, desc)
        if mode == "client":
            f = protocol.Factory.forProtocol(lambda: Collect(arg.encode()))
        else:
            f = protocol.Factory.forProtocol(lambda: Lines(int(arg)))
        ep.connect(f).addErrback(failed)
        reactor.callLater(10, finish, 1)
    elif mode == "starttls-client":
        host, port, ca, text = argv[2:6]
        with open(ca, "rb") as fh:
            root = ssl.Certificate.loadPEM(fh.read())
        StartTLSClient.options = ssl.optionsForClientTLS(u"localhost", trustRoot=root)
        ep = endpoints.TCP4ClientEndpoint(reactor, host, int(port))
        ep.connect(protocol.Factory.forProtocol(lambda: StartTLSClient(text.encode()))).addErrback(
            failed
        )
        reactor.callLater(10, finish, 1)
    elif mode in ("server", "line-server"):
        cert, key = argv[2:4]
        desc = "ssl:0:interface=127.0.0.1:privateKey=%s:certKey=%s" % (key, cert)
        ep = endpoints.serverFromString(reactor, desc)
        served = Echo if mode == "server" else LineServer
        ep.listen(protocol.Factory.forProtocol(served)).addCallbacks(listening, failed)
        reactor.callLater(60, finish, 1)
    elif mode == "starttls-server":
        cert, key = argv[2:4]
        with open(cert, "rb") as c, open(key, "rb") as k:
            StartTLSServer.options = ssl.PrivateCertificate.loadPEM(c.read() + k.read()).options()
        ep = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        ep.listen(protocol.Factory.forProtocol(StartTLSServer)).addCallbacks(listening, failed)
        reactor.callLater(60, finish, 1)
    else:
        sys.exit("unknown mode %s" % mode)
    reactor.run()
    return finish.code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
