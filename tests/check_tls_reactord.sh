#!/bin/sh
# SPDX-License-Identifier: MIT
# reactord over TLS: the echo and line modules on ssl: endpoints, read by
# openssl s_client (TLS 1.2 and 1.3) and by Twisted's tls: client
# (tests/interop/tls_peer.py); twine-call's tls: against the amp module;
# Twisted's amp.StartTLS against the amp module with -o tls-certificate;
# the same with --workers; --idle-timeout and --max-connections; SIGHUP loading a
# new certificate for new connections while an open one goes on; SIGTERM's
# drain and the idle timeout ending with close_notify, then FIN; --user
# with a key only root may read (when run as root), and SIGHUP after the
# drop keeping the certificate; and a key or certificate that cannot serve
# stopping the start with one sentence and exit 78. Certificates come from
# tests/tls/mkcerts.sh, made now.
# Twisted is required (/usr/bin/python3 or $PYTHON_TWISTED): without it
# this fails, it never skips.
set -u

srcdir=${TWINE_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=$(cd "${TWINE_BUILDDIR:-.}" && pwd)
reactord=${REACTORD:-$builddir/reactord}
py=${PYTHON_TWISTED:-/usr/bin/python3}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-tls.XXXXXX") || exit 99
pids=""
cleanup() {
    exec 4>&- 2>/dev/null
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

failures=0
fail() {
    printf "FAIL: %s\n" "$*"
    failures=$((failures + 1))
}
ok() { printf "ok: %s\n" "$*"; }

sh "$srcdir/tests/tls/mkcerts.sh" "$tmp/certs" || { echo "FAIL: cannot make certificates"; exit 1; }
c=$tmp/certs
cp "$c/server.pem" "$tmp/cert.pem"
cp "$c/server.key" "$tmp/key.pem"

# start NAME ARGS...: reactord in the background, logging to $tmp/NAME.log;
# sets $port to the port it reports (the workers' supervisor reports too).
start() {
    name=$1
    shift
    : >"$tmp/$name.log"
    "$reactord" "$@" >>"$tmp/$name.log" 2>&1 &
    pid=$!
    pids="$pids $pid"
    port=""
    i=0
    while [ $i -lt 100 ] && [ -z "$port" ]; do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/$name.log" | head -n 1)
        [ -z "$port" ] && sleep 0.05
        i=$((i + 1))
    done
    [ -n "$port" ] || { fail "$name: reactord did not start: $(cat "$tmp/$name.log")"; return 1; }
}

stop() {
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

# s_client_echo VERSION: send a line through s_client and expect it back.
s_client_echo() {
    (printf 'over-%s\n' "$1"; sleep 1) |
        timeout 10 openssl s_client -connect "127.0.0.1:$port" "$1" -CAfile "$c/ca.pem" \
            -servername localhost -verify_return_error -no_ign_eof >"$tmp/s_client.out" 2>&1
    grep -q "^over-$1\$" "$tmp/s_client.out"
}

# ---- echo over ssl:, TLS 1.3 and 1.2, openssl and Twisted
ssl="ssl:0:privateKey=$tmp/key.pem:certKey=$tmp/cert.pem:interface=127.0.0.1"
if start echo -p echo -l "$ssl"; then
    for v in -tls1_3 -tls1_2; do
        if s_client_echo $v; then ok "echo over ssl: with s_client $v"; else
            fail "echo over ssl: with s_client $v: $(cat "$tmp/s_client.out")"; fi
    done
    out=$(timeout 20 "$py" "$srcdir/tests/interop/tls_peer.py" client localhost "$port" "$c/roots" twisted-echo 2>&1)
    if [ $? -eq 0 ] && [ "$out" = twisted-echo ]; then ok "Twisted tls: client to reactord echo"; else
        fail "Twisted tls: client to reactord echo: $out"; fi
    stop
fi

# ---- line over ssl:, Twisted's LineReceiver
if start line -p line -l "$ssl"; then
    out=$(timeout 20 "$py" "$srcdir/tests/interop/tls_peer.py" line-client localhost "$port" "$c/roots" 200 2>&1)
    if [ "$out" = "200 lines" ]; then ok "Twisted LineReceiver over tls: to reactord line"; else
        fail "Twisted LineReceiver to reactord line: $out"; fi
    stop
fi

# ---- twine-call over tls: to reactord's amp module over ssl:
call=$builddir/twine-call
if start amp -p amp -l "$ssl"; then
    out=$(timeout 20 "$call" "tls:localhost:$port:trustRoots=$c/ca.pem" Sum a=13 b=81 2>&1)
    if [ "$out" = "total=94" ]; then ok "twine-call tls: to reactord amp over ssl:"; else
        fail "twine-call tls: to reactord amp over ssl: $out"; fi
    out=$(timeout 20 "$call" "tls:127.0.0.1:$port" Sum a=1 b=2 2>&1)
    status=$?
    if [ $status -eq 69 ] && printf '%s' "$out" | grep -q "certificate verify failed"; then
        ok "twine-call tls: refuses a server the system does not trust"; else
        fail "twine-call tls: against an untrusted server: exit $status: $out"; fi
    stop
fi

# ---- Twisted's amp.StartTLS against the amp module with a certificate
if start ampstls -p amp -l tcp:0:interface=127.0.0.1 -o "tls-certificate=$c/server.pem" \
    -o "tls-key=$c/server.key"; then
    out=$(timeout 20 "$py" "$srcdir/tests/interop/amp_tls.py" client 127.0.0.1 "$port" "$c/ca.pem" 2>&1)
    if [ "$out" = "total=94 peer=localhost" ]; then ok "Twisted amp.StartTLS to reactord amp"; else
        fail "Twisted amp.StartTLS to reactord amp: $out"; fi
    stop
fi
refused_amp() {
    "$reactord" -p amp -l tcp:0 -o "tls-certificate=$1" -o "tls-key=$2" >"$tmp/refused.out" 2>&1 </dev/null
    status=$?
    if [ $status -eq 78 ] && grep -q "$3" "$tmp/refused.out"; then
        ok "amp with a bad StartTLS certificate: exit 78"; else
        fail "amp with a bad StartTLS certificate: exit $status: $(cat "$tmp/refused.out")"; fi
}
refused_amp "$c/server.pem" "$c/other.key" "does not match the certificate"

# ---- --workers: each worker serves the certificate read before the fork
if start workers -p echo --workers 2 -l "$ssl"; then
    good=0
    for i in 1 2 3 4; do s_client_echo -tls1_3 && good=$((good + 1)); done
    if [ $good -eq 4 ]; then ok "ssl: with --workers 2"; else
        fail "ssl: with --workers 2: $good of 4 connections echoed"; fi
    stop
fi

# ---- --workers: a session resumes whichever worker the client comes back
# to (the workers turn the same ticket keys). One connection takes a
# ticket, eight more offer it; the workers' totals show whether both
# served, which proves a resumption on a worker that did not seal it.
resumed_everywhere=""
for round in 1 2 3; do
    start resume -p echo --workers 2 -l "$ssl" || break
    s_opts="-connect 127.0.0.1:$port -tls1_3 -CAfile $c/ca.pem -servername localhost -verify_return_error -no_ign_eof"
    (printf 'first\n'; sleep 0.5) | timeout 10 openssl s_client $s_opts \
        -sess_out "$tmp/sess.pem" >"$tmp/s_first.out" 2>&1
    reused=0
    for i in 1 2 3 4 5 6 7 8; do
        (printf 'again\n'; sleep 0.3) | timeout 10 openssl s_client $s_opts \
            -sess_in "$tmp/sess.pem" >"$tmp/s_again.out" 2>&1
        grep -q '^Reused, TLSv1.3' "$tmp/s_again.out" && reused=$((reused + 1))
    done
    stop
    if [ $reused -ne 8 ]; then
        fail "--workers 2: $reused of 8 connections resumed the session: $(cat "$tmp/s_again.out")"
        resumed_everywhere=failed
        break
    fi
    served=$(grep -c 'worker [12]: totals for .* [1-9][0-9]* accepted' "$tmp/resume.log")
    if [ "$served" -eq 2 ]; then
        resumed_everywhere=yes
        break
    fi
done
case $resumed_everywhere in
yes) ok "--workers 2: a session sealed by one worker resumes on the other" ;;
"") ok "--workers 2: sessions resumed, but every connection went to one worker (not checked across workers)" ;;
esac

# ---- SIGHUP: new connections get the new certificate, the open one goes on
if start reload -p echo -l "$ssl"; then
    mkfifo "$tmp/in"
    openssl s_client -connect "127.0.0.1:$port" -CAfile "$c/ca.pem" -servername localhost \
        -quiet <"$tmp/in" >"$tmp/open.out" 2>&1 &
    pids="$pids $!"
    exec 4>"$tmp/in"
    printf 'before\n' >&4
    sleep 0.5
    cp "$c/other.pem" "$tmp/cert.pem"
    cp "$c/other.key" "$tmp/key.pem"
    kill -HUP "$pid"
    sleep 0.3
    timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$c/ca.pem" \
        -servername other.test -verify_hostname other.test -verify_return_error </dev/null \
        >"$tmp/new.out" 2>&1
    if grep -q "Verify return code: 0 (ok)" "$tmp/new.out"; then
        ok "SIGHUP: a new connection gets the reloaded certificate"; else
        fail "SIGHUP: the new connection did not verify as other.test: $(cat "$tmp/new.out")"; fi
    printf 'after\n' >&4
    sleep 0.5
    if grep -q '^before$' "$tmp/open.out" && grep -q '^after$' "$tmp/open.out"; then
        ok "SIGHUP: the open connection goes on"; else
        fail "SIGHUP: the open connection stopped: $(cat "$tmp/open.out")"; fi
    grep -q "certificate $tmp/cert.pem reloaded" "$tmp/reload.log" ||
        fail "SIGHUP: no reload logged: $(cat "$tmp/reload.log")"
    exec 4>&-
    stop
fi

# ---- --idle-timeout and --max-connections work on TLS connections as on TCP
cp "$c/server.pem" "$tmp/cert.pem"
cp "$c/server.key" "$tmp/key.pem"
if start idle -p echo --idle-timeout 1 --max-connections 1 -l "$ssl"; then
    out=$(timeout 20 "$py" - "$port" "$c/ca.pem" <<'PY' 2>&1
import socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[2])
# Python's default takes a FIN without close_notify for a clean end.
ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
def connect():
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    return ctx.wrap_socket(s, server_hostname="localhost", suppress_ragged_eofs=False)
first = connect()
first.sendall(b"hi")
assert first.recv(2) == b"hi"
# The one connection allowed is taken: a second is closed at once.
try:
    second = connect()
    second.sendall(b"x")
    got = second.recv(1)
    print("second connection answered %r" % got if got else "second closed")
except (ssl.SSLError, OSError) as e:
    print("second closed")
began = time.monotonic()
try:
    # b"" only for close_notify: a bare FIN raises SSLEOFError.
    how = "cleanly" if first.recv(1) == b"" else "with data"
except (ssl.SSLError, OSError) as e:
    how = "without close_notify (%s)" % e
print("idle closed %s after %.1f s" % (how, time.monotonic() - began))
PY
)
    if printf '%s\n' "$out" | grep -q "^second closed$"; then
        ok "--max-connections 1: the second TLS connection is closed"; else
        fail "--max-connections 1: $out"; fi
    secs=$(printf '%s\n' "$out" | sed -n 's/^idle closed cleanly after \([0-9]*\)\..*/\1/p')
    if [ -n "$secs" ] && [ "$secs" -lt 4 ]; then
        ok "--idle-timeout closes an idle TLS connection with close_notify"; else
        fail "--idle-timeout on TLS: $out"; fi
    stop
fi

# ---- SIGTERM: the drain ends an open TLS connection with close_notify, then FIN
if start drain -p echo -l "$ssl"; then
    out=$(timeout 20 "$py" - "$port" "$c/ca.pem" "$pid" <<'PY' 2>&1
import os, signal, socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF # a bare FIN must raise
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))),
                    server_hostname="localhost", suppress_ragged_eofs=False)
s.sendall(b"before-stop")
got = b""
while len(got) < 11:
    got += s.recv(100)
os.kill(int(sys.argv[3]), signal.SIGTERM)
try:
    rest = s.recv(100)
    print("close_notify" if rest == b"" else "more data: %r" % rest)
except (ssl.SSLError, OSError) as e:
    print("no close_notify: %s" % e)
    sys.exit(0)
# Ours back, then the plain socket: the server's FIN follows its close_notify.
plain = s.unwrap()
print("FIN" if plain.recv(1) == b"" else "data after close_notify")
PY
)
    if [ "$out" = "close_notify
FIN" ]; then ok "SIGTERM: an open TLS connection gets close_notify, then FIN"; else
        fail "SIGTERM over TLS: $out"; fi
    wait "$pid"
    status=$?
    [ $status -eq 0 ] || fail "SIGTERM over TLS: reactord exited $status: $(cat "$tmp/drain.log")"
fi

# ---- --user: the key is read as root before the drop; SIGHUP after it keeps the certificate
if [ "$(id -u)" -ne 0 ]; then
    echo "skip: --user with a key only root may read needs root (running as uid $(id -u))"
elif ! nobody=$(id -u nobody 2>/dev/null); then
    echo "skip: --user needs the user nobody, and there is none"
else
    priv=$tmp/priv
    mkdir "$priv"
    chmod 755 "$tmp" "$priv" # nobody may reach the files; only the key's mode stops it
    cp "$c/server.pem" "$priv/cert.pem"
    cp "$c/server.key" "$priv/key.pem"
    chown 0:0 "$priv/key.pem" "$priv/cert.pem"
    chmod 600 "$priv/key.pem"
    chmod 644 "$priv/cert.pem"
    userssl="ssl:0:privateKey=$priv/key.pem:certKey=$priv/cert.pem:interface=127.0.0.1"
    if start user -p echo --user nobody -l "$userssl"; then
        uids=$(sed -n 's/^Uid:[[:space:]]*//p' "/proc/$pid/status" | tr -s '[:space:]' ' ')
        if [ "$uids" = "$nobody $nobody $nobody $nobody " ] || [ "$uids" = "$nobody $nobody $nobody $nobody" ]; then
            ok "--user nobody: reactord runs as uid $nobody"; else
            fail "--user nobody: /proc/$pid/status says Uid: $uids"; fi
        if s_client_echo -tls1_3; then ok "--user nobody: a root-only key serves after the drop"; else
            fail "--user nobody: no echo over ssl: $(cat "$tmp/s_client.out")"; fi
        kill -HUP "$pid"
        i=0
        while [ $i -lt 50 ] && ! grep -q "keeping the certificate in use" "$tmp/user.log"; do
            sleep 0.1
            i=$((i + 1))
        done
        if grep "keeping the certificate in use" "$tmp/user.log" | grep -q "Permission denied"; then
            ok "--user nobody: SIGHUP cannot read the key any more, says so once"; else
            fail "--user nobody: SIGHUP logged: $(cat "$tmp/user.log")"; fi
        lines=$(grep -c "keeping the certificate in use" "$tmp/user.log")
        [ "$lines" -eq 1 ] || fail "--user nobody: SIGHUP logged $lines warnings"
        if kill -0 "$pid" 2>/dev/null && s_client_echo -tls1_3; then
            ok "--user nobody: after SIGHUP the old certificate still serves"; else
            fail "--user nobody: after SIGHUP: $(cat "$tmp/s_client.out") $(cat "$tmp/user.log")"; fi
        stop
    fi
fi

# ---- a certificate or key that cannot serve: one sentence, exit 78
refused() {
    what=$1
    expect=$2
    shift 2
    "$reactord" -p echo -l "$@" >"$tmp/refused.out" 2>&1 </dev/null
    status=$?
    lines=$(wc -l <"$tmp/refused.out")
    if [ $status -eq 78 ] && [ "$lines" -eq 1 ] && grep -q "$expect" "$tmp/refused.out"; then
        ok "$what: exit 78, one sentence"; else
        fail "$what: exit $status, $lines lines: $(cat "$tmp/refused.out")"; fi
}
refused "a missing key" "cannot read the private key .*nope.key: No such file" \
    "ssl:0:privateKey=$tmp/nope.key:certKey=$c/server.pem"
refused "a key of another certificate" "does not match the certificate" \
    "ssl:0:privateKey=$c/other.key:certKey=$c/server.pem"
refused "an expired certificate" "expired on 2020-02-01" \
    "ssl:0:privateKey=$c/expired.key:certKey=$c/expired.pem"
chmod 000 "$tmp/key.pem"
if [ "$(id -u)" -ne 0 ]; then
    refused "an unreadable key" "Permission denied" "ssl:0:privateKey=$tmp/key.pem:certKey=$c/other.pem"
fi

[ $failures -eq 0 ] || exit 1
echo "PASS: reactord serves TLS"
