#!/usr/bin/env bash
# The README's first command: installs what is missing, builds hubsync, and
# runs a whole home on this machine: a Mosquitto broker on loopback (config
# from broker-config/), a primary and two backups over temporary directories
# holding sample hub data. It makes a few changes on the primary, shows the
# backups converging and what `mosquitto_sub -v -t 'hubsync/#'` saw, then
# cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bash docker/install-deps.sh
echo "== building hubsync"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target hubsync_tool >/dev/null
H="$repo/build/hubsync"

work=$(mktemp -d /tmp/hubsync-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

port=18830
while (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do port=$((port + 1)); done
sed "s/^listener 1883 127.0.0.1/listener $port 127.0.0.1/" broker-config/mosquitto-dev.conf \
  > "$work/mosquitto.conf"
echo "user $(id -un)" >> "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
echo "== broker on 127.0.0.1:$port"

mkdir -p "$work/hub-living-room/data"
d="$work/hub-living-room/data"
mkdir -p "$d/devices" "$d/scenes" "$d/users" "$d/config" "$d/db" "$d/cache"
for i in $(seq 1 12); do
  printf '{"id":"lamp-%d","type":"lamp","room":"room-%d","on":false}\n' "$i" $((i % 4)) > "$d/devices/lamp-$i.json"
done
echo '{"name":"evening","actions":[{"device":"lamp-1","on":true,"level":40}]}' > "$d/scenes/evening.json"
echo '{"name":"alice","role":"owner"}' > "$d/users/alice.json"
echo '{"timezone":"Europe/Paris","locale":"fr"}' > "$d/config/hub.json"
head -c 4194304 /dev/urandom > "$d/db/hub.sqlite"
echo "thumbnail bytes" > "$d/cache/thumbs.bin"

config() {  # id backups-json
  cat <<JSON
{ "home": "demo-home", "gateway_id": "$1",
  "broker": { "uri": "tcp://127.0.0.1:$port" },
  "data_dir": "$work/$1/data", "state_dir": "$work/$1/state",
  "exclude": ["cache/**", "**/*.tmp"], "backups": $2,
  "policy": { "on_change": true, "delay_ms": 0, "period_s": 3600 } }
JSON
}
config hub-living-room '["hub-kitchen","hub-bedroom"]' > "$work/hub-living-room.json"
for b in hub-kitchen hub-bedroom; do
  mkdir -p "$work/$b/data"
  config "$b" '[]' > "$work/$b.json"
  "$H" keygen -c "$work/hub-living-room.json" --backup "$b" --out "$work/$b.key" 2>/dev/null
  "$H" keyimport -c "$work/$b.json" "$work/$b.key" 2>/dev/null
done
echo "== keys provisioned for hub-kitchen and hub-bedroom (keygen/keyimport)"

# What anyone on the broker sees: topics and sizes; JSON status and events in full.
mosquitto_sub -h 127.0.0.1 -p "$port" -v -t 'hubsync/#' -F '%t (%l bytes)' > "$work/wire.log" &
pids+=($!)
mosquitto_sub -h 127.0.0.1 -p "$port" -v -t 'hubsync/+/+/events' -t 'hubsync/+/+/gw/+/status' \
  > "$work/json.log" &
pids+=($!)

"$H" backup -c "$work/hub-kitchen.json" 2>"$work/hub-kitchen.log" & pids+=($!)
"$H" backup -c "$work/hub-bedroom.json" 2>"$work/hub-bedroom.log" & pids+=($!)
"$H" primary -c "$work/hub-living-room.json" 2>"$work/hub-living-room.log" & pids+=($!)

same() {  # the replicated view of two data dirs is identical
  diff -r --exclude=.hubsync --exclude=cache --exclude='*.tmp' "$work/hub-living-room/data" "$work/$1/data" >/dev/null 2>&1
}
wait_converged() {
  local t0=$(date +%s%N)
  for _ in $(seq 600); do
    if same hub-kitchen && same hub-bedroom; then
      echo "   both backups match the primary after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
      return 0
    fi
    sleep 0.05
  done
  echo "!! backups did not converge; logs:" >&2
  tail -n 20 "$work"/*.log >&2
  return 1
}

echo "== initial sync of $(find "$d" -type f | wc -l) files ($(du -sh "$d" | cut -f1))"
wait_converged

echo "== changing the primary: edit a lamp, add a scene, delete a user, rename a device, write a .tmp"
echo '{"id":"lamp-3","type":"lamp","room":"kitchen","on":true}' > "$d/devices/lamp-3.json"
echo '{"name":"night","actions":[]}' > "$d/scenes/night.json"
rm "$d/users/alice.json"
mv "$d/devices/lamp-12.json" "$d/devices/lamp-twelve.json"
echo scratch > "$d/draft.tmp"
wait_converged
[ ! -e "$work/hub-kitchen/data/draft.tmp" ] && echo "   draft.tmp (excluded) was not replicated"
[ ! -e "$work/hub-kitchen/data/cache" ] && echo "   cache/ (excluded) was not replicated"

echo "== a 64 KiB in-place edit of the 4 MiB database"
dd if=/dev/urandom of="$d/db/hub.sqlite" bs=64K count=1 seek=20 conv=notrunc status=none
wait_converged
grep -h '"type":"sync"' "$work/json.log" | tail -n 2 | sed 's/^/   /'

sleep 0.3
echo
echo "== hubsync status"
"$H" status -c "$work/hub-living-room.json" | sed 's/^/   /' || true
echo
echo "== what mosquitto_sub -v -t 'hubsync/#' saw (delta, manifest and ack payloads are AES-256-GCM)"
sed 's/^/   /' "$work/wire.log" | awk '{c[$0]++} END {for (l in c) printf "%5dx %s\n", c[l], l}' | sort -k2 | head -n 30
echo
echo "== status and events (plaintext JSON: no file names, no content, no keys)"
tail -n 8 "$work/json.log" | cut -c1-220 | sed 's/^/   /'
echo
echo "== done; stopping the daemons and removing $work"
