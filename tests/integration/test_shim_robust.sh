#!/usr/bin/env bash
# Robustness of the shim: an fd number reused after a raw syscall(SYS_close)
# is never misrouted (a file written and read on it keeps every byte, even
# when the shim held bytes for the old socket); 32 threads x concurrent
# streams; fork() in the middle of a session; a signal handler writing to a
# pipe throughout; a guarded connection with a policy that does not load
# fails closed with a 403 naming the reason.
. "$(dirname "$0")/shim_lib.sh"
need "$run" "$lib" "$B/tests/shim_fdreuse" "$B/tests/shim_stress" "$B/llmguard-fakellm"
start_fakellm srv --fixed-time 1700000000

if out=$(timeout 60 "$run" "$B/tests/shim_fdreuse" "$port" "$tmp/reuse.dat" 2>&1); then ok "$out"; else
  fail "fd reuse: $out"; fi
for i in 1 2 3; do
  if out=$(timeout 120 "$run" "$B/tests/shim_stress" "$port" 32 4 2>&1); then ok "stress $i: $out"; else
    fail "stress $i: $out"; fi
done

# Fail closed: the shim started directly (no llmguard-run) with a broken policy.
printf '{ "version": 1, "nonsense": true }\n' > "$tmp/bad.json"
out=$(LD_PRELOAD=$lib LLMGUARD_POLICY=$tmp/bad.json timeout 20 curl -sS -i \
      "http://127.0.0.1:$port/api/generate" -d '{"model":"echo","prompt":"hi","stream":false}' 2>"$tmp/fc.err")
if echo "$out" | head -1 | grep -q '403' && echo "$out" | grep -q 'did not load'; then
  ok "broken policy: guarded request refused (403)"; else fail "broken policy: got '$out'"; fi
[ "$(grep -c 'did not load' "$tmp/fc.err")" -eq 1 ] && ok "broken policy: said once on stderr" \
  || fail "broken policy stderr: $(cat "$tmp/fc.err")"
# ... and a program that never touches a guarded endpoint still runs.
out=$(LD_PRELOAD=$lib LLMGUARD_POLICY=$tmp/bad.json sh -c 'echo fine' 2>&1)
[ "$out" = "fine" ] && ok "broken policy: unrelated program unaffected" || fail "unrelated: $out"
finish
