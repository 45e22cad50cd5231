#!/usr/bin/env bash
# Rotation under load loses nothing (and SIGHUP reopening in the middle of
# it neither); llmguard-log reads the rotated files in time order;
# retention removes rotated files beyond --keep and older than --max-age.
source "$(dirname "$0")/collector_lib.sh"
start_collector --max-size 64k --keep 1000 --spool-interval 200
pids=()
for w in a b; do "$WRITER" $w 15000 6000 >"$T/$w.out" & pids+=($!); EXTRA_PIDS+=($!); done
for i in 1 2 3 4 5; do sleep 0.4; kill -HUP "$CPID"; done
for p in "${pids[@]}"; do wait "$p" || fail writer; done
wait_for spool_empty
sleep 0.3
stop_collector
nrot=$(ls "$LLMGUARD_LOG_DIR"/events-*.jsonl | wc -l)
echo "rotated files: $nrot"
[ "$nrot" -ge 20 ] || fail "expected many rotations"
"$LGLOG" query --json >"$T/all.jsonl"
python3 - "$T/all.jsonl" "$LLMGUARD_LOG_DIR" <<'PY'
import glob, json, os, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
got = sorted((e["writer"], e["seq"]) for e in ev)
assert got == sorted((w, i) for w in "ab" for i in range(15000)), "lost or duplicated events: %d" % len(got)
ts = [e["ts"] for e in ev]
assert ts == sorted(ts), "query across rotated files not in time order"
for f in glob.glob(sys.argv[2] + "/events*.jsonl"):
    assert os.stat(f).st_mode & 0o777 == 0o600, f
    assert os.path.getsize(f) < 64 * 1024 + 70 * 1024, f
print("rotation ok:", len(ev))
PY
st=$(status_field rotations); [ "$st" -ge 1 ] || fail "rotations not counted"

# retention by age: a rotated file older than --max-age goes at start
# (a glob, not `ls | head -1`: under pipefail, head closing the pipe early
# kills ls with SIGPIPE and the script with it)
rotated=("$LLMGUARD_LOG_DIR"/events-*.jsonl)
oldest=${rotated[0]}
touch -d '40 days ago' "$oldest"
start_collector --keep 1000 --max-age 30
[ -e "$oldest" ] && fail "file older than --max-age kept"
stop_collector
# retention by count
start_collector --keep 3
stop_collector
[ "$(ls "$LLMGUARD_LOG_DIR"/events-*.jsonl | wc -l)" = 3 ] || fail "--keep 3 not applied"
# the three kept are the newest ones
ls "$LLMGUARD_LOG_DIR"/events-*.jsonl
echo ok
