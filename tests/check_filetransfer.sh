#!/bin/sh
# SPDX-License-Identifier: MIT
# examples/filetransfer end to end. reactord loads the module from the build
# tree (--plugin-path) and serves a root directory on 127.0.0.1, port 0;
# ftclient then:
#   - puts files and gets them back: bytes and SHA-256 must match, on disk
#     and as both sides report them;
#   - tries every way out of the root (../, absolute paths, symbolic links to
#     a file or a directory outside): each must end in the server's error
#     frame, and nothing outside the root may be read or written;
# a raw client (Python) checks that one connection serves requests in turn
# and survives refusals; then ftclient
#   - puts and gets a 64 MiB file while the server's memory is watched
#     (VmRSS and VmHWM of the reactord process, printed): streaming through
#     the producer must keep it from growing with the file.
# Everything happens in a mkdtemp directory.
set -u

builddir=$(cd "${TWINE_BUILDDIR:-.}" && pwd)
reactord=${REACTORD:-$builddir/reactord}
modules=$builddir/examples/filetransfer/.libs
ftclient=$builddir/examples/filetransfer/ftclient
BIG_MIB=64
RSS_LIMIT_KIB=16384 # how much the server may grow while moving BIG_MIB twice

tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-ft.XXXXXX") || exit 99
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
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
if command -v timeout >/dev/null 2>&1; then ft() { timeout 60 "$ftclient" "$@"; }
else ft() { "$ftclient" "$@"; }; fi
sha() { sha256sum "$1" | cut -d' ' -f1; }

[ -e "$modules/filetransfer.so" ] || { echo "FAIL: $modules/filetransfer.so was not built"; exit 1; }
command -v sha256sum >/dev/null 2>&1 || { echo "SKIP: sha256sum not found"; exit 77; }

root=$tmp/root
outside=$tmp/outside
work=$tmp/work
mkdir -p "$root/sub" "$outside" "$work" || exit 99
echo "not for clients" >"$outside/secret"
ln -s ../outside/secret "$root/escape"
ln -s ../outside "$root/door"
ln -s "$outside/secret" "$root/absolute-link"

# Under AddressSanitizer, freed memory waits in a quarantine (256 MiB by
# default) that would count as growth; keep it small for the server.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"
export ASAN_OPTIONS
: >"$tmp/server.log"
"$reactord" --plugin-path "$modules" --protocol filetransfer -o "root=$root" \
    --listen tcp:0:interface=127.0.0.1 2>"$tmp/server.log" &
server=$!
i=0
# It logs "listening on ADDRESS", then "(pid N) serving ...": wait for both.
while ! grep -q '(pid [0-9]*) serving' "$tmp/server.log" && [ $i -lt 100 ] &&
    kill -0 "$server" 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
port=$(sed -n 's/.*filetransfer listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/server.log")
pid=$(sed -n 's/.*(pid \([0-9]*\)).*/\1/p' "$tmp/server.log" | head -n 1)
if [ -z "$port" ] || [ -z "$pid" ]; then
    echo "FAIL: reactord did not serve the filetransfer module:"
    sed 's/^/    /' "$tmp/server.log"
    exit 1
fi
ok "reactord --plugin-path serves the filetransfer module (port $port, pid $pid)"
to=tcp:127.0.0.1:$port
cd "$work" || exit 99

# 1. Round trips.
head -c 300001 /dev/urandom >small.bin
want=$(sha small.bin)
out=$(ft "$to" put small.bin 2>&1)
rc=$?
if [ $rc -eq 0 ] && cmp -s small.bin "$root/small.bin" && [ "$(sha "$root/small.bin")" = "$want" ] &&
    [ "$out" = "stored small.bin as small.bin: 300001 bytes, sha256 $want" ]; then
    ok "put stores the file's bytes, and both sides agree on its SHA-256"
else
    fail "put small.bin: '$out'"
fi
out=$(ft "$to" get small.bin back.bin 2>&1)
rc=$?
if [ $rc -eq 0 ] && cmp -s small.bin back.bin && [ ! -e back.bin.part ] &&
    [ "$out" = "fetched small.bin into back.bin: 300001 bytes, sha256 $want" ]; then
    ok "get brings the same bytes and SHA-256 back"
else
    fail "get small.bin: '$out'"
fi
if ft "$to" put small.bin sub/deeper.bin >/dev/null 2>&1 && ft "$to" get sub/deeper.bin >/dev/null 2>&1 &&
    cmp -s small.bin deeper.bin && cmp -s small.bin "$root/sub/deeper.bin"; then
    ok "names may lead into subdirectories of the root"
else
    fail "put and get of sub/deeper.bin"
fi
: >empty
if ft "$to" put empty >/dev/null 2>&1 && ft "$to" get empty empty.back >/dev/null 2>&1 &&
    [ -f empty.back ] && [ ! -s empty.back ] && [ -f "$root/empty" ] && [ ! -s "$root/empty" ]; then
    ok "an empty file goes both ways"
else
    fail "put and get of an empty file"
fi
if find "$root" -name '*.part' | grep -q .; then fail "a temporary upload file was left in the root"
else ok "no temporary upload file is left behind"; fi

# 2. Ways out of the root: each gets the server's error frame.
refused() { # refused VERB NAME [LOCAL]: the server must answer with an error frame
    out=$(ft "$to" "$@" 2>&1)
    rc=$?
    case $rc:$out in
    "1:ftclient: server: "*) return 0 ;;
    *) echo "    $*: exit $rc, '$out'"; return 1 ;;
    esac
}
for name in ../outside/secret "$outside/secret" sub/../../outside/secret escape absolute-link \
    door/secret ./escape sub//../escape; do
    if refused get "$name" stolen; then ok "get '$name' is refused with an error frame"
    else fail "get '$name' was not refused"; fi
    [ ! -e stolen ] || { fail "get '$name' wrote a local file"; rm -f stolen; }
done
for name in ../outside/evil "$outside/evil" door/evil sub/../../outside/evil; do
    if refused put small.bin "$name"; then ok "put '$name' is refused with an error frame"
    else fail "put '$name' was not refused"; fi
done
# A put over a link replaces the link inside the root; it never writes through it.
ft "$to" put small.bin escape >/dev/null 2>&1 || fail "put over the link 'escape'"
if [ "$(ls "$outside")" = secret ] && [ "$(cat "$outside/secret")" = "not for clients" ] &&
    [ -f "$root/escape" ] && [ ! -L "$root/escape" ]; then
    ok "nothing outside the root was created or changed"
else
    fail "the directory outside the root changed: $(ls -l "$outside")"
fi

# 3. One connection, several requests, spoken frame by frame: two gets sent
#    back to back are served in turn; a request the server does not
#    understand and a put it refuses (whose body it must read and drop) each
#    get an error frame, and the next request is served.
python=${PYTHON_TWISTED:-python3}
if command -v "$python" >/dev/null 2>&1; then
    if "$python" - "$port" "$(sha small.bin)" <<'EOF' >"$tmp/raw.log" 2>&1; then
import socket, struct, sys
port, sha = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
def send(frame):
    s.sendall(struct.pack(">I", len(frame)) + frame)
def recv_exact(n):
    data = b""
    while len(data) < n:
        more = s.recv(n - len(data))
        if not more:
            raise SystemExit("the server closed the connection")
        data += more
    return data
def frame():
    return recv_exact(struct.unpack(">I", recv_exact(4))[0])
send(b"fetch small.bin")
assert frame().startswith(b"error "), "an unknown verb"
send(b"put 5 " + b"0" * 64 + b" ../escaped")
send(b"hello")  # the refused put's body
assert frame().startswith(b"error "), "a put outside the root"
send(b"get small.bin")
send(b"get empty")  # sent early: served once the first get is done
ok = frame().split(b" ")
assert ok[:2] == [b"ok", b"300001"] and ok[2].decode() == sha, ok
body = b""
while len(body) < 300001:
    body += frame()
assert len(body) == 300001
assert frame().split(b" ")[:2] == [b"ok", b"0"], "the second of two pipelined gets"
send(b"put 5 " + b"0" * 64 + b" wrong-digest")
send(b"hello")
assert b"not stored" in frame(), "a body whose SHA-256 is not the header's"
print("all answered in order")
EOF
        ok "one connection serves pipelined gets, and goes on after an unknown request, a refused put and a wrong digest"
    else
        fail "raw frames on one connection:"
        sed 's/^/    /' "$tmp/raw.log"
    fi
    [ ! -e "$root/wrong-digest" ] || fail "a put with the wrong SHA-256 was stored"
else
    echo "# $python not found: the raw-frame check is skipped"
fi

# 4. A large file, with the server's memory watched.
mem() { # mem FIELD: the server's VmRSS or VmHWM in KiB
    sed -n "s/^$1:[^0-9]*\([0-9]*\) kB/\1/p" "/proc/$pid/status" 2>/dev/null
}
case $(readlink "/proc/$pid/exe" 2>/dev/null) in
*memcheck*) # REACTORD runs it under valgrind, whose queue of freed blocks
    # (--freelist-vol, 20 MB) counts as growth too; 64 MiB still would not fit.
    RSS_LIMIT_KIB=$((RSS_LIMIT_KIB + 32768)) ;;
esac
if [ -r "/proc/$pid/status" ]; then
    head -c $((BIG_MIB * 1048576)) /dev/urandom >big.bin
    want=$(sha big.bin)
    rss0=$(mem VmRSS)
    hwm0=$(mem VmHWM)
    start=$(date +%s)
    ft "$to" put big.bin >/dev/null 2>"$tmp/big.err" || fail "put big.bin: $(cat "$tmp/big.err")"
    rss1=$(mem VmRSS)
    ft "$to" get big.bin big.back >/dev/null 2>"$tmp/big.err" || fail "get big.bin: $(cat "$tmp/big.err")"
    rss2=$(mem VmRSS)
    hwm2=$(mem VmHWM)
    echo "# $BIG_MIB MiB put then get in $(($(date +%s) - start)) s; server VmRSS $rss0 kB before," \
        "$rss1 kB after the put, $rss2 kB after the get; VmHWM $hwm0 kB -> $hwm2 kB"
    if cmp -s big.bin big.back && [ "$(sha "$root/big.bin")" = "$want" ]; then
        ok "a $BIG_MIB MiB file goes both ways intact"
    else
        fail "the $BIG_MIB MiB file came back different"
    fi
    if [ $((hwm2 - hwm0)) -le $RSS_LIMIT_KIB ] && [ $((rss2 - rss0)) -le $RSS_LIMIT_KIB ]; then
        ok "the server's peak memory grew by $((hwm2 - hwm0)) kB (limit $RSS_LIMIT_KIB kB)"
    else
        fail "the server's memory grew with the file: VmHWM +$((hwm2 - hwm0)) kB, VmRSS +$((rss2 - rss0)) kB"
    fi
else
    echo "# no /proc/$pid/status: the memory check is skipped"
fi

kill "$server"
wait "$server" 2>/dev/null
server=""
[ $failures -eq 0 ] || { sed 's/^/    server: /' "$tmp/server.log"; exit 1; }
exit 0
