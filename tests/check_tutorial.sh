#!/bin/sh
# SPDX-License-Identifier: MIT
# docs/tutorial.md cannot rot: this compiles or runs every code block in it,
# after checking the examples it relies on (examples/client against a
# reactord echo server it starts).
#
# Marking convention, in the info string that opens each fenced block:
#
#   ```c file=NAME.c           a complete program. Compiled with the build's
#                              compiler and flags plus -std=gnu11 -Wall
#                              -Wextra -Werror against the build tree's
#                              headers and libtwine, into ./NAME.
#   ```c file=NAME.c module    a protocol module, compiled into ./NAME.so.
#                              Either kind must open with a comment starting
#                              with NAME: readers do not see the info string,
#                              so that comment is what names the file.
#   ```sh                      shell commands. All sh blocks are run, in the
#                              order of the document, as one `sh -eu` script
#                              in the scratch directory where the C blocks
#                              were compiled, so a block may use what an
#                              earlier one started or set. Each must succeed.
#
# No other fence is accepted, so no block escapes checking. The sh blocks
# run with the build tree's reactord and examples/client/client first on
# PATH, with `pkg-config twine` answering for the build tree (the build's
# twine-uninstalled.pc), and with `cc` standing for the build's compiler and
# flags, so a sanitizer build checks the tutorial's programs too. Servers
# they start in the background are killed when the script ends; everything
# they do stays in a mkdtemp directory, on loopback or UNIX sockets.
set -u

srcdir=${TWINE_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=$(cd "${TWINE_BUILDDIR:-.}" && pwd)
CC=${TWINE_CC:-cc}
CFLAGS=${TWINE_CFLAGS:-}
LDFLAGS=${TWINE_LDFLAGS:-}
doc=$srcdir/docs/tutorial.md
reactord=${REACTORD:-$builddir/reactord}
client=$builddir/examples/client/client

tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-tutorial.XXXXXX") || exit 99
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
bounded() { timeout "$@"; }
command -v timeout >/dev/null 2>&1 || bounded() { shift; "$@"; }
export LD_LIBRARY_PATH="$builddir/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# Start reactord with "$@" logging to $1.log in $tmp; wait for "listening on".
# Sets $server (its pid) and $listening (the address it logged).
start_reactord() {
    log=$tmp/$1.log
    shift
    : >"$log"
    "$reactord" "$@" 2>"$log" &
    server=$!
    pids="$pids $server"
    i=0
    while [ $i -lt 100 ]; do
        listening=$(sed -n 's/.* listening on \([^ ]*\)$/\1/p' "$log" | head -n 1)
        [ -n "$listening" ] && return 0
        kill -0 "$server" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    echo "reactord $* did not start:"
    sed 's/^/    /' "$log"
    return 1
}

# 1. examples/client against a reactord echo server.
if start_reactord echo-tcp --protocol echo --listen tcp:0:interface=127.0.0.1; then
    out=$(bounded 20 "$client" "tcp:$listening" "hello, twine" 2>&1)
    if [ "$out" = "hello, twine" ]; then ok "client gets its message back from reactord echo over TCP"
    else fail "client over TCP printed '$out', not 'hello, twine'"; fi
    kill "$server"
else
    fail "reactord echo over TCP"
fi
if start_reactord echo-unix --protocol echo --listen "unix:$tmp/echo.sock"; then
    out=$(bounded 20 "$client" -n "unix:$tmp/echo.sock" "one line" 2>&1)
    if [ "$out" = "one line" ]; then ok "client -n gets its line back over a UNIX socket"
    else fail "client over UNIX printed '$out', not 'one line'"; fi
    kill "$server"
    # Nobody listens there any more: the connection deferred fails, and says why.
    wait "$server" 2>/dev/null
    out=$(bounded 20 "$client" "unix:$tmp/echo.sock" hello 2>&1)
    rc=$?
    case $rc:$out in
    1:*ECONNREFUSED*|1:*ENOENT*) ok "client exits 1 naming the error when the connection fails" ;;
    *) fail "client with no server: exit $rc, '$out'" ;;
    esac
else
    fail "reactord echo over UNIX"
fi
if start_reactord discard --protocol discard --listen tcp:0:interface=127.0.0.1; then
    out=$(bounded 20 "$client" -t 0.3 "tcp:$listening" "into the void" 2>&1)
    rc=$?
    case $rc:$out in
    1:*"timed out"*) ok "client gives up after -t seconds when no reply comes" ;;
    *) fail "client against discard: exit $rc, '$out'" ;;
    esac
    kill "$server"
else
    fail "reactord discard"
fi

# 2. Extract the tutorial's blocks. Each C block becomes a file named by
#    its file=; the sh blocks become one script; anything else is refused.
work=$tmp/tutorial
mkdir -p "$work" || exit 99
if ! awk -v dir="$work" '
    function bad(msg) { printf "%s:%d: %s\n", FILENAME, NR, msg > "/dev/stderr"; err = 1 }
    !inblock && /^[ \t]*```/ {
        info = $0
        sub(/^[ \t]*```[ \t]*/, "", info)
        n = split(info, w, /[ \t]+/)
        inblock = 1; kind = ""; start = NR
        if (w[1] == "sh" && n == 1) {
            kind = "sh"; blocks++
            printf "echo \"--- sh block %d (tutorial.md line %d)\"\n", blocks, NR >> (dir "/blocks.sh")
        } else if (w[1] == "c" && w[2] ~ /^file=[A-Za-z0-9_-]+\.c$/ && (n == 2 || (n == 3 && w[3] == "module"))) {
            kind = "c"; file = substr(w[2], 6)
            if (file in seen) bad("file=" file " is used twice")
            seen[file] = 1
            printf "%s %s\n", file, (n == 3 ? "module" : "program") >> (dir "/c-blocks")
            printf "" > (dir "/" file)
        } else {
            bad("a fence must open with ```c file=NAME.c [module] or ```sh, not ```" info)
        }
        next
    }
    inblock && /^[ \t]*```[ \t]*$/ {
        inblock = 0
        if (kind == "c") close(dir "/" file)
        next
    }
    inblock && kind == "sh" { print >> (dir "/blocks.sh") }
    inblock && kind == "c" {
        # The reader sees no info string: the opening comment names the file.
        if (NR == start + 1 && index($0, "/* " substr(file, 1, length(file) - 2)) != 1)
            bad("the first line of " file " must be a comment starting with its name")
        print >> (dir "/" file)
    }
    END {
        if (inblock) bad("the block opened at line " start " is never closed")
        exit err
    }' "$doc"; then
    fail "docs/tutorial.md has blocks that cannot be checked (see above)"
    exit 1
fi
if [ ! -s "$work/c-blocks" ] || [ ! -s "$work/blocks.sh" ]; then
    fail "docs/tutorial.md has no c or no sh blocks"
    exit 1
fi

# 3. Compile every C block.
# The build's twine-uninstalled.pc answers for the build tree, as the
# tutorial tells its reader.
PKG_CONFIG_PATH=$builddir
export PKG_CONFIG_PATH
twine_flags=$(pkg-config --cflags --libs twine) || { fail "pkg-config twine"; exit 1; }
while read -r file kind; do
    name=${file%.c}
    if [ "$kind" = module ]; then
        out=$name.so
        # shellcheck disable=SC2086
        set -- $CFLAGS -std=gnu11 -Wall -Wextra -Werror -shared -fPIC -o "$out" "$file" $twine_flags $LDFLAGS
    else
        out=$name
        # shellcheck disable=SC2086
        set -- $CFLAGS -std=gnu11 -Wall -Wextra -Werror -o "$out" "$file" $twine_flags $LDFLAGS
    fi
    if (cd "$work" && "$CC" "$@") >"$tmp/cc.log" 2>&1; then
        ok "tutorial $file compiles ($kind $out)"
    else
        fail "tutorial $file does not compile:"
        sed 's/^/    /' "$tmp/cc.log"
    fi
done <"$work/c-blocks"

# 4. Run the sh blocks, bounded, as one script.
{
    echo 'set -eu'
    # The servers the blocks left running go with the script. (Not with
    # $(jobs -p): a command substitution runs in a subshell, which has no jobs.)
    # shellcheck disable=SC2016
    echo 'trap '\''jobs -p >.jobs; while read -r p; do kill "$p" 2>/dev/null || :; done <.jobs'\'' EXIT'
    echo "trap 'exit 1' INT TERM"
    echo "cc() { $CC $CFLAGS \"\$@\" $LDFLAGS; }"
    cat "$work/blocks.sh"
} >"$work/run.sh"
# `reactord` in the blocks is $REACTORD, whatever its file name.
mkdir -p "$work/bin" || exit 99
printf '#!/bin/sh\nexec "%s" "$@"\n' "$reactord" >"$work/bin/reactord"
chmod +x "$work/bin/reactord"
PATH=$work/bin:$builddir/examples/client:$PATH
export PATH
if (cd "$work" && bounded 120 sh "$work/run.sh") >"$tmp/run.log" 2>&1; then
    ok "the tutorial's $(grep -c '^--- sh block' "$tmp/run.log") sh blocks run"
else
    fail "tutorial $(grep '^--- sh block' "$tmp/run.log" | tail -n 1 | sed 's/^--- //') failed;" \
        "the end of the output:"
    tail -n 40 "$tmp/run.log" | sed 's/^/    /'
fi

[ $failures -eq 0 ] || exit 1
exit 0
