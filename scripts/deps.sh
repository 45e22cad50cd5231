#!/usr/bin/env bash
# Install what llmguard needs to build ("build") or to run its tests
# ("test") or its benchmarks ("bench": nginx, the comparison a user would
# otherwise pick), from Debian's archive.  Does nothing when everything is there,
# so `make demo` and `make check` can call it every time.  Needs root (or
# sudo) only when something is missing.
set -euo pipefail
what=${1:-build}
build_pkgs=(build-essential pkg-config libcjson-dev libpcre2-dev libbsd-dev)
test_pkgs=(libcriterion-dev clang curl python3 python3-requests rsyslog nodejs npm)
case $what in
  build) want=("${build_pkgs[@]}") ;;
  demo)  want=("${build_pkgs[@]}" curl) ;;
  test)  want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench) want=("${build_pkgs[@]}" curl nginx-light) ;;
  *) echo "usage: $0 build|demo|test|bench" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do
  # nodejs/npm may come from elsewhere (nvm, the image); a working binary counts.
  case $p in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "llmguard: installing ${missing[*]}" >&2
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
