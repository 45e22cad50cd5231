#!/usr/bin/env bash
# Permissions: another user (nobody, via setpriv) can neither inject into
# the per-user socket, nor read the logs, nor plant or read spool files;
# even with the socket's directory opened up, the socket's own mode holds.
source "$(dirname "$0")/collector_lib.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to switch users"; exit 0; }
AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
# nobody must be able to run the programs wherever the build lives
mkdir -p "$T/bin"; cp "$WRITER" "$COLLECTORD" "$LGLOG" "$T/bin/"; chmod 755 "$T/bin"
NB_WRITER=$T/bin/$(basename "$WRITER"); NB_LGLOG=$T/bin/llmguard-log
NB_COLLECTORD=$T/bin/llmguard-collectord
PY=/usr/bin/python3; [ -x $PY ] || PY=python3
start_collector
"$WRITER" owner 10 >/dev/null
wait_for python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["stored"] < 10)' "$LLMGUARD_LOG_DIR/collectord.status"

stat -c '%a %n' "$T/run" "$LLMGUARD_COLLECTOR" "$LLMGUARD_SPOOL_DIR" "$LLMGUARD_LOG_DIR" "$LLMGUARD_LOG_DIR/events.jsonl"
[ "$(stat -c %a "$LLMGUARD_COLLECTOR")" = 600 ] || fail "socket mode"
[ "$(stat -c %a "$LLMGUARD_LOG_DIR")" = 700 ] || fail "log dir mode"
[ "$(stat -c %a "$LLMGUARD_LOG_DIR/events.jsonl")" = 600 ] || fail "log file mode"
[ "$(stat -c %a "$LLMGUARD_SPOOL_DIR")" = 700 ] || fail "spool dir mode"

inject='import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    s.sendto(b"{\"v\":1,\"id\":\"intruder-%d\"}" % os.getuid(), sys.argv[1])
except PermissionError:
    sys.exit(0)
sys.exit("sent as uid %d" % os.getuid())'
"${AS_NOBODY[@]}" $PY -c "$inject" "$LLMGUARD_COLLECTOR" || fail "nobody could send"
# open the directory up: the socket's own 0600 must still refuse
chmod 755 "$T/run"
"${AS_NOBODY[@]}" $PY -c "$inject" "$LLMGUARD_COLLECTOR" || fail "nobody could send with the dir open"
# nobody's emitter: cannot send, cannot spool into our spool dir -> drops
rc=0; "${AS_NOBODY[@]}" "$NB_WRITER" intruder 3 >"$T/intruder.out" 2>&1 || rc=$?
cat "$T/intruder.out"
[ $rc != 0 ] && grep -q 'dropped=3' "$T/intruder.out" || fail "nobody's emitter got through"
chmod 700 "$T/run"
# logs: not readable, not listable, not via llmguard-log
"${AS_NOBODY[@]}" cat "$LLMGUARD_LOG_DIR/events.jsonl" 2>/dev/null && fail "nobody read the log"
"${AS_NOBODY[@]}" ls "$LLMGUARD_LOG_DIR" >/dev/null 2>&1 && fail "nobody listed the log dir"
"${AS_NOBODY[@]}" "$NB_LGLOG" --dir "$LLMGUARD_LOG_DIR" query >/dev/null 2>&1 && fail "llmguard-log as nobody succeeded"
# a spool file planted by another user in our spool dir (if root put it
# there for them) is not ingested: the collector only trusts its own uid
# ... when it does not run as root.  As root it stamps the file owner.
stop_collector
grep -q intruder "$LLMGUARD_LOG_DIR"/events*.jsonl && fail "intruder event stored"
[ "$(grep -c '"writer":"owner"' "$LLMGUARD_LOG_DIR/events.jsonl")" = 10 ] || fail "owner events"

# a non-root collector ignores spool files owned by someone else
d=$T/nb; mkdir -p "$d"; chown 65534:65534 "$d"; chmod 700 "$d"
"${AS_NOBODY[@]}" env LLMGUARD_COLLECTOR="$d/run/ev.sock" LLMGUARD_SPOOL_DIR="$d/run/spool" \
  LLMGUARD_LOG_DIR="$d/log" "$NB_COLLECTORD" --no-keeper 2>"$T/nb.err" & npid=$!; EXTRA_PIDS+=($npid)
for _ in $(seq 50); do [ -S "$d/run/ev.sock" ] && break; sleep 0.1; done
echo '{"v":1,"id":"planted-1"}' >"$d/run/spool/1-1-0.spool"   # owned by root
"${AS_NOBODY[@]}" env LLMGUARD_COLLECTOR="$d/run/ev.sock" LLMGUARD_SPOOL_DIR="$d/run/spool" "$NB_WRITER" nb 5 >/dev/null
sleep 1.5
kill -TERM $npid; wait $npid
grep -q planted "$d/log/events.jsonl" && fail "foreign spool file ingested"
[ "$(grep -c '"uid":65534' "$d/log/events.jsonl")" = 5 ] || fail "nobody's own events"
echo ok
