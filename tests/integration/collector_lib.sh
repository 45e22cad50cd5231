# Sourced by tests/integration/test_collector*.sh: a private temp tree, the
# environment that points the emitter, collector and llmguard-log at it,
# start/stop helpers, and a trap that ends every process we started (by
# pid) and removes the tree.
set -euo pipefail
: "${LG_BUILD:?set LG_BUILD to the build directory}"
LG_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
T=$(mktemp -d /tmp/lg-collector-test.XXXXXX)
chmod 755 "$T"
export LLMGUARD_COLLECTOR=$T/run/events.sock
export LLMGUARD_SPOOL_DIR=$T/run/spool
export LLMGUARD_LOG_DIR=$T/log
COLLECTORD=$LG_BUILD/llmguard-collectord
LGLOG=$LG_BUILD/llmguard-log
WRITER=$LG_BUILD/tests/collector_writer
if [ ! -x "$WRITER" ]; then
  WRITER=$T/collector_writer
  cc -std=c11 -D_GNU_SOURCE -O2 -I"$LG_SRC/shim" -o "$WRITER" \
    "$LG_SRC/tests/integration/collector_writer.c" "$LG_SRC/shim/emit.c" -lpthread
fi
CPID=
EXTRA_PIDS=()

lg_cleanup() {
  set +e
  [ -n "$CPID" ] && kill -TERM "$CPID" 2>/dev/null && wait "$CPID" 2>/dev/null
  for p in "${EXTRA_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for f in "$T"/run/*.keeper.pid; do
    [ -e "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
  done
  [ -n "${LG_KEEP_TMP:-}" ] || rm -rf "$T"
}
trap lg_cleanup EXIT

# start_collector [options...]: runs it in the background, waits for the socket.
start_collector() {
  "$COLLECTORD" "$@" 2>>"$T/collectord.err" &
  CPID=$!
  for _ in $(seq 100); do
    [ -S "$LLMGUARD_COLLECTOR" ] && grep -Eq "\"pid\":[[:space:]]*$CPID," \
      "$LLMGUARD_LOG_DIR/collectord.status" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "collector did not start"; cat "$T/collectord.err"; return 1
}

stop_collector() {
  kill -TERM "$CPID"; wait "$CPID" || { echo "collector exit status $?"; return 1; }
  CPID=
}

# status_field a.b: a number from collectord.status
status_field() {
  python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d=d[int(k)] if isinstance(d,list) else d[k]
print(d)' "$LLMGUARD_LOG_DIR/collectord.status" "$1"
}

# wait_for CMD...: up to 20 s for CMD to succeed
wait_for() {
  for _ in $(seq 200); do "$@" && return 0; sleep 0.1; done
  echo "timed out waiting for: $*"; return 1
}

spool_empty() { [ -z "$(ls -A "$LLMGUARD_SPOOL_DIR" 2>/dev/null)" ]; }

fail() { echo "FAIL: $*"; exit 1; }
