#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the Debian packages from a clean clone of HEAD and check them:
# dpkg-buildpackage makes libtwine0, libtwine-dev and reactord; lintian
# finds no error in them; unpacked into a throw-away root, each holds what
# debian/ promises, reactord runs --version, and the out-of-tree module
# example builds against libtwine-dev and loads into that reactord.
# Usage: tools/deb.sh [OUTDIR]   (the packages are left in OUTDIR, or in a
# temporary directory that is removed). Install the tools first with
# `tools/deps.sh deb`. The suite is not run (DEB_BUILD_OPTIONS=nocheck):
# make check covers it; add DEB_BUILD_OPTIONS yourself to run it.
set -eu

top=$(git rev-parse --show-toplevel)
out=${1:-}
work=$(mktemp -d /tmp/twdebXXXXXX)
trap 'rm -rf "$work"' EXIT

fail() {
    echo "tools/deb.sh: $*" >&2
    exit 1
}

git clone -q "$top" "$work/twine"
echo "building the packages (dpkg-buildpackage -us -uc -b)"
if ! (cd "$work/twine" &&
    DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-"nocheck parallel=2"} \
        dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
    tail -n 80 "$work/build.log"
    fail "dpkg-buildpackage failed"
fi
ls "$work"/*.deb
for p in libtwine0 libtwine-dev reactord; do
    ls "$work"/${p}_*.deb >/dev/null 2>&1 || fail "no $p package was built"
done

echo "lintian:"
changes=$(ls "$work"/*.changes)
# Errors fail; warnings and the rest are shown.
if ! lintian --fail-on error --display-level '>=warning' "$changes"; then
    fail "lintian found errors"
fi

root=$work/root
for deb in "$work"/*.deb; do
    dpkg -x "$deb" "$root"
done
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
for f in \
    usr/lib/$ma/libtwine.so.0 \
    usr/lib/$ma/libtwine.so usr/lib/$ma/libtwine.a usr/lib/$ma/pkgconfig/twine.pc \
    usr/include/twine.h usr/include/twine/version.h \
    usr/share/doc/libtwine-dev/examples/chat/chat.c usr/share/doc/libtwine-dev/examples/chat/Makefile \
    usr/sbin/reactord usr/bin/twine-call \
    usr/share/man/man8/reactord.8.gz usr/share/man/man1/twine-call.1.gz \
    lib/systemd/system/reactord@.service lib/systemd/system/reactord@.socket \
    etc/logrotate.d/reactord usr/share/doc/reactord/examples/echo.conf; do
    [ -e "$root/$f" ] || fail "/$f is in no package"
done
[ -d "$root/usr/lib/$ma/twine/protocols" ] || fail "the protocols directory is in no package"
grep -q '^ExecStart=/usr/sbin/reactord ' "$root/lib/systemd/system/reactord@.service" ||
    fail "reactord@.service does not run /usr/sbin/reactord"
[ ! -e "$root/usr/bin/reactord" ] || fail "reactord is in /usr/bin as well as /usr/sbin"

export LD_LIBRARY_PATH="$root/usr/lib/$ma"
"$root/usr/sbin/reactord" --version || fail "the packaged reactord does not run"
# The module example, built as its README says against the packaged twine.
cp -r "$root/usr/share/doc/libtwine-dev/examples/chat" "$work/chat"
PKG_CONFIG_PATH="$root/usr/lib/$ma/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$root" \
    make -s -C "$work/chat" || fail "examples/chat does not build against libtwine-dev"
"$root/usr/sbin/reactord" --plugin-path "$work/chat" --help-protocol chat >"$work/chat.help" ||
    fail "the packaged reactord cannot load the chat module"
grep -q chat "$work/chat.help" || fail "--help-protocol chat does not describe chat"
echo "the packaged reactord loads the out-of-tree chat module"

if [ -n "$out" ]; then
    mkdir -p "$out"
    cp "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo "$out"/
    echo "packages in $out"
fi
echo "Debian packages: built, lintian-clean of errors, and working"
