#!/usr/bin/env bash
# When the shim delivers events (shim.h, "Events"): a request's event is
# held only until the answer arrives or the client waits for it, so the
# collector has it while the model is still working -- checked with a server
# that answers only after seeing the event (or after 3 s), for a client
# waiting in poll (curl) and one blocking in recv (Python http.client) --
# and a request and its answer arrive in order, request first.  A client
# that writes a request and exits without reading, with or without closing
# the socket first, still delivers its event; one that writes an injection
# and dies at once (no exit handlers) still has its block event logged.
. "$(dirname "$0")/shim_lib.sh"
need "$run" "$lib"
d=$tmp/ev
mkdir -p "$d"
"$py" "$here/shim_events.py" serve "$d" --delay 3 >"$tmp/serve.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$d/port" ] && break; sleep 0.05; done
port=$(cat "$d/port" 2>/dev/null)
[ -n "$port" ] || { echo "FAIL: server did not start"; cat "$tmp/serve.out"; exit 1; }
sock=$d/ev.sock

# events_since N: the event lines after the first N, as "direction decision id".
events_since() {
  tail -n +"$(( $1 + 1 ))" "$d/events" 2>/dev/null | "$py" -c '
import json, sys
for l in sys.stdin:
    e = json.loads(l)
    print(e["direction"], e["decision"], e["id"])'
}
count() { [ -e "$d/$1" ] && wc -l < "$d/$1" || echo 0; }

check_exchange() { # NAME EVENTS_BEFORE ANSWERS_BEFORE N
  local name=$1 e0=$2 a0=$3 n=$4
  sleep 0.3
  local answers ev
  answers=$(tail -n +"$(( a0 + 1 ))" "$d/answers")
  ev=$(events_since "$e0")
  if [ "$(echo "$answers" | grep -c '^early$')" -eq "$n" ]; then
    ok "$name: every request event reached the collector before the answer was sent"
  else
    fail "$name: answers sent before the request event: $(echo "$answers" | tr '\n' ' ')"
  fi
  local want got
  want=$(for _ in $(seq "$n"); do echo request; echo response; done)
  got=$(echo "$ev" | cut -d' ' -f1)
  if [ "$got" = "$want" ]; then ok "$name: $((2 * n)) events, request before response"; else
    fail "$name: events in order request,response expected, got: $(echo "$got" | tr '\n' ' ')"; fi
  # Ids of one connection count up: nothing was sent twice or skipped.
  local seqs
  seqs=$(echo "$ev" | sed 's/.*-//' | tr '\n' ' ')
  [ "$seqs" = "$(seq 1 $((2 * n)) | tr '\n' ' ')" ] && ok "$name: ids in sequence" \
    || fail "$name: ids $seqs"
}

e0=$(count events) a0=$(count answers)
out=$(timeout 30 "$run" --collector "$sock" curl -sS "http://127.0.0.1:$port/api/chat" \
      -d '{"model":"m","stream":false,"messages":[{"role":"user","content":"hi"}]}' 2>&1)
echo "$out" | grep -q '"content":"ok"' || fail "curl: answer '$out'"
check_exchange "curl (poll)" "$e0" "$a0" 1

e0=$(count events) a0=$(count answers)
out=$(timeout 30 "$run" --collector "$sock" "$py" "$here/shim_events.py" http "$port" 3 2>&1)
[ "$out" = "$(printf 'ok\nok\nok')" ] || fail "http.client: answers '$out'"
check_exchange "http.client (blocking recv)" "$e0" "$a0" 3

# Without the flush thread (delay 0) the hooks deliver, as they did before it.
e0=$(count events) a0=$(count answers)
out=$(LLMGUARD_EVENTS_DELAY_MS=0 timeout 30 "$run" --collector "$sock" "$py" \
      "$here/shim_events.py" http "$port" 3 2>&1)
[ "$out" = "$(printf 'ok\nok\nok')" ] || fail "http.client, delay 0: answers '$out'"
check_exchange "http.client, LLMGUARD_EVENTS_DELAY_MS=0 (hooks deliver)" "$e0" "$a0" 3

# A client that goes idle after its answers (no call the shim sees): the
# flush thread still delivers their events, within the delay (50 ms), not
# at exit.
e0=$(count events)
timeout 30 "$run" --collector "$sock" "$py" "$here/shim_events.py" http "$port" 2 3 \
  >"$tmp/idle.out" 2>&1 &
idle_pid=$!
for _ in $(seq 200); do grep -q '^idle$' "$tmp/idle.out" 2>/dev/null && break; sleep 0.05; done
grep -q '^idle$' "$tmp/idle.out" || fail "idle client: no answers: $(cat "$tmp/idle.out")"
sleep 0.5
got=$(events_since "$e0" | cut -d' ' -f1 | tr '\n' ' ')
kill -0 "$idle_pid" 2>/dev/null || fail "idle client: exited before the check"
[ "$got" = "request response request response " ] &&
  ok "client idle after its answers: their 4 events delivered while it idles" ||
  fail "idle client: events '$got' half a second after its answers"
wait "$idle_pid" 2>/dev/null

for how in exit close; do
  e0=$(count events)
  timeout 30 "$run" --collector "$sock" "$py" "$here/shim_events.py" send-and-exit "$port" \
    "$([ $how = close ] && echo close)" >"$tmp/sx.out" 2>&1 || fail "send-and-exit $how: $(cat "$tmp/sx.out")"
  sleep 0.5
  got=$(events_since "$e0" | cut -d' ' -f1 | tr '\n' ' ')
  [ "$got" = "request " ] && ok "request written, then $how without reading: its event delivered" \
    || fail "send-and-exit $how: events '$got'"
done
e0=$(count events)
timeout 30 "$run" --collector "$sock" "$py" "$here/shim_events.py" block-and-die "$port" \
  >"$tmp/bd.out" 2>&1 || fail "block-and-die: $(cat "$tmp/bd.out")"
sleep 0.5
got=$(events_since "$e0" | cut -d' ' -f1,2 | tr '\n' ' ')
[ "$got" = "request block " ] && ok "injection written, then _exit: its block event delivered" \
  || fail "block-and-die: events '$got'"
finish
