#!/usr/bin/env bash
# Runs every tests/integration/test_*.sh with a timeout each and prints the
# plain "N passed, N failed" summary line.  $1 is the build directory.
set -uo pipefail
build=${1:-build}
export LG_BUILD=$(cd "$build" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
pass=0 fail=0 failed=()
for t in "$here"/test_*.sh; do
  [ -e "$t" ] || continue
  name=$(basename "$t" .sh)
  if timeout 300 bash "$t" >"/tmp/lg-$name.log" 2>&1; then
    pass=$((pass + 1)); echo "PASS $name"
  else
    fail=$((fail + 1)); failed+=("$name"); echo "FAIL $name (log follows)"
    tail -n 40 "/tmp/lg-$name.log" | sed 's/^/    /'
  fi
done
echo "integration: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
