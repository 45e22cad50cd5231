#!/usr/bin/env bash
# make eval, smoke test: the evaluation program builds, runs the project's
# corpora and (when present) the public sets on a small subset, skips the
# public sets cleanly when they are absent, and prints tables whose figures
# parse; the committed corpora are well-formed, large enough and exactly
# what tests/eval/gen_corpus.py writes.  The detection targets themselves
# are what `make eval` reports, not what this test checks.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${LG_BUILD:-$here/build}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. the corpora: schema, sizes, reproducible from the generator
$py "$here/tests/eval/gen_corpus.py" "$tmp/gen" 2>/dev/null
for f in attacks benign pii secrets; do
  cmp "$tmp/gen/$f.jsonl" "$here/tests/data/eval/$f.jsonl" ||
    { echo "tests/data/eval/$f.jsonl differs from what gen_corpus.py writes"; exit 1; }
done
$py - "$here/tests/data/eval" <<'PY'
import json, sys, collections
d = sys.argv[1]
labels = collections.Counter()
ids = set()
for f in ("attacks", "benign", "pii", "secrets"):
    for n, line in enumerate(open("%s/%s.jsonl" % (d, f), encoding="utf-8"), 1):
        r = json.loads(line)
        for k in ("id", "text", "label", "category", "lang", "direction", "expect"):
            assert k in r, "%s.jsonl:%d: no %s" % (f, n, k)
        assert r["id"] not in ids, "duplicate id %s" % r["id"]
        ids.add(r["id"])
        assert r["lang"] in ("en", "zh-Hans", "zh-Hant"), r["lang"]
        assert r["direction"] in ("prompt", "response")
        if "system" in r:
            assert isinstance(r["system"], str) and r["system"] and r["direction"] == "prompt", (f, n)
        for s in r.get("spans", []):
            assert 0 <= s["start"] < s["end"] <= len(r["text"]), (f, n, s)
        labels[r["label"]] += 1
assert labels["attack"] >= 400, labels
assert labels["benign"] >= 600, labels
assert labels["near-miss"] >= 100, labels
print("corpora:", dict(labels))
PY

# 2. a small run, with the public sets if they are here
EVAL_LIMIT=15 EVAL_MD=$tmp/detection.md timeout 60 bash "$here/scripts/eval.sh" "$build" > "$tmp/out" 2>&1 ||
  { cat "$tmp/out"; exit 1; }
grep -q '^### Injection and output attacks: recall' "$tmp/out"
grep -q '^### Benign texts: false-positive rate' "$tmp/out"
grep -q '^### PII and secrets' "$tmp/out"
grep -Eq 'lg_sscan_feed: [0-9]+ of [0-9]+ identical' "$tmp/out"
grep -Eq '^Targets: [0-9]+ met, [0-9]+ not met' "$tmp/out"
# every recall/FP row's figure is a percentage that matches its counts; a
# clone that does not sit beside ../shared has the project's rows only (an
# attack and a benign category, each with its "(all)" row)
public=no
[ -d "$here/../shared/data/eval" ] && public=yes
$py - "$tmp/out" "$public" <<'PY'
import re, sys
rows, sets = 0, set()
for line in open(sys.argv[1], encoding="utf-8"):
    f = line.split()
    if len(f) >= 8 and f[0] in ("own", "purplellama", "notinject", "xstest", "belle") and f[5].endswith("%"):
        n, hit, p = int(f[3]), int(f[4]), float(f[5][:-1])
        assert abs(100.0 * hit / n - p) < 0.051, line
        rows += 1
        sets.add(f[0])
assert rows >= 4, rows
if sys.argv[2] == "yes":
    assert sets >= {"own", "purplellama", "notinject", "xstest", "belle"}, sets
print("rows checked:", rows, "sets:", sorted(sets))
PY
grep -q '^# Detection quality' "$tmp/detection.md"
grep -q '^| set | category | lang | attacks |' "$tmp/detection.md"
grep -Eq 'at commit `[0-9a-f]+' "$tmp/detection.md"
[ -s "$build/eval/misses.tsv" ]

# 3. without the public sets: skipped, not failed
EVAL_LIMIT=5 EVAL_MD=- EVAL_PUBLIC=$tmp/absent timeout 60 bash "$here/scripts/eval.sh" "$build" > "$tmp/out2" 2>&1 ||
  { cat "$tmp/out2"; exit 1; }
grep -q 'public sets not found' "$tmp/out2"
! grep -q '^  purplellama' "$tmp/out2"
echo "test_eval: ok"
