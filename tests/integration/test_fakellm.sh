#!/usr/bin/env bash
# Integration test for llmguard-fakellm: starts it on free ports and checks
# the wire formats with curl and tests/integration/fakellm_wire.py (Debian's
# /usr/bin/python3, standard library only).  $LG_BUILD is the build directory
# holding llmguard-fakellm.  Exit 0 = pass.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${LG_BUILD:-$here/../../build}/llmguard-fakellm
py=/usr/bin/python3
[ -x "$py" ] || py=python3
wire="$here/fakellm_wire.py"
tmp=$(mktemp -d /tmp/lg-fakellm.XXXXXX)
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

[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }

# start NAME ARGS...: runs the server, waits for its port file, sets $port.
start() {
  local name=$1; shift
  "$bin" --listen 127.0.0.1:0 --port-file "$tmp/$name.port" "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  last_pid=$!
  for _ in $(seq 100); do
    [ -s "$tmp/$name.port" ] && break
    sleep 0.05
  done
  port=$(cat "$tmp/$name.port" 2>/dev/null)
  if [ -z "$port" ]; then
    echo "FAIL: $name did not start"; cat "$tmp/$name.err"; exit 1
  fi
  for _ in $(seq 40); do
    grep -q "^listening on 127.0.0.1:$port\$" "$tmp/$name.out" && return 0
    sleep 0.05
  done
  fail "$name: stdout lacks 'listening on 127.0.0.1:$port'"
}

c() { curl -sS --max-time 10 "$@"; }

# ---- main server: echo model, default split ----
start main --record "$tmp/record.jsonl"
base="http://127.0.0.1:$port"

raw=$(c --raw "$base/api/generate" -d '{"model":"m","prompt":"a <b> c"}')
first=$(printf '%s' "$raw" | head -n1 | tr -d '\r')
second=$(printf '%s' "$raw" | sed -n 2p)
if [ "$(printf '%x' $(( ${#second} + 1 )))" = "$first" ]; then
  ok "curl --raw: first chunk size matches its JSON line"
else
  fail "curl --raw: chunk size '$first' vs line '$second'"
fi
printf '%s' "$raw" | grep -q '\\u003c' && ok "curl: Go escaping of <b>" ||
  fail "curl: \\u003c escaping missing"
printf '%s\n' "$raw" | tail -n 2 | tr -d '\r' | grep -qx 0 && ok "curl: terminating 0 chunk" ||
  fail "curl: no terminating chunk"

out=$(c "$base/api/chat" -d '{"model":"m","stream":false,"messages":[{"role":"system","content":"s"},{"role":"user","content":"echo this back"}]}')
echo "$out" | grep -q '"message":{"role":"assistant","content":"echo this back"}' &&
  ok "curl: chat echo (non-stream)" || fail "curl: chat echo: $out"

hdr=$(c -D - -o /dev/null "$base/api/version" | tr -d '\r')
echo "$hdr" | grep -q '^Content-Length: ' && echo "$hdr" | grep -q '^Content-Type: application/json; charset=utf-8$' &&
  ok "curl: non-stream Content-Length + gin content type" || fail "curl: version headers: $hdr"

sse=$(c -N "$base/v1/chat/completions" -d '{"model":"m","stream":true,"messages":[{"role":"user","content":"hey"}]}')
[ "$(printf '%s\n' "$sse" | grep -c '^data: ')" -ge 3 ] && printf '%s\n' "$sse" | tail -n 2 | grep -qx 'data: \[DONE\]' &&
  ok "curl: SSE ends with [DONE]" || fail "curl: SSE: $sse"

ll=$(c -N "$base/completion" -d '{"prompt":"hi llama","stream":true}')
printf '%s\n' "$ll" | grep -q '"stop":true' && ! printf '%s' "$ll" | grep -q DONE &&
  ok "curl: llama.cpp final stop event, no [DONE]" || fail "curl: llama: $ll"

code=$(c -o "$tmp/404" -w '%{http_code}' "$base/api/missing")
[ "$code" = 404 ] && grep -q '^{"error":' "$tmp/404" && ok "curl: 404 shape" || fail "curl: 404 ($code)"

# chunked request body from curl, and two requests on one connection
printf '{"model":"m","prompt":"chunked upload","stream":false}' >"$tmp/body.json"
out=$(c -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/body.json" "$base/api/generate")
echo "$out" | grep -q '"response":"chunked upload"' && ok "curl: chunked request body" ||
  fail "curl: chunked request: $out"
log=$(c -v "$base/api/tags" "$base/api/version" 2>&1 >/dev/null)
echo "$log" | grep -qi 're-using existing connection\|reusing existing connection' &&
  ok "curl: keep-alive reuse" || fail "curl: no connection reuse"

# framing checks in Python (raw sockets + http.client)
if timeout 120 "$py" "$wire" "$port" checks "$tmp/record.jsonl"; then
  ok "fakellm_wire.py checks"
else
  fail "fakellm_wire.py checks"
fi
grep -q '"prompt":"a <b> c"' "$tmp/record.jsonl" && ok "--record holds the request body" ||
  fail "--record missing body"

# still alive after all the garbage
c "$base/api/version" | grep -q version && ok "server survives garbage" || fail "server died"

# ---- split modes: same de-chunked bytes ----
digests=()
for mode in none bytes merge; do
  start "split-$mode" --split "$mode" --fixed-time 1700000000 --seed 7
  d=$(timeout 120 "$py" "$wire" "$port" digest) || fail "digest ($mode) failed"
  digests+=("$d")
  if [ "$mode" = bytes ]; then
    r=$(timeout 60 "$py" "$wire" "$port" splits) || fail "splits (bytes)"
    set -- $r
    [ "${2:-0}" -gt "${4:-0}" ] && ok "--split bytes: $r (writes really split)" ||
      fail "--split bytes did not split: $r"
  fi
  if [ "$mode" = merge ]; then
    n=$(c --raw "http://127.0.0.1:$port/v1/chat/completions" -d '{"model":"m","stream":true,"messages":[{"role":"user","content":"several events share chunks here"}]}' |
        tr -d '\r' | awk '/^[0-9a-f]+$/ {chunks++} /^data: / {ev++} END {print (ev > chunks) ? "yes" : "no"}')
    [ "$n" = yes ] && ok "--split merge: several SSE events per chunk" || fail "--split merge: no shared chunks"
  fi
done
if [ "${digests[0]}" = "${digests[1]}" ] && [ "${digests[0]}" = "${digests[2]}" ] && [ -n "${digests[0]}" ]; then
  ok "split modes give identical de-chunked bytes"
else
  fail "split modes differ: ${digests[*]}"
fi

# ---- script model and delay ----
printf 'Sure! The key is sk-proj-AbCdEf0123456789AbCdEf0123456789 <ok>' >"$tmp/script.txt"
start script --model "script:$tmp/script.txt" --delay-ms 30
t0=$(date +%s%N)
out=$(c "http://127.0.0.1:$port/api/generate" -d '{"model":"m","prompt":"anything"}' |
      "$py" -c 'import sys,json; print("".join(json.loads(l)["response"] for l in sys.stdin if l.strip()), end="")')
t1=$(date +%s%N)
[ "$out" = "$(cat "$tmp/script.txt")" ] && ok "script model answers the file" || fail "script: '$out'"
[ $(( (t1 - t0) / 1000000 )) -ge 150 ] && ok "--delay-ms slows the stream" || fail "--delay-ms had no effect"

# ---- --once and clean shutdown ----
start once --once
c "http://127.0.0.1:$port/api/version" >/dev/null
for _ in $(seq 50); do kill -0 "$last_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$last_pid" 2>/dev/null; then fail "--once did not exit"; else
  wait "$last_pid"; [ $? -eq 0 ] && ok "--once exits 0 after one connection" || fail "--once exit code"
fi

start term
exec 7<>/dev/tcp/127.0.0.1/"$port"   # an idle keep-alive connection must not block exit
kill -TERM "$last_pid"
for _ in $(seq 50); do kill -0 "$last_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$last_pid" 2>/dev/null; then fail "SIGTERM did not stop the server"; else
  wait "$last_pid"; [ $? -eq 0 ] && ok "SIGTERM: clean exit 0" || fail "SIGTERM exit code"
fi
exec 7>&-

# bad options are refused
"$bin" --split sideways >/dev/null 2>&1; [ $? -eq 2 ] && ok "bad option exits 2" || fail "bad option"

# stop every server we started, then look for sanitizer reports in their
# stderr (when $LG_BUILD is an ASan build)
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
for p in "${pids[@]}"; do
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
done
if grep -l -E 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$tmp"/*.err 2>/dev/null; then
  fail "sanitizer report in server stderr"
  grep -h -A 20 -E 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer' "$tmp"/*.err | head -60
fi

# --help describes every option of the usage line, not only names it.
help=$("$bin" --help)
for o in $(printf '%s\n' "$help" | sed -n '/^usage/,/^$/p' | grep -o -- '--[a-z-]*' | grep -v -- '--version'); do
  [ "$(printf '%s\n' "$help" | grep -c -- "$o")" -ge 2 ] || { echo "FAIL: --help does not describe $o"; fails=$((fails + 1)); }
done

echo "fakellm: $fails failure(s)"
[ "$fails" -eq 0 ]
