#!/usr/bin/env bash
# One-shot setup for docker/compose.yaml (service "setup"): writes each
# volume's share of the home's configuration, so each container sees only its
# own secrets (see compose.yaml):
#   broker-<hub>   the shipped broker-config/hub.conf as mosquitto.conf, the
#                  password database, ACLs and TLS certificate and key
#   etc-<hub>      hubsync.json, the daemon's LAN password (lan.pass), its OOB
#                  password (oob.pass) and the home CA (ca.crt); the primary's
#                  also status.json and status.pass, a reader account for
#                  `hubsync status -c /etc/hubsync/status.json`
#   bridge-<hub>   the bridge configs and the hub's OOB password
# sample data for the primary if its data directory is empty, and hands every
# volume to the unprivileged user the services run as. Safe to run again:
# keeps what exists.
set -euo pipefail
# (Overridable so the compose test can run this script outside a container.)
share=${HUBSYNC_SHARE:-/opt/hubsync/share/hubsync}
vol=${HUBSYNC_VOLUMES:-/vol}
owner=${HUBSYNC_OWNER:-}
primary=hub-living-room
backups=(hub-kitchen hub-bedroom)
short() { echo "${1#hub-}"; }  # hub-kitchen -> kitchen (the volume suffix)

secrets=$(mktemp -d)  # every account's password, never left in a volume whole
trap 'rm -rf "$secrets"' EXIT

broker() {  # hub gateway-ids...
  local hub=$1; shift
  local dir="$vol/broker-$(short "$hub")"
  mkdir -p "$dir"
  if [ ! -e "$dir/passwd" ]; then
    bash "$share/broker-config/make-passwords.sh" "$secrets/$hub" "$@" --reader home-assistant \
      --reader hub-status --admin hub-software
    # TLS for the LAN listener: the name other hubs' containers dial.
    bash "$share/broker-config/make-certs.sh" "$secrets/$hub" "broker-$hub" localhost 127.0.0.1
    cp "$secrets/$hub"/{passwd,acl,oob.acl,ca.crt,server.crt,server.key} "$dir/"
    cp "$share/broker-config/hub.conf" "$dir/mosquitto.conf"
  fi
}

# copy_secret SRC DEST: a password (or the CA) into the one volume that needs it.
copy_secret() {
  [ -e "$2" ] && return 0
  [ -e "$1" ] || { echo "compose setup: $1 is missing (remove the volumes to start over)" >&2; exit 1; }
  install -m 0600 "$1" "$2"
}

broker "$primary" "$primary" "${backups[@]}"
for b in "${backups[@]}"; do broker "$b" "$b"; done

gateway() {  # id backups-json
  local dir="$vol/etc-$(short "$1")"
  mkdir -p "$dir"
  copy_secret "$secrets/$primary/$1.pass" "$dir/lan.pass"
  copy_secret "$secrets/$1/$1.pass" "$dir/oob.pass"
  copy_secret "$secrets/$primary/ca.crt" "$dir/ca.crt"
  [ -e "$dir/hubsync.json" ] && return 0
  cat > "$dir/hubsync.json" <<JSON
{ "home": "home-1", "gateway_id": "$1",
  "broker": { "uri": "ssl://broker-$primary:8883", "username": "$1",
              "password_file": "/etc/hubsync/lan.pass", "ca_file": "/etc/hubsync/ca.crt" },
  "oob": { "uri": "tcp://127.0.0.1:1884", "username": "$1",
           "password_file": "/etc/hubsync/oob.pass" },
  "data_dir": "/var/lib/hub/data", "state_dir": "/var/lib/hubsync",
  "exclude": ["cache/**", "**/*.tmp"], "backups": $2,
  "homeassistant": { "discovery": true } }
JSON
}
bridge() {  # hub file link-json
  local dir="$vol/bridge-$(short "$1")"
  mkdir -p "$dir"
  copy_secret "$secrets/$1/$1.pass" "$dir/oob.pass"
  [ -e "$dir/$2.json" ] && return 0
  cat > "$dir/$2.json" <<JSON
{ "home": "home-1", "gateway_id": "$1", "broker": { "uri": "tcp://127.0.0.1:1883" },
  "oob": { "uri": "tcp://127.0.0.1:1884", "username": "$1",
           "password_file": "/etc/hubsync/oob.pass" },
  "data_dir": "/tmp", "state_dir": "/tmp/bridge-state", "bridge": $3 }
JSON
}
# A rerun finds the passwords in the volumes, not in $secrets: only a first
# run writes them (copy_secret keeps what exists).
if [ -e "$vol/etc-$(short "$primary")/hubsync.json" ]; then
  echo "compose setup: configuration already in $vol"
else
  gateway "$primary" '["hub-kitchen","hub-bedroom"]'
  # `hubsync status` in the primary's container runs as a reader: the broker
  # binds client ids to accounts, so the daemon's own would disconnect it.
  dir="$vol/etc-$(short "$primary")"
  copy_secret "$secrets/$primary/hub-status.pass" "$dir/status.pass"
  cat > "$dir/status.json" <<JSON
{ "home": "home-1", "gateway_id": "hub-status",
  "broker": { "uri": "ssl://broker-$primary:8883", "username": "hub-status",
              "password_file": "/etc/hubsync/status.pass", "ca_file": "/etc/hubsync/ca.crt" },
  "data_dir": "/tmp", "state_dir": "/tmp/hubsync-status",
  "backups": ["hub-kitchen","hub-bedroom"] }
JSON
  for b in "${backups[@]}"; do
    gateway "$b" '[]'
    # The BLE link between the two hubs' bridges: an AF_UNIX socket on the
    # pair's own volume here; on hubs, l2cap:BDADDR/PSM.
    bridge "$primary" "bridge-$b" "{\"link\":\"unix:/run/ble/link.sock\",\"listen\":true,\"backup\":\"$b\"}"
    bridge "$b" "bridge" "{\"link\":\"unix:/run/ble/link.sock\",\"listen\":false}"
    mkdir -p "$vol/link-$(short "$b")"
  done
fi

data="$vol/data-$(short "$primary")"
if [ -d "$data" ] && [ -z "$(ls -A "$data")" ]; then
  mkdir -p "$data/devices" "$data/scenes" "$data/users" "$data/db"
  echo '{"id":"lamp-1","on":false}' > "$data/devices/lamp-1.json"
  echo '{"name":"evening","actions":[{"device":"lamp-1","on":true}]}' > "$data/scenes/evening.json"
  echo '{"name":"alice","role":"owner"}' > "$data/users/alice.json"
  head -c 1048576 /dev/urandom > "$data/db/hub.sqlite"
fi
for d in "$vol"/*/; do
  chmod -R go-rwx "$d"
  [ -n "$owner" ] && chown -R "$owner" "$d"
done
echo "compose setup: configuration in $vol"
