#!/usr/bin/env bash
# The README's test command: everything that proves wsgw works.
#  1. installs what is missing (apt-get, npm ci),
#  2. builds twice: plain (build/) and with ASan+UBSan (build-asan/),
#  3. runs the unit tests (ctest) of both builds,
#  4. runs the integration tests (node --test: real redis-server, real wsgw
#     processes, real WebSocket clients) against both builds; under ASan the
#     harness fails a test when a gateway's stderr has a sanitizer report,
#  5. runs the web demo's client library unit tests and its end-to-end tests
#     in Chromium (playwright-core, Debian's chromium) against the plain build,
#  6. runs each libFuzzer target (tests/fuzz, clang, build-fuzz/) for a bounded
#     time, WSGW_FUZZ_SECONDS each (default 30); any crash, leak or sanitizer
#     report fails the command.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc 2>/dev/null || echo 2)

bash deploy/install-deps.sh
(cd tests && npm ci --no-audit --no-fund --loglevel=error)

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DWSGW_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== unit tests (plain build)"
ctest --test-dir build --output-on-failure
echo "== unit tests (ASan+UBSan build)"
ctest --test-dir build-asan --output-on-failure
echo "== fuzzing (libFuzzer: client messages, tokens, bus envelopes)"
bash tests/fuzz/run.sh

echo "== deploy (kubectl kustomize + Kubernetes schemas; the Dockerfile against Debian 12 packages)"
npm --prefix tests run --silent test:deploy

echo "== integration tests (plain build)"
WSGW_BIN_DIR="$root/build/bin" npm --prefix tests run --silent test:integration
echo "== integration tests (ASan+UBSan build)"
WSGW_BIN_DIR="$root/build-asan/bin" WSGW_SANITIZED=1 npm --prefix tests run --silent test:integration

echo "== client library unit tests (web-demo/wsgw-client.js: fake socket, fake clock)"
npm --prefix tests run --silent test:client
echo "== web demo end to end (Chromium, Redis, two gateways, wsgw-demo; plain build)"
WSGW_BIN_DIR="$root/build/bin" npm --prefix tests run --silent test:e2e
