#!/usr/bin/env bash
# Creates the broker's password file and ACL for a home, and one password
# file per gateway (mode 0600) for its config's broker.password_file.
#
#   broker-config/make-passwords.sh OUTDIR PRIMARY_ID [BACKUP_ID...] [--reader ID] [--admin ID]
#
# OUTDIR/passwd        mosquitto_passwd file (hashed passwords)
# OUTDIR/acl           broker-config/acl plus the primary's (and readers') lines
# OUTDIR/oob.acl       broker-config/oob.acl plus a block per gateway account
# OUTDIR/<id>.pass     the plain password of each gateway, 0600
# --reader ID          an account that may only read status and events
#                      (for `hubsync status`, dashboards, Home Assistant)
# --admin ID           an account for the hub software: reads status and
#                      events, and publishes retained sync policies
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 OUTDIR PRIMARY_ID [BACKUP_ID...] [--reader ID] [--admin ID]" >&2; exit 2; }
out=$1; primary=$2; shift 2
backups=(); readers=(); admins=()
while [ $# -gt 0 ]; do
  case $1 in
    --reader) readers+=("${2:?--reader needs an id}"); shift 2 ;;
    --admin) admins+=("${2:?--admin needs an id}"); shift 2 ;;
    *) backups+=("$1"); shift ;;
  esac
done
valid() { [[ "$1" =~ ^[A-Za-z0-9_-]{1,64}$ ]]; }
for id in "$primary" "${backups[@]}" "${readers[@]}" "${admins[@]}"; do
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
{
  cat "$here/acl"
  gateway_lines "$primary"
  printf 'topic read hubsync/v1/+/gw/+/status\n'
  printf 'topic read hubsync/v1/+/gw/+/manifest/res\n'
  printf 'topic read hubsync/v1/+/gw/+/ack\n'
  printf 'topic write hubsync/v1/+/gw/+/manifest/req\n'
  printf 'topic write hubsync/v1/+/gw/+/delta\n'
  printf 'topic read hubsync/v1/+/policy/#\n'
  printf 'topic write homeassistant/#\n'
  printf 'topic read homeassistant/status\n'
  for b in "${backups[@]}"; do
    gateway_lines "$b"
    printf 'topic read hubsync/v1/+/gw/%s/manifest/req\n' "$b"
    printf 'topic read hubsync/v1/+/gw/%s/delta\n' "$b"
    printf 'topic write hubsync/v1/+/gw/%s/manifest/res\n' "$b"
    printf 'topic write hubsync/v1/+/gw/%s/ack\n' "$b"
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
