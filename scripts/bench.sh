#!/usr/bin/env bash
# make bench: every benchmark, each printing ratios against a baseline
# measured in the same run.  $1 is the build directory.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
echo "== core engine =="
"$build/bench/bench_core"
for extra in "$here"/bench-*.sh; do
  [ -e "$extra" ] || continue
  echo
  echo "== $(basename "$extra" .sh | sed 's/^bench-//') =="
  bash "$extra" "$build"
done
