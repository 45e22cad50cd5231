#!/usr/bin/env bash
# make install and uninstall into a staging directory (DESTDIR) with a
# non-default PREFIX: the programs, the library where llmguard-run looks
# for it, the man pages, and the collector's systemd units pointing at the
# installed binary; uninstall leaves no file behind.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

make -s -C "$root" BUILD="$LG_BUILD" install PREFIX=/opt/lg DESTDIR="$tmp" >"$tmp/log" 2>&1 \
  || { cat "$tmp/log"; fail "make install"; }
p=$tmp/opt/lg
for t in llmguard-run llmguard-check llmguard-log llmguard-collectord llmguard-fakellm; do
  [ -x "$p/bin/$t" ] || fail "$t not installed"
done
[ -f "$p/lib/llmguard/libllmguard.so" ] || fail "library not in lib/llmguard"
[ -f "$p/share/man/man1/llmguard-run.1" ] && [ -f "$p/share/man/man5/llmguard-policy.5" ] \
  && [ -f "$p/share/man/man8/llmguard-collectord.8" ] || fail "man pages"
for k in user system; do
  for u in llmguard-collectord.service llmguard-collectord.socket; do
    [ -f "$p/lib/systemd/$k/$u" ] || fail "$k unit $u not installed"
  done
  grep -q '^ExecStart=/opt/lg/bin/llmguard-collectord' "$p/lib/systemd/$k/llmguard-collectord.service" \
    || fail "$k unit: $(grep ExecStart "$p/lib/systemd/$k/llmguard-collectord.service")"
done
echo "ok: installed under PREFIX=/opt/lg"

make -s -C "$root" BUILD="$LG_BUILD" uninstall PREFIX=/opt/lg DESTDIR="$tmp" >"$tmp/log" 2>&1 \
  || { cat "$tmp/log"; fail "make uninstall"; }
left=$(find "$tmp/opt" -type f)
[ -z "$left" ] || fail "uninstall left: $left"
echo "ok: uninstall removed every file"
