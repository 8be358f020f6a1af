#!/bin/sh
# SPDX-License-Identifier: MIT
# Public headers stand on their own. Each include/twine/*.h, the generated
# include/twine/version.h and include/twine.h must:
#   - compile alone as C11 and as C++11, warnings as errors, so a user can
#     include any one of them first and from either language;
#   - wrap its declarations in TW_BEGIN_DECLS ... TW_END_DECLS when it
#     declares anything TW_API.
# And, the proof that those guards work: a C++ file that takes the address
# of every TW_API function and object must refer to them by their C names.
# A declaration outside extern "C" shows up as a mangled (_Z...) symbol.
# The headers are globbed at run time, so a new header is covered as soon
# as it exists.
set -u

srcdir=${TWINE_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${TWINE_BUILDDIR:-.}
CC=${TWINE_CC:-cc}
CXX=${TWINE_CXX:-g++}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-headers.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM

failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# The generated version.h lives in the build tree; the rest in the source.
headers=""
for h in "$srcdir"/include/twine/*.h "$builddir"/include/twine/*.h; do
    [ -f "$h" ] || continue
    name=twine/$(basename "$h")
    case " $headers " in *" $name "*) continue ;; esac
    headers="$headers $name"
done
headers="$headers twine.h"
# shellcheck disable=SC2086
set -- $headers
[ $# -ge 2 ] || { echo "FAIL: no headers found under $srcdir/include"; exit 1; }
echo "checking $# public headers"

have_cxx=1
command -v "$CXX" >/dev/null 2>&1 || {
    have_cxx=0
    echo "note: no C++ compiler ($CXX); the C++ checks are skipped"
}

INC="-I$builddir/include -I$srcdir/include"
for name in $headers; do
    printf '#include <%s>\n' "$name" >"$tmp/one.c"
    # shellcheck disable=SC2086
    if ! $CC -std=c11 -Wall -Wextra -Wstrict-prototypes -Werror -fsyntax-only $INC \
        "$tmp/one.c" >"$tmp/err" 2>&1; then
        fail "<$name> does not compile alone as C11:"
        sed 's/^/    /' "$tmp/err"
    fi
    if [ $have_cxx = 1 ]; then
        cp "$tmp/one.c" "$tmp/one.cc"
        # shellcheck disable=SC2086
        if ! $CXX -std=c++11 -Wall -Wextra -Werror -fsyntax-only $INC "$tmp/one.cc" \
            >"$tmp/err" 2>&1; then
            fail "<$name> does not compile alone as C++11:"
            sed 's/^/    /' "$tmp/err"
        fi
    fi
    file=$srcdir/include/$name
    [ -f "$file" ] || file=$builddir/include/$name
    if grep -q '^TW_API' "$file" &&
        ! { grep -q '^TW_BEGIN_DECLS' "$file" && grep -q '^TW_END_DECLS' "$file"; }; then
        fail "<$name> declares TW_API symbols without TW_BEGIN_DECLS/TW_END_DECLS"
    fi
done

# Every TW_API function and object, by name: the same extraction as
# tests/check_api_docs.sh and tests/check_symbols.sh.
for name in $headers; do
    file=$srcdir/include/$name
    [ -f "$file" ] || file=$builddir/include/$name
    sed -n -e 's/^TW_API extern[^;]*[^A-Za-z0-9_]\(tw_[A-Za-z0-9_]*\)[[:space:]]*;.*/\1/p' \
        -e 's/^TW_API[^(]*[^A-Za-z0-9_]\(tw_[A-Za-z0-9_]*\)[[:space:]]*(.*/\1/p' "$file"
done | sort -u >"$tmp/api"
count=$(wc -l <"$tmp/api")
[ "$count" -ge 50 ] || fail "only $count TW_API declarations found; the extraction is broken"

if [ $have_cxx = 1 ]; then
    {
        for name in $headers; do printf '#include <%s>\n' "$name"; done
        echo 'typedef void (*any_fn)(void);'
        echo 'extern const void *const tw_test_addresses[];'
        echo 'const void *const tw_test_addresses[] = {'
        while read -r sym; do
            # Functions and objects alike: the address of the declared entity.
            printf '    reinterpret_cast<const void *>(&%s),\n' "$sym"
        done <"$tmp/api"
        echo '};'
    } >"$tmp/all.cc"
    # shellcheck disable=SC2086
    if ! $CXX -std=c++11 -Wall -Wextra -Werror -Wno-conditionally-supported -c $INC \
        "$tmp/all.cc" -o "$tmp/all.o" >"$tmp/err" 2>&1; then
        fail "a C++ file using every TW_API symbol does not compile:"
        sed 's/^/    /' "$tmp/err"
    else
        nm -u "$tmp/all.o" | awk '{print $NF}' | grep '^_Z' >"$tmp/mangled"
        if [ -s "$tmp/mangled" ]; then
            fail "declared outside extern \"C\" (C++ sees mangled names):"
            (c++filt <"$tmp/mangled" 2>/dev/null || cat "$tmp/mangled") | sed 's/^/    /'
        fi
        refs=$(nm -u "$tmp/all.o" | awk '{print $NF}' | grep -c '^tw_')
        echo "C++ refers to $refs of $count TW_API symbols by their C names"
        [ "$refs" -eq "$count" ] || fail "expected $count C-named references, saw $refs"
    fi
fi

if [ $failures -gt 0 ]; then
    echo "$failures header check(s) failed"
    exit 1
fi
echo "PASS: every public header compiles alone as C11$([ $have_cxx = 1 ] && echo ' and C++11'), inside TW_BEGIN_DECLS"
exit 0
