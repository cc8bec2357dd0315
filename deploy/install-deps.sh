#!/usr/bin/env bash
# Installs what wsgw needs to build, test and run its demo on Debian 12, and
# nothing when it is all there already. Used by the README's two commands.
#   deploy/install-deps.sh            build + run + test dependencies
set -euo pipefail

pkgs=(
  # build
  build-essential cmake pkg-config
  libwebsockets-dev libwebsockets-evlib-uv libhiredis-dev libjansson-dev
  libjwt-dev libssl-dev libuv1-dev uthash-dev libcmocka-dev
  # fuzzing (tests/fuzz): clang, the libFuzzer and sanitizer runtimes
  # (libclang_rt.*: libclang-rt-14-dev, only a recommendation of clang's) and
  # llvm-symbolizer for readable reports
  clang libclang-rt-14-dev llvm-14
  # run and test
  redis-server redis-tools curl ca-certificates
  # the browser end-to-end tests of the web demo (driven by playwright-core)
  chromium
)
# Node.js 18+ for the integration tests (the machine may already have a newer one).
command -v node >/dev/null 2>&1 || pkgs+=(nodejs npm)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# A Redis started by the package would hold port 6379; tests and the demo
# start their own servers on ports they choose.
