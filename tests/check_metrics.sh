#!/bin/sh
# SPDX-License-Identifier: MIT
# reactord --metrics and --access-log (tests/metrics/check_metrics.py):
# scrapes parsed by Prometheus' own parser, from Debian's
# python3-prometheus-client (tools/deps.sh installs it).
set -u
builddir=$(cd "${TWINE_BUILDDIR:-.}" && pwd)
srcdir=${TWINE_SRCDIR:-$builddir}
python=/usr/bin/python3
if ! "$python" -c 'import prometheus_client.parser' 2>/dev/null; then
    echo "SKIP: $python cannot import prometheus_client (Debian package python3-prometheus-client; tools/deps.sh installs it)"
    exit 77
fi
REACTORD=${REACTORD:-$builddir/reactord} exec "$python" "$srcdir/tests/metrics/check_metrics.py"
