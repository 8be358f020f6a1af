#!/bin/sh
# SPDX-License-Identifier: MIT
# docs/api.md documents exactly the public API: every TW_API function and
# object declared in include/ has an entry ("#### name"), and every entry
# names something that still exists. docs/api.md is generated from the
# header comments by docs/gen-api.sh; when it merely lags behind a reworded
# comment this says so without failing, since the reference is still whole.
set -u

srcdir=${TWINE_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
api=$srcdir/docs/api.md
[ -f "$api" ] || { echo "FAIL: $api does not exist; run docs/gen-api.sh > docs/api.md"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-apidocs.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM

for h in "$srcdir"/include/twine/*.h "$srcdir"/include/twine/*.h.in; do
    [ -f "$h" ] && sed -n \
        -e 's/^TW_API extern[^;]*[^A-Za-z0-9_]\(tw_[A-Za-z0-9_]*\)[[:space:]]*;.*/\1/p' \
        -e 's/^TW_API[^(]*[^A-Za-z0-9_]\(tw_[A-Za-z0-9_]*\)[[:space:]]*(.*/\1/p' "$h"
done | sort -u >"$tmp/declared"
sed -n 's/^#### \(tw_[A-Za-z0-9_]*\)$/\1/p' "$api" | sort -u >"$tmp/documented"

declared=$(wc -l <"$tmp/declared")
[ "$declared" -ge 50 ] || { echo "FAIL: only $declared TW_API declarations found in include/"; exit 1; }
echo "include/ declares $declared TW_API symbols; docs/api.md documents $(wc -l <"$tmp/documented")"

failures=0
comm -23 "$tmp/declared" "$tmp/documented" >"$tmp/missing"
if [ -s "$tmp/missing" ]; then
    echo "FAIL: public symbols missing from docs/api.md (run docs/gen-api.sh > docs/api.md):"
    sed 's/^/    /' "$tmp/missing"
    failures=1
fi
comm -13 "$tmp/declared" "$tmp/documented" >"$tmp/gone"
if [ -s "$tmp/gone" ]; then
    echo "FAIL: docs/api.md documents symbols no header declares any more:"
    sed 's/^/    /' "$tmp/gone"
    failures=1
fi
if grep -q '^(undocumented)$' "$api"; then
    echo "FAIL: public symbols without a doc comment in their header:"
    grep -B5 '^(undocumented)$' "$api" | sed -n 's/^#### /    /p'
    failures=1
fi

if [ -x "$srcdir/docs/gen-api.sh" ] || [ -f "$srcdir/docs/gen-api.sh" ]; then
    if sh "$srcdir/docs/gen-api.sh" "$srcdir" >"$tmp/fresh.md" 2>"$tmp/err"; then
        cmp -s "$tmp/fresh.md" "$api" ||
            echo "note: docs/api.md lags behind the header comments; run docs/gen-api.sh > docs/api.md"
    else
        echo "FAIL: docs/gen-api.sh failed:"
        sed 's/^/    /' "$tmp/err"
        failures=1
    fi
fi

[ $failures -eq 0 ] || exit 1
echo "PASS: every TW_API symbol in include/ has an entry in docs/api.md, and no entry is stale"
exit 0
