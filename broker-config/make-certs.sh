#!/usr/bin/env bash
# Makes a home's TLS material for the hub broker's LAN listener: a home CA and
# a server certificate for the hub whose broker serves the LAN, valid for the
# host names and addresses clients use to reach it (the client verifies the
# chain and the name).
#
#   broker-config/make-certs.sh OUTDIR NAME_OR_IP...
#
# OUTDIR/ca.crt       the home CA: copy it to every hub; broker.ca_file points at it
# OUTDIR/ca.key       the CA's key (0600): keep it off the hubs once done
# OUTDIR/server.crt   the broker's certificate (names and IPs as subjectAltName)
# OUTDIR/server.key   its key (0600; make it readable by the broker's user)
# Running it again with an existing CA reuses the CA and makes a new server
# certificate (e.g. for a new address).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OUTDIR NAME_OR_IP..." >&2; exit 2; }
out=$1; shift
mkdir -p "$out"
umask 077
san=""
for n in "$@"; do
  if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san+="${san:+,}IP:$n"; else san+="${san:+,}DNS:$n"; fi
done
if [ ! -s "$out/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=hubsync home CA" -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
fi
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
  -keyout "$out/server.key" -out "$out/server.csr" 2>/dev/null
openssl x509 -req -in "$out/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
  -days 3650 -out "$out/server.crt" \
  -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$san") \
  2>/dev/null
rm -f "$out/server.csr" "$out/ca.srl"
chmod 0644 "$out/ca.crt" "$out/server.crt"
echo "wrote $out/ca.crt, $out/server.crt and $out/server.key for $san" >&2
