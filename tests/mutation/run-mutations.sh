#!/usr/bin/env bash
# Shows that every safety guard has a test: applies each one-line mutation of
# tests/mutation/mutations.txt in turn, rebuilds incrementally (BUILD_DIR,
# default build/, configured by tests/run-all.sh), runs the tests named for
# it, and restores the file ({NL} in the list stands for a line break). Fails if a mutation survives (its tests pass) or
# if a mutation no longer applies (the guard's text moved: update the list).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD_DIR:-build}
list=${MUTATIONS:-tests/mutation/mutations.txt}  # another list: try a few
[ -f "$build/CMakeCache.txt" ] || { echo "run tests/run-all.sh first (no $build)" >&2; exit 2; }

restore() { [ -n "${saved:-}" ] && cp "$saved" "$file" && rm -f "$saved"; saved=""; }
trap restore EXIT
survived=0; caught=0; n=0
while IFS=$'\t' read -r file old new tests; do
  [[ -z "$file" || "$file" == \#* ]] && continue
  n=$((n + 1))
  saved=$(mktemp); cp "$file" "$saved"
  python3 - "$file" "$old" "$new" <<'PY' || { echo "mutation $n: '$old' is not once in $file" >&2; exit 1; }
import sys
path, old, new = (a.replace("{NL}", "\n") for a in sys.argv[1:])
text = open(path).read()
if text.count(old) != 1:
    sys.exit(1)
open(path, "w").write(text.replace(old, new))
PY
  start=$(date +%s)
  # Only what the named tests run is rebuilt: their executables and, for
  # integration tests, the hubsync program they start.
  targets=$(cd "$build" && ctest -R "$tests" --show-only=json-v1 | python3 -c '
import json, os, sys
tests = json.load(sys.stdin)["tests"]
print(" ".join(sorted({os.path.basename(t["command"][0]) for t in tests if t.get("command")})))')
  [ -n "$targets" ] || { echo "mutation $n: no test matches '$tests'" >&2; exit 1; }
  # The program only where a named test runs it (the integration label).
  if (cd "$build" && ctest -R "$tests" -L integration -N | grep -q "Test *#"); then
    targets="$targets hubsync_tool"
  fi
  if ! cmake --build "$build" -j "$(nproc)" --target $targets >/dev/null 2>&1; then
    result="caught (does not build)"; caught=$((caught + 1))
  elif (cd "$build" && ctest -R "$tests" -j 2 --timeout 120 >/dev/null 2>&1); then
    result="SURVIVED"; survived=$((survived + 1))
  else
    result="caught"; caught=$((caught + 1))
  fi
  restore
  printf '%-2d %-8s %3ss  %s: %s\n     -> %s\n' "$n" "$result" "$(( $(date +%s) - start ))" \
    "$file" "$old" "$tests"
done < "$list"
cmake --build "$build" -j "$(nproc)" >/dev/null  # back to the real code
echo "mutations: $n, caught $caught, survived $survived"
[ "$survived" -eq 0 ]
