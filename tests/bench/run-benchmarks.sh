#!/usr/bin/env bash
# run-benchmarks.sh: the benchmarks of docs/benchmarks.md, in one command.
#
#   bash tests/bench/run-benchmarks.sh [--quick] [--rounds N] [--only a,b] [--out DIR]
#
# Installs nginx and Nchan when missing (apt-get), builds wsgw, wsgw-bench and
# onewrite in build-bench/, then runs each scenario against wsgw, Nchan
# (nginx + libnginx-mod-nchan in Redis mode, tests/bench/nchan.conf) and, for
# the broadcast, the one-write ceiling (tests/bench/onewrite.c). The server
# under test runs alone on CPU $SERVER_CPU (taskset; nginx: one worker with
# worker_cpu_affinity); wsgw-bench and Redis run on CPU $BENCH_CPU. Every
# server gets a fresh Redis and is stopped after its run, so no run inherits
# another's memory or channels; the targets of a scenario alternate within
# each round, so machine noise hits them alike, and the summary compares
# medians of the same run as ratios.
#
# Scenarios (names for --only):
#   broadcast  5,000 subscribers on one channel, closed loop, 16 messages in flight
#   latency    1,000 subscribers on one channel, 25 messages/s = 25,000 deliveries/s
#              (also against onewrite: the floor for one write per delivery)
#   idle       19,000 idle subscribed connections, server RSS per connection
#   perjob     5,000 connections each on its own job:<i>, closed loop, 256 in flight,
#              every message stored in history (wsgw: Redis stream; Nchan: message buffer)
#
# Output: $OUT/results.json (every run and the summary), $OUT/*.json (each
# wsgw-bench report), $OUT/*.log (server logs), and a table on stdout.
# Every process it starts is stopped by pid on exit, Ctrl-C included.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build-bench}
OUT=$BUILD/benchmarks
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
BASE_PORT=${BASE_PORT:-18600}
ROUNDS=3
QUICK=0
ARGS="$*"

ONLY=broadcast,latency,idle,perjob

while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1; ROUNDS=1 ;;
    --rounds) ROUNDS=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "run-benchmarks: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

# Sizes: the issue's numbers; --quick is a smoke test of the whole pipeline.
if [ $QUICK = 1 ]; then
    BC_CONNS=500 LAT_CONNS=200 LAT_RATE=25 IDLE_CONNS=2000 PJ_CONNS=500 DURATION=3 HOLD=2
else
    BC_CONNS=5000 LAT_CONNS=1000 LAT_RATE=25 IDLE_CONNS=19000 PJ_CONNS=5000 DURATION=15 HOLD=10
fi

PIDS=()
RUNDIR=$(mktemp -d /tmp/wsgw-bench-run.XXXXXX)
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$RUNDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "run-benchmarks: $*" >&2; }

# ---- setup ----------------------------------------------------------------

install_deps() {
    local need=()
    command -v nginx >/dev/null || need+=(nginx)
    [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || need+=(libnginx-mod-nchan)
    command -v redis-server >/dev/null || need+=(redis-server)
    command -v python3 >/dev/null || need+=(python3)
    command -v curl >/dev/null || need+=(curl)
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    # The package starts a system nginx on port 80 on some images; it is not
    # ours to stop, and it does not use our ports or cores' pinning.
}

build() {
    log "building in $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$RUNDIR/cmake.log" 2>&1
    cmake --build "$BUILD" -j2 --target wsgw wsgw-bench onewrite >"$RUNDIR/build.log" 2>&1 ||
        { cat "$RUNDIR/build.log" >&2; exit 1; }
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
    local p=$1
    while ! port_free "$p"; do p=$((p + 1)); done
    echo "$p"
}

wait_port() {
    for _ in $(seq 100); do
        port_free "$1" || return 0
        sleep 0.1
    done
    log "nothing listens on $1"; return 1
}

wait_http() { # what url status-regex curl-args...
    local what=$1 url=$2 want=$3 code
    shift 3
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url" || true)
        [[ $code =~ $want ]] && return 0
        sleep 0.1
    done
    log "$url: not $what (HTTP $code)"; return 1
}

# ---- servers: each start_* sets SRV_PID (the process whose RSS is read) ----

REDIS_PID=
start_redis() {
    REDIS_PORT=$(pick_port $((BASE_PORT + 10)))
    taskset -c "$BENCH_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --daemonize no --loglevel warning >"$OUT/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    wait_port "$REDIS_PORT"
}

# SIGTERM, and SIGKILL when the process has not exited within 15 s (a
# server that hangs on shutdown is noted in its log, not waited for).
# Running, as opposed to gone or exited and not yet reaped (a zombie).
alive() { grep -qs '^State:[[:space:]]*[^Z]' "/proc/$1/status"; }

stop_pid() {
    local i
    kill "$1" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        alive "$1" || break
        sleep 0.1
    done
    if alive "$1"; then
        log "pid $1 still running 15 s after SIGTERM: SIGKILL"
        echo "run-benchmarks: pid $1 hung after SIGTERM, killed" >>"$OUT/hangs.log"
        kill -KILL "$1" 2>/dev/null || true
    fi
    wait "$1" 2>/dev/null || true
}

# The per-job publisher is one WebSocket client standing in for a backend:
# its publish rate limit (20/s by default, meant for browsers) is lifted. No
# drain on SIGTERM: the bench's clients are gone by then.
start_wsgw() {
    PORT=$(pick_port "$BASE_PORT")
    taskset -c "$SERVER_CPU" "$BUILD/bin/wsgw" --listen "127.0.0.1:$PORT" \
        --redis "redis://127.0.0.1:$REDIS_PORT" --jwt-secret-file "$RUNDIR/secret" \
        --publish-rate 1000000 --publish-burst 1000000 --drain-seconds 0 \
        --log-level warn >>"$OUT/wsgw.log" 2>&1 &
    SRV_PID=$!
    STOP_PID=$SRV_PID
    PIDS+=("$SRV_PID")
    wait_port "$PORT"
    wait_http ready "http://127.0.0.1:$PORT/readyz" '^200$'
    URL="ws://127.0.0.1:$PORT/ws"
}

start_onewrite() {
    PORT=$(pick_port "$BASE_PORT")
    taskset -c "$SERVER_CPU" "$BUILD/bin/onewrite" --listen "127.0.0.1:$PORT" \
        --redis "127.0.0.1:$REDIS_PORT" >>"$OUT/onewrite.log" 2>&1 &
    SRV_PID=$!
    STOP_PID=$SRV_PID
    PIDS+=("$SRV_PID")
    wait_port "$PORT"
    URL="ws://127.0.0.1:$PORT/ws"
}

start_nchan() {
    local d=$RUNDIR/nginx mask=1 i
    PORT=$(pick_port "$BASE_PORT")
    # worker_cpu_affinity takes a bit string, CPU 0 rightmost.
    for ((i = 0; i < SERVER_CPU; i++)); do mask=${mask}0; done
    rm -rf "$d"
    mkdir -p "$d"
    sed -e "s#@RUNDIR@#$d#g; s#@PORT@#$PORT#g; s#@REDIS_PORT@#$REDIS_PORT#g; s#@CPUMASK@#$mask#g; s#@LOGDIR@#$OUT#g" \
        "$ROOT/tests/bench/nchan.conf" >"$d/nginx.conf"
    taskset -c "$SERVER_CPU" nginx -p "$d" -c "$d/nginx.conf" >>"$OUT/nginx.log" 2>&1 &
    STOP_PID=$!
    PIDS+=("$STOP_PID")
    wait_port "$PORT"
    SRV_PID=$(pgrep -P "$STOP_PID" | head -1)
    # Nchan refuses subscribers with 503 until its Redis link is up: wait for
    # a publish to be accepted.
    wait_http 'publish accepted' "http://127.0.0.1:$PORT/pub/bench-warmup" '^20[12]$' -d warmup
    URL="ws://127.0.0.1:$PORT/sub/"
}

# ---- one run: fresh Redis, fresh server, wsgw-bench on the other core ----

RUNS=$RUNDIR/runs.tsv
: >"$RUNS"

# Bench arguments may say @REDIS@, @SECRET@ and @PID@: this run's Redis URL,
# the gateway's secret and the server process (nginx: its worker) whose RSS
# and CPU time wsgw-bench reads, known only once they exist.
run_one() { # scenario target round bench-args...
    local scen=$1 target=$2 round=$3 json rc=0 a args=()
    shift 3
    json=$OUT/$scen-$target-$round.json
    start_redis
    "start_$target"
    for a in "$@"; do
        a=${a//@REDIS@/redis://127.0.0.1:$REDIS_PORT}
        a=${a//@SECRET@/$RUNDIR/secret}
        args+=("${a//@PID@/$SRV_PID}")
    done
    log "$scen / $target / round $round: wsgw-bench --url $URL ${args[*]}"
    taskset -c "$BENCH_CPU" "$BUILD/bin/wsgw-bench" --url "$URL" --json "$json" --quiet \
        "${args[@]}" >"$OUT/$scen-$target-$round.txt" 2>&1 || rc=$?
    grep -E 'deliveries  |^latency  |gateway RSS|^result' "$OUT/$scen-$target-$round.txt" |
        sed 's/^/    /' >&2 || true
    stop_pid "$STOP_PID"
    stop_pid "$REDIS_PID"
    printf '%s\t%s\t%s\t%s\t%s\n' "$scen" "$target" "$round" "$json" "$rc" >>"$RUNS"
}

# What each target needs to be measured by the same scenario: wsgw and
# onewrite take tokens and Redis PUBLISH (wsgw's per-job: its WebSocket
# publish, which stores history); Nchan takes the channel in the URL and an
# HTTP POST, over 64 keep-alive connections so its publisher is not what
# limits it.
target_args() { # target scenario
    case $1-$2 in
    nchan-*) echo --target nchan --http-conns 64 --http-depth 16 ;;
    wsgw-perjob) echo --secret-file @SECRET@ --publish-via ws ;;
    *-idle) echo --secret-file @SECRET@ ;;
    *) echo --secret-file @SECRET@ --redis @REDIS@ ;;
    esac
}

scenario() { # name "targets" bench-args...
    local name=$1 targets=$2 r t
    shift 2
    for r in $(seq "$ROUNDS"); do
        for t in $targets; do
            # shellcheck disable=SC2046 # target_args is a word list by design
            run_one "$name" "$t" "$r" $(target_args "$t" "$name") --pid @PID@ "$@"
        done
    done
}

scenario_broadcast() {
    # 16 messages in flight keep every server busy: with fewer, a server that
    # is quicker than the bench waits for it, and the ceiling is not one.
    scenario broadcast "wsgw nchan onewrite" --connections $BC_CONNS --closed-loop --window 16 \
        --duration $DURATION
}

scenario_latency() {
    # onewrite too: the one-write floor, what no server writing each
    # subscriber its own frame gets under.
    scenario latency "wsgw nchan onewrite" --connections $LAT_CONNS --rate $LAT_RATE --duration $DURATION
}

scenario_idle() {
    # One round: 19,000 connections take a while, and memory is not noisy.
    local ROUNDS=1
    scenario idle "wsgw nchan" --idle --connections $IDLE_CONNS --duration $HOLD \
        --connect-timeout 60
}

scenario_perjob() {
    scenario perjob "wsgw nchan" --pattern per-job --connections $PJ_CONNS --closed-loop \
        --window 256 --duration $DURATION
}

main() {
    install_deps
    build
    mkdir -p "$OUT"
    rm -f "$OUT"/*.json "$OUT"/*.txt "$OUT"/*.log
    head -c 48 /dev/urandom | base64 >"$RUNDIR/secret"
    # The hard limit is about 20,000 here: 19,000 connections fit, just.
    ulimit -n "$(ulimit -Hn)"
    log "server on CPU $SERVER_CPU, bench and Redis on CPU $BENCH_CPU; results in $OUT"
    local s
    for s in ${ONLY//,/ }; do
        "scenario_$s"
    done
    python3 "$ROOT/tests/bench/summarize.py" "$RUNS" "$OUT/results.json" \
        "bash tests/bench/run-benchmarks.sh${ARGS:+ $ARGS}"
}

main "$@"
