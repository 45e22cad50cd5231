#!/usr/bin/env bash
# llmguard-log without a running collector, and the table and argument
# details a new user meets first:
#  - a missing log directory is an empty store (exit 0), not an error;
#  - events still in spool files are shown (query, tail, stats, status)
#    without consuming them, stamped as the collector will store them and
#    marked "pending"; one that is both stored and still spooled is shown
#    once; after the collector ingests them nothing changes but "pending";
#  - the man page's --exe example matches a resolved interpreter path
#    (python3.11 under pyenv), and --exe is exact on the base name or path;
#  - unknown --decision values (and non-numeric counts) are usage errors;
#  - the RULES column names each rule once per event;
#  - tail -f keeps its rows under the header it printed (API column wide
#    enough for every API name in core/api.c).
source "$(dirname "$0")/collector_lib.sh"
SPOOL=$LLMGUARD_SPOOL_DIR
LOG=$LLMGUARD_LOG_DIR
PY=/root/.pyenv/versions/3.11.7/bin/python3.11

# ==== 1. nothing anywhere: an empty store ====
[ ! -e "$LOG" ] || fail "log dir exists before the test"
out=$("$LGLOG" query 2>"$T/err") || fail "query with no log dir: exit $? ($(cat "$T/err"))"
[ -z "$out" ] && [ ! -s "$T/err" ] || fail "query with no log dir printed: $out $(cat "$T/err")"
"$LGLOG" stats --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["total"]==0, d'
"$LGLOG" tail >/dev/null || fail "tail with no log dir"
rc=0; "$LGLOG" status >/dev/null || rc=$?; [ $rc = 3 ] || fail "status exit $rc"

# ==== 2. events waiting in the spool ====
mkdir -p "$SPOOL"; chmod 700 "$SPOOL"
SF=$SPOOL/4242-1700000000000000-0.spool
python3 - "$SF" "$PY" <<'PY'
import datetime as dt, json, sys
path, exe = sys.argv[1:3]
now = dt.datetime.now(dt.timezone.utc)
def ev(i, **kw):
    e = {"v": 1, "id": "spl-%d" % i,
         "ts": (now - dt.timedelta(minutes=10 - i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
         "pid": 4242, "uid": 0, "exe": exe, "endpoint": "127.0.0.1:11434",
         "method": "POST", "path": "/api/chat", "api": "ollama.chat", "model": "llama3:8b",
         "direction": "response", "decision": "allow", "findings": []}
    e.update(kw)
    return json.dumps(e, separators=(",", ":"))
vr = {"rule": "vault.restore", "category": "vault", "severity": "low", "action": "log"}
pe = {"rule": "pii.email", "category": "pii", "severity": "medium", "action": "redact"}
with open(path, "w") as f:
    f.write(ev(0, decision="redact", direction="request", findings=[pe]) + "\n")
    f.write(ev(1, decision="log", findings=[vr, vr, pe, vr]) + "\n")
    f.write(ev(2, decision="block", direction="request") + "\n")
    f.write(ev(3)[:-20])                      # torn: the writer died mid-line
PY
sum0=$(md5sum "$SF")
"$LGLOG" query --json >"$T/q.jsonl" || fail "query with a spool"
python3 - "$T/q.jsonl" "$PY" <<'PY'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
assert [e["id"] for e in evs] == ["spl-0", "spl-1", "spl-2"], [e["id"] for e in evs]
for e in evs:
    assert e["pending"] is True and e["src"] == "spool", e
    assert e["pid"] == 4242 and e["exe_claimed"] == sys.argv[2] and "exe" not in e, e
    assert list(e)[:3] == ["v", "id", "ts"], list(e)
PY
[ "$(md5sum "$SF")" = "$sum0" ] || fail "query changed the spool file"
[ "$(ls "$SPOOL")" = "$(basename "$SF")" ] || fail "spool directory changed: $(ls "$SPOOL")"
"$LGLOG" stats --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["total"]==3 and d["pending"]==3 and d["by_program"]=={"python3.11":3}, d'
"$LGLOG" stats | grep -q '^3 events (3 not stored yet' || fail "stats text: pending"
[ "$("$LGLOG" tail -n 2 --json | python3 -c 'import json,sys; print(" ".join(json.loads(l)["id"] for l in sys.stdin))')" = "spl-1 spl-2" ] \
  || fail "tail -n 2 with a spool"
"$LGLOG" query --since 1h --decision block --json | grep -q '"spl-2"' || fail "filters on pending events"
rc=0; "$LGLOG" status >"$T/status.txt" || rc=$?; [ $rc = 3 ] || fail "status exit $rc"
grep -q "^pending: *3 events in $SPOOL, not stored yet (start llmguard-collectord" "$T/status.txt" \
  || { cat "$T/status.txt"; fail "status: pending line"; }
[ "$("$LGLOG" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["spool_pending"])')" = 3 ] \
  || fail "status --json spool_pending"
[ -z "$("$LGLOG" --no-spool query)" ] || fail "--no-spool"
[ "$("$LGLOG" --no-spool --spool-dir "$SPOOL" query --json | wc -l)" = 3 ] || fail "--spool-dir"
[ "$(md5sum "$SF")" = "$sum0" ] || fail "the spool file changed"

# ==== 3. --exe: the man page example is true; exact base name or path ====
exe_ex=$(sed -n '/^\.SH EXAMPLES/,/^\.SH/p' "$LG_SRC/docs/man/llmguard-log.1" \
  | grep -o -- "--exe [^ ]*" | head -1 | cut -d' ' -f2 | tr -d "'")
[ -n "$exe_ex" ] || fail "no --exe example in the man page"
n_ex() { "$LGLOG" query --json --exe "$1" | wc -l; }
[ "$(n_ex "$exe_ex")" = 3 ] || fail "man page example --exe $exe_ex matches nothing for $PY"
[ "$(n_ex python3.11)" = 3 ] || fail "--exe base name"
[ "$(n_ex "$PY")" = 3 ] || fail "--exe full path"
[ "$(n_ex '*/versions/3.11*/python*')" = 3 ] || fail "--exe path glob"
[ "$(n_ex python3)" = 0 ] || fail "--exe python3 is exact on the base name (python3* is the glob)"
[ "$(n_ex 3.11)" = 0 ] || fail "--exe is not a substring match"

# ==== 4. unknown enumerated values are usage errors ====
for bad in blocked block,blocked 'block,' BLOCK ''; do
  rc=0; "$LGLOG" query --decision "$bad" >"$T/o" 2>"$T/e" || rc=$?
  [ $rc = 2 ] || fail "--decision '$bad': exit $rc"
  [ ! -s "$T/o" ] || fail "--decision '$bad' printed events"
  grep -q 'allow, log, redact, block, error' "$T/e" || fail "--decision '$bad': valid values not named: $(cat "$T/e")"
done
"$LGLOG" query --decision block,redact >/dev/null || fail "--decision block,redact"
for a in "--limit x" "--limit -1" "--top 5x" "-n abc"; do
  rc=0; "$LGLOG" $a query >/dev/null 2>&1 || rc=$?; [ $rc = 2 ] || fail "$a: exit $rc"
done

# ==== 5. RULES: each rule once per event ====
"$LGLOG" query --decision log >"$T/table.txt"
grep -q ' vault\.restore,pii\.email$' "$T/table.txt" || { cat "$T/table.txt"; fail "RULES column"; }
"$LGLOG" stats --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["by_rule"]=={"vault.restore":3,"pii.email":2}, d["by_rule"]'

# ==== 6. tail -f: rows stay under the header; waits for the log dir ====
"$LGLOG" tail -f -n 0 >"$T/follow.txt" 2>"$T/follow.err" & fpid=$!; EXTRA_PIDS+=($fpid)
sleep 0.5
mkdir -p "$LOG"
python3 - "$LOG/events.jsonl" <<'PY'
import datetime as dt, json, sys
ts = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
apis = ["llamacpp.completion", "openai.completions", "ollama.embeddings", "ollama.chat"]
J = lambda o: json.dumps(o, separators=(",", ":"))  # as the collector writes
with open(sys.argv[1], "a") as f:
    # a stored copy of a pending event: already accounted for, not repeated
    f.write(J({"v": 1, "id": "spl-0", "ts": ts, "pid": 4242, "src": "spool",
                        "decision": "redact", "api": "ollama.chat"}) + "\n")
    for i, a in enumerate(apis):
        f.write(J({"v": 1, "id": "f-%d" % i, "ts": ts, "pid": 1234567, "uid": 0,
            "exe": "/usr/local/bin/a-very-long-program-name-indeed", "api": a,
            "model": "llama3.1:8b-instruct-q4_K_M", "direction": "response",
            "decision": "redact", "findings": [{"rule": "pii.email"}, {"rule": "pii.email"}]}) + "\n")
PY
wait_for python3 -c 'import sys; sys.exit(sum(1 for l in open(sys.argv[1])) < 5)' "$T/follow.txt"
sleep 0.5
kill "$fpid"
python3 - "$T/follow.txt" "$LG_SRC/core/api.c" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
head, rows = lines[0], lines[1:]
assert len(rows) == 4, ("spl-0 must not be repeated", lines)
cols = ["DECISION", "DIRECTION", "PID", "PROGRAM", "API", "MODEL", "RULES"]
pos = [head.index(c) for c in cols]
for r in rows:
    for c, p in zip(cols, pos):
        assert r[p - 2:p] == "  " and r[p] != " ", ("column %s misaligned" % c, head, r)
    assert r.endswith("  pii.email"), r
api_w = pos[cols.index("MODEL")] - pos[cols.index("API")] - 2
names = set(re.findall(r'\{\s*"([a-z]+\.[a-z_.]+)",\s*"(?:POST|GET)"', open(sys.argv[2]).read()))
assert names and max(map(len, names)) <= api_w, (api_w, sorted(names))
assert any("llamacpp.completion" in r for r in rows), rows
PY
[ ! -s "$T/follow.err" ] || fail "tail -f stderr: $(cat "$T/follow.err")"

# ==== 7. the collector ingests the spool: same events, no longer pending ====
rm -f "$LOG/events.jsonl"
# stored by an earlier collector but its spool file not yet unlinked: once
printf '{"v":1,"id":"spl-1","ts":"%s","pid":4242,"uid":0,"gid":0,"src":"spool","decision":"log"}\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)" >"$LOG/events.jsonl"
"$LGLOG" query --json >"$T/q2.jsonl"
python3 - "$T/q2.jsonl" <<'PY'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
ids = sorted(e["id"] for e in evs)
assert ids == ["spl-0", "spl-1", "spl-2"], ids
assert [e.get("pending", False) for e in evs if e["id"] == "spl-1"] == [False], evs
PY
rm -f "$LOG/events.jsonl"
start_collector --fsync-interval 0
wait_for spool_empty
stop_collector
"$LGLOG" query --json >"$T/q3.jsonl"
python3 - "$T/q3.jsonl" <<'PY'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
assert [e["id"] for e in evs] == ["spl-0", "spl-1", "spl-2"], [e["id"] for e in evs]
assert not any(e.get("pending") for e in evs), evs
assert all(e["src"] == "spool" and e["pid"] == 4242 for e in evs), evs
PY
"$LGLOG" stats | grep -q '^3 events$' || fail "stats after ingestion"
echo ok
