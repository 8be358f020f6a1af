#!/bin/sh
# SPDX-License-Identifier: MIT
# Every command of README.md works when pasted. This extracts the README's
# ```sh blocks and runs each command line, in the order of the document,
# from the top of the build tree, each bounded in time:
#
#   - a line that builds or installs (tools/deps.sh, autoreconf, configure,
#     make, sudo) is not run here: CI runs the README's build verbatim on a
#     fresh clone, and make check must not install into the system;
#   - a reactord that serves in the foreground is started in the
#     background, must listen on every TCP port and UNIX socket it names,
#     and must exit 0 on SIGTERM, as README says;
#   - any other line (a --daemon start, twine-call, kill, cc ...) must exit
#     0, with `cc` standing for the build's compiler and flags. A twine-call line whose trailing comment is one word (such as
#     `# total=3`) must print exactly that; `--list-protocols` must list
#     every protocol its comment names.
#
# To run beside other tests, the documented ports 9000 and 9001 become
# free ephemeral ports, /tmp/ becomes a private mkdtemp directory, and
# servers that would listen on every interface listen on 127.0.0.1 only.
set -u

srcdir=${TWINE_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=$(cd "${TWINE_BUILDDIR:-.}" && pwd)
py=${PYTHON_TWISTED:-/usr/bin/python3}
readme=$srcdir/README.md

tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-readme.XXXXXX") || exit 99
server=""
cleanup() {
    [ -n "$server" ] && kill -KILL "$server" 2>/dev/null
    for p in "$tmp"/*.pid; do
        [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

failures=0
ran=0
fail() {
    printf 'FAIL: %s\n' "$*"
    failures=$((failures + 1))
}
ok() { printf 'ok: %s\n' "$*"; }

# Free loopback ports, each free for TCP and UDP alike (README serves echo
# over both on one port).
free_port() {
    "$py" -c '
import socket
while True:
    t = socket.socket()
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(port)
    break'
}
p9000=$(free_port) && p9001=$(free_port) || exit 99

# The README's sh blocks, one command a line (a trailing backslash joins).
awk '
    /^```sh[ \t]*$/ { inblock = 1; next }
    /^```/ { inblock = 0; next }
    inblock && /\\$/ { sub(/\\$/, ""); held = held $0; next }
    inblock && NF { print held $0; held = "" }
' "$readme" >"$tmp/commands"
[ -s "$tmp/commands" ] || { echo "FAIL: no sh block found in README.md"; exit 1; }

# The text after the last "  # " of a line: the README's comment on it.
comment_of() { printf '%s\n' "$1" | sed -n 's/.*[^#]  *# \(.*\)$/\1/p'; }

localize() {
    printf '%s\n' "$1" | sed \
        -e "s|/tmp/|$tmp/|g" \
        -e "s/\\b9000\\b/$p9000/g" -e "s/\\b9001\\b/$p9001/g" \
        -e 's/\(-l udp:[0-9][0-9]*\)\( \|$\)/\1:interface=127.0.0.1\2/g' \
        -e 's/\(-l tcp:[0-9][0-9]*\)\( \|$\)/\1:interface=127.0.0.1\2/g' |
        awk '/--port/ && !/--interface/ { sub(/--port/, "--interface 127.0.0.1 --port") } { print }'
}

# Wait until a foreground server listens on everything it names. @return 0.
wait_listening() {
    cmd=$1
    tries=0
    while [ $tries -lt 100 ]; do
        kill -0 "$server" 2>/dev/null || return 1
        ready=1
        for path in $(printf '%s\n' "$cmd" | grep -oE 'unix:[^ :]+' | sed 's/^unix://'); do
            [ -S "$path" ] || ready=0
        done
        for port in $(printf '%s\n' "$cmd" | grep -oE '(tcp:|--port )[0-9]+' | grep -oE '[0-9]+$'); do
            "$py" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
                "$port" 2>/dev/null || ready=0
        done
        [ $ready -eq 1 ] && return 0
        sleep 0.1
        tries=$((tries + 1))
    done
    return 1
}

run_foreground_server() {
    line=$1 cmd=$2
    sh -c "exec $cmd" >"$tmp/server.out" 2>"$tmp/server.err" &
    server=$!
    if ! wait_listening "$cmd"; then
        fail "'$line' does not listen: $(cat "$tmp/server.err")"
        kill -KILL "$server" 2>/dev/null
        wait "$server" 2>/dev/null
        server=""
        return
    fi
    kill -TERM "$server"
    i=0
    while kill -0 "$server" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$server" 2>/dev/null; then
        fail "'$line' is still running 10 s after SIGTERM"
        kill -KILL "$server"
    fi
    wait "$server"
    status=$?
    server=""
    if [ $status -eq 0 ]; then ok "$line  (listened; exit 0 on SIGTERM)"; else
        fail "'$line' exited $status on SIGTERM: $(cat "$tmp/server.err")"
    fi
}

run_command() {
    line=$1 cmd=$2
    timeout 30 sh -c "$cmd" >"$tmp/out" 2>"$tmp/err" </dev/null
    status=$?
    if [ $status -ne 0 ]; then
        fail "'$line' exited $status: $(cat "$tmp/err")"
        return
    fi
    want=$(comment_of "$line")
    case $line in
    *twine-call*)
        case $want in
        *" "* | "") ;;
        *)
            if [ "$(cat "$tmp/out")" != "$want" ]; then
                fail "'$line' printed '$(cat "$tmp/out")', not '$want'"
                return
            fi
            ;;
        esac
        ;;
    *--list-protocols*)
        for name in $want; do
            if ! grep -q "^$name " "$tmp/out"; then
                fail "'$line' does not list $name"
                return
            fi
        done
        ;;
    esac
    ok "$line"
}

# `cc` stands for the build's compiler and flags, so that a sanitizer build
# links README's example against its libtwine too.
realcc=${TWINE_CC:-$(command -v cc)}
mkdir "$tmp/bin" || exit 99
cat >"$tmp/bin/cc" <<EOF
#!/bin/sh
exec $realcc ${TWINE_CFLAGS:-} "\$@" ${TWINE_LDFLAGS:-}
EOF
chmod +x "$tmp/bin/cc"
PATH=$tmp/bin:$PATH
export PATH

cd "$builddir" || exit 99
while IFS= read -r line; do
    case $line in
    *deps.sh* | *autoreconf* | *./configure* | *make\ * | *make | sudo\ *)
        echo "not run here: $line  (a build or install step)"
        continue
        ;;
    esac
    cmd=$(localize "$line")
    # A source file the line names that a VPATH build tree lacks.
    for f in $(printf '%s\n' "$cmd" | grep -oE '(^| )examples/[^ ]+\.c'); do
        if [ ! -f "$f" ]; then
            echo "not run here: $line  ($f is in the source tree, not this build tree)"
            continue 2
        fi
    done
    ran=$((ran + 1))
    case $cmd in
    ./reactord*--daemon* | ./reactord*--list-* | ./reactord*--help* | ./reactord*--version*)
        run_command "$line" "$cmd"
        ;;
    ./reactord*)
        run_foreground_server "$line" "$cmd"
        ;;
    *)
        run_command "$line" "$cmd"
        ;;
    esac
done <"$tmp/commands"

# The daemons README started must be gone: it stops them itself.
for p in "$tmp"/*.pid; do
    [ -f "$p" ] || continue
    i=0
    while kill -0 "$(cat "$p")" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$(cat "$p")" 2>/dev/null; then
        fail "the daemon of $(basename "$p") is still running 10 s after README's commands"
    fi
done

if [ $ran -lt 5 ]; then
    fail "only $ran README commands were run; the extraction is broken"
fi
if [ $failures -gt 0 ]; then
    echo "$failures of $ran README command(s) failed"
    exit 1
fi
echo "PASS: all $ran runnable README commands work as written"
exit 0
