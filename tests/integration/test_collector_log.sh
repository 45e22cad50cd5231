#!/usr/bin/env bash
# llmguard-log: every filter of query (--since/--until as durations and as
# timestamps, --decision, --rule glob, --pid, --exe, --model, --api), time
# order across rotated files, tail -n / -f (across a rotation), stats
# (text with bars, and --json), status, and that it works with the
# collector stopped.  Expected answers are computed independently in Python
# from the stored files.
source "$(dirname "$0")/collector_lib.sh"
SEND="python3 $LG_SRC/tests/integration/collector_send.py"
start_collector --max-size 4k --keep 100 --fsync-interval 0

python3 - "$T/events.txt" <<'PY'
import json, random, sys, time, datetime as dt
rnd = random.Random(7)
now = time.time()
out = open(sys.argv[1], "w")
decisions = ["allow", "log", "redact", "block", "error"]
rules = ["pii.email", "pii.phone", "secrets.aws_key", "injection.ignore_previous", "output.canary"]
models = ["llama3:8b", "qwen2.5", "mistral"]
apis = ["ollama.chat", "ollama.generate", "openai.chat"]
evs = []
for i in range(60):
    age_min = rnd.randint(0, 6 * 60)          # spread over 6 hours
    ts = dt.datetime.fromtimestamp(now - age_min * 60, dt.timezone.utc)
    f = [{"rule": r, "category": r.split(".")[0], "severity": "high", "action": "log",
          "field": "prompt", "start": 0, "end": 3, "excerpt": "[x]"}
         for r in rnd.sample(rules, rnd.randint(0, 2))]
    evs.append({"v": 1, "id": "log-%d" % i, "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "decision": decisions[i % 5], "model": models[i % 3], "api": apis[i % 3],
                "direction": "request", "findings": f, "pad": "p" * 80})
rnd.shuffle(evs)                             # arrival order != time order
for e in evs:
    out.write(json.dumps(e) + "\n")
PY
$SEND events "$T/events.txt"
# a second program, so --pid and --exe have something to tell apart
COLLECTOR_WRITER_LINGER_MS=1500 "$WRITER" other 5 >/dev/null
wait_for python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["stored"] < 65)' "$LLMGUARD_LOG_DIR/collectord.status"
stop_collector
nrot=$(ls "$LLMGUARD_LOG_DIR"/events-*.jsonl | wc -l)
echo "rotated files: $nrot"
[ "$nrot" -ge 3 ] || fail "expected several rotated files"

# python reads all of grep's output: with pipefail, a reader that stops
# early would kill grep with SIGPIPE and the test with it.
writer_pid=$(grep -h '"writer":"other"' "$LLMGUARD_LOG_DIR"/events*.jsonl | python3 -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[0])["pid"])')
since_ts=$(python3 -c 'import datetime as d; print((d.datetime.now(d.timezone.utc)-d.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"))')
until_ts=$(python3 -c 'import datetime as d; print((d.datetime.now(d.timezone.utc)-d.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00"))')

check() { # check NAME PYEXPR -- llmguard-log args
  local name=$1 expr=$2; shift 3
  "$LGLOG" query --json "$@" >"$T/out.jsonl" || fail "$name: llmguard-log failed"
  python3 - "$LLMGUARD_LOG_DIR" "$T/out.jsonl" "$expr" "$name" "$writer_pid" <<'PY'
import datetime as dt, fnmatch, glob, json, os, sys, time
d, outf, expr, name, wpid = sys.argv[1:6]
wpid = int(wpid)
def ts(e): return dt.datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()
now = time.time()
evs = [json.loads(l) for f in sorted(glob.glob(d + "/events-*.jsonl")) + [d + "/events.jsonl"] for l in open(f)]
rules = lambda e: [f["rule"] for f in e.get("findings", [])]
want = [e for e in evs if eval(expr)]
got = [json.loads(l) for l in open(outf)]
assert 0 < len(want) < len(evs), (name, "filter must select a proper subset", len(want))
assert [e["id"] for e in got] == [e["id"] for e in sorted(want, key=ts)], (name, len(got), len(want))
print("%-10s %3d of %d ok" % (name, len(got), len(evs)))
PY
}
check since    'ts(e) >= now - 7200 - 5'                  -- --since 2h
check since_ts 'ts(e) >= now - 7200 - 30'                 -- --since "$since_ts"
check until    'ts(e) < now - 3600 + 5'                   -- --until 1h
check window   'now - 7200 - 30 <= ts(e) < now - 3600 + 30' -- --since "$since_ts" --until "$until_ts"
check decision 'e.get("decision") in ("block","redact")'  -- --decision block,redact
check rule     'any(fnmatch.fnmatch(r, "pii.*") for r in rules(e))' -- --rule 'pii.*'
check rule1    '"secrets.aws_key" in rules(e)'            -- --rule secrets.aws_key
check pid      'e["pid"] == wpid'                         -- --pid "$writer_pid"
check exe      'os.path.basename(e.get("exe","")) == "collector_writer"' -- --exe collector_writer
check exeglob  'e.get("exe","").startswith("/") and "python" in e.get("exe","")' -- --exe '*python*'
check model    'e.get("model") == "qwen2.5"'              -- --model qwen2.5
check modelg   'e.get("model","").startswith("llama3")'   -- --model 'llama3*'
check api      'e.get("api") == "openai.chat"'            -- --api openai.chat
check combo    'e.get("decision") == "block" and e.get("api","").startswith("ollama.")' -- --decision block --api 'ollama.*'

# the whole query is in time order even though arrival was shuffled
"$LGLOG" query --json >"$T/all.jsonl"
python3 - "$T/all.jsonl" <<'PY'
import json, sys
t = [json.loads(l)["ts"] for l in open(sys.argv[1])]
assert len(t) == 65 and t == sorted(t), "not in time order"
PY
"$LGLOG" query --json --limit 5 | wc -l | grep -qx 5 || fail "--limit"
# table output (not a tty: aligned, no colour codes)
"$LGLOG" query --decision block >"$T/table.txt"
head -1 "$T/table.txt" | grep -q '^TIME  *DECISION  *DIRECTION  *PID  *PROGRAM  *API  *MODEL  *RULES$' || fail "table header"
grep -q $'\033' "$T/table.txt" && fail "colour codes on a pipe"
"$LGLOG" --color always query --decision block | grep -q $'\033\[1;31mblock' || fail "--color always"
# bad arguments are errors, not silent empty answers
"$LGLOG" query --since yesterdayish 2>/dev/null && fail "bad --since accepted"
"$LGLOG" query --pid abc 2>/dev/null && fail "bad --pid accepted"

# tail -n: the last lines in arrival order
"$LGLOG" tail -n 3 --json >"$T/tail.jsonl"
[ "$(cat "$T/tail.jsonl")" = "$(cat "$LLMGUARD_LOG_DIR"/events-*.jsonl "$LLMGUARD_LOG_DIR"/events.jsonl | tail -n 3)" ] || fail "tail -n 3"

# stats
"$LGLOG" stats --json >"$T/stats.json"
python3 - "$T/stats.json" "$T/all.jsonl" <<'PY'
import collections, json, sys
s = json.load(open(sys.argv[1]))
evs = [json.loads(l) for l in open(sys.argv[2])]
assert s["total"] == 65
assert s["by_decision"] == dict(collections.Counter(e["decision"] for e in evs)), s["by_decision"]
assert s["by_rule"] == dict(collections.Counter(f["rule"] for e in evs for f in e["findings"]))
assert s["by_model"] == dict(collections.Counter(e["model"] for e in evs))
assert s["by_program"]["collector_writer"] == 5
PY
"$LGLOG" stats >"$T/stats.txt"
grep -q '^by decision' "$T/stats.txt" && grep -q '^by rule' "$T/stats.txt" && grep -q '^by program' "$T/stats.txt" \
  && grep -q '^by model' "$T/stats.txt" && grep -Eq '^  allow +[0-9]+  #+$' "$T/stats.txt" || { cat "$T/stats.txt"; fail "stats text"; }
"$LGLOG" stats --decision block --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert list(d["by_decision"])==["block"]'

# status with the collector stopped
rc=0; "$LGLOG" status >/dev/null || rc=$?; [ $rc = 3 ] || fail "status exit $rc"

# tail -f follows appends, and keeps following across a rotation
start_collector --max-size 3k --keep 1000 --fsync-interval 0
"$LGLOG" tail -f -n 0 --json >"$T/follow.jsonl" & fpid=$!; EXTRA_PIDS+=($fpid)
sleep 0.5
"$WRITER" follow 300 1000 >/dev/null
wait_for python3 -c 'import sys; sys.exit(sum(1 for l in open(sys.argv[1]) if "\"follow\"" in l) < 300)' "$T/follow.jsonl"
kill "$fpid"
[ "$(grep -c '"follow"' "$T/follow.jsonl")" = 300 ] || fail "tail -f printed duplicates"
rc=0; "$LGLOG" status >/dev/null || rc=$?; [ $rc = 0 ] || fail "status exit $rc while running"
echo ok
