#!/usr/bin/env bash
# Zero loss: 4 writer processes x 50,000 events through shim/emit.c (the
# emitter the shim uses) while the collector is SIGKILLed and restarted
# twice mid-run.  Exactly 200,000 unique events must be stored, none twice.
source "$(dirname "$0")/collector_lib.sh"
N=${ZL_PER_WRITER:-50000}
RATE=${ZL_RATE:-12500}   # per writer: about 4 s of emission
start_collector --spool-interval 200
wpids=()
for w in 1 2 3 4; do
  "$WRITER" w$w "$N" "$RATE" >"$T/writer$w.out" & wpids+=($!); EXTRA_PIDS+=($!)
done
for round in 1 2; do
  sleep 1.1
  echo "round $round: SIGKILL collector $CPID"
  kill -KILL "$CPID"; wait "$CPID" 2>/dev/null || true; CPID=
  sleep 0.3
  start_collector --spool-interval 200
done
for p in "${wpids[@]}"; do wait "$p" || fail "writer failed"; done
cat "$T"/writer*.out
wait_for spool_empty
sleep 0.3
stop_collector
python3 - "$LLMGUARD_LOG_DIR" "$N" <<'PY'
import json, os, sys, glob
d, n = sys.argv[1], int(sys.argv[2])
lines = ids = 0
seen, per = set(), set()
for f in sorted(glob.glob(d + "/events-*.jsonl")) + [d + "/events.jsonl"]:
    for line in open(f, encoding="utf-8"):
        e = json.loads(line)
        lines += 1
        seen.add(e["id"])
        per.add((e["writer"], e["seq"]))
expected = {("w%d" % w, i) for w in range(1, 5) for i in range(n)}
print("lines", lines, "unique ids", len(seen), "unique (writer,seq)", len(per))
missing = expected - per
assert not missing, "missing %d events, e.g. %s" % (len(missing), sorted(missing)[:5])
assert lines == 4 * n, "duplicates stored: %d lines" % lines
assert len(seen) == 4 * n
PY
echo "dups discarded: $(status_field duplicates) (last run)"
cat "$T/collectord.err"
