#!/usr/bin/env bash
# One request with curl, for tests/integration/test_clients.sh.
# usage: clients_curl.sh LIB API STREAM PORT PROMPT
#   LIB  curl      stdout "status N" then the de-chunked body
#        curl-raw  stdout "status N" then headers and body as sent on the
#                  wire (-i --raw: chunk framing included)
#   API  ollama-generate | ollama-chat | openai-chat;  STREAM 0 | 1
# Stderr: "elapsed_ms X" (curl's time_total).  The prompt must not hold
# '"' or '\' (the test prompts do not).
set -uo pipefail
lib=$1 api=$2 st=$3 port=$4 prompt=$5
s=false; [ "$st" = 1 ] && s=true
msgs="[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"$prompt\"}]"
case $api in
  ollama-generate) path=/api/generate body="{\"model\":\"m\",\"prompt\":\"$prompt\",\"stream\":$s}" ;;
  ollama-chat) path=/api/chat body="{\"model\":\"m\",\"stream\":$s,\"messages\":$msgs}" ;;
  openai-chat) path=/v1/chat/completions body="{\"model\":\"m\",\"stream\":$s,\"messages\":$msgs}" ;;
  *) echo "unknown API $api" >&2; exit 2 ;;
esac
tmp=$(mktemp -d /tmp/lg-curl.XXXXXX); trap 'rm -rf "$tmp"' EXIT
raw=(); [ "$lib" = curl-raw ] && raw=(-i --raw)
w=$(curl -sS -N --max-time 15 "${raw[@]}" -H 'Content-Type: application/json' \
      -o "$tmp/body" -w '%{http_code} %{time_total}' "http://127.0.0.1:$port$path" -d "$body") || exit 1
set -- $w
printf 'status %s\n' "$1"
cat "$tmp/body"
awk -v t="$2" 'BEGIN { printf "elapsed_ms %.1f\n", t * 1000 }' >&2
