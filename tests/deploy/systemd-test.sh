#!/usr/bin/env bash
# The systemd units as shipped, on two booted machines (systemd-nspawn --boot
# on a debootstrapped Debian 12 with systemd): a primary hub running Mosquitto
# on the shipped hub.conf, and a backup hub with its own broker for the
# out-of-band topic. hubsync is installed from BUILD_DIR (cmake --install);
# the `hubsync` and `hubsync-bridge` users come from the shipped sysusers.d
# file at boot. The backup pairs with the primary through two
# hubsync-bridge@ units over an AF_UNIX link both machines share (no key is
# provisioned by hand), converges, follows a change and a reload; a bad
# config exits 2 and is not restarted; the recover unit runs before the
# backup; `systemd-analyze security` exposure is reported.
#
#   bash tests/deploy/systemd-test.sh BUILD_DIR      (as root; exit 77: cannot run here)
#
# The machines share the host's network namespace (their brokers listen on
# free loopback ports), each on an overlay above a cached root.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: systemd-test.sh BUILD_DIR}" && pwd)
# shellcheck source=tests/deploy/lib.sh
source "$repo/tests/deploy/lib.sh"
need_root_and_tools systemd-nspawn nsenter
[ -x "$build/hubsync" ] || fail "no $build/hubsync: build it first"
minbase=$(bash "$repo/tests/deploy/rootfs.sh")
t0=$SECONDS

# A hub's base: minbase plus systemd and what the installed program needs to
# run (install-deps.sh --runtime), kept as an overlay layer keyed by the
# install script.
key=$(cat "$repo/docker/install-deps.sh" | sha256sum | cut -c1-12)
hubbase=$cache/hub-base-$key
if [ ! -e "$hubbase/.complete" ]; then
  step "hub base: systemd and the runtime packages on the minbase root (once)"
  rm -rf "$cache"/hub-base-* && mkdir -p "$hubbase" "$cache/apt-archives/partial"
  tmp=$(mktemp -d /tmp/hubsync-hubbase.XXXXXX)
  mkdir -p "$tmp/work" "$tmp/root" "$hubbase/layer"
  mount -t overlay overlay -o "lowerdir=$minbase,upperdir=$hubbase/layer,workdir=$tmp/work" "$tmp/root"
  cp "$repo/docker/install-deps.sh" "$tmp/root/root/install-deps.sh"
  systemd-nspawn -q --register=no --keep-unit -D "$tmp/root" \
    --bind="$cache/apt-archives:/var/cache/apt/archives" bash -c '
      set -e
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends systemd systemd-sysv dbus >/dev/null
      bash /root/install-deps.sh --runtime
      rm -f /root/install-deps.sh' >"$tmp/log" 2>&1 || { tail -20 "$tmp/log" >&2; umount "$tmp/root"; fail "hub base"; }
  umount "$tmp/root" && rm -rf "$tmp"
  touch "$hubbase/.complete"
fi

work=$(mktemp -d /tmp/hubsync-systemd.XXXXXX)
declare -A nspawn_pid leader
# Powers both machines off (SIGTERM makes systemd-nspawn send its init
# SIGRTMIN+3); one still up after 15 s has its init killed, which ends every
# process of the machine. Returns non-zero if a machine had to be killed.
stop_machines() {
  local m clean=0
  for m in "${!nspawn_pid[@]}"; do kill -TERM "${nspawn_pid[$m]}" 2>/dev/null || true; done
  for m in "${!nspawn_pid[@]}"; do
    for _ in $(seq 150); do kill -0 "${nspawn_pid[$m]}" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "${leader[$m]:-0}" 2>/dev/null; then
      kill -9 "${leader[$m]}" 2>/dev/null || true
      clean=1
    fi
    wait "${nspawn_pid[$m]}" 2>/dev/null || true
    unset "nspawn_pid[$m]"
  done
  return $clean
}
teardown() {
  local rc=$? m
  for m in "${!nspawn_pid[@]}"; do
    if [ $rc -ne 0 ]; then
      echo "--- journal of $m" >&2
      in_machine "$m" journalctl -q --no-pager -n 40 -u 'hubsync*' -u mosquitto >&2 2>/dev/null || true
    fi
  done
  stop_machines || true
  for m in primary backup; do
    mountpoint -q "$work/$m/root" && { umount "$work/$m/root" || umount -l "$work/$m/root"; }
  done
  rm -rf "$work"
  exit $rc
}
trap teardown EXIT
in_machine() {  # name command...: runs command inside the booted machine
  local m=$1
  shift
  nsenter --target "${leader[$m]}" --mount --uts --ipc --pid -- "$@"
}

# Both machines: the cached base, then hubsync installed from the build.
for m in primary backup; do
  mkdir -p "$work/$m"
  mkdir -p "$work/$m/upper" "$work/$m/work" "$work/$m/root"
  mount -t overlay overlay \
    -o "lowerdir=$hubbase/layer:$minbase,upperdir=$work/$m/upper,workdir=$work/$m/work" "$work/$m/root"
  DESTDIR=$work/$m/root cmake --install "$build" >/dev/null
  echo "hub-$m" >"$work/$m/root/etc/hostname"
done
mkdir -p "$work/link"  # the two bridges' AF_UNIX link, in both machines at /run/ble

boot() {  # name
  local m=$1
  systemd-nspawn --boot --register=no --keep-unit -M "hub-$m" -D "$work/$m/root" \
    --bind="$work/link:/run/ble" >"$work/$m.console" 2>&1 &
  nspawn_pid[$m]=$!
  # The machine's PID 1 is systemd-nspawn's child.
  wait_for 20 "hub-$m's init" sh -c "pgrep -P ${nspawn_pid[$m]} >/dev/null || { cat '$work/$m.console'; false; }"
  leader[$m]=$(pgrep -P "${nspawn_pid[$m]}" | head -1)
  # (Up is "running", or "degraded" when a unit of the base system failed:
  # those are listed, and the test goes on; ours are checked one by one.)
  wait_for 60 "hub-$m booted" sh -c \
    "nsenter --target ${leader[$m]} --mount --pid -- systemctl is-system-running --wait | grep -qE '^(running|degraded)'"
  local failed
  failed=$(in_machine "$m" systemctl list-units --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')
  [ -z "$failed" ] || step "hub-$m: units of the base system failed at boot: $failed"
}
tb=$SECONDS
boot primary
boot backup
step "both machines booted in $((SECONDS - tb)) s"
for m in primary backup; do
  in_machine "$m" id hubsync >/dev/null || fail "hub-$m: no hubsync user (sysusers.d)"
  in_machine "$m" id hubsync-bridge >/dev/null || fail "hub-$m: no hubsync-bridge user (sysusers.d)"
done
step "users hubsync and hubsync-bridge made by the shipped sysusers.d file"

# Ports: the machines share the host's loopback.
lan=$(free_port 28830); local_p=$(free_port $((lan + 1))); oob=$(free_port $((local_p + 1)))
b_lan=$(free_port $((oob + 1))); b_local=$(free_port $((b_lan + 1))); b_oob=$(free_port $((b_local + 1)))
home=home-ci
share=/usr/local/share/hubsync

# What an operator does on each hub, per the README: the broker's accounts,
# ACL and certificate; hub.conf into Mosquitto's conf.d; the configs.
hub_broker() {  # "make-passwords arguments" lan-port local-port oob-port
  cat <<EOF
set -euo pipefail
b=/etc/hubsync/broker
bash $share/broker-config/make-passwords.sh \$b $1 2>/dev/null
bash $share/broker-config/make-certs.sh \$b 127.0.0.1 localhost 2>/dev/null
chgrp mosquitto \$b/passwd \$b/acl \$b/oob.acl \$b/server.key && chmod g+r \$b/passwd \$b/acl \$b/oob.acl \$b/server.key
sed -e "s/^listener 8883\\\$/listener $2 127.0.0.1/" -e "s/^listener 1883 /listener $3 /" \
    -e "s/^listener 1884 /listener $4 /" $share/broker-config/hub.conf > /etc/mosquitto/conf.d/hubsync.conf
systemctl restart mosquitto
install -d -o hubsync -g hubsync -m 0700 /var/lib/hub /var/lib/hub/data
EOF
}
{ hub_broker "hub-primary hub-backup --reader hub-status" "$lan" "$local_p" "$oob"; cat <<EOF
mkdir -p /var/lib/hub/data/devices /var/lib/hub/data/db
echo '{"id":"lamp-1","on":false}' > /var/lib/hub/data/devices/lamp-1.json
head -c 1048576 /dev/urandom > /var/lib/hub/data/db/hub.sqlite
chown -R hubsync:hubsync /var/lib/hub/data
install -o hubsync -g hubsync -m 0600 \$b/hub-primary.pass /etc/hubsync/lan.pass
install -o hubsync -g hubsync -m 0600 \$b/ca.crt /etc/hubsync/ca.crt
install -o hubsync -g hubsync -m 0600 \$b/hub-primary.pass /etc/hubsync/oob.pass
install -o root -g hubsync-bridge -m 0640 \$b/hub-primary.pass /etc/hubsync/bridge-oob.pass
cat > /etc/hubsync/hubsync.json <<JSON
{ "home": "$home", "gateway_id": "hub-primary",
  "broker": { "uri": "ssl://127.0.0.1:$lan", "username": "hub-primary",
              "password_file": "/etc/hubsync/lan.pass", "ca_file": "/etc/hubsync/ca.crt" },
  "oob": { "uri": "tcp://127.0.0.1:$oob", "username": "hub-primary", "password_file": "/etc/hubsync/oob.pass" },
  "data_dir": "/var/lib/hub/data", "state_dir": "/var/lib/hubsync", "backups": ["hub-backup"] }
JSON
cat > /etc/hubsync/bridge-backup.json <<JSON
{ "home": "$home", "gateway_id": "hub-primary", "broker": { "uri": "tcp://127.0.0.1:$local_p" },
  "oob": { "uri": "tcp://127.0.0.1:$oob", "username": "hub-primary", "password_file": "/etc/hubsync/bridge-oob.pass" },
  "data_dir": "/tmp", "state_dir": "/tmp/bridge-state",
  "bridge": { "link": "unix:/run/ble/link.sock", "listen": true, "backup": "hub-backup" } }
JSON
install -o root -g hubsync -m 0640 \$b/hub-status.pass /etc/hubsync/status.pass
sed -e 's/"gateway_id": "hub-primary"/"gateway_id": "hub-status"/' \
    -e 's/"username": "hub-primary",\$/"username": "hub-status",/' \
    -e 's|/etc/hubsync/lan.pass|/etc/hubsync/status.pass|' \
    -e 's|"state_dir": "/var/lib/hubsync"|"state_dir": "/tmp/hubsync-status"|' /etc/hubsync/hubsync.json > /etc/hubsync/status.json
chown hubsync:hubsync /etc/hubsync/hubsync.json && chmod 0600 /etc/hubsync/hubsync.json
chgrp hubsync-bridge /etc/hubsync/bridge-backup.json && chmod 0640 /etc/hubsync/bridge-backup.json
EOF
} >"$work/primary/root/root/setup.sh"
{ hub_broker hub-backup "$b_lan" "$b_local" "$b_oob"; cat <<EOF
install -o root -g hubsync -m 0640 \$b/hub-backup.pass /etc/hubsync/oob.pass
install -o root -g hubsync-bridge -m 0640 \$b/hub-backup.pass /etc/hubsync/bridge-oob.pass
EOF
} >"$work/backup/root/root/setup.sh"
for m in primary backup; do
  in_machine "$m" bash /root/setup.sh >"$work/$m.setup.log" 2>&1 || { cat "$work/$m.setup.log" >&2; fail "hub-$m setup"; }
done
# The backup's LAN account is on the primary's broker.
install -m 0600 "$work/primary/root/etc/hubsync/broker/hub-backup.pass" "$work/backup/root/etc/hubsync/lan.pass"
install -m 0644 "$work/primary/root/etc/hubsync/broker/ca.crt" "$work/backup/root/etc/hubsync/ca.crt"
cat >"$work/backup/root/etc/hubsync/hubsync.json" <<EOF
{ "home": "$home", "gateway_id": "hub-backup",
  "broker": { "uri": "ssl://127.0.0.1:$lan", "username": "hub-backup",
              "password_file": "/etc/hubsync/lan.pass", "ca_file": "/etc/hubsync/ca.crt" },
  "oob": { "uri": "tcp://127.0.0.1:$b_oob", "username": "hub-backup", "password_file": "/etc/hubsync/oob.pass" },
  "data_dir": "/var/lib/hub/data", "state_dir": "/var/lib/hubsync" }
EOF
cat >"$work/backup/root/etc/hubsync/bridge-primary.json" <<EOF
{ "home": "$home", "gateway_id": "hub-backup", "broker": { "uri": "tcp://127.0.0.1:$b_local" },
  "oob": { "uri": "tcp://127.0.0.1:$b_oob", "username": "hub-backup", "password_file": "/etc/hubsync/bridge-oob.pass" },
  "data_dir": "/tmp", "state_dir": "/tmp/bridge-state",
  "bridge": { "link": "unix:/run/ble/link.sock", "listen": false } }
EOF
in_machine backup sh -c 'chown hubsync:hubsync /etc/hubsync/lan.pass /etc/hubsync/hubsync.json &&
  chmod 0600 /etc/hubsync/hubsync.json && chgrp hubsync-bridge /etc/hubsync/bridge-primary.json &&
  chmod 0640 /etc/hubsync/bridge-primary.json'
# The AF_UNIX link stands in for L2CAP: the bridges may write where it lives.
for m in primary backup; do
  mkdir -p "$work/$m/root/etc/systemd/system/hubsync-bridge@.service.d"
  printf '[Service]\nReadWritePaths=/run/ble\n' >"$work/$m/root/etc/systemd/system/hubsync-bridge@.service.d/link.conf"
  in_machine "$m" systemctl daemon-reload
done
chmod 0777 "$work/link"

step "starting the units"
ts=$SECONDS
in_machine primary systemctl start hubsync-primary hubsync-bridge@backup
in_machine backup systemctl start hubsync-bridge@primary hubsync-backup
converged() {  # (what it printed last is shown if it never succeeds)
  in_machine primary hubsync status -c /etc/hubsync/status.json &&
    diff -r -x .hubsync "$work/primary/root/var/lib/hub/data" "$work/backup/root/var/lib/hub/data"
}
wait_for 60 "convergence (paired over the bridges, status exits 0, trees equal)" converged
step "paired and converged $((SECONDS - ts)) s after start"
in_machine primary hubsync status -c /etc/hubsync/status.json | sed 's/^/    /'
in_machine backup journalctl -q --no-pager -u hubsync-backup | grep -q "paired: key epoch 1" ||
  fail "the backup's journal does not show the pairing"

# Recover ran before the backup daemon.
rec=$(in_machine backup systemctl show -P ExecMainExitTimestampMonotonic hubsync-recover)
bak=$(in_machine backup systemctl show -P ExecMainStartTimestampMonotonic hubsync-backup)
[ "$rec" -gt 0 ] && [ "$rec" -le "$bak" ] || fail "hubsync-recover (exited at $rec) did not finish before hubsync-backup started ($bak)"
step "hubsync-recover finished before hubsync-backup started"

# Each daemon as the units promise: its user, no capabilities, no new
# privileges, a seccomp filter, a read-only /usr.
for u in primary:hubsync-primary backup:hubsync-backup backup:hubsync-bridge@primary; do
  m=${u%%:*} unit=${u#*:}
  pid=$(in_machine "$m" systemctl show -P MainPID "$unit")
  st=$(in_machine "$m" cat "/proc/$pid/status")
  user=$(in_machine "$m" id -nu "$(awk '/^Uid:/ {print $2}' <<<"$st")")
  case $unit in *bridge*) want=hubsync-bridge ;; *) want=hubsync ;; esac
  [ "$user" = "$want" ] || fail "$unit runs as $user"
  grep -q "^CapEff:[[:space:]]*0*$" <<<"$st" || fail "$unit has capabilities: $(grep CapEff <<<"$st")"
  grep -q "^NoNewPrivs:[[:space:]]*1" <<<"$st" || fail "$unit: NoNewPrivs is not set"
  grep -q "^Seccomp:[[:space:]]*2" <<<"$st" || fail "$unit: no seccomp filter"
  in_machine "$m" nsenter --target "$pid" --mount -- sh -c 'touch /usr/x' 2>/dev/null &&
    fail "$unit can write /usr"
done
step "daemons run as hubsync / hubsync-bridge: no capabilities, NoNewPrivs, seccomp, read-only /usr"

step "a change on the primary"
tc=$SECONDS
in_machine primary sh -c 'echo "{\"id\":\"lamp-2\",\"on\":true}" > /var/lib/hub/data/devices/lamp-2.json && chown hubsync:hubsync /var/lib/hub/data/devices/lamp-2.json'
wait_for 30 "the change on the backup" converged
step "on the backup, status exits 0 ($((SECONDS - tc)) s)"

in_machine primary systemctl reload hubsync-primary
wait_for 10 "the reload's check in the journal" sh -c \
  "nsenter --target ${leader[primary]} --mount --pid -- journalctl -q --no-pager -u hubsync-primary | grep -q 'checking every backup now'"
in_machine primary systemctl is-active -q hubsync-primary || fail "the primary stopped on reload"
step "systemctl reload: the primary checks every backup and keeps running"

# A bad config: exit 2, not restarted.
in_machine backup sh -c 'cp /etc/hubsync/hubsync.json /root/good.json && echo "{ not json" > /etc/hubsync/hubsync.json'
in_machine backup systemctl restart hubsync-backup || true
wait_for 20 "hubsync-backup to fail" sh -c \
  "[ \"\$(nsenter --target ${leader[backup]} --mount --pid -- systemctl show -P ActiveState hubsync-backup)\" = failed ]"
code=$(in_machine backup systemctl show -P ExecMainStatus hubsync-backup)
restarts=$(in_machine backup systemctl show -P NRestarts hubsync-backup)
[ "$code" = 2 ] || fail "a bad config exited $code, not 2"
[ "$restarts" = 0 ] || fail "a bad config was restarted $restarts times"
in_machine backup sh -c 'cp /root/good.json /etc/hubsync/hubsync.json'
in_machine backup systemctl restart hubsync-backup
wait_for 30 "the backup back in sync" converged
step "a bad config: exit 2, failed, not restarted; the good one back: in sync again"

for u in hubsync-primary hubsync-backup hubsync-recover hubsync-bridge@backup; do
  exposure=$(in_machine primary systemd-analyze security --no-pager "$u.service" 2>/dev/null |
    awk '/Overall exposure level/ {print $(NF-2), $(NF-1)}')
  step "systemd-analyze security $u: ${exposure:-?}"
done
stop_machines || fail "a machine did not power off within 15 s"
step "both machines powered off; whole test $((SECONDS - t0)) s"
