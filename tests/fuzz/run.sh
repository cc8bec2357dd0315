#!/usr/bin/env bash
# Builds the libFuzzer targets (build-fuzz/, clang, ASan+UBSan+coverage) and
# runs each for a bounded time on a copy of its seed corpus, so that the
# repository is never written to. Fails when any target finds a crash, a
# leak, a timeout, an out-of-memory or a sanitizer report, and prints the
# input that caused it with the command that replays it.
#
# Environment (all optional):
#   WSGW_FUZZ_SECONDS   seconds per target (default 30)
#   WSGW_FUZZ_TARGETS   which targets (default "protocol token envelope")
#   WSGW_FUZZ_TIMEOUT   seconds one input may take (default 10)
#   WSGW_FUZZ_RSS_MB    memory limit of a target process (default 2048)
#   WSGW_FUZZ_BUILD     build directory (default build-fuzz)
#   WSGW_FUZZ_KEEP      1: keep the temporary corpora (to merge new finds)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
secs=${WSGW_FUZZ_SECONDS:-30}
targets=${WSGW_FUZZ_TARGETS:-"protocol token envelope"}
per_input=${WSGW_FUZZ_TIMEOUT:-10}
rss_mb=${WSGW_FUZZ_RSS_MB:-2048}
build=${WSGW_FUZZ_BUILD:-$root/build-fuzz}
jobs=$(nproc 2>/dev/null || echo 2)

if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz: clang is missing (deploy/install-deps.sh installs it)" >&2
  exit 1
fi

# -O1: the usual libFuzzer trade of speed against stack traces that still
# point at the right line; Debug keeps assertions in.
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DWSGW_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS_DEBUG="-g -O1" >/dev/null
cmake --build "$build" --target wsgw_fuzz -j"$jobs"

work=$(mktemp -d "${TMPDIR:-/tmp}/wsgw-fuzz.XXXXXX")
if [[ ${WSGW_FUZZ_KEEP:-0} != 1 ]]; then
  trap 'rm -rf "$work"' EXIT
fi
# Findings outlive the temporary corpora: they are what a developer replays.
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
symbolizer=$(command -v llvm-symbolizer || ls /usr/lib/llvm-*/bin/llvm-symbolizer 2>/dev/null | head -n1 || true)
[[ -n $symbolizer ]] && export ASAN_SYMBOLIZER_PATH=$symbolizer

failed=()
for t in $targets; do
  bin="$build/bin/fuzz_$t"
  corpus="$work/$t"
  log="$work/$t.log"
  prefix="$artifacts/$t-"
  dict=()
  [[ -f tests/fuzz/$t.dict ]] && dict=(-dict="tests/fuzz/$t.dict")
  cp -r "tests/fuzz/corpus/$t" "$corpus"
  rm -f "$prefix"*
  echo "== fuzz $t (${secs}s)"
  rc=0
  "$bin" "$corpus" "${dict[@]}" -max_total_time="$secs" -timeout="$per_input" \
    -rss_limit_mb="$rss_mb" -detect_leaks=1 -print_final_stats=1 \
    -artifact_prefix="$prefix" >"$log" 2>&1 || rc=$?
  grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb)' "$log" |
    sed 's/^/   /' || true
  found=$(ls "$prefix"* 2>/dev/null | grep -Ev -- '-slow-unit-' || true)
  if ((rc != 0)) || [[ -n $found ]]; then
    failed+=("$t")
    echo "!! fuzz $t failed (exit $rc); the report:" >&2
    grep -E -A40 '^(==[0-9]+==ERROR|.*runtime error|fuzz_[a-z]+: .*check failed|SUMMARY|==[0-9]+== ERROR)' \
      "$log" | head -n 80 >&2 || tail -n 60 "$log" >&2
    for f in $found; do
      echo "!! crash input: $f" >&2
      echo "!! replay: $bin $f" >&2
    done
  fi
done

if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
[[ ${WSGW_FUZZ_KEEP:-0} == 1 ]] && echo "fuzz: corpora kept in $work"
echo "fuzz: ok ($targets, ${secs}s each)"
