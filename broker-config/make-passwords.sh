#!/usr/bin/env bash
# Creates the broker's password file and ACL for a home, and one password
# file per gateway (mode 0600) for its config's broker.password_file.
#
#   broker-config/make-passwords.sh OUTDIR PRIMARY_ID [BACKUP_ID...] [--standby ID]...
#                                   [--reader ID]... [--admin ID]...
#
# OUTDIR/passwd        mosquitto_passwd file (hashed passwords)
# OUTDIR/acl           broker-config/acl plus the primary's (and readers') lines
# OUTDIR/oob.acl       broker-config/oob.acl plus a block per gateway account
# OUTDIR/<id>.pass     the plain password of each gateway, 0600
# --reader ID          an account that may only read status and events
#                      (for `hubsync status`, dashboards, Home Assistant)
# --admin ID           an account for the hub software: reads status and
#                      events, publishes retained sync policies, and may ask
#                      a backup to take over (gw/<id>/promote)
# --standby ID         a backup that may take over (SPEC 11, failover): it
#                      also gets the primary's rights, and the primary gets a
#                      backup's rights on its own topics (so that, fenced, it
#                      can follow the new primary)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 OUTDIR PRIMARY_ID [BACKUP_ID...] [--standby ID]... [--reader ID]... [--admin ID]..." >&2; exit 2; }
out=$1; primary=$2; shift 2
backups=(); readers=(); admins=(); standbys=()
while [ $# -gt 0 ]; do
  case $1 in
    --standby) standbys+=("${2:?--standby needs an id}"); backups+=("$2"); shift 2 ;;
    --reader) readers+=("${2:?--reader needs an id}"); shift 2 ;;
    --admin) admins+=("${2:?--admin needs an id}"); shift 2 ;;
    *) backups+=("$1"); shift ;;
  esac
done
valid() { [[ "$1" =~ ^[A-Za-z0-9_-]{1,64}$ ]]; }
for id in "$primary" "${backups[@]}" "${readers[@]}" "${admins[@]}" "${standbys[@]}"; do
  valid "$id" || { echo "$0: '$id' is not a valid gateway id" >&2; exit 2; }
done
mkdir -p "$out"
umask 077
: > "$out/passwd"
for id in "$primary" "${backups[@]}" "${readers[@]}" "${admins[@]}"; do
  pw=$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32)
  printf '%s\n' "$pw" > "$out/$id.pass"
  mosquitto_passwd -b "$out/passwd" "$id" "$pw"
done
gateway_lines() {  # every gateway: its own status, the events, status requests
  printf '\nuser %s\n' "$1"
  printf 'topic readwrite hubsync/v1/+/gw/%s/status\n' "$1"
  printf 'topic write hubsync/v1/+/events\n'
  printf 'topic read hubsync/v1/+/status/ask\n'
}
primary_lines() {  # serving backups: their answers and status in, requests and deltas out
  printf 'topic read hubsync/v1/+/gw/+/status\n'
  printf 'topic read hubsync/v1/+/gw/+/manifest/res\n'
  printf 'topic read hubsync/v1/+/gw/+/ack\n'
  printf 'topic write hubsync/v1/+/gw/+/manifest/req\n'
  printf 'topic write hubsync/v1/+/gw/+/delta\n'
  printf 'topic read hubsync/v1/+/policy/#\n'
  printf 'topic write homeassistant/#\n'
  printf 'topic read homeassistant/status\n'
}
backup_lines() {  # its own requests, deltas and promotion requests in, answers out
  printf 'topic read hubsync/v1/+/gw/%s/manifest/req\n' "$1"
  printf 'topic read hubsync/v1/+/gw/%s/delta\n' "$1"
  printf 'topic read hubsync/v1/+/gw/%s/promote\n' "$1"
  printf 'topic write hubsync/v1/+/gw/%s/manifest/res\n' "$1"
  printf 'topic write hubsync/v1/+/gw/%s/ack\n' "$1"
}
is_standby() { local s; for s in "${standbys[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
{
  cat "$here/acl"
  gateway_lines "$primary"
  primary_lines
  if [ ${#standbys[@]} -gt 0 ]; then backup_lines "$primary"; fi
  for b in "${backups[@]}"; do
    gateway_lines "$b"
    backup_lines "$b"
    if is_standby "$b"; then primary_lines; fi
  done
  for r in "${readers[@]}"; do
    printf '\nuser %s\ntopic read hubsync/v1/+/gw/+/status\ntopic read hubsync/v1/+/events\n' "$r"
    printf 'topic read homeassistant/#\n'
    printf 'topic write homeassistant/status\n'  # Home Assistant's birth message
    printf 'topic write hubsync/v1/+/status/ask\n'  # hubsync status
  done
  for r in "${admins[@]}"; do
    printf '\nuser %s\ntopic read hubsync/v1/+/gw/+/status\ntopic read hubsync/v1/+/events\n' "$r"
    printf 'topic readwrite hubsync/v1/+/policy/#\n'
    printf 'topic write hubsync/v1/+/status/ask\n'
    printf 'topic write hubsync/v1/+/gw/+/promote\n'  # ask a backup to take over
  done
} > "$out/acl"
{
  cat "$here/oob.acl"
  for id in "$primary" "${backups[@]}"; do
    printf '\nuser %s\ntopic readwrite hubsync/v1/+/oob/#\n' "$id"
  done
} > "$out/oob.acl"
chmod 0644 "$out/acl" "$out/oob.acl" "$out/passwd"
echo "wrote $out/passwd, $out/acl, $out/oob.acl and a .pass file per gateway" >&2
