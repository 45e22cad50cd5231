#!/usr/bin/env bash
# make eval: detection quality of the built-in packs.  Builds the evaluation
# program (tests/eval/eval.c) against the engine library with cc, runs it
# over the project's corpora (tests/data/eval/) and, when present, the public
# sets in ../shared/data/eval/, prints the tables and writes them to
# docs/detection.md.  Every miss, false positive and parity failure goes to
# $BUILD/eval/misses.tsv for whoever tunes the packs.
#   $1          build directory (default build)
#   EVAL_POLICY a policy file to measure instead of the built-in policy
#   EVAL_MD     where to write the Markdown (default docs/detection.md; "-" for none)
#   EVAL_LIMIT  at most this many cases per file (smoke tests)
#   EVAL_PUBLIC directory of the public sets (default <repo>/../shared/data/eval)
#   EVAL_STRICT=1  exit 1 when a target is not met (default: report only, exit 0)
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
lib=$build/libllmguard-core.a
[ -e "$lib" ] || { echo "eval: $lib not built (make all)" >&2; exit 1; }

bin=$build/eval/eval
src=$here/tests/eval/eval.c
mkdir -p "$build/eval"
if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ "$lib" -nt "$bin" ]; then
  # shellcheck disable=SC2046
  ${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wshadow -Wformat=2 \
    -Wmissing-prototypes -Wstrict-prototypes -Werror \
    -I"$here/core" $(pkg-config --cflags libcjson libpcre2-8 2>/dev/null) \
    -o "$bin.tmp" "$src" "$lib" \
    $(pkg-config --libs libcjson libpcre2-8 libbsd 2>/dev/null || echo -lcjson -lpcre2-8 -lbsd) -lpthread
  mv "$bin.tmp" "$bin"
fi

public=${EVAL_PUBLIC:-$here/../shared/data/eval}
args=(--corpus "$here/tests/data/eval" --misses "$build/eval/misses.tsv")
if [ -d "$public" ]; then
  args+=(--public "$(cd "$public" && pwd)")
else
  echo "eval: public sets not found at $public (skipped; the project's corpora only)"
fi
md=${EVAL_MD:-$here/docs/detection.md}
[ "$md" != - ] && args+=(--md "$md")
[ -n "${EVAL_POLICY:-}" ] && args+=(--policy "$EVAL_POLICY")
[ -n "${EVAL_LIMIT:-}" ] && args+=(--limit "$EVAL_LIMIT")
[ -n "${EVAL_STRICT:-}" ] && args+=(--strict)
commit=$(git -C "$here" describe --always --dirty 2>/dev/null || echo unknown)
"$bin" "${args[@]}" --commit "$commit"
[ "$md" != - ] && echo "eval: tables written to ${md#"$here"/}"
echo "eval: misses and false positives listed in $build/eval/misses.tsv"
