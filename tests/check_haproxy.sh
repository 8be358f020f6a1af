#!/bin/sh
# SPDX-License-Identifier: MIT
# The PROXY protocol against the real HAProxy (Debian's haproxy package;
# tools/deps.sh installs it). Two reactord instances run the peerecho test
# module on haproxy:tcp endpoints; HAProxy, started here in the foreground
# on loopback with a configuration in a temporary directory, balances one
# frontend over them, sending version 1 headers to the first (send-proxy)
# and version 2 to the second (send-proxy-v2), with health checks.
#   - every client's echo works through HAProxy, and the peer reactord
#     reports (the peerecho greeting, from tw_transport_get_peer()) is the
#     client's own address, never HAProxy's;
#   - both backends served clients, so both header versions were read;
#   - draining a backend under load: SIGTERM alone stops it accepting
#     (HAProxy retries those connects on the other backend) and closes its
#     open connections in order, none reset, so only an exchange in flight
#     on it ends early (with a FIN); drained in HAProxy first, then
#     SIGTERM, no exchange of any client is lost. Each backend exits 0 and
#     HAProxy counts no session it aborted or failed.
#   - a client that reaches a backend directly, with no header or none
#     within --proxy-header-timeout, is closed and the reason logged.
# Everything is bounded: HAProxy runs under timeout(1), clients have
# socket timeouts.
set -u

builddir=$(cd "${TWINE_BUILDDIR:-.}" && pwd)
srcdir=${TWINE_SRCDIR:-$builddir}
reactord=${REACTORD:-$builddir/reactord}
plugins=$builddir/tests/haproxy/.libs
clients=$srcdir/tests/haproxy/clients.py
python=python3

haproxy=${HAPROXY:-}
if [ -z "$haproxy" ]; then
    haproxy=$(command -v haproxy 2>/dev/null || true)
    [ -z "$haproxy" ] && [ -x /usr/sbin/haproxy ] && haproxy=/usr/sbin/haproxy
fi
if [ -z "$haproxy" ]; then
    echo "SKIP: haproxy not found (Debian package haproxy; tools/deps.sh installs it)"
    exit 77
fi
command -v timeout >/dev/null 2>&1 || { echo "SKIP: timeout(1) not found"; exit 77; }
[ -e "$plugins/peerecho.so" ] || { echo "FAIL: $plugins/peerecho.so was not built"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-haproxy.XXXXXX") || exit 99
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
ok() { echo "ok: $*"; }
show() { sed 's/^/    /' "$1"; }

# start_backend NAME: a reactord serving peerecho behind the PROXY protocol.
start_backend() {
    "$reactord" --plugin-path "$plugins" -p peerecho -l haproxy:tcp:0:interface=127.0.0.1 \
        --shutdown-timeout 10 --proxy-header-timeout 1 2>"$tmp/$1.log" &
    eval "pid_$1=$!"
    pids="$pids $!"
    i=0
    while ! grep -q '(pid [0-9]*) serving' "$tmp/$1.log" && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    port=$(sed -n 's/.*peerecho listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/$1.log")
    if [ -z "$port" ]; then
        echo "FAIL: reactord $1 did not start:"
        show "$tmp/$1.log"
        exit 1
    fi
    eval "port_$1=$port"
}
start_backend a
start_backend b
ok "two reactord instances serve peerecho on haproxy:tcp ports $port_a and $port_b"

# Straight to a backend, without the balancer: no header, or none in time.
# shellcheck disable=SC2016
direct='import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
t = time.monotonic()
if sys.argv[2]:
    s.sendall(sys.argv[2].encode())
got = s.recv(100)
print("%r after %.2f s" % (got, time.monotonic() - t))'
out=$(timeout 20 $python -c "$direct" "$port_a" "hello" 2>&1)
if [ "${out%% *}" = "b''" ] && grep -q 'proxy: closing the connection from 127\.0\.0\.1:[0-9]*: no PROXY header' "$tmp/a.log"; then
    ok "a direct client without a PROXY header is closed ($out) with a logged reason"
else
    fail "a direct client without a PROXY header: $out"
    show "$tmp/a.log"
fi
out=$(timeout 20 $python -c "$direct" "$port_a" "" 2>&1)
# The client starts its clock once connect() returns, which a loaded
# machine may schedule after the server accepted and started the timeout:
# it may see a little less than the timeout, never much less or more.
secs=$(echo "$out" | sed -n 's/^b.. after \([0-9]*\.[0-9]*\) s$/\1/p')
if [ -n "$secs" ] && awk -v s="$secs" 'BEGIN { exit !(s >= 0.9 && s < 2) }' &&
    grep -q 'no complete PROXY header within 1 s' "$tmp/a.log"; then
    ok "a direct client that sends nothing is closed after --proxy-header-timeout ($out)"
else
    fail "a direct client that sends nothing: $out"
    show "$tmp/a.log"
fi

direct_lines=$(grep -c ' proxy: ' "$tmp/a.log")

front=$($python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/haproxy.cfg" <<CFG
global
    maxconn 512
    stats socket $tmp/admin.sock mode 600 level admin

defaults
    mode tcp
    timeout connect 2s
    timeout client 20s
    timeout server 20s
    retries 3
    option redispatch 1

frontend front
    bind 127.0.0.1:$front
    default_backend twine

backend twine
    balance roundrobin
    server a 127.0.0.1:$port_a send-proxy check inter 100ms fall 1 rise 1
    server b 127.0.0.1:$port_b send-proxy-v2 check inter 100ms fall 1 rise 1
CFG
"$haproxy" -c -q -f "$tmp/haproxy.cfg" >"$tmp/check.log" 2>&1 ||
    { echo "FAIL: haproxy refuses the configuration:"; show "$tmp/check.log"; exit 1; }
# -db: stay in the foreground, no daemon.
timeout 120 "$haproxy" -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
pids="$pids $!"

# Wait until HAProxy reports both servers UP (its health checks send the
# PROXY header too, so this already needs twine to read it).
i=0
up=0
while [ $i -lt 100 ]; do
    if [ -S "$tmp/admin.sock" ] &&
        $python "$clients" stat "$tmp/admin.sock" >"$tmp/stat.csv" 2>/dev/null; then
        up=$(grep -c '^twine,[ab],.*,UP' "$tmp/stat.csv")
        [ "$up" -eq 2 ] && break
    fi
    sleep 0.1
    i=$((i + 1))
done
if [ "$up" -ne 2 ]; then
    echo "FAIL: HAProxy did not see both backends UP:"
    show "$tmp/haproxy.log"
    [ -f "$tmp/stat.csv" ] && show "$tmp/stat.csv"
    show "$tmp/a.log"
    show "$tmp/b.log"
    exit 1
fi
ok "HAProxy $("$haproxy" -v | head -n 1 | cut -d' ' -f3) sees both backends UP through their health checks"

# Echo, and the peer twine sees.
if timeout 60 $python "$clients" peers "$front" 20 >"$tmp/peers.out" 2>&1; then
    ok "20 clients through HAProxy: echo works and twine reports each client's own address"
else
    fail "clients through HAProxy:"
    show "$tmp/peers.out"
fi
for b in a b; do
    served=0
    for addr in $(sed -n 's/^ok client \([^,]*\),.*/\1/p' "$tmp/peers.out"); do
        grep -q "peerecho: peer $addr\$" "$tmp/$b.log" && served=$((served + 1))
    done
    if [ "$served" -gt 0 ]; then
        ok "backend $b (PROXY v$([ $b = a ] && echo 1 || echo 2)) logged $served of the clients' addresses"
    else
        fail "backend $b logged none of the clients' addresses:"
        show "$tmp/$b.log"
    fi
done

# wait_exit NAME PID: it must exit 0 within 15 s.
wait_exit() {
    i=0
    while kill -0 "$2" 2>/dev/null && [ $i -lt 150 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$2" 2>/dev/null; then
        fail "backend $1 still runs 15 s after SIGTERM"
        return
    fi
    wait "$2"
    rc=$?
    [ "$rc" -eq 0 ] && ok "backend $1 drained and exited 0" ||
        { fail "backend $1 exited $rc after SIGTERM:"; show "$tmp/$1.log"; }
}

# HAProxy's counters for server NAME: none of its sessions may have failed
# in the response or been aborted by the server.
check_counters() {
    $python "$clients" stat "$tmp/admin.sock" >"$tmp/stat.csv" 2>&1
    header=$(head -n 1 "$tmp/stat.csv" | sed 's/^# //')
    row=$(grep "^twine,$1," "$tmp/stat.csv")
    field() { echo "$row" | cut -d, -f"$(echo "$header" | tr ',' '\n' | grep -n "^$1\$" | cut -d: -f1)"; }
    stot=$(field stot)
    eresp=$(field eresp)
    srv_abrt=$(field srv_abrt)
    if [ -n "$stot" ] && [ "${eresp:-x}" = 0 ] && [ "${srv_abrt:-x}" = 0 ]; then
        ok "HAProxy sent $stot sessions to $1: none failed in the response, none aborted by $1"
    else
        fail "HAProxy's counters for $1: sessions ${stot:-?}, response errors ${eresp:-?}, aborted by the server ${srv_abrt:-?}"
    fi
}

# wait_up NAME: HAProxy's health checks see the server UP again.
wait_up() {
    i=0
    while [ $i -lt 100 ]; do
        $python "$clients" stat "$tmp/admin.sock" 2>/dev/null | grep -q "^twine,$1,.*,UP" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    fail "HAProxy did not see $1 UP again"
    return 1
}

# 1. SIGTERM alone, under load. reactord stops accepting (HAProxy retries
# the refused connects on b) and closes each open connection in order:
# what it queued is sent, then a FIN. No connection is reset; an exchange
# in flight on a at that moment sees the FIN, at most one per client.
THREADS=8
timeout 60 $python "$clients" drain "$front" 3 $THREADS "$pid_a" 1 >"$tmp/drain1.out" 2>&1
completed=$(sed -n 's/^completed \([0-9]*\) exchanges.*/\1/p' "$tmp/drain1.out")
resets=$(grep -c '^failed: .* reset:' "$tmp/drain1.out")
closed=$(grep -c '^failed: .* closed:' "$tmp/drain1.out")
twice=$(sed -n 's/^failed: client \([0-9]*\) .*/\1/p' "$tmp/drain1.out" | sort | uniq -d | wc -l)
if [ "${completed:-0}" -gt 0 ] && [ "$resets" -eq 0 ] && [ "$twice" -eq 0 ] &&
    [ "$closed" -le $THREADS ]; then
    ok "SIGTERM to a under load: $completed exchanges completed; $closed in flight on a were closed in order (FIN), none reset, none refused"
else
    fail "SIGTERM to a under load:"
    show "$tmp/drain1.out"
fi
wait_exit a "$pid_a"
check_counters a

# 2. Drain in HAProxy first, then SIGTERM: the way to take a backend out
# without ending a single exchange (docs/scaling.md). A new reactord takes
# a's port for b's drain to have somewhere to go.
"$reactord" --plugin-path "$plugins" -p peerecho -l "haproxy:tcp:$port_a:interface=127.0.0.1" \
    --shutdown-timeout 10 2>"$tmp/a2.log" &
pid_a2=$!
pids="$pids $pid_a2"
if wait_up a; then
    if timeout 60 $python "$clients" drain "$front" 3 $THREADS "$pid_b" 1 "$tmp/admin.sock" twine/b \
        >"$tmp/drain2.out" 2>&1; then
        ok "HAProxy drain of b, then SIGTERM, under load: $(grep '^completed' "$tmp/drain2.out"), no connection lost"
    else
        fail "HAProxy drain of b, then SIGTERM, lost exchanges:"
        show "$tmp/drain2.out"
    fi
    wait_exit b "$pid_b"
    check_counters b
fi
# HAProxy's headers, its health checks' included, were all read.
if [ "$(grep -c ' proxy: ' "$tmp/a.log")" -ne "$direct_lines" ] ||
    grep -q ' proxy: ' "$tmp/b.log" "$tmp/a2.log"; then
    fail "a backend refused a PROXY header from HAProxy:"
    grep ' proxy: ' "$tmp/a.log" "$tmp/b.log" "$tmp/a2.log"
else
    ok "no PROXY header from HAProxy was refused"
fi

[ "$failures" -eq 0 ] || exit 1
echo "PASS: HAProxy with send-proxy and send-proxy-v2 in front of reactord"
