#!/bin/sh
# SPDX-License-Identifier: MIT
# twine-call's output forms and input, against reactord's amp module and
# against Twisted's AMP server (tests/interop/amp_server.py), both on UNIX
# sockets in a private directory: --json (one object per call: answer,
# error or failure), the quoted text form for values with newlines or bytes
# that are not UTF-8 (read back byte for byte), --raw, calls from standard
# input (KEY=VALUE lines and JSON), the server's own description of an UNKNOWN error, the exit codes
# 65 and 74, and that --help and twine-call.1 list the same exit codes.
# Twisted is required (/usr/bin/python3 or $PYTHON_TWISTED): without it
# this fails, it never skips.
set -u

srcdir=${TWINE_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=$(cd "${TWINE_BUILDDIR:-.}" && pwd)
call=$builddir/twine-call
reactord=${REACTORD:-$builddir/reactord}
py=${PYTHON_TWISTED:-/usr/bin/python3}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-call.XXXXXX") || exit 99
twisted_pid=""
cleanup() {
    [ -f "$tmp/reactord.pid" ] && kill "$(cat "$tmp/reactord.pid")" 2>/dev/null
    exec 3>&- 2>/dev/null # Twisted's server stops when its stdin closes
    [ -n "$twisted_pid" ] && wait "$twisted_pid" 2>/dev/null
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

# tc NAME EXPECTED_STATUS EXPECTED_STDOUT ARGS...: run twine-call with
# $tmp/in on stdin; compare status and stdout; stderr is left in $tmp/err.
tc() {
    name=$1 want_status=$2 want_out=$3
    shift 3
    timeout 20 "$call" "$@" <"$tmp/in" >"$tmp/out" 2>"$tmp/err"
    status=$?
    printf '%s' "$want_out" >"$tmp/want"
    if [ "$status" -ne "$want_status" ]; then
        fail "$name: exit status $status, not $want_status; stderr: $(cat "$tmp/err")"
    elif ! cmp -s "$tmp/out" "$tmp/want"; then
        fail "$name: stdout differs (want, then got):"
        od -c "$tmp/want" | sed 's/^/    /'
        od -c "$tmp/out" | sed 's/^/    /'
    else
        ok "$name"
    fi
}
# stderr_has NAME TEXT: the last run's stderr contains TEXT.
stderr_has() {
    if grep -qF -- "$2" "$tmp/err"; then ok "$1: stderr says '$2'"; else
        fail "$1: stderr lacks '$2': $(cat "$tmp/err")"
    fi
}
input() { printf "$@" >"$tmp/in"; }

nl='
'
# The calls every AMP server with the amp module's commands answers alike.
scenarios() {
    ep=$1 who=$2
    input ''
    tc "$who: text" 0 "total=94$nl" "$ep" Sum a=13 b=81
    tc "$who: --json answer" 0 "{\"command\":\"Sum\",\"answer\":{\"total\":\"94\"}}$nl" \
        -j "$ep" Sum a=13 b=81
    tc "$who: --json declared error" 1 \
        "{\"command\":\"Divide\",\"error\":{\"code\":\"ZERO_DIVISION\",\"description\":\"division by zero\"}}$nl" \
        --json "$ep" Divide numerator=1 denominator=0
    stderr_has "$who: declared error" "Divide failed: ZERO_DIVISION: division by zero"
    tc "$who: --json UNKNOWN error" 1 \
        "{\"command\":\"Sum\",\"error\":{\"code\":\"UNKNOWN\",\"description\":\"Unknown Error\"}}$nl" \
        -j "$ep" Sum a=x b=1
    stderr_has "$who: UNKNOWN error" "Sum failed: UNKNOWN: Unknown Error"

    # Newlines, quotes and bytes that are not UTF-8 print quoted; '=' and
    # UTF-8 text do not.
    tc "$who: a newline, a quote and \\xff are quoted" 0 "value=\"a\\nb\\xff\\\"\"$nl" \
        "$ep" Echo "value=$(printf 'a\nb\377"')"
    tc "$who: '=' and UTF-8 stay bare" 0 "value=x=y é$nl" "$ep" Echo "value=x=y é"
    tc "$who: a leading quote is quoted" 0 "value=\"\\\"q\"$nl" "$ep" Echo 'value="q'
    tc "$who: --raw prints the bytes" 0 "value=a${nl}b$nl" -r "$ep" Echo "value=a${nl}b"
    tc "$who: --json base64 for bytes that are not UTF-8" 0 \
        "{\"command\":\"Echo\",\"answer\":{\"value\":{\"base64\":\"/2E=\"}}}$nl" \
        -j "$ep" Echo "value=$(printf '\377a')"

    # Standard input: KEY=VALUE lines, a blank line between calls, the
    # command line's arguments shared; the text form read back.
    input '# two calls\na=1\n\nb=10\na=5\n'
    tc "$who: KEY=VALUE calls from stdin" 0 "total=3${nl}${nl}total=15$nl" "$ep" Sum b=2 -
    input 'value="a\\nb\\xff\\""\n'
    tc "$who: --stdin reads the quoted form" 0 "value=\"a\\nb\\xff\\\"\"$nl" --stdin "$ep" Echo
    input '{"a": 13, "b": 81}\n{"a": -1, "b": 1}'
    tc "$who: JSON calls from stdin" 0 \
        "{\"command\":\"Sum\",\"answer\":{\"total\":\"94\"}}$nl{\"command\":\"Sum\",\"answer\":{\"total\":\"0\"}}$nl" \
        -j "$ep" Sum -
    input '{"value": {"base64": "/2E="}} {"value": true} {"value": 0.5} {"value": "\\u00e9"}'
    tc "$who: JSON types as Twisted writes them" 0 \
        "value=\"\\xffa\"${nl}${nl}value=True${nl}${nl}value=0.5${nl}${nl}value=é$nl" "$ep" Echo -
    input '{"numerator": 1, "denominator": 0}\n{"numerator": 1, "denominator": 4}\n'
    tc "$who: an error answer does not stop the next call" 1 \
        "{\"command\":\"Divide\",\"error\":{\"code\":\"ZERO_DIVISION\",\"description\":\"division by zero\"}}$nl{\"command\":\"Divide\",\"answer\":{\"result\":\"0.25\"}}$nl" \
        -j "$ep" Divide -
}

# Bad standard input is refused before anything is sent: 65.
bad_input() {
    ep=$1
    input '{"a": 1'
    tc "stdin: JSON cut short" 65 "" "$ep" Sum -
    stderr_has "stdin: JSON cut short" "not JSON"
    input '{"a": null}'
    tc "stdin: JSON null" 65 "" "$ep" Sum -
    stderr_has "stdin: JSON null" "key 'a'"
    input '[1, 2]'
    tc "stdin: a JSON array" 65 "" "$ep" Sum -
    input 'a=1\nnovalue\n'
    tc "stdin: a line without =" 65 "" "$ep" Sum -
    stderr_has "stdin: a line without =" "line 2 is not KEY=VALUE"
    input 'a="1\\q"\n'
    tc "stdin: an unknown escape" 65 "" "$ep" Sum -
    stderr_has "stdin: an unknown escape" "unknown escape"
    input 'a="1\n'
    tc "stdin: an unterminated quote" 65 "" "$ep" Sum -
}

# 1. reactord's amp module, as a daemon that returns once it listens.
if ! "$reactord" -p amp -l "unix:$tmp/amp.sock" --daemon --pidfile "$tmp/reactord.pid" \
    2>"$tmp/reactord.err"; then
    echo "FAIL: reactord -p amp --daemon did not start: $(cat "$tmp/reactord.err")"
    exit 1
fi
scenarios "unix:$tmp/amp.sock" reactord
bad_input "unix:$tmp/amp.sock"

# Unambiguous: random values made of the awkward bytes come back from the
# text form and from the JSON form, given to --stdin, byte for byte.
if "$py" - "$call" "unix:$tmp/amp.sock" <<'EOF'; then
import json, random, subprocess, sys
call, ep = sys.argv[1], sys.argv[2]
pieces = [b"a", b"=", b'"', b"\\", b"\n", b"\r", b"\t", b"\xff", b"\xc3\xa9", b"\xe2\x80",
          b" ", b"\x7f", b"\x01"]
rng = random.Random(20)
for _ in range(40):
    v = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
    def run(*args, data=None):
        return subprocess.run([call, *args], input=data, capture_output=True, timeout=20).stdout
    text = run(ep, "Echo", b"value=" + v)
    answer = json.loads(run("--json", ep, "Echo", b"value=" + v))["answer"]
    for form, data in (("text", text), ("JSON", json.dumps(answer).encode())):
        back = run("--raw", ep, "Echo", "-", data=data)
        if back != b"value=" + v + b"\n":
            sys.exit("%r printed in the %s form as %r reads back as %r" % (v, form, data, back))
EOF
    ok "40 awkward values read back from the text and JSON forms, byte for byte"
else
    fail "a value printed by twine-call does not read back as the same bytes"
fi

input ''
timeout 20 "$call" "unix:$tmp/amp.sock" Sum a=1 b=2 >/dev/full 2>"$tmp/err" </dev/null
status=$?
if [ "$status" -eq 74 ]; then ok "an answer that cannot be written: 74"; else
    fail "writing to /dev/full: exit status $status, not 74"
fi
timeout 20 "$call" -j "unix:$tmp/nobody.sock" Sum >"$tmp/out" 2>"$tmp/err" </dev/null
status=$?
if [ "$status" -eq 69 ] &&
    "$py" -c 'import json, sys
o = json.loads(open(sys.argv[1]).read())
assert o["command"] == "Sum" and o["failure"]["exit"] == 69, o
assert o["failure"]["message"].startswith("cannot connect to unix:"), o' "$tmp/out"; then
    ok "a refused connection: 69, and one JSON failure object"
else
    fail "a refused connection: exit status $status, stdout $(cat "$tmp/out")"
fi

# 2. Twisted's AMP server. It runs until its standard input closes.
mkfifo "$tmp/twisted.in" || exit 99
"$py" "$srcdir/tests/interop/amp_server.py" "$tmp/twisted.sock" <"$tmp/twisted.in" \
    2>"$tmp/twisted.err" &
twisted_pid=$!
exec 3>"$tmp/twisted.in"
i=0
while [ ! -S "$tmp/twisted.sock" ] && [ $i -lt 200 ]; do
    sleep 0.1
    i=$((i + 1))
done
if [ ! -S "$tmp/twisted.sock" ]; then
    echo "FAIL: Twisted's AMP server did not start: $(cat "$tmp/twisted.err")"
    exit 1
fi
scenarios "unix:$tmp/twisted.sock" Twisted
input ''
tc "Twisted: UNKNOWN with the server's own description" 1 \
    "{\"command\":\"Explain\",\"error\":{\"code\":\"UNKNOWN\",\"description\":\"the disk is full\"}}$nl" \
    -j "unix:$tmp/twisted.sock" Explain "why=the disk is full"
tc "Twisted: the description in the text form" 1 "" "unix:$tmp/twisted.sock" Explain \
    "why=$(printf 'two\nlines')"
stderr_has "Twisted: UNKNOWN description" 'Explain failed: UNKNOWN: "two\nlines"'

# 3. Every exit code --help lists is documented in twine-call.1, and back.
help_codes=$("$call" --help | sed -n '/^Exit status/,/^$/p' | grep -oE '(^|[ ;:])[0-9]+ ' |
    tr -dc '0-9\n ' | tr -s ' ' '\n' | grep . | sort -n | tr '\n' ' ')
man_codes=$(sed -n '/^\.SH EXIT STATUS/,/^\.SH /p' "$srcdir/twine-call.1" |
    sed -n 's/^\.B \([0-9][0-9]*\)$/\1/p' | sort -n | tr '\n' ' ')
if [ -n "$help_codes" ] && [ "$help_codes" = "$man_codes" ]; then
    ok "--help and twine-call.1 list the same exit codes: $help_codes"
else
    fail "exit codes in --help ($help_codes) and in twine-call.1 ($man_codes) differ"
fi
main_codes=$(sed -n '1,/^#include/p' "$srcdir/src/twine-call/main.c" | grep -oE '\b(0|1|6[4-9]|7[0-8])\b' |
    sort -n -u | tr '\n' ' ')
if [ "$main_codes" = "$man_codes" ]; then ok "main.c's prologue lists them too"; else
    fail "main.c's prologue lists $main_codes, twine-call.1 $man_codes"
fi

if [ $failures -gt 0 ]; then
    echo "$failures twine-call check(s) failed"
    exit 1
fi
echo "PASS: twine-call against reactord and Twisted"
exit 0
