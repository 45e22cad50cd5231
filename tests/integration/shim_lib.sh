# Sourced by tests/integration/test_shim*.sh: a temp dir removed on exit,
# servers killed on exit (by their own pids), pass/fail counters, and a
# fakellm starter.  $LG_BUILD is the absolute build directory.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
B=${LG_BUILD:-$here/../../build}
run=$B/llmguard-run
lib=$B/libllmguard.so
py=/usr/bin/python3
[ -x "$py" ] || py=python3
tmp=$(mktemp -d /tmp/lg-shim.XXXXXX)
# Events go to a private spool, never to the user's collector.
export LLMGUARD_COLLECTOR=$tmp/no-collector.sock LLMGUARD_SPOOL_DIR=$tmp/spool
unset LLMGUARD_POLICY LLMGUARD_MODE LLMGUARD_ENDPOINTS LLMGUARD_DEBUG
export XDG_CONFIG_HOME=$tmp/config   # no user policy file leaks in
pids=()
fails=0
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
finish() { echo "$fails failure(s)"; [ "$fails" -eq 0 ]; }
need() { for f in "$@"; do [ -e "$f" ] || { echo "FAIL: $f not built"; exit 1; }; done; }

# start_fakellm NAME ARGS...: sets $port.
start_fakellm() {
  local name=$1; shift
  "$B/llmguard-fakellm" --listen 127.0.0.1:0 --port-file "$tmp/$name.port" "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$tmp/$name.port" ] && break; sleep 0.05; done
  port=$(cat "$tmp/$name.port" 2>/dev/null)
  [ -n "$port" ] || { echo "FAIL: fakellm $name did not start"; cat "$tmp/$name.err"; exit 1; }
}
