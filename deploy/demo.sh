#!/usr/bin/env bash
# The README's demo command: Redis, two gateway processes (8081, 8082) that
# share it, and the demo backend (8080) that serves the web page, signs demo
# tokens and runs simulated jobs publishing through the gateways' HTTP API.
# Prints the URL to open. Ctrl-C stops everything it started.
#   WSGW_DEMO_REDIS_PORT (6390), WSGW_DEMO_HOST (127.0.0.1: where all three
#   listen), WSGW_DEMO_BUILD_DIR (build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${WSGW_DEMO_BUILD_DIR:-build}

bash deploy/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
bin=$(cd "$build" && pwd)/bin

run=$(mktemp -d /tmp/wsgw-demo.XXXXXX)
pids=()
cleanup() {
  trap - EXIT INT TERM
  echo; echo "demo: stopping"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT INT TERM

host=${WSGW_DEMO_HOST:-127.0.0.1}
redis_port=${WSGW_DEMO_REDIS_PORT:-6390}
umask 077
# The secret the gateways verify tokens with and the demo backend signs them
# with; an API key for the backend's POST /api/publish.
head -c 48 /dev/urandom | base64 | tr -d '\n' > "$run/secret"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$run/api-keys"

wait_http() { # URL: waits up to 10 s for a 200
  for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "demo: $1 did not come up; logs in $run" >&2
  return 1
}

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$run" --logfile "$run/redis.log" &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

for port in 8081 8082; do
  "$bin/wsgw" --listen "$host:$port" --redis "redis://127.0.0.1:$redis_port" \
    --jwt-secret-file "$run/secret" --api-key-file "$run/api-keys" --drain-seconds 2 \
    2>"$run/wsgw-$port.log" &
  pids+=($!)
done
for port in 8081 8082; do wait_http "http://$host:$port/readyz"; done

"$bin/wsgw-demo" --insecure-demo --listen "$host:8080" --gateway-ports 8081,8082 \
  --secret-file "$run/secret" --api-key-file "$run/api-keys" 2>"$run/wsgw-demo.log" &
pids+=($!)
wait_http "http://$host:8080/healthz"

cat <<MSG

wsgw demo is running. Open   http://$host:8080/
  sign in as alice on gateway A, and in a second window as bob on gateway B;
  start a job, chat, then crash gateway A and watch the page move to B:
      kill -9 ${pids[1]}      # gateway A (8081)

  gateway A    ws://$host:8081/ws    log $run/wsgw-8081.log
  gateway B    ws://$host:8082/ws    log $run/wsgw-8082.log
  backend      http://$host:8080/    log $run/wsgw-demo.log
  Redis        127.0.0.1:$redis_port

Publish to the page as a backend would (any gateway, the demo's API key):
  curl -H "Authorization: Bearer \$(cat $run/api-keys)" \\
       -d '{"channel":"chat:lobby","data":{"text":"hello from curl"}}' http://$host:8081/api/publish

Press Ctrl-C to stop.
MSG
wait
