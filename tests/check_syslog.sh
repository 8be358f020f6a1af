#!/bin/sh
# SPDX-License-Identifier: MIT
# reactord --syslog, heard by a syslog daemon played by this test: in a
# private mount namespace (unshare -m) whose /dev is a fresh tmpfs with
# /dev/null and a /dev/log that leads to a datagram socket of the test's
# own, so nothing outside the namespace sees the records or a new /dev/log.
# The records must come with facility daemon and the level's priority,
# "reactord[PID]: " before each, and none on standard error. Skips, saying
# why, where mount namespaces cannot be made (no privilege).
set -u
reactord=${REACTORD:-./reactord}
python=${PYTHON_TWISTED:-/usr/bin/python3}
tmp=$(mktemp -d /tmp/twsyslogXXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

if ! unshare -m --propagation private true 2>/dev/null; then
    echo "SKIP: cannot make a mount namespace here (unshare -m needs root or CAP_SYS_ADMIN)"
    exit 77
fi

# The syslog daemon: every datagram to $tmp/log, one per line, into
# $tmp/records, until $tmp/stop exists (20 s at most).
"$python" - "$tmp" <<'PY' &
import os, socket, sys, time
tmp = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(tmp + "/log")
s.settimeout(0.1)
open(tmp + "/listening", "w").close()
end = time.time() + 20
with open(tmp + "/records", "w") as out:
    while time.time() < end and not os.path.exists(tmp + "/stop"):
        try:
            out.write(s.recv(4096).decode("utf-8", "replace").rstrip("\n") + "\n")
            out.flush()
        except socket.timeout:
            pass
PY
daemon=$!
for _ in $(seq 50); do [ -e "$tmp/listening" ] && break; sleep 0.1; done

# The namespace's setup, then exec: "sh -c SETUP sh TMP COMMAND..." is
# COMMAND itself once it runs (unshare without --fork execs too), so the
# pid the caller holds is reactord's.
setup='tmp=$1; shift
touch "$tmp/null" && mount --bind /dev/null "$tmp/null" &&
    mount -t tmpfs tmpfs /dev && touch /dev/null && mount --bind "$tmp/null" /dev/null &&
    ln -s "$tmp/log" /dev/log || exit 71
exec "$@"'

# A server that starts, serves and stops on SIGTERM.
unshare -m --propagation private sh -c "$setup" sh "$tmp" \
    "$reactord" --syslog -p echo -l tcp:0:interface=127.0.0.1 2>"$tmp/serve.err" &
pid=$!
for _ in $(seq 100); do grep -q 'listening on' "$tmp/records" 2>/dev/null && break; sleep 0.1; done
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
[ $rc -eq 0 ] || fail "reactord --syslog exited $rc"
# The fatal sentence of a failed start: error priority, and on stderr too.
unshare -m --propagation private sh -c "$setup" sh "$tmp" \
    "$reactord" --syslog -p nosuchprotocol -l tcp:0 2>"$tmp/fatal.err"
rc=$?
[ $rc -eq 64 ] || fail "an unknown protocol with --syslog exited $rc, not 64"
sleep 0.3
touch "$tmp/stop"
wait $daemon

# <30> is facility daemon (3) at info (6); <27>, daemon at err (3).
if grep -q -E '^<30>.* reactord\[[0-9]+\]: reactord: echo listening on 127\.0\.0\.1:[0-9]+$' "$tmp/records"; then
    ok "the listening record reached syslog as daemon.info, tagged reactord[PID]"
else
    fail "no daemon.info 'listening' record; syslog heard:"
    cat "$tmp/records"
fi
grep -q -E '^<30>.*: reactord: stopped$' "$tmp/records" || fail "no 'stopped' record in syslog"
if grep -q -E "^<27>.*: reactord: unknown protocol 'nosuchprotocol'" "$tmp/records"; then
    ok "the fatal sentence reached syslog as daemon.err"
else
    fail "no daemon.err record of the fatal sentence; syslog heard:"
    cat "$tmp/records"
fi
if [ -s "$tmp/serve.err" ]; then
    fail "reactord --syslog wrote to stderr while serving:"
    cat "$tmp/serve.err"
else
    ok "nothing on stderr while serving"
fi
grep -q "unknown protocol 'nosuchprotocol'" "$tmp/fatal.err" ||
    fail "the fatal sentence did not reach stderr as well"
[ $failures -eq 0 ] || exit 1
echo "reactord --syslog: all records in syslog, none on stderr"
