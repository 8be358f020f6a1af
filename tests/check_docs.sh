#!/bin/sh
# SPDX-License-Identifier: MIT
# `make docs` builds the Doxygen reference from README.md, docs/tutorial.md
# and the public headers without a warning about the Markdown pages, such
# as a link between them that Doxygen cannot resolve. Skips (77) when
# configure found no doxygen.
set -u

builddir=$(cd "${TWINE_BUILDDIR:-.}" && pwd)
MAKE=${TWINE_MAKE:-make}
[ -n "${TWINE_DOXYGEN:-}" ] || { echo "SKIP: configure found no doxygen"; exit 77; }

log=$(mktemp "${TMPDIR:-/tmp}/twine-docs.XXXXXX") || exit 99
trap 'rm -f "$log"' EXIT INT TERM

# The parent make's flags (jobserver, TESTS=...) are not this one's.
# shellcheck disable=SC2086
if ! (cd "$builddir" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $MAKE docs) >"$log" 2>&1; then
    echo "FAIL: make docs failed:"
    sed 's/^/    /' "$log"
    exit 1
fi
if grep -E '\.md:[0-9]+: warning' "$log"; then
    echo "FAIL: Doxygen warns about the Markdown pages (above)"
    exit 1
fi
echo "PASS: make docs builds the reference with no warning about README.md or the tutorial"
exit 0
