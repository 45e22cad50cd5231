#!/usr/bin/env bash
# Node clients under llmguard-run against llmguard-fakellm: Node's built-in
# fetch (undici: non-blocking writev/read, epoll_pwait, sockets closed with
# a raw syscall), the `ollama` npm package (host option) and the `openai`
# npm package (baseURL .../v1, apiKey dummy, default maxRetries, so a retry
# would show in its fetch count).  The packages come from the committed
# lockfile in tests/integration/node (npm ci; skipped with a message only
# when the npm registry cannot be reached).  Same checks as
# test_clients.sh: monitor byte-identical, enforce (403 < 100 ms with one
# attempt, placeholders, secrets withheld, Chinese ID redacted), spool.
. "$(dirname "$0")/clients_lib.sh"
command -v node >/dev/null || { echo "FAIL: node not installed (Node 20 needed)"; exit 1; }
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || { echo "FAIL: node $(node --version): Node 20 or later needed"; exit 1; }
t0=$(date +%s%N)

# ---- npm packages from the lockfile ----
nodedir=$here/node
have_pkgs() {  # installed and at the lockfile's versions
  node -e '
    const lock = require(process.argv[1] + "/package-lock.json");
    for (const n of ["ollama", "openai"]) {
      const want = lock.packages["node_modules/" + n].version;
      const got = require(process.argv[1] + "/node_modules/" + n + "/package.json").version;
      if (got !== want) process.exit(1);
    }' "$nodedir" 2>/dev/null
}
npm_ok=1
if have_pkgs; then
  echo "npm packages already installed at the lockfile's versions"
elif command -v npm >/dev/null; then
  # npm ci writes only tests/integration/node/node_modules (git-ignored)
  if ! timeout 180 npm ci --prefix "$nodedir" --no-audit --no-fund --loglevel=error >"$tmp/npm.log" 2>&1; then
    if grep -Eqi 'ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH|network' "$tmp/npm.log"; then
      echo "SKIP: npm registry unreachable; the ollama and openai npm package tests are skipped"
      sed 's/^/    /' "$tmp/npm.log" | tail -n 5
      npm_ok=0
    else
      fail "npm ci failed:"; sed 's/^/    /' "$tmp/npm.log" | tail -n 20; npm_ok=0
    fi
  fi
  [ $npm_ok = 1 ] && ! have_pkgs && { fail "npm ci did not install the lockfile's versions"; npm_ok=0; }
else
  fail "npm not installed"; npm_ok=0
fi
echo "npm step: $(( ($(date +%s%N) - t0) / 1000000 )) ms"

start_servers
CLIENT=(node "$here/clients_node.mjs")
c=()
for a in ollama-generate ollama-chat openai-chat; do c+=("fetch $a 1" "fetch $a 0"); done
if [ $npm_ok = 1 ]; then
  for a in ollama-generate ollama-chat; do c+=("ollama $a 1" "ollama $a 0"); done
  c+=("openai openai-chat 1" "openai openai-chat 0")
fi
suite_monitor node "${c[@]}"
suite_enforce node "${c[@]}"
suite_spool node-fetch "fetch openai-chat 1"
[ $npm_ok = 1 ] && { suite_spool node-ollama "ollama ollama-chat 1"; suite_spool node-openai "openai openai-chat 1"; }

echo "$n_run client runs in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
finish
