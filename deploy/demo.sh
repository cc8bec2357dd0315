#!/usr/bin/env bash
# The README's demo command: Redis, two gateway processes (8081, 8082) that
# share it, and how to talk to them. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

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

redis_port=${WSGW_DEMO_REDIS_PORT:-6390}
head -c 48 /dev/urandom | base64 | tr -d '\n' > "$run/secret"

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$run" --logfile "$run/redis.log" &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

for port in 8081 8082; do
  "$root/build/bin/wsgw" --listen "127.0.0.1:$port" --redis "redis://127.0.0.1:$redis_port" \
    --jwt-secret-file "$run/secret" 2>"$run/wsgw-$port.log" &
  pids+=($!)
done
for port in 8081 8082; do
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
done

token=$("$root/build/bin/wsgw" token --secret-file "$run/secret" --sub alice \
  --channels 'chat:*,job:*' --publish 'chat:*' --ttl 3600)

cat <<MSG

wsgw demo is running:
  gateway A   ws://127.0.0.1:8081/ws    (log: $run/wsgw-8081.log)
  gateway B   ws://127.0.0.1:8082/ws    (log: $run/wsgw-8082.log)
  Redis       127.0.0.1:$redis_port

A token for alice (chat:* and job:* to read, chat:* to write):
  $token

Make more:
  $root/build/bin/wsgw token --secret-file $run/secret --sub bob --channels 'chat:*' --publish 'chat:*'

Connect (any WebSocket client), then send as the first message:
  {"type":"auth","token":"<token>"}
  {"type":"subscribe","id":1,"channel":"job:42"}

Publish job progress as a backend would, straight into Redis:
  redis-cli -p $redis_port PUBLISH wsgw:job:42 '{"data":{"state":"running","progress":40}}'

Press Ctrl-C to stop.
MSG
wait
