#!/usr/bin/env bash
# The installed package works for hub makers: `cmake --install` a build, build
# tests/package (hub firmware embedding the library) against it with
# find_package(hubsync), and sync a primary (the installed `hubsync`) to that
# firmware as a backup over a real Mosquitto on loopback. Also checks the
# installed systemd units.
#
#   bash tests/package/run-package-test.sh BUILD_DIR INSTALL_BINDIR
# (INSTALL_BINDIR: the bin directory the units were configured for.)
set -euo pipefail
build=$(cd "${1:?usage: run-package-test.sh BUILD_DIR INSTALL_BINDIR}" && pwd)
unit_bindir=${2:?usage: run-package-test.sh BUILD_DIR INSTALL_BINDIR}
src=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "package test: $*" >&2; for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done >&2; exit 1; }
# Waits up to $1 seconds for the command that follows to succeed.
wait_until() { local end=$((SECONDS + $1)); shift; until "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done; }

echo "== cmake --install into $work/prefix"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
for f in bin/hubsync lib/libhubsync.a include/hubsync/engine.h lib/cmake/hubsync/hubsyncConfig.cmake \
         share/hubsync/broker-config/hub.conf lib/systemd/system/hubsync-primary.service; do
  [ -e "$work/prefix/$f" ] || fail "not installed: $f"
done

echo "== building hub firmware against the installed package (find_package(hubsync))"
cmake -S "$src" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/consumer-cmake.log" 2>&1 ||
  fail "configure against the package failed"
cmake --build "$work/consumer" >"$work/consumer-build.log" 2>&1 || fail "build against the package failed"

echo "== syncing the installed hubsync primary to the firmware's embedded backup"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 & pids+=($!)
wait_until 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null || fail "mosquitto did not start"
for gw in hub-p hub-fw; do
  mkdir -p "$work/$gw/data"
  backups=$([ $gw = hub-p ] && echo '"hub-fw"' || true)
  cat > "$work/$gw.json" <<JSON
{"home":"pkg","gateway_id":"$gw","broker":{"uri":"tcp://127.0.0.1:$port"},
 "data_dir":"$work/$gw/data","state_dir":"$work/$gw/state","backups":[$backups]}
JSON
done
mkdir -p "$work/hub-p/data/devices" "$work/hub-p/data/scenes"
echo '{"lamp":"on"}' > "$work/hub-p/data/devices/lamp.json"
echo '{"evening":"dim"}' > "$work/hub-p/data/scenes/evening.json"
head -c 300000 /dev/urandom > "$work/hub-p/data/hub.db"
"$work/prefix/bin/hubsync" keygen -c "$work/hub-p.json" --backup hub-fw --out "$work/fw.key" 2>/dev/null
"$work/prefix/bin/hubsync" keyimport -c "$work/hub-fw.json" "$work/fw.key" 2>/dev/null
"$work/consumer/hub_firmware" backup "$work/hub-fw.json" 2>"$work/firmware.log" & pids+=($!)
"$work/prefix/bin/hubsync" primary -c "$work/hub-p.json" 2>"$work/primary.log" & pids+=($!)
wait_until 30 diff -r -x .hubsync "$work/hub-p/data" "$work/hub-fw/data" >/dev/null 2>&1 ||
  fail "the embedded backup did not converge"
echo '{"lamp":"off"}' > "$work/hub-p/data/devices/lamp.json"
wait_until 30 diff -r -x .hubsync "$work/hub-p/data" "$work/hub-fw/data" >/dev/null 2>&1 ||
  fail "a change did not reach the embedded backup"
grep -q "embedding hubsync as backup" "$work/firmware.log" || fail "the firmware did not run"
echo "   converged: $(find "$work/hub-fw/data" -type f | wc -l) files, then one change"

echo "== checking the installed systemd units"
for u in hubsync-primary.service hubsync-recover.service hubsync-backup.service hubsync-bridge@.service; do
  f="$work/prefix/lib/systemd/system/$u"
  grep -q "^ExecStart=$unit_bindir/hubsync " "$f" || fail "$u: ExecStart is not $unit_bindir/hubsync"
  keys="NoNewPrivileges=yes ProtectSystem=strict CapabilityBoundingSet= RestrictAddressFamilies= MemoryMax= TasksMax="
  # A daemon is not restarted after a bad configuration; a oneshot is not restarted at all.
  if grep -q "^Type=oneshot" "$f"; then keys="$keys RemainAfterExit=yes"; else keys="$keys RestartPreventExitStatus=2"; fi
  for key in $keys; do
    grep -q "^$key" "$f" || fail "$u: missing $key"
  done
  if command -v systemd-analyze >/dev/null; then
    cp "$f" "$work/${u/@/@kitchen}"
    # The binary lives under the configured prefix, not this test's.
    out=$(systemd-analyze verify --man=no "$work/${u/@/@kitchen}" 2>&1 |
          grep -v "Command $unit_bindir/hubsync is not executable" || true)
    [ -z "$out" ] || fail "$u: systemd-analyze verify: $out"
  fi
done
# Recovery runs before the backup daemon, which cannot start without it.
grep -q "^Before=hubsync-backup.service" "$work/prefix/lib/systemd/system/hubsync-recover.service" &&
  grep -q "^Requires=hubsync-recover.service" "$work/prefix/lib/systemd/system/hubsync-backup.service" ||
  fail "hubsync-recover.service does not run before the backup daemon"
# The bridge parses radio input: never as the user that owns the keys.
grep -q "^User=hubsync-bridge" "$work/prefix/lib/systemd/system/hubsync-bridge@.service" ||
  fail "the bridge runs as the key owner"
echo "== checking the installed program's hardening"
bin="$work/prefix/bin/hubsync"
[ -x "$bin" ] || bin=$(find "$work/prefix" -name hubsync -type f -perm -u+x | head -n 1)
# (Whole outputs first: grep -q closing the pipe early would fail pipefail.)
dynamic=$(readelf -d "$bin"); segments=$(readelf -l "$bin"); symbols=$(nm -D "$bin")
grep -q "BIND_NOW" <<<"$dynamic" || fail "hubsync is not linked with -z now"
grep -q "PIE" <<<"$dynamic" || fail "hubsync is not a PIE"
grep -q "GNU_RELRO" <<<"$segments" || fail "hubsync has no RELRO segment"
grep -q "__stack_chk_fail" <<<"$symbols" || fail "hubsync is built without a stack protector"
echo "package test: ok"
