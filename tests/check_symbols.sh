#!/bin/sh
# SPDX-License-Identifier: MIT
# libtwine exports its public API and nothing else. It is built with
# -fvisibility=hidden and marks public declarations TW_API, so the dynamic
# symbol table of .libs/libtwine.so must hold:
#   - only names starting with tw_ (no helper that forgot `static`, no
#     internal tw__ name);
#   - nothing of a built-in protocol, exported or not (see below);
#   - every TW_API function and object the public headers declare (a TW_API
#     declaration the library does not define would fail at link time in
#     the user's program instead of here);
#   - nothing else: an exported tw_ name no public header declares is an
#     internal that escaped.
set -u

srcdir=${TWINE_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${TWINE_BUILDDIR:-.}
lib=$builddir/.libs/libtwine.so
if [ ! -f "$lib" ]; then
    echo "SKIP: $lib not found (built with --disable-shared?)"
    exit 77
fi
command -v nm >/dev/null 2>&1 || { echo "SKIP: nm not found"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-symbols.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM

# Defined dynamic symbols; versioned names (sym@@VER) are cut to the name.
# An AddressSanitizer build adds one ODR indicator per exported object
# (__odr_asan.tw_amp_type_integer); those belong to the compiler, not to us.
nm -D --defined-only "$lib" | awk 'NF >= 3 {sub(/@.*/, "", $3); print $3}' |
    grep -v '^__odr_asan[._]tw_' | sort -u >"$tmp/exported"
for h in "$srcdir"/include/twine/*.h "$builddir"/include/twine/version.h; do
    [ -f "$h" ] && sed -n \
        -e 's/^TW_API extern[^;]*[^A-Za-z0-9_]\(tw_[A-Za-z0-9_]*\)[[:space:]]*;.*/\1/p' \
        -e 's/^TW_API[^(]*[^A-Za-z0-9_]\(tw_[A-Za-z0-9_]*\)[[:space:]]*(.*/\1/p' "$h"
done | sort -u >"$tmp/declared"

failures=0
exported=$(wc -l <"$tmp/exported")
declared=$(wc -l <"$tmp/declared")
echo "libtwine.so exports $exported symbols; the headers declare $declared TW_API symbols"

grep -v '^tw_' "$tmp/exported" >"$tmp/foreign"
grep '^tw__' "$tmp/exported" >>"$tmp/foreign"
if [ -s "$tmp/foreign" ]; then
    echo "FAIL: exported symbols outside the tw_ API (make them static or tw__ and hidden):"
    sed 's/^/    /' "$tmp/foreign"
    failures=$((failures + 1))
fi

comm -23 "$tmp/declared" "$tmp/exported" >"$tmp/missing"
if [ -s "$tmp/missing" ]; then
    echo "FAIL: declared TW_API in include/ but not exported by libtwine.so:"
    sed 's/^/    /' "$tmp/missing"
    failures=$((failures + 1))
fi

grep '^tw_' "$tmp/exported" | grep -v '^tw__' | comm -23 - "$tmp/declared" >"$tmp/undeclared"
if [ -s "$tmp/undeclared" ]; then
    echo "FAIL: exported but declared in no public header (an internal that escaped):"
    sed 's/^/    /' "$tmp/undeclared"
    failures=$((failures + 1))
fi

# The built-in protocols (protocols/, linked into reactord) are not part of
# the library: no symbol of theirs, exported or not, is in libtwine.so. That
# is every global of libtwprotocols.a (module descriptors, the amp module's
# demo commands, the built-in table) and every name made for a module,
# whatever a later protocol calls its statics. Debug builds keep the full
# symbol table, so hidden and static names are seen too; a stripped library
# is still checked through nm -D.
protolib=$builddir/.libs/libtwprotocols.a
if [ ! -f "$protolib" ]; then
    echo "FAIL: $protolib not found; the built-in protocols are not built apart"
    failures=$((failures + 1))
else
    nm --defined-only "$protolib" 2>/dev/null | awk 'NF >= 3 && $2 ~ /[A-Z]/ {print $3}' |
        sort -u >"$tmp/protocols"
    grep -qx 'tw_builtin_plugin_echo' "$tmp/protocols" || {
        echo "FAIL: $protolib defines no tw_builtin_plugin_echo; the check below would be vacuous"
        failures=$((failures + 1))
    }
    { nm --defined-only "$lib" 2>/dev/null; nm -D --defined-only "$lib"; } |
        awk 'NF >= 3 {sub(/@.*/, "", $3); print $3}' | sort -u >"$tmp/all"
    { comm -12 "$tmp/protocols" "$tmp/all"
      grep -E '^(tw_builtin_plugin_|tw_plugin_builtin|tw__builtin_)|^amp_[a-z]+_command$|_responder$' \
          "$tmp/all"; } | sort -u >"$tmp/leaked"
    if [ -s "$tmp/leaked" ]; then
        echo "FAIL: libtwine.so holds symbols of the built-in protocols (they belong in reactord):"
        sed 's/^/    /' "$tmp/leaked"
        failures=$((failures + 1))
    fi
fi

# Guard against a vacuous pass: the core API must be there.
for sym in tw_reactor_new tw_reactor_run tw_listen tw_transport_write tw_deferred_new_at; do
    grep -qx "$sym" "$tmp/exported" || {
        echo "FAIL: $sym is not exported"
        failures=$((failures + 1))
    }
done

[ $failures -eq 0 ] || exit 1
echo "PASS: libtwine.so exports exactly the $declared TW_API symbols of include/, all tw_"
exit 0
