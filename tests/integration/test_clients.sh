#!/usr/bin/env bash
# Real clients under llmguard-run against llmguard-fakellm: curl (streamed
# and not, Ollama and OpenAI APIs, de-chunked and --raw) and Python's
# urllib, http.client and requests (Debian's python3-requests, run with
# /usr/bin/python3).  Monitor mode: output byte-identical to a run without
# the shim.  Enforce mode: injection -> 403 in the API's shape in < 100 ms
# with one attempt; PII -> placeholders at the model, originals at the
# client; secrets in a streamed answer withheld; a Chinese resident ID
# redacted.  Collector absent: events spooled.  Node clients are in
# test_clients_node.sh.
. "$(dirname "$0")/clients_lib.sh"
start_servers
combos() { local l; for l in "$@"; do
  for a in ollama-generate ollama-chat openai-chat; do echo "$l $a 1"; echo "$l $a 0"; done; done; }
t0=$(date +%s%N)

# ---- curl ----
if command -v curl >/dev/null; then
  CLIENT=(bash "$here/clients_curl.sh")
  mapfile -t c < <(combos curl-raw)
  suite_monitor curl-raw "${c[@]}"
  mapfile -t c < <(combos curl)
  suite_enforce curl "${c[@]}"
  suite_spool curl "curl ollama-chat 1"
else
  fail "curl not installed"
fi

# ---- Python ----
CLIENT=("$py" "$here/clients_py.py")
pylibs=(urllib httpclient)
if "$py" -c 'import requests' 2>/dev/null; then pylibs+=(requests)
else fail "python3-requests missing for $py (apt-get install python3-requests)"; fi
mapfile -t c < <(combos "${pylibs[@]}")
suite_monitor py "${c[@]}"
suite_enforce py "${c[@]}"
for l in "${pylibs[@]}"; do suite_spool "py-$l" "$l openai-chat 1"; done

echo "$n_run client runs in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
finish
