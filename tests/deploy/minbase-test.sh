#!/usr/bin/env bash
# The README's two commands on a clean Debian 12: a debootstrapped minbase
# root (nothing but essential packages and apt), the repository's tracked
# files copied in, and inside it (systemd-nspawn):
#   1. bash tests/demo.sh: installs what it needs, builds, runs a whole home;
#   2. bash tests/run-all.sh's first steps: installs everything the tests
#      need and configures the whole tree with its tests (every dependency
#      found). With HUBSYNC_MINBASE_FULL=1 it runs run-all.sh itself, every
#      test (about 8 minutes on 2 cores; too long for each CI run).
#
#   bash tests/deploy/minbase-test.sh      (as root; exit 77: cannot run here)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/deploy/lib.sh
source "$repo/tests/deploy/lib.sh"
need_root_and_tools systemd-nspawn git
minbase=$(bash "$repo/tests/deploy/rootfs.sh")

work=$(mktemp -d /tmp/hubsync-minbase.XXXXXX)
teardown() {
  local rc=$?
  mountpoint -q "$work/root" && umount "$work/root"
  rm -rf "$work"
  exit $rc
}
trap teardown EXIT
overlay_root "$minbase" "$work"
copy_tree "$work/root/src"
mkdir -p "$cache/apt-archives/partial"
in_root() {  # command: runs it in /src of the minbase root, output to $work/LOG
  systemd-nspawn -q --register=no --keep-unit -D "$work/root" --chdir=/src --setenv=HUBSYNC_IN_MINBASE=1 \
    --bind="$cache/apt-archives:/var/cache/apt/archives" bash -c "$1"
}

t0=$SECONDS
in_root 'bash tests/demo.sh' >"$work/demo.log" 2>&1 || { tail -40 "$work/demo.log" >&2; fail "tests/demo.sh"; }
grep -q "both backups match the primary" "$work/demo.log" || { tail -40 "$work/demo.log" >&2; fail "the demo's home did not converge"; }
step "tests/demo.sh on minbase: $((SECONDS - t0)) s (installs, builds, the home converges)"
grep -E "^install-deps: installing" "$work/demo.log" | sed 's/^/    /'

t1=$SECONDS
if [ "${HUBSYNC_MINBASE_FULL:-0}" = 1 ]; then
  in_root 'bash tests/run-all.sh' >"$work/run-all.log" 2>&1 || { tail -60 "$work/run-all.log" >&2; fail "tests/run-all.sh"; }
  grep -E "tests passed|Total Test time" "$work/run-all.log" | sed 's/^/    /'
  step "tests/run-all.sh on minbase: $((SECONDS - t1)) s"
else
  in_root 'bash docker/install-deps.sh && bash docker/install-deps.sh --runtime &&
           cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo' >"$work/run-all.log" 2>&1 ||
    { tail -40 "$work/run-all.log" >&2; fail "run-all.sh's install and configure"; }
  step "run-all.sh's install and configure (tests included) on minbase: $((SECONDS - t1)) s"
fi
