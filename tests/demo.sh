#!/usr/bin/env bash
# The README's first command: installs what is missing, builds hubsync, and
# runs a whole home on this machine: a Mosquitto broker on loopback (config
# from broker-config/), a primary and two backups over temporary directories
# holding sample hub data. It makes a few changes on the primary, shows the
# backups converging and what `mosquitto_sub -v -t 'hubsync/#'` saw, then a
# failover (the primary killed, a backup promoted, the old primary fenced
# when it returns), and cleans up after itself. With --keep, the home keeps running until Ctrl-C,
# with the commands to watch and drive it printed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bash docker/install-deps.sh --build
bash docker/install-deps.sh --runtime
echo "== building hubsync"
# Its own build directory: the program alone, no test dependencies needed.
cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DHUBSYNC_BUILD_TESTS=OFF -DHUBSYNC_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build-demo -j "$(nproc)" --target hubsync_tool >/dev/null
H="$repo/build-demo/hubsync"

work=$(mktemp -d /tmp/hubsync-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
  local p=$1
  while (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || [[ " ${used_ports:-} " == *" $p "* ]]; do
    p=$((p + 1))
  done
  used_ports="${used_ports:-} $p"
  echo "$p"
}
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# Every hub runs the shipped broker-config/hub.conf: a LAN listener with
# passwords and the per-gateway ACL, and a loopback-only OOB listener.
start_hub_broker() {  # name lan-port oob-port primary-id [backup-ids...]
  local name=$1 lan=$2 oob=$3; shift 3
  local dir="$work/broker-$name"
  bash broker-config/make-passwords.sh "$dir" "$@" --reader hub-viewer --admin hub-software 2>/dev/null
  # The demo's wire watcher: what the primary may read, under an account of
  # its own (client ids are bound to accounts: the primary's own would take
  # the primary's session).
  mosquitto_passwd -b "$dir/passwd" demo-wire demo-wire-pw
  printf '\nuser demo-wire\ntopic read hubsync/v1/+/gw/+/status\ntopic read hubsync/v1/+/gw/+/manifest/res\ntopic read hubsync/v1/+/gw/+/ack\n' >> "$dir/acl"
  # TLS on the LAN listener: a home CA and this broker's certificate.
  bash broker-config/make-certs.sh "$dir" 127.0.0.1 localhost 2>/dev/null
  sed -e "s|^listener 8883\$|listener $lan 127.0.0.1|" \
      -e "s|^listener 1883 127.0.0.1|listener $(free_port 18870) 127.0.0.1|" \
      -e "s|^listener 1884 127.0.0.1|listener $oob 127.0.0.1|" \
      -e "s|/etc/hubsync/broker/|$dir/|" broker-config/hub.conf > "$dir/mosquitto.conf"
  echo "user $(id -un)" >> "$dir/mosquitto.conf"
  mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
  pids+=($!)
  wait_port "$lan" && wait_port "$oob"
}

port=$(free_port 18830); oob_p=$(free_port 18840)
# hub-kitchen may take over if the living room's hub fails (--standby).
start_hub_broker living-room "$port" "$oob_p" hub-living-room hub-bedroom --standby hub-kitchen
declare -A oob_port
for b in hub-kitchen hub-bedroom; do
  oob_port[$b]=$(free_port 18850)
  start_hub_broker "$b" "$(free_port 18860)" "${oob_port[$b]}" "$b"
done
pass_dir="$work/broker-living-room"
echo "== hub broker (broker-config/hub.conf: TLS, passwords, per-account ACL) on 127.0.0.1:$port, OOB listeners on loopback"

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

oob_pass() {  # gateway-id: its account's password file on its own hub's OOB listener
  if [ "$1" = hub-living-room ]; then echo "$work/broker-living-room/$1.pass"
  else echo "$work/broker-$1/$1.pass"; fi
}
config() {  # id backups-json oob-port
  cat <<JSON
{ "home": "demo-home", "gateway_id": "$1",
  "broker": { "uri": "ssl://127.0.0.1:$port", "username": "$1",
              "password_file": "$pass_dir/$1.pass", "ca_file": "$pass_dir/ca.crt" },
  "oob": { "uri": "tcp://127.0.0.1:$3", "username": "$1", "password_file": "$(oob_pass "$1")" },
  "data_dir": "$work/$1/data", "state_dir": "$work/$1/state",
  "exclude": ["cache/**", "**/*.tmp"], "backups": $2,
  "policy": { "on_change": true, "delay_ms": 0, "period_s": 3600 } }
JSON
}
bridge_config() {  # gateway-id oob-port dir bridge-json (a bridge talks only to its OOB broker)
  cat <<JSON
{ "home": "demo-home", "gateway_id": "$1", "broker": { "uri": "tcp://127.0.0.1:$port" },
  "oob": { "uri": "tcp://127.0.0.1:$2", "username": "$1", "password_file": "$(oob_pass "$1")" },
  "data_dir": "$work/$3/data", "state_dir": "$work/$3/state", "bridge": $4 }
JSON
}
config hub-living-room '["hub-kitchen","hub-bedroom"]' "$oob_p" > "$work/hub-living-room.json"
# hub-kitchen lists whom it would serve if promoted.
declare -A standby_of=([hub-kitchen]='["hub-bedroom","hub-living-room"]' [hub-bedroom]='[]')
for b in hub-kitchen hub-bedroom; do
  mkdir -p "$work/$b/data"
  config "$b" "${standby_of[$b]}" "${oob_port[$b]}" > "$work/$b.json"
  # The BLE link between the two hubs' bridges; an AF_UNIX SEQPACKET socket
  # stands in for the L2CAP channel on a machine without Bluetooth.
  link="unix:$work/ble-$b.sock"
  mkdir -p "$work/bridge-p-$b/data" "$work/bridge-$b/data"
  bridge_config hub-living-room "$oob_p" "bridge-p-$b" \
    "{\"link\":\"$link\",\"listen\":true,\"backup\":\"$b\"}" > "$work/bridge-p-$b.json"
  bridge_config "$b" "${oob_port[$b]}" "bridge-$b" \
    "{\"link\":\"$link\",\"listen\":false}" > "$work/bridge-$b.json"
  "$H" bridge -c "$work/bridge-p-$b.json" 2>"$work/bridge-p-$b.log" & pids+=($!)
  "$H" bridge -c "$work/bridge-$b.json" 2>"$work/bridge-$b.log" & pids+=($!)
done
# hub-kitchen, the standby, has its own BLE link with hub-bedroom: their
# standby key is agreed like any key (SPEC 11).
link="unix:$work/ble-kitchen-hub-bedroom.sock"
mkdir -p "$work/bridge-k-hub-bedroom/data" "$work/bridge-hub-bedroom-k/data"
bridge_config hub-kitchen "${oob_port[hub-kitchen]}" bridge-k-hub-bedroom \
  "{\"link\":\"$link\",\"listen\":true,\"backup\":\"hub-bedroom\"}" > "$work/bridge-k-hub-bedroom.json"
bridge_config hub-bedroom "${oob_port[hub-bedroom]}" bridge-hub-bedroom-k \
  "{\"link\":\"$link\",\"listen\":false}" > "$work/bridge-hub-bedroom-k.json"
"$H" bridge -c "$work/bridge-k-hub-bedroom.json" 2>"$work/bridge-k-hub-bedroom.log" & pids+=($!)
"$H" bridge -c "$work/bridge-hub-bedroom-k.json" 2>"$work/bridge-hub-bedroom-k.log" & pids+=($!)
echo "== BLE bridges up: living room-kitchen, living room-bedroom, kitchen-bedroom; no key exists anywhere yet"

# What an account on the broker sees: the primary's read rights (answers,
# acks, status) with sizes only; a read-only account for status and events in full.
viewer=(-h 127.0.0.1 -p "$port" --cafile "$pass_dir/ca.crt" -u hub-viewer -P "$(cat "$pass_dir/hub-viewer.pass")")
primary_acct=(-h 127.0.0.1 -p "$port" --cafile "$pass_dir/ca.crt" -u demo-wire -P demo-wire-pw)
mosquitto_sub "${primary_acct[@]}" -v -t 'hubsync/#' -F '%t (%l bytes)' > "$work/wire.log" &
pids+=($!)
mosquitto_sub "${viewer[@]}" -v -t 'hubsync/+/+/events' -t 'hubsync/+/+/gw/+/status' \
  > "$work/json.log" &
pids+=($!)

"$H" backup -c "$work/hub-kitchen.json" 2>"$work/hub-kitchen.log" & pids+=($!)
"$H" backup -c "$work/hub-bedroom.json" 2>"$work/hub-bedroom.log" & pids+=($!)
"$H" primary -c "$work/hub-living-room.json" 2>"$work/hub-living-room.log" & pids+=($!)
primary_pid=$!

same() {  # the replicated view of two data dirs is identical
  diff -r --exclude=.hubsync --exclude=cache --exclude='*.tmp' --exclude='*.journal' "$work/${2:-hub-living-room}/data" "$work/$1/data" >/dev/null 2>&1
}
wait_converged() {  # [primary backup backup]
  local t0=$(date +%s%N) p=${1:-hub-living-room} b1=${2:-hub-kitchen} b2=${3:-hub-bedroom}
  for _ in $(seq 600); do
    if same "$b1" "$p" && same "$b2" "$p"; then
      echo "   both backups match the primary after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
      return 0
    fi
    sleep 0.05
  done
  echo "!! backups did not converge; logs:" >&2
  tail -n 20 "$work"/*.log >&2
  return 1
}

echo "== pairing over the bridges (X25519 + HKDF), then the initial sync of $(find "$d" -type f | wc -l) files ($(du -sh "$d" | cut -f1))"
wait_converged
grep -hE "paired with|paired: key epoch" "$work"/hub-*.log | sed 's/^[^ ]* /   /'
for b in hub-kitchen hub-bedroom; do
  cmp -s "$work/hub-living-room/state/keys/$b.key" "$work/$b/state/keys/$b.key" \
    && echo "   $b: both hubs derived the same key; it never crossed the LAN"
done

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

echo "== hub software sets a retained policy: the database syncs 1.5 s after its last write, and *.journal files stay local"
admin=(-h 127.0.0.1 -p "$port" --cafile "$pass_dir/ca.crt" -u hub-software -P "$(cat "$pass_dir/hub-software.pass")")
echo "   mosquitto_pub -r -t hubsync/v1/demo-home/policy/db -m '{\"paths\":[\"db/**\"],\"delay_ms\":1500,\"exclude\":[\"**/*.journal\"]}'"
mosquitto_pub "${admin[@]}" -r -t hubsync/v1/demo-home/policy/db \
  -m '{"paths":["db/**"],"delay_ms":1500,"exclude":["**/*.journal"]}'
for _ in $(seq 100); do grep -q '"type":"policy"' "$work/json.log" && break; sleep 0.05; done
grep -h '"type":"policy"' "$work/json.log" | tail -n 1 | sed 's/^/   /'
wait_converged >/dev/null  # the check the new exclusion started
sleep 0.2
syncs_before=$(grep -c '"type":"sync"' "$work/json.log" || true)
t0=$(date +%s%N)
for i in 1 2 3; do
  dd if=/dev/urandom of="$d/db/hub.sqlite" bs=4K count=1 seek=$((i * 50)) conv=notrunc status=none
  echo "write $i" > "$d/db/hub.sqlite.journal"
  sleep 0.3
done
wait_converged >/dev/null
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
sleep 0.2  # let the last sync events land in the log
syncs=$(( $(grep -c '"type":"sync"' "$work/json.log") - syncs_before ))
echo "   three writes 300 ms apart reached both backups ${ms} ms after the first, in $syncs sync events (2 backups)"
[ ! -e "$work/hub-kitchen/data/db/hub.sqlite.journal" ] && echo "   db/hub.sqlite.journal (excluded by the policy) stayed on the primary"
echo "   an invalid policy is refused with an event, and the previous one stays:"
mosquitto_pub "${admin[@]}" -r -t hubsync/v1/demo-home/policy/db -m '{"paths":["db/**"],"delay_ms":"soon"}'
for _ in $(seq 100); do grep -q '"type":"rejected"' "$work/json.log" && break; sleep 0.05; done
grep -h '"type":"rejected"' "$work/json.log" | tail -n 1 | sed 's/^/   /'

sleep 0.3
echo
echo "== hubsync status"
"$H" status -c "$work/hub-living-room.json" --set broker.username=hub-viewer \
  --set broker.password_file="$pass_dir/hub-viewer.pass" | sed 's/^/   /' || true
echo
echo "== the ACL at work: hub-kitchen's account tries to read hub-bedroom's deltas (gets nothing)"
kitchen=(-h 127.0.0.1 -p "$port" --cafile "$pass_dir/ca.crt" -u hub-kitchen -P "$(cat "$pass_dir/hub-kitchen.pass")")
timeout 2 mosquitto_sub "${kitchen[@]}" -t 'hubsync/demo-home/gw/hub-bedroom/delta' -C 1 -W 1 \
  >/dev/null 2>&1 && echo "   !! received something" || echo "   nothing received"
echo '{"checked":1}' > "$d/after-acl-check.json"
wait_converged >/dev/null

echo
echo "== what mosquitto_sub -v -t 'hubsync/#' saw with the primary's read rights (manifest and ack payloads are AES-256-GCM; the ACL shows it no delta)"
sed 's/^/   /' "$work/wire.log" | awk '{c[$0]++} END {for (l in c) printf "%5dx %s\n", c[l], l}' | sort -k2 | head -n 30
echo
echo "== status and events, as the read-only account sees them (no file names, no content, no keys)"
tail -n 8 "$work/json.log" | cut -c1-220 | sed 's/^/   /'
echo
echo "== failover: hub-kitchen may take over, so it holds a standby key with each hub it would serve."
echo "   hub-bedroom agrees one over its bridge with hub-kitchen: hubsync pair answers from both hubs"
echo "   \$ hubsync pair -c hub-bedroom.json"
"$H" pair -c "$work/hub-bedroom.json" 2>&1 | sed 's/^/   /'
cmp -s "$work/hub-kitchen/state/keys/hub-bedroom.key" "$work/hub-bedroom/state/keys/hub-bedroom.from-hub-kitchen.key" \
  && echo "   hub-kitchen and hub-bedroom derived the same standby key; it never crossed the LAN"
echo "   the living room's hub (the primary, which says no hello) gets one by provisioning:"
echo "   hubsync keygen on hub-kitchen, hubsync keyimport on the living room's hub"
"$H" keygen -c "$work/hub-kitchen.json" --backup hub-living-room --out "$work/kitchen-for-living-room.key" 2>&1 | sed 's/^/   /'
"$H" keyimport -c "$work/hub-living-room.json" "$work/kitchen-for-living-room.key" 2>&1 | sed 's/^/   /'
echo "== the living room's hub fails (kill -9); hub-kitchen is promoted"
kill -9 "$primary_pid"
wait "$primary_pid" 2>/dev/null || true
echo "   \$ hubsync promote -c hub-kitchen.json"
"$H" promote -c "$work/hub-kitchen.json" 2>&1 | sed 's/^/   /'
k="$work/hub-kitchen/data"
echo '{"name":"away","actions":[{"device":"lamp-2","on":false}]}' > "$k/scenes/away.json"
for _ in $(seq 600); do same hub-bedroom hub-kitchen && break; sleep 0.05; done
same hub-bedroom hub-kitchen && echo "   a scene added on hub-kitchen (term 2) reached hub-bedroom"
echo "== the old primary comes back with its old config, holding a change made while it was cut off"
echo '{"id":"lamp-1","on":true,"note":"changed while cut off"}' > "$d/devices/lamp-1.json"
"$H" primary -c "$work/hub-living-room.json" 2>>"$work/hub-living-room.log" & pids+=($!)
wait_converged hub-kitchen hub-living-room hub-bedroom
grep -hE "fenced: |kept aside|now backup" "$work/hub-living-room.log" | sed 's/^[^ ]* /   /'
kept=$(ls -d "$d"/.hubsync/kept/* 2>/dev/null | head -n 1)
grep -q "changed while cut off" "$kept/devices/lamp-1.json" && \
  echo "   its change is kept in data_dir/.hubsync/kept/$(basename "$kept")/, never pushed"
grep -q "changed while cut off" "$k/devices/lamp-1.json" || echo "   hub-kitchen and hub-bedroom never took it"
echo "== hubsync status after the failover (from hub-kitchen's config, read-only account)"
"$H" status -c "$work/hub-kitchen.json" --set broker.username=hub-viewer \
  --set broker.password_file="$pass_dir/hub-viewer.pass" | sed 's/^/   /' || true
echo

if [ "${1:-}" = "--keep" ]; then
  cat <<EOT
== the home keeps running for you to try (Ctrl-C stops it and removes $work):
   watch status+events: mosquitto_sub -h 127.0.0.1 -p $port --cafile $pass_dir/ca.crt -u hub-viewer -P $(cat "$pass_dir/hub-viewer.pass") -v -t 'hubsync/#'
   set a policy:      mosquitto_pub -h 127.0.0.1 -p $port --cafile $pass_dir/ca.crt -u hub-software -P $(cat "$pass_dir/hub-software.pass") -r \\
                        -t hubsync/v1/demo-home/policy/scenes -m '{"paths":["scenes/**"],"delay_ms":3000}'
   status:            $H status -c $work/hub-kitchen.json --set broker.username=hub-viewer --set broker.password_file=$pass_dir/hub-viewer.pass --watch
   change data:       echo '{"on":true}' > $k/devices/lamp-1.json   (hub-kitchen is the primary now)
EOT
  sleep infinity & pids+=($!)
  wait "$!" || true
fi
echo "== done; stopping the daemons and removing $work"
