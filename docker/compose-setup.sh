#!/usr/bin/env bash
# One-shot setup for docker/compose.yaml (service "setup"): writes each hub's
# broker configuration (the shipped broker-config/hub.conf, passwords, ACL,
# TLS certificates)
# and each hubsync config into /etc/hubsync, and sample data for the primary
# if its data directory is empty. Safe to run again: keeps what exists.
set -euo pipefail
# (Overridable so the compose test can run this script outside a container.)
share=${HUBSYNC_SHARE:-/opt/hubsync/share/hubsync}
etc=${HUBSYNC_ETC:-/etc/hubsync}
primary=hub-living-room
backups=(hub-kitchen hub-bedroom)

broker() {  # hub gateway-ids...
  local hub=$1; shift
  local dir="$etc/broker-$hub"
  [ -e "$dir/passwd" ] && return 0
  bash "$share/broker-config/make-passwords.sh" "$dir" "$@" --reader home-assistant --admin hub-software
  # TLS for the LAN listener: the name other hubs' containers dial.
  bash "$share/broker-config/make-certs.sh" "$dir" "broker-$hub" localhost 127.0.0.1
  sed -e "s|/etc/hubsync/broker/|/etc/hubsync/broker-$hub/|" "$share/broker-config/hub.conf" > "$dir/mosquitto.conf"
}
broker "$primary" "$primary" "${backups[@]}"
for b in "${backups[@]}"; do broker "$b" "$b"; done

gateway() {  # id backups-json
  local f="$etc/$1.json"
  [ -e "$f" ] && return 0
  cat > "$f" <<JSON
{ "home": "home-1", "gateway_id": "$1",
  "broker": { "uri": "ssl://broker-$primary:8883", "username": "$1",
              "password_file": "/etc/hubsync/broker-$primary/$1.pass",
              "ca_file": "/etc/hubsync/broker-$primary/ca.crt" },
  "oob": { "uri": "tcp://127.0.0.1:1884", "username": "$1",
           "password_file": "/etc/hubsync/broker-$1/$1.pass" },
  "data_dir": "/var/lib/hub/data", "state_dir": "/var/lib/hubsync",
  "exclude": ["cache/**", "**/*.tmp"], "backups": $2,
  "homeassistant": { "discovery": true } }
JSON
}
bridge() {  # file gateway-id link-json
  [ -e "$etc/$1.json" ] && return 0
  cat > "$etc/$1.json" <<JSON
{ "home": "home-1", "gateway_id": "$2", "broker": { "uri": "tcp://127.0.0.1:1883" },
  "oob": { "uri": "tcp://127.0.0.1:1884", "username": "$2",
           "password_file": "/etc/hubsync/broker-$2/$2.pass" },
  "data_dir": "/tmp", "state_dir": "/tmp/bridge-state", "bridge": $3 }
JSON
}
gateway "$primary" '["hub-kitchen","hub-bedroom"]'
for b in "${backups[@]}"; do
  gateway "$b" '[]'
  # The BLE link between the two hubs' bridges: an AF_UNIX socket on a shared
  # volume here; on hubs, l2cap:BDADDR/PSM.
  bridge "bridge-$primary-$b" "$primary" "{\"link\":\"unix:/run/ble/$b.sock\",\"listen\":true,\"backup\":\"$b\"}"
  bridge "bridge-$b" "$b" "{\"link\":\"unix:/run/ble/$b.sock\",\"listen\":false}"
done
chmod -R go-w "$etc"

data=${HUBSYNC_SAMPLE_DATA:-/srv/primary-data}
if [ -d "$data" ] && [ -z "$(ls -A "$data")" ]; then
  mkdir -p "$data/devices" "$data/scenes" "$data/users" "$data/db"
  echo '{"id":"lamp-1","on":false}' > "$data/devices/lamp-1.json"
  echo '{"name":"evening","actions":[{"device":"lamp-1","on":true}]}' > "$data/scenes/evening.json"
  echo '{"name":"alice","role":"owner"}' > "$data/users/alice.json"
  head -c 1048576 /dev/urandom > "$data/db/hub.sqlite"
fi
echo "compose setup: configuration in $etc"
