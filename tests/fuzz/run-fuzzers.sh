#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, build-fuzz/) and runs each
# on its corpus in tests/fuzz/corpus/<target> for SECONDS (default 30).
# Fails on any crash, leak, timeout or out-of-memory; a crash input is left
# in build-fuzz/artifacts/ (make it a unit test). Prints executions per second
# and coverage per target.
#   tests/fuzz/run-fuzzers.sh [SECONDS]      run every target
#   tests/fuzz/run-fuzzers.sh --seeds        rewrite the seed corpora
#   tests/fuzz/run-fuzzers.sh --build-only   build them and stop
#   tests/fuzz/run-fuzzers.sh --no-build [SECONDS]   run what is built (the
#                                            sources may be changing: CI's mutations)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v clang++ >/dev/null && [ -e /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a ] || {
  apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
}
if [ "${1:-}" != --no-build ]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHUBSYNC_FUZZ=ON \
    -DHUBSYNC_BUILD_TESTS=OFF -DHUBSYNC_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build build-fuzz -j "$(nproc)" 2>&1 | grep -E "warning|error" && { echo "fuzz build not clean" >&2; exit 1; } || true
  cmake --build build-fuzz -j "$(nproc)" >/dev/null
fi
[ "${1:-}" = --build-only ] && exit 0
[ "${1:-}" = --no-build ] && shift
corpus=tests/fuzz/corpus
if [ "${1:-}" = "--seeds" ]; then
  build-fuzz/fuzz_make_seeds "$corpus"
  echo "seeds written to $corpus" >&2
  exit 0
fi
seconds=${1:-30}
mkdir -p build-fuzz/artifacts
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for t in wire envelope json bridge paths apply state; do
  work=build-fuzz/corpus-$t   # what the run finds stays out of the repository
  rm -rf "$work"; mkdir -p "$work"
  log=build-fuzz/fuzz_$t.log
  if build-fuzz/fuzz_$t "$work" "$corpus/$t" -max_total_time="$seconds" -timeout=10 \
       -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
       -artifact_prefix=build-fuzz/artifacts/$t- >"$log" 2>&1; then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1)
    printf 'fuzz_%-9s %4ss  %9s runs  %7s exec/s  %s\n' "$t" "$seconds" "$execs" \
      "$((execs / seconds))" "$cov"
  else
    echo "fuzz_$t FAILED (see $log):" >&2
    grep -E "ERROR|SUMMARY|Test unit written|==[0-9]+==" "$log" | head -20 >&2
    status=1
  fi
done
exit $status
