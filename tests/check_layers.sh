#!/bin/sh
# SPDX-License-Identifier: MIT
# The layers of src/ depend one way. Each folder is a layer:
#   core < defer < net < {tls, proc} < policy < recv < amp < testing < plugin
# (tls and proc are siblings: one rank, and neither uses the other)
# and the programs (reactord, twine-call) sit above them all but see only
# the public headers, core/fd_internal.h and their own folder (reactord
# also protocols/'s headers: it links the built-in modules). From the
# #include "..." lines and the declarations of every file under src/,
# this fails, naming the file and line, on:
#   (a) an include of an internal header of a higher layer (or, from a
#       program, of any layer's header but core/fd_internal.h);
#   (b) a cycle among the internal headers;
#   (c) a tw__ function declared in a header of one folder and defined in a
#       .c file of a higher one: the call that header lets lower code make
#       runs upward, whatever the includes say.
# Files are globbed at run time, so a new file is covered as it appears.
set -u

srcdir=${TWINE_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
# Comments are stripped with GCC's -fpreprocessed, which clang lacks: use
# gcc when it is there, whatever compiler built the tree.
CC=$(command -v gcc || echo "${TWINE_CC:-cc}")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-layers.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM
cd "$srcdir" || exit 99

failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# The rank of a folder of src/; programs rank above every layer.
rank() {
    case $1 in
    core) echo 0 ;; defer) echo 1 ;; net) echo 2 ;; tls | proc) echo 3 ;; policy) echo 4 ;;
    recv) echo 5 ;; amp) echo 6 ;; testing) echo 7 ;; plugin) echo 8 ;;
    reactord | twine-call) echo 9 ;;
    *) echo unknown ;;
    esac
}

# The programs: above every layer, seeing only what a user's program sees.
is_program() {
    case $1 in reactord | twine-call) return 0 ;; *) return 1 ;; esac
}

files=$(find src -name '*.[ch]' | LC_ALL=C sort)
[ -n "$files" ] || { echo "FAIL: no sources under $srcdir/src"; exit 1; }
for f in $files; do
    dir=$(dirname "$f")
    [ "$(dirname "$dir")" = src ] || { fail "$f: not in a layer folder of src/"; continue; }
    [ "$(rank "$(basename "$dir")")" != unknown ] || fail "$f: folder $dir has no layer rank"
done
[ $failures -eq 0 ] || exit 1

# Every #include "..." as "file line header", the header named relative to
# src/ (a bare name is the including file's folder's, as the compiler finds
# it first there). config.h is the build's, not a layer's.
for f in $files; do
    dir=$(dirname "$f")
    grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
        sed 's/^\([0-9]*\):[^"]*"\([^"]*\)".*/\1 \2/' |
        while read -r line h; do
            [ "$h" = config.h ] && continue
            case $h in */*) ;; *) h=${dir#src/}/$h ;; esac
            echo "$f $line $h"
        done
done >"$tmp/includes"

# (a) upward includes.
while read -r f line h; do
    from=$(basename "$(dirname "$f")")
    to=${h%%/*}
    # reactord links the built-in modules of protocols/ and registers them.
    case $from/$h in
    reactord/../../protocols/*.h) [ -f "protocols/${h##*/}" ] && continue ;;
    esac
    if [ ! -f "src/$h" ]; then
        fail "$f:$line: includes \"$h\", which is no header under src/"
        continue
    fi
    rfrom=$(rank "$from")
    rto=$(rank "$to")
    if is_program "$from"; then
        [ "$to" = "$from" ] || [ "$h" = core/fd_internal.h ] ||
            fail "$f:$line: includes \"$h\"; $from may use only the public headers," \
                "core/fd_internal.h and its own"
    elif [ "$rto" = unknown ] || [ "$rto" -gt "$rfrom" ]; then
        fail "$f:$line: includes \"$h\", from the higher layer $to ($from is below it)"
    fi
done <"$tmp/includes"

# (b) cycles among internal headers: tsort names the loop's members.
awk '$1 ~ /\.h$/ { f = $1; sub(/^src\//, "", f); print f, $3 }' "$tmp/includes" >"$tmp/edges"
awk '{ print $1, $1 }' "$tmp/edges" >>"$tmp/edges" # every header a node
if ! tsort "$tmp/edges" >/dev/null 2>"$tmp/loop"; then
    fail "the internal headers include each other in a cycle:"
    grep -v 'input contains a loop' "$tmp/loop" | sed 's/^tsort: /    /'
fi

# (c) tw__ functions declared low and defined high. Comments go first (the
# preprocessor, told the file is preprocessed already, strips them and
# expands nothing), so a name a comment mentions is not a declaration.
strip() {
    $CC -fpreprocessed -dD -E -P -x c "$1" 2>/dev/null | grep -v '^#'
}
for f in $files; do
    case $f in *.h) ;; *) continue ;; esac
    strip "$f" | grep -o 'tw__[A-Za-z0-9_]*[[:space:]]*(' | sed 's/[[:space:](]*$//' |
        sort -u | sed "s|^|$f |"
done >"$tmp/declared"
# A definition, in the tree's style: a line at the left margin that names
# tw__x( outside "static", whose statement reaches "{" before ";".
for f in $files; do
    case $f in *.c) ;; *) continue ;; esac
    strip "$f" | awk -v f="$f" '
        pending != "" {
            if (index($0, "{") && (!index($0, ";") || index($0, "{") < index($0, ";"))) {
                print f, pending; pending = ""
            } else if (index($0, ";")) pending = ""
            next
        }
        /^[A-Za-z]/ && !/^static/ && !/^typedef/ && match($0, /tw__[A-Za-z0-9_]*[ \t]*\(/) {
            name = substr($0, RSTART, RLENGTH); sub(/[ \t]*\($/, "", name)
            rest = substr($0, RSTART + RLENGTH)
            if (index(rest, "{") && (!index(rest, ";") || index(rest, "{") < index(rest, ";")))
                print f, name
            else if (!index(rest, ";")) pending = name
        }'
done >"$tmp/defined"
ndef=$(wc -l <"$tmp/defined")
[ "$ndef" -ge 20 ] || fail "only $ndef tw__ definitions found; the extraction is broken"

while read -r h name; do
    hdir=$(basename "$(dirname "$h")")
    grep " $name\$" "$tmp/defined" | while read -r c _; do
        cdir=$(basename "$(dirname "$c")")
        [ "$(rank "$cdir")" -gt "$(rank "$hdir")" ] || continue
        line=$(grep -n "$name[[:space:]]*(" "$h" | grep -v '^[0-9]*:[[:space:]]*/\?\*' |
            head -n 1 | cut -d: -f1)
        echo "FAIL: $h:${line:-?}: declares $name, defined in $c of the higher layer $cdir"
    done
done <"$tmp/declared" >"$tmp/upward"
if [ -s "$tmp/upward" ]; then
    cat "$tmp/upward"
    failures=$((failures + $(wc -l <"$tmp/upward")))
fi

if [ $failures -gt 0 ]; then
    echo "$failures layering violation(s)"
    exit 1
fi
echo "PASS: $(wc -l <"$tmp/includes") includes and $ndef tw__ definitions in" \
    "$(echo "$files" | wc -l) files depend one way, with no header cycle"
exit 0
