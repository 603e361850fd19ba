#!/usr/bin/env bash
# The README's test command: installs what is missing, builds hubsync and
# every test, and runs them all with CTest (unit tests, then integration tests
# against a real mosquitto). With --sanitize, builds and runs everything again
# with AddressSanitizer + UndefinedBehaviorSanitizer. Last come the
# deployment tests (tests/deploy: a minbase Debian, Podman, nspawn machines).
set -euo pipefail
cd "$(dirname "$0")/.."
bash docker/install-deps.sh
bash docker/install-deps.sh --runtime  # the Docker image's final stage runs this
bash docker/install-deps.sh --deploy   # the deployment tests' engines

jobs=$(nproc)
run() {  # build-dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$jobs" 2>&1 | grep -E "warning|error|Error" && { echo "build not clean" >&2; return 1; } || true
  cmake --build "$dir" -j "$jobs" >/dev/null
  (cd "$dir" && ctest --output-on-failure -j 2 --timeout 600 -LE deploy)
}

run build
if [ "${1:-}" = "--sanitize" ]; then
  # (The kill campaign: 200 points above; 40 here, where every process is slower.)
  HUBSYNC_KILL_POINTS=40 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run build-asan -DHUBSYNC_SANITIZE=ON -DHUBSYNC_BUILD_BENCHMARKS=OFF
fi
# Last, one at a time: the README's commands on a minbase Debian, the compose
# home on Podman, the systemd units on booted machines (tests/deploy).
(cd build && ctest --output-on-failure -L deploy)
