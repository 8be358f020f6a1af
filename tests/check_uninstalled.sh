#!/bin/sh
# SPDX-License-Identifier: MIT
# The build tree is usable without installing it: with the build directory
# on PKG_CONFIG_PATH, `pkg-config twine` reads the generated
# twine-uninstalled.pc, and examples/embed builds out of tree with its own
# Makefile against the build tree's headers and libtwine, and runs
# (--selftest: one echo round trip) without LD_LIBRARY_PATH, from the build
# tree's library.
set -u

srcdir=${TWINE_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=$(cd "${TWINE_BUILDDIR:-.}" && pwd)
MAKE=${TWINE_MAKE:-make}
CC=${TWINE_CC:-cc}
CFLAGS=${TWINE_CFLAGS:-}
LDFLAGS=${TWINE_LDFLAGS:-}
command -v pkg-config >/dev/null 2>&1 || { echo "SKIP: pkg-config not found"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/twine-uninstalled.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM

PKG_CONFIG_PATH=$builddir
export PKG_CONFIG_PATH
unset LD_LIBRARY_PATH PKG_CONFIG_DISABLE_UNINSTALLED

version=$(sed -n 's/^#define TW_VERSION_STRING "\(.*\)"/\1/p' "$builddir/include/twine/version.h")
if ! pkg-config --exists twine-uninstalled; then
    echo "FAIL: the build did not write a usable twine-uninstalled.pc in $builddir"
    exit 1
fi
if [ "$(pkg-config --modversion twine)" != "$version" ]; then
    echo "FAIL: pkg-config --modversion twine says '$(pkg-config --modversion twine)', not $version"
    exit 1
fi
case " $(pkg-config --cflags twine) " in
*" -I$srcdir/include "*) echo "ok: pkg-config twine answers for the build tree" ;;
*)
    echo "FAIL: pkg-config --cflags twine does not name $srcdir/include: $(pkg-config --cflags twine)"
    exit 1
    ;;
esac

mkdir "$tmp/embed"
cp "$srcdir/examples/embed/embed.c" "$srcdir/examples/embed/Makefile" "$tmp/embed/"
# The parent make's flags (jobserver, TESTS=...) are not the example's.
# shellcheck disable=SC2086
if ! (cd "$tmp/embed" &&
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $MAKE CC="$CC" CFLAGS="$CFLAGS" LDFLAGS="$LDFLAGS") \
    >"$tmp/build.log" 2>&1; then
    echo "FAIL: examples/embed does not build against twine-uninstalled.pc:"
    sed 's/^/    /' "$tmp/build.log"
    exit 1
fi
echo "ok: examples/embed builds out of tree with its Makefile against the build tree"
if ! timeout 30 "$tmp/embed/embed" --selftest >"$tmp/run.log" 2>&1; then
    echo "FAIL: the embed built against the build tree fails --selftest without LD_LIBRARY_PATH:"
    sed 's/^/    /' "$tmp/run.log"
    exit 1
fi
if command -v ldd >/dev/null 2>&1 && ! ldd "$tmp/embed/embed" | grep -q "$builddir/.libs/libtwine.so"; then
    echo "FAIL: the embed does not run with $builddir/.libs/libtwine.so:"
    ldd "$tmp/embed/embed" | sed 's/^/    /'
    exit 1
fi
echo "PASS: examples/embed built with twine-uninstalled.pc runs from the build tree"
exit 0
