#!/bin/sh
# SPDX-License-Identifier: MIT
# The service files of contrib/: the logrotate file agrees with the snippet
# in reactord.8 (and logrotate parses it, where logrotate is installed), and
# the systemd units pass `systemd-analyze verify`, pointed at the reactord
# just built. Skips, saying why, where systemd-analyze is missing.
set -u
srcdir=${TWINE_SRCDIR:-.}
reactord=${REACTORD:-./reactord}
tmp=$(mktemp -d /tmp/twunitsXXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# --------------------------------------------------------------- logrotate
lr=$srcdir/contrib/reactord.logrotate
# The directives of a logrotate block, in order, up to postrotate; the
# account in `create` is the deployment's own, so it is left out.
directives() {
    sed -n '/{/,/postrotate/p' "$1" | sed -e 's/^[ .]*//' -e 's/\\-/-/g' |
        grep -v -E '^(/|postrotate|sharedscripts|$)' | sed -e 's/^create \([0-7]*\) [^ ]* \([^ ]*\)$/create \1 USER \2/'
}
directives "$lr" >"$tmp/package"
sed -n '/^\/var\/log\/echo.log {/,/^}/p' "$srcdir/reactord.8" >"$tmp/page.snippet"
[ -s "$tmp/page.snippet" ] || fail "reactord.8 has no logrotate snippet for /var/log/echo.log"
directives "$tmp/page.snippet" >"$tmp/page"
if diff -u "$tmp/page" "$tmp/package" >"$tmp/diff"; then
    ok "contrib/reactord.logrotate has the directives of reactord.8's snippet"
else
    fail "contrib/reactord.logrotate and reactord.8's snippet differ:"
    cat "$tmp/diff"
fi
grep -q '^ *create 0640 reactord adm$' "$lr" || fail "reactord.logrotate does not create 0640 reactord adm"
grep -q '^ *create 0640 [a-z]* adm$' "$tmp/page.snippet" || fail "reactord.8's snippet does not create 0640 USER adm"
grep -q -- '--signal=HUP' "$lr" || fail "reactord.logrotate does not send SIGHUP"
grep -q 'kill \\-HUP' "$tmp/page.snippet" || fail "reactord.8's snippet does not send SIGHUP"
[ $failures -eq 0 ] && ok "both create the new file 0640 USER adm and send SIGHUP"
if command -v logrotate >/dev/null 2>&1; then
    # As written, on files here and for an account that exists.
    mkdir "$tmp/logs"
    echo "a record" >"$tmp/logs/echo.log"
    sed -e "s|/var/log/reactord/|$tmp/logs/|" -e 's/create 0640 reactord adm/create 0640 root root/' \
        "$lr" >"$tmp/logrotate.conf"
    if logrotate -d -s "$tmp/state" "$tmp/logrotate.conf" >"$tmp/lr.out" 2>&1 &&
        ! grep -q -i 'error' "$tmp/lr.out"; then
        ok "logrotate parses reactord.logrotate"
    else
        fail "logrotate -d refuses reactord.logrotate:"
        cat "$tmp/lr.out"
    fi
else
    echo "note: logrotate is not installed (tools/deps.sh installs it); its parse was not checked"
fi

# --------------------------------------------------------------- systemd units
analyze=${SYSTEMD_ANALYZE:-}
[ -n "$analyze" ] || analyze=$(command -v systemd-analyze 2>/dev/null || true)
if [ -z "$analyze" ]; then
    [ $failures -eq 0 ] || exit 1
    echo "SKIP: systemd-analyze was not found when configure ran (apt-get install systemd, or tools/deps.sh), so the units were not verified"
    exit 77
fi
sbindir=$(cd "$(dirname "$reactord")" && pwd)
sed -e "s|@sbindir@|$sbindir|g" "$srcdir/contrib/reactord@.service.in" >"$tmp/reactord@.service"
cp "$srcdir/contrib/reactord@.socket" "$tmp/reactord@.socket"
grep -q '^Type=notify$' "$tmp/reactord@.service" || fail "reactord@.service is not Type=notify"
grep -q '^EnvironmentFile=/etc/reactord/%i.conf$' "$tmp/reactord@.service" ||
    fail "reactord@.service does not read /etc/reactord/%i.conf"
grep -q '^ExecStart=.*--user reactord \$REACTORD_OPTIONS$' "$tmp/reactord@.service" ||
    fail "reactord@.service does not run as --user reactord with \$REACTORD_OPTIONS"
# The example configuration, as the unit runs it (root stands for the
# reactord account, which the package creates).
REACTORD_OPTIONS=
. "$srcdir/contrib/echo.conf"
# shellcheck disable=SC2086 # split into words, as systemd splits $REACTORD_OPTIONS
if "$reactord" --check --user root $REACTORD_OPTIONS >"$tmp/check.out" 2>&1; then
    ok "reactord --check accepts contrib/echo.conf with the unit's --user"
else
    fail "reactord --check refuses contrib/echo.conf:"
    cat "$tmp/check.out"
fi
for unit in "reactord@check.service" "reactord@check.socket"; do
    if (cd "$tmp" && "$analyze" verify --man=no "./$unit") >"$tmp/verify.out" 2>&1 &&
        [ ! -s "$tmp/verify.out" ]; then
        ok "systemd-analyze verify $unit"
    else
        fail "systemd-analyze verify $unit:"
        cat "$tmp/verify.out"
    fi
done
[ $failures -eq 0 ] || exit 1
echo "all service files check out"
