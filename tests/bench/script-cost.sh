#!/usr/bin/env bash
# script-cost: what the publish script costs inside Redis, per call, away
# from the network and the gateway (the benchmark of docs/benchmarks.md,
# "Publish throughput", the script alone).
#
# Starts its own redis-server, loads the publish script exactly as
# pubsub/src/redis_scripts.c holds it, and runs redis-benchmark (16
# commands pipelined, fresh random content in every message) for: a plain
# PUBLISH; one group of one message (a single publish); one group of 50
# (a batch); four groups of one message each (singles to four channels in
# one call). Reports Redis's own time per call and per message (INFO
# commandstats usec_per_call), the median of `rounds` runs each.
#
# Last, the floor: the same four-group call to a script that does only
# what any stream-backed publish must (per group one XADD with an
# automatic ID and one PUBLISH; no offset, no epoch, no trimming rule),
# so that what is left of a group's cost after our own work is measured,
# not guessed.
#
#   bash tests/bench/script-cost.sh [rounds, default 3] [calls per run, default 100000]
#
# Needs redis-server, redis-cli, redis-benchmark and node. Stops what it
# started.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
calls=${2:-100000}

run=$(mktemp -d /tmp/wsgw-scriptcost.XXXXXX)
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
cleanup() {
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$run"
}
trap cleanup EXIT INT TERM
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$run" \
  --logfile "$run/redis.log" --daemonize yes
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# The script's text: the C string literals of publish_lua, unescaped.
node -e '
  const src = require("fs").readFileSync("pubsub/src/redis_scripts.c", "utf8");
  const body = src.slice(src.indexOf("static const char publish_lua[] ="));
  const lits = body.slice(0, body.indexOf(";\n")).match(/"(?:[^"\\]|\\.)*"/g);
  process.stdout.write(lits.map((l) => JSON.parse(l)).join(""));' > "$run/publish.lua"
sha=$(redis-cli -p "$port" -x script load < "$run/publish.lua")
# The floor (above): same KEYS and ARGV layout, nine arguments per group.
cat > "$run/floor.lua" <<'LUA'
for g = 1, #KEYS / 2 do
  local a = 9 * (g - 1)
  redis.call('XADD', KEYS[2 * g], 'MAXLEN', '~', ARGV[a + 2], '*', 'm', ARGV[a + 8])
  redis.call('PUBLISH', ARGV[a + 5], ARGV[a + 8])
end
return #KEYS / 2
LUA
floor_sha=$(redis-cli -p "$port" -x script load < "$run/floor.lua")

# A message head as the gateway passes it (the envelope without its
# closing brace), 141 bytes; __rand_int__ (12 digits, the placeholder's
# own length) makes each call's differ.
head='{"type":"message","channel":"job:bench","data":{"state":"running","progress":__rand_int__,"message":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}'
len=${#head}
batch_lens=$(printf "$len,%.0s" $(seq 50)); batch_lens=${batch_lens%,}
batch_body=$(for i in $(seq 50); do printf '%s' "$head"; [ "$i" -lt 50 ] && printf '},' || printf '}]'; done)
# One group's nine arguments: epoch, size, refresh, ttl + slack, channel, n, lengths, body, sep.
group1() { printf '%s\n' "ep__rand_int__" 100 "" 86460 "wsgw:$1" 1 "" "$head" ","; }

usec() { redis-cli -p "$port" info commandstats | awk -F'[:=,]' -v k="cmdstat_$1" '$1==k{print $7}'; }
measure() { # kind, then the command
  local kind=$1; shift
  redis-cli -p "$port" config resetstat >/dev/null
  redis-benchmark -p "$port" -n "$calls" -P 16 -r 100000000 -q "$@" >/dev/null
  usec "$kind"
}
median() { sort -g | awk '{v[NR]=$1} END{print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

declare -A got
for _ in $(seq "$rounds"); do
  got[plain]+="$(measure publish PUBLISH wsgw:plain:bench "$head}")"$'\n'
  mapfile -t g < <(group1 job:a)
  got[single]+="$(measure evalsha EVALSHA "$sha" 2 'wsgw:m:{job:a}' 'wsgw:h:{job:a}' "${g[@]}")"$'\n'
  got[batch50]+="$(measure evalsha EVALSHA "$sha" 2 'wsgw:m:{job:b}' 'wsgw:h:{job:b}' \
    "ep__rand_int__" 100 "" 86460 "wsgw:job:b" 50 "$batch_lens" "$batch_body" "")"$'\n'
  keys=() args=()
  for c in c0 c1 c2 c3; do
    keys+=("wsgw:m:{job:$c}" "wsgw:h:{job:$c}")
    mapfile -t g < <(group1 "job:$c")
    args+=("${g[@]}")
  done
  got[groups4]+="$(measure evalsha EVALSHA "$sha" 8 "${keys[@]}" "${args[@]}")"$'\n'
  got[floor4]+="$(measure evalsha EVALSHA "$floor_sha" 8 "${keys[@]}" "${args[@]}")"$'\n'
done

printf '%-34s %14s %14s\n' "command" "µs per call" "µs per message"
row() { local m; m=$(printf '%s' "${got[$1]}" | grep -v '^$' | median)
  printf '%-34s %14.2f %14.2f\n' "$2" "$m" "$(echo "$m / $3" | bc -l)"; }
row plain "PUBLISH" 1
row single "script, 1 group of 1 message" 1
row batch50 "script, 1 group of 50 messages" 50
row groups4 "script, 4 groups of 1 message" 4
row floor4 "floor: XADD + PUBLISH, 4 groups" 4
