#!/usr/bin/env bash
# publish-throughput: what publishing costs, through the history script and
# through POST /api/publish (the benchmark of docs/benchmarks.md, "Publish
# throughput").
#
# Starts Redis and one gateway pinned to CPU 0 (taskset), runs
# publish-load.mjs pinned to CPU 1 (Redis is not pinned), and for each of
# six runs (channels with history, job:bench..., and without, plain:bench...;
# one message per request to one channel, batches of 50 to one channel, and
# one message per request spread over 100 channels, as many jobs reporting
# at once) reports messages/s, request latency, the CPU time Redis and the
# gateway spent per message (from Redis's INFO cpu and /proc/<pid>/stat),
# and messages per Redis command. The history path's cost is the Lua script
# (offset, XADD, PUBLISH in one atomic step) against a plain PUBLISH.
#
#   bash tests/bench/publish-throughput.sh [seconds per run, default 5] [rounds, default 1]
#
# SHAPES picks the shapes (batch:channels, default "1:1 50:1 1:100"), e.g.
# SHAPES=1:100 for the many-channel one alone.
#
# With several rounds each round runs the six in turn (history and plain
# alternate, so that a disturbance of the shared machine hits both), and
# the summary gives each round's history/plain ratio and their median.
#
# Needs a build (build/bin/wsgw; BUILD_DIR to use another) and redis-server.
# Stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
secs=${1:-5}
rounds=${2:-1}
shapes=${SHAPES:-1:1 50:1 1:100}
bin=${BUILD_DIR:-$root/build}/bin/wsgw
[ -x "$bin" ] || { echo "publish-throughput: no $bin (build first)" >&2; exit 2; }
cpus=$(nproc)
gw_cpu=0
load_cpu=$((cpus > 1 ? 1 : 0))

run=$(mktemp -d /tmp/wsgw-pubbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT INT TERM

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
redis_port=$(free_port)
gw_port=$(free_port)
head -c 48 /dev/urandom | base64 -w0 > "$run/secret"
key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$key" > "$run/api-keys"

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$run" \
  --logfile "$run/redis.log" &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
taskset -c "$gw_cpu" "$bin" --listen "127.0.0.1:$gw_port" --redis "redis://127.0.0.1:$redis_port" \
  --jwt-secret-file "$run/secret" --api-key-file "$run/api-keys" --log-level warn 2>"$run/wsgw.log" &
gw_pid=$!
pids+=($gw_pid)
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$gw_port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

# CPU seconds Redis has used (user + sys), and the gateway's (utime + stime).
redis_cpu() { redis-cli -p "$redis_port" info cpu | awk -F: '/used_cpu_(user|sys):/{s+=$2} END{printf "%.6f", s}'; }
# Commands of one kind Redis has run ($1: evalsha for history, publish for
# plain; a script's own PUBLISH counts as a publish too, hence one kind):
# messages per command shows how much group commit gathered.
redis_cmds() { redis-cli -p "$redis_port" info commandstats | awk -F'[:=,]' -v k="cmdstat_$1" '$1==k{print $3; f=1} END{if(!f) print 0}'; }
gw_cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.6f", ($14+$15)/hz}' "/proc/$gw_pid/stat"; }

printf '%-12s %6s %8s %12s %9s %9s %16s %16s %9s\n' channel batch channels "messages/s" "p50 ms" "p99 ms" "redis µs/msg" "gateway µs/msg" "msgs/cmd"
results=()
for round in $(seq "$rounds"); do
for scenario in $shapes; do
  batch=${scenario%:*} nchan=${scenario#*:}
  for channel in job:bench plain:bench; do
    kind=publish; [ "$channel" = job:bench ] && kind=evalsha
    r0=$(redis_cpu); g0=$(gw_cpu_s); c0=$(redis_cmds $kind)
    out=$(taskset -c "$load_cpu" node tests/bench/publish-load.mjs --port "$gw_port" --key "$key" \
      --channel "$channel" --seconds "$secs" --concurrency 32 --batch "$batch" --channels "$nchan")
    r1=$(redis_cpu); g1=$(gw_cpu_s); c1=$(redis_cmds $kind)
    line=$(node -e '
      const o = JSON.parse(process.argv[1]);
      const [ch, batch, r0, r1, g0, g1, c0, c1] = process.argv.slice(2);
      o.channel = ch; o.batch = Number(batch); o.round = Number(process.argv[10]);
      o.channels = Number(process.argv[11]); o.scenario = `${o.batch}:${o.channels}`;
      o.redis_us_per_msg = +((r1 - r0) * 1e6 / o.messages).toFixed(2);
      o.gateway_us_per_msg = +((g1 - g0) * 1e6 / o.messages).toFixed(2);
      o.messages_per_command = +(o.messages / Math.max(1, c1 - c0)).toFixed(2);
      console.log(JSON.stringify(o));' "$out" "$channel" "$batch" "$r0" "$r1" "$g0" "$g1" "$c0" "$c1" "$round" "$nchan")
    results+=("$line")
    node -e '
      const o = JSON.parse(process.argv[1]);
      console.log(`${o.channel.padEnd(12)} ${String(o.batch).padStart(6)} ${String(o.channels).padStart(8)} ` +
        `${String(o.messages_per_s).padStart(12)} ` +
        `${o.p50_ms.toFixed(2).padStart(9)} ${o.p99_ms.toFixed(2).padStart(9)} ` +
        `${String(o.redis_us_per_msg).padStart(16)} ${String(o.gateway_us_per_msg).padStart(16)} ` +
        `${String(o.messages_per_command).padStart(9)}`);' "$line"
  done
done
done
node -e '
  const rs = process.argv.slice(1).map((l) => JSON.parse(l));
  const get = (ch, sc, r) => rs.find((x) => x.channel === ch && x.scenario === sc && x.round === r);
  const median = (v) => { const s = [...v].sort((a, b) => a - b), m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
  const rounds = [...new Set(rs.map((x) => x.round))];
  for (const sc of [...new Set(rs.map((x) => x.scenario))]) {
    const cpu = rounds.map((r) => get("job:bench", sc, r).redis_us_per_msg / get("plain:bench", sc, r).redis_us_per_msg);
    const tput = rounds.map((r) => get("job:bench", sc, r).messages_per_s / get("plain:bench", sc, r).messages_per_s);
    const [b, n] = sc.split(":");
    const each = rounds.length > 1 ? ` (rounds: ${cpu.map((x) => x.toFixed(2)).join(", ")})` : "";
    console.log(`batch ${b}, ${n} channel${n === "1" ? "" : "s"}: history/plain Redis CPU per message ${median(cpu).toFixed(2)}x${each}, ` +
      `throughput ${median(tput).toFixed(2)}x`);
  }
  console.log(JSON.stringify({ machine: { cpus: require("os").cpus().length, model: require("os").cpus()[0].model }, results: rs }));
' "${results[@]}"
