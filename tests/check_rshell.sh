#!/bin/sh
# SPDX-License-Identifier: MIT
# examples/rshell end to end. reactord loads the module from the build tree
# (--plugin-path) on a UNIX socket and on 127.0.0.1, with an allowlist, a
# 2 s time limit and a 64 KiB output limit; the client rsh.py then runs:
#   - allowed commands: their stdout, stderr and exit status come back, the
#     arguments arrive as they were sent (no shell sees them), and the
#     environment holds PATH alone;
#   - a command outside the allowlist, and one named by a path: refused,
#     nothing runs;
#   - a command killed by a signal, one past the time limit, one past the
#     output limit, one whose grandchild holds its pipes: each status says so,
#     and the limit kills the command's whole process group;
#   - stdin: the client's reaches the command (3 MB whole), a command that
#     reads none of 20 MB still ends without the server buffering it, and
#     rsh.py -n sends none;
# a raw client (Python) sends hostile requests: a frame announcing 2 GiB,
# too many arguments, an unknown frame; each is told why and disconnected,
# and the server goes on serving. Last, the module is built out of tree
# with its own Makefile and pkg-config, against the twine make check
# installed (TWINE_CHAT_DESTDIR), and that build serves a command too.
set -u

builddir=$(cd "${TWINE_BUILDDIR:-.}" && pwd)
srcdir=$(cd "${TWINE_SRCDIR:-$builddir}" && pwd)
reactord=${REACTORD:-$builddir/reactord}
modules=$builddir/examples/rshell/.libs
python=${PYTHON_TWISTED:-python3}
rsh=$srcdir/examples/rshell/rsh.py

command -v "$python" >/dev/null 2>&1 || { echo "SKIP: $python not found"; exit 77; }
[ -e "$modules/rshell.so" ] || { echo "FAIL: $modules/rshell.so was not built"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-rshell.XXXXXX") || exit 99
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

# start_server DIR LOG [OPTIONS...]: reactord with the module of DIR on
# $tmp/sock and 127.0.0.1:0; sets server and port.
start_server() {
    dir=$1 log=$2
    shift 2
    rm -f "$tmp/sock"
    : >"$log"
    "$reactord" --plugin-path "$dir" --protocol rshell -l "unix:$tmp/sock" \
        -l tcp:0:interface=127.0.0.1 "$@" 2>"$log" &
    server=$!
    i=0
    while ! grep -q '(pid [0-9]*) serving' "$log" && [ $i -lt 100 ] && kill -0 "$server" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
    done
    port=$(sed -n 's/.*rshell listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && [ -S "$tmp/sock" ]
}
# stop_server LOG: SIGTERM; reactord must exit 0, with no sanitizer report.
stop_server() {
    kill "$server" 2>/dev/null
    wait "$server"
    code=$?
    server=""
    if [ $code -eq 0 ] && ! grep -q 'Sanitizer\|runtime error' "$1"; then
        ok "reactord stops cleanly on SIGTERM"
    else
        fail "reactord exited $code on SIGTERM:"
        sed 's/^/    /' "$1" | tail -n 40
    fi
}

# run ENDPOINT ARGS...: rsh.py's stdout in $tmp/out, stderr in $tmp/err, status in rc.
run() {
    timeout 30 "$python" "$rsh" "$@" <"${stdin:-/dev/null}" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}
says() { [ "$(cat "$tmp/$1")" = "$2" ]; }

mkdir "$tmp/work" || exit 99
echo "untouched" >"$tmp/work/canary"
if ! start_server "$modules" "$tmp/server.log" -o allow=echo,env,sh,/bin/cat,yes,sleep \
    -o timeout=2 -o max_output=65536 -o "cwd=$tmp/work"; then
    echo "FAIL: reactord did not serve the rshell module:"
    sed 's/^/    /' "$tmp/server.log"
    exit 1
fi
ok "reactord --plugin-path serves the rshell module (unix:$tmp/sock, port $port)"
U=unix:$tmp/sock

# 1. Allowed commands.
run "$U" echo hello 'world; rm canary' '$(id)' '`id`' '*'
if [ $rc -eq 0 ] && says out 'hello world; rm canary $(id) `id` *' && [ ! -s "$tmp/err" ] &&
    [ -e "$tmp/work/canary" ]; then
    ok "echo's arguments arrive as sent: no shell expands or splits them"
else
    fail "echo: rc $rc, out '$(cat "$tmp/out")', err '$(cat "$tmp/err")'"
fi
run tcp:127.0.0.1:$port sh -c 'echo out; echo err >&2; exit 3'
if [ $rc -eq 3 ] && says out out && says err err; then
    ok "over loopback TCP: stdout, stderr and the exit status (3) come back apart"
else
    fail "sh -c exit 3: rc $rc, out '$(cat "$tmp/out")', err '$(cat "$tmp/err")'"
fi
run "$U" env
if [ $rc -eq 0 ] && says out "PATH=/usr/local/bin:/usr/bin:/bin"; then
    ok "the command's environment is PATH alone"
else
    fail "env: rc $rc, out '$(cat "$tmp/out")'"
fi
run "$U" sh -c pwd
if [ $rc -eq 0 ] && says out "$tmp/work"; then ok "it runs in the directory of cwd="
else fail "pwd: rc $rc, out '$(cat "$tmp/out")'"; fi
run "$U" /bin/cat
if [ $rc -eq 0 ] && [ ! -s "$tmp/out" ]; then ok "stdin is empty: cat ends at once"
else fail "cat: rc $rc, out '$(cat "$tmp/out")'"; fi

# 2. Refusals.
run "$U" rm -f "$tmp/work/canary"
if [ $rc -eq 126 ] && says err "rsh.py: refused: 'rm' is not an allowed command" &&
    [ -e "$tmp/work/canary" ]; then
    ok "a command outside the allowlist is refused and nothing runs"
else
    fail "rm: rc $rc, err '$(cat "$tmp/err")'"
fi
run "$U" /usr/bin/sh -c 'echo escaped'
if [ $rc -eq 126 ] && [ ! -s "$tmp/out" ]; then
    ok "an allowed command named by another path is refused"
else
    fail "/usr/bin/sh: rc $rc, out '$(cat "$tmp/out")'"
fi

# 3. Signals and limits.
run "$U" sh -c 'kill -TERM $$'
if [ $rc -eq 143 ] && [ ! -s "$tmp/err" ]; then ok "a command killed by SIGTERM reports signal 15"
else fail "kill -TERM: rc $rc, err '$(cat "$tmp/err")'"; fi
start=$(date +%s)
run "$U" sleep 20
took=$(($(date +%s) - start))
if [ $rc -eq 137 ] && says err "rsh.py: the server killed the command: timeout" && [ $took -lt 10 ]; then
    ok "a command past timeout=2 is killed (SIGKILL) and the client is told, after $took s"
else
    fail "sleep 20: rc $rc after $took s, err '$(cat "$tmp/err")'"
fi
run "$U" yes
if [ $rc -eq 137 ] && [ "$(wc -c <"$tmp/out")" -eq 65536 ] &&
    says err "rsh.py: the server killed the command: output-limit"; then
    ok "a command past max_output=65536 is cut there, killed, and the client is told"
else
    fail "yes: rc $rc, $(wc -c <"$tmp/out") bytes, err '$(cat "$tmp/err")'"
fi
start=$(date +%s)
run "$U" sh -c 'sleep 5 & echo started'
took=$(($(date +%s) - start))
if [ $rc -eq 0 ] && says out started && says err "rsh.py: the server killed the command: timeout" &&
    [ $took -lt 10 ]; then
    ok "a grandchild holding the output open cannot outlast the time limit (exit 0 timeout, $took s)"
else
    fail "background grandchild: rc $rc after $took s, err '$(cat "$tmp/err")'"
fi
# The command leads its own process group and the limit kills all of it:
# the background sleep is gone too (or a zombie no init reaps), not left
# running for 27 s.
run "$U" sh -c 'sleep 27 & echo $!'
bg=$(head -n 1 "$tmp/out")
i=0
while [ -n "$bg" ] && [ -e "/proc/$bg" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$bg/status" 2>/dev/null &&
    [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
if [ -n "$bg" ] && { [ ! -e "/proc/$bg" ] || grep -q '^State:[[:space:]]*Z' "/proc/$bg/status" 2>/dev/null; }; then
    ok "the time limit kills the command's whole process group (background pid $bg is gone)"
else
    fail "background sleep $bg outlived the command's time limit"
    [ -n "$bg" ] && kill "$bg" 2>/dev/null
fi

# 4. Standard input: rsh.py sends its own; -n sends none.
printf 'hello\nworld\n' >"$tmp/in"
stdin=$tmp/in run "$U" /bin/cat
if [ $rc -eq 0 ] && cmp -s "$tmp/in" "$tmp/out"; then ok "stdin reaches the command"
else fail "cat with stdin: rc $rc, out '$(cat "$tmp/out")', err '$(cat "$tmp/err")'"; fi
head -c 3000000 /dev/zero >"$tmp/big"
stdin=$tmp/big run "$U" sh -c 'wc -c'
if [ $rc -eq 0 ] && [ "$(tr -d ' ' <"$tmp/out")" = 3000000 ]; then
    ok "3 MB of stdin arrive whole, in 4 KiB frames"
else fail "wc -c of 3 MB: rc $rc, out '$(cat "$tmp/out")', err '$(cat "$tmp/err")'"; fi
# A command that never reads its stdin: the server stops reading the client
# (the pipe is full), and the command still ends and is reported.
# Its peak memory (VmHWM) grows by far less than the 20 MB offered.
head -c 20000000 /dev/zero >"$tmp/huge"
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$server/status"; }
before=$(hwm)
stdin=$tmp/huge run "$U" sh -c 'sleep 0.5; echo done'
grown=$(($(hwm) - before))
if [ $rc -eq 0 ] && says out done && [ "$grown" -lt 8192 ]; then
    ok "a command that leaves 20 MB of stdin unread still ends; the server's peak grew $grown kB"
else
    fail "unread stdin: rc $rc, peak grew $grown kB, out '$(cat "$tmp/out")', err '$(cat "$tmp/err")'"
fi
# rsh.py -n on a stdin that never ends (a FIFO we hold open): cat reads EOF
# at once and ends well before the 2 s limit that would otherwise kill it.
mkfifo "$tmp/fifo" && exec 9<>"$tmp/fifo"
stdin=$tmp/fifo run -n "$U" /bin/cat
exec 9>&-
if [ $rc -eq 0 ] && [ ! -s "$tmp/out" ] && [ ! -s "$tmp/err" ]; then
    ok "rsh.py -n: the command reads EOF at once, our stdin is not read"
else fail "rsh.py -n cat: rc $rc, err '$(cat "$tmp/err")'"; fi
run "$U" echo still
if [ $rc -eq 0 ] && says out still; then ok "the server goes on serving after the stdin cases"
else fail "echo after stdin cases: rc $rc"; fi

# 5. Hostile requests, on raw frames; the server must go on serving.
if "$python" - "$tmp/sock" <<'PYEOF' >"$tmp/raw.log" 2>&1; then
import socket, struct, sys
path = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s
def frame(tag, data=b""):
    return struct.pack(">I", len(data) + 1) + tag + data
def read_all(s):
    data = b""
    while True:
        more = s.recv(65536)
        if not more:
            return data
        data += more
def answer(data):
    n = struct.unpack(">I", data[:4])[0]
    return data[4:4 + n], data[4 + n:]
def refused_and_closed(s, what, words):
    body, rest = answer(read_all(s))
    assert body[:1] == b"!" and words in body and rest == b"", (what, body, rest)
    print("ok:", what, body[1:].decode())
s = conn()  # a length prefix of 2 GiB: refused before anything is allocated
s.sendall(struct.pack(">I", 1 << 31) + b"a" * 1000)
refused_and_closed(s, "2 GiB frame", b"over the limit")
s = conn()  # an argument one byte longer than the limit
s.sendall(frame(b"a", b"x" * 4097))
refused_and_closed(s, "4097-byte argument", b"over the limit")
s = conn()  # more arguments than max_args (64 by default)
s.sendall(frame(b"a", b"echo") + frame(b"a", b"x") * 64 + frame(b"r"))
refused_and_closed(s, "65 arguments", b"more than 64 arguments")
s = conn()
s.sendall(frame(b"a", b"echo") + frame(b"a", b"a\0b") + frame(b"r"))
refused_and_closed(s, "NUL in an argument", b"NUL")
s = conn()
s.sendall(frame(b"z", b"echo"))
refused_and_closed(s, "unknown frame", b"not a request frame")
s = conn()  # a second request while the first runs
s.sendall(frame(b"a", b"sleep") + frame(b"a", b"5") + frame(b"r") + frame(b"a", b"echo"))
refused_and_closed(s, "request while a command runs", b"one command at a time")
s = conn()  # refusals that keep the connection: then two commands in turn
s.sendall(frame(b"r") + frame(b"a", b"nope") + frame(b"r"))
for words in (b"no command given", b"not an allowed command"):
    n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
    body = s.recv(n, socket.MSG_WAITALL)
    assert body[:1] == b"!" and words in body, body
for word in (b"one", b"two"):
    s.sendall(frame(b"a", b"echo") + frame(b"a", word) + frame(b"r"))
    got = []
    while not got or got[-1][:1] != b"x":
        n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
        got.append(s.recv(n, socket.MSG_WAITALL))
    assert got == [b"o" + word + b"\n", b"xexit 0"], got
print("ok: refusals keep the connection, and requests run in turn")
PYEOF
    sed 's/^/    /' "$tmp/raw.log"
    ok "hostile requests are refused with a reason and disconnected"
else
    fail "hostile requests:"
    sed 's/^/    /' "$tmp/raw.log"
fi
run "$U" echo still here
if [ $rc -eq 0 ] && says out "still here"; then ok "the server still serves after them"
else fail "after the hostile requests: rc $rc, err '$(cat "$tmp/err")'"; fi
if kill -0 "$server" 2>/dev/null; then ok "reactord is still running"
else fail "reactord died"; fi
stop_server "$tmp/server.log"

# 6. Operator mistakes: one sentence, exit 78 (configuration).
for opts in "" "-o allow=no-such-command-here" "-o allow=bin/sh" "-o allow=echo,,sh" \
    "-o allow=echo -o timeout=0" "-o allow=echo -o cwd=/no/such/dir"; do
    # shellcheck disable=SC2086
    timeout 30 "$reactord" --plugin-path "$modules" --protocol rshell $opts \
        -l "unix:$tmp/sock2" >"$tmp/bad.log" 2>&1
    code=$?
    if [ $code -eq 78 ] && [ "$(grep -c . "$tmp/bad.log")" -ge 1 ]; then
        ok "'$opts' is refused (78): $(tail -n 1 "$tmp/bad.log" | cut -c1-150)"
    else
        fail "'$opts': exit $code: $(cat "$tmp/bad.log")"
    fi
done

# 7. Built out of tree, with its own Makefile and pkg-config, against the
#    twine that make check installed.
dest=${TWINE_CHAT_DESTDIR:-}
libdir=${TWINE_LIBDIR:-/usr/local/lib}
if [ -n "$dest" ] && [ -e "$dest$libdir/pkgconfig/twine.pc" ]; then
    mkdir "$tmp/build"
    if (cd "$tmp/build" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
        PKG_CONFIG_PATH="$dest$libdir/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest" \
        "${TWINE_MAKE:-make}" CC="${TWINE_CC:-cc}" CFLAGS="${TWINE_CFLAGS:--O2}" \
        -f "$srcdir/examples/rshell/Makefile" VPATH="$srcdir/examples/rshell") >"$tmp/build.log" 2>&1 &&
        start_server "$tmp/build" "$tmp/server2.log" -o allow=echo; then
        run "tcp:127.0.0.1:$port" echo out of tree
        if [ $rc -eq 0 ] && says out "out of tree"; then
            ok "built out of tree with its Makefile and pkg-config, it serves"
        else
            fail "the out-of-tree build: rc $rc, err '$(cat "$tmp/err")'"
        fi
        stop_server "$tmp/server2.log"
    else
        fail "building the module out of tree:"
        sed 's/^/    /' "$tmp/build.log" "$tmp/server2.log" 2>/dev/null | tail -n 30
    fi
else
    echo "# no installed twine in TWINE_CHAT_DESTDIR: the out-of-tree build is skipped"
fi

[ $failures -eq 0 ] || { sed 's/^/    server: /' "$tmp/server.log"; exit 1; }
exit 0
