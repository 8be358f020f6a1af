#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian packages twine needs to build and test, skipping the
# ones already present. Safe to run again; uses sudo when not root.
# Usage: tools/deps.sh [deb] [PACKAGE]...
set -eu

PACKAGES="build-essential autoconf automake libtool pkg-config libevent-dev libssl-dev libjansson-dev check python3-twisted"
# The TLS tests: openssl s_client/s_server, and Twisted's TLS.
PACKAGES="$PACKAGES openssl python3-openssl python3-service-identity"
# make check verifies reactord's units and logrotate file with these, and
# runs HAProxy in front of reactord for the PROXY protocol.
PACKAGES="$PACKAGES systemd logrotate haproxy"
# ... and scrapes reactord --metrics with Prometheus' own parser.
PACKAGES="$PACKAGES python3-prometheus-client"
# `deps.sh deb` adds what tools/deb.sh needs to build the Debian packages;
# other arguments are more package names.
for a in "$@"; do
    case $a in
    deb) PACKAGES="$PACKAGES debhelper dh-autoreconf dpkg-dev fakeroot lintian" ;;
    *) PACKAGES="$PACKAGES $a" ;;
    esac
done

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing:$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
