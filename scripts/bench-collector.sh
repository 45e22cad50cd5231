#!/usr/bin/env bash
# Collector ingest benchmark: 4 writers x N events through the shim's
# emitter (datagrams, spilling to spool files when the queue is full, as in
# real use), timed from the first event until all are stored.  Run with the
# default fsync interval and with fsync off.  Prints events/s.  Writers and
# collector share the machine, so on 2 cores this is the end-to-end rate of
# the whole pipeline, not the collector alone; the second line of each pair
# is the collector's own ingest rate from a pre-filled spool (the writers
# run first, with the collector stopped).
#   scripts/bench-collector.sh [BUILD_DIR] [EVENTS_PER_WRITER]
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
N=${2:-50000}
W=4
WRITER=$B/tests/collector_writer
[ -x "$WRITER" ] || { echo "bench-collector: build $WRITER first (make all)" >&2; exit 1; }
T=$(mktemp -d /tmp/lg-bench-collector.XXXXXX)
CPID=
cleanup() {
  [ -n "$CPID" ] && kill -TERM "$CPID" 2>/dev/null && wait "$CPID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
run() { # run LABEL collector-options...
  local label=$1; shift
  rm -rf "$T/run" "$T/log"
  export LLMGUARD_COLLECTOR=$T/run/events.sock LLMGUARD_SPOOL_DIR=$T/run/spool LLMGUARD_LOG_DIR=$T/log
  "$B/llmguard-collectord" --spool-interval 50 "$@" 2>"$T/err" & CPID=$!
  for _ in $(seq 100); do [ -S "$LLMGUARD_COLLECTOR" ] && break; sleep 0.05; done
  local t0 t1 total=$((W * N))
  t0=$(date +%s.%N)
  for w in $(seq $W); do "$WRITER" w$w "$N" >/dev/null & done
  wait $(jobs -p | grep -v "^$CPID\$") 2>/dev/null || true
  # count stored lines cheaply (the status file is only rewritten each second)
  while [ "$(cat "$LLMGUARD_LOG_DIR"/events*.jsonl 2>/dev/null | wc -l)" -lt "$total" ]; do sleep 0.1; done
  t1=$(date +%s.%N)
  kill -TERM "$CPID"; wait "$CPID"; CPID=
  python3 -c "import sys; t=float(sys.argv[2])-float(sys.argv[1]); n=int(sys.argv[3]); print('collector ingest (%s): %d events in %.2f s = %.0f events/s' % (sys.argv[4], n, t, n/t))" "$t0" "$t1" "$total" "$label"
}
# ingest LABEL options...: 4 x N events spooled first, then timed ingestion
ingest() {
  local label=$1; shift
  rm -rf "$T/run" "$T/log"
  export LLMGUARD_COLLECTOR=$T/run/events.sock LLMGUARD_SPOOL_DIR=$T/run/spool LLMGUARD_LOG_DIR=$T/log
  for w in $(seq $W); do "$WRITER" w$w "$N" >/dev/null & done
  wait
  local t0 t1 total=$((W * N))
  t0=$(date +%s.%N)
  "$B/llmguard-collectord" --no-keeper "$@" 2>"$T/err" & CPID=$!
  while [ -n "$(ls -A "$LLMGUARD_SPOOL_DIR")" ]; do sleep 0.01; done
  t1=$(date +%s.%N)
  kill -TERM "$CPID"; wait "$CPID"; CPID=
  local got; got=$(cat "$LLMGUARD_LOG_DIR"/events*.jsonl | wc -l)
  [ "$got" = "$total" ] || { echo "bench-collector: stored $got of $total" >&2; exit 1; }
  python3 -c "import sys; t=float(sys.argv[2])-float(sys.argv[1]); n=int(sys.argv[3]); print('collector ingest, spool (%s): %d events in %.2f s = %.0f events/s' % (sys.argv[4], n, t, n/t))" "$t0" "$t1" "$total" "$label"
}
run "end to end, fsync every 200 ms (default)"
run "end to end, fsync off" --fsync-interval off
ingest "fsync every 200 ms (default)"
ingest "fsync off" --fsync-interval off
