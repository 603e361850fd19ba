#!/usr/bin/env bash
# Installs what hubsync needs on Debian 12 (a minbase system included: see
# tests/deploy/). Used by the README's two commands, by .ci/run and by
# docker/Dockerfile. Installs only what is missing; safe to run again.
#   (no option)  everything: build, run, test, benchmark (tests/run-all.sh)
#   --build      only what building the program and library needs
#   --runtime    only what the installed program needs to run (the Docker
#                image's final stage): its shared libraries and Mosquitto
#   --deploy     what the deployment tests drive: debootstrap, Podman,
#                Compose, systemd-nspawn
set -euo pipefail

BUILD=(
  build-essential cmake pkg-config   # toolchain
  libpaho-mqttpp-dev libpaho-mqtt-dev  # MQTT v5 client (Paho C++ over Paho C)
  libssl-dev                           # Paho's CMake package requires OpenSSL's
  libcrypto++-dev                      # AES-256-GCM, SHA-256, X25519, HKDF
  libzstd-dev                          # compression of what is sealed (JSON trees)
  rapidjson-dev                        # config, status and event JSON
  libbluetooth-dev                     # L2CAP socket headers for the BLE bridge
)
RUNTIME=(
  libpaho-mqttpp3-1 libpaho-mqtt1.3 libcrypto++8 libzstd1  # libraries the program links
  mosquitto mosquitto-clients          # the hub broker, mosquitto_sub/pub
  openssl                              # the home CA and broker certificates (make-certs.sh)
  procps                               # /bin/kill: the primary unit's ExecReload
)
DEPLOY=(
  debootstrap                          # a minbase Debian 12 root, no registry needed
  podman runc docker-compose           # the compose home (Compose 1.29 on Podman's API)
  systemd-container                    # systemd-nspawn: the units on booted machines
)
PACKAGES=(
  "${BUILD[@]}" "${RUNTIME[@]}"
  libgtest-dev libgmock-dev            # tests
  ejabberd                             # a second MQTT 5 broker (mod_mqtt) the tests run on
  qemu-system-x86 busybox-static cpio  # the BLE test's VM (tests/ble_vm)
  bluez-test-tools                     # btvirt: virtual controllers in that VM
  rsync lsyncd                         # benchmark baselines
  python3 python3-yaml                 # the compose file's structure test
  git                                  # the deployment tests copy the tracked tree
)
case "${1:-}" in
  "") ;;
  --build) PACKAGES=("${BUILD[@]}") ;;
  --runtime) PACKAGES=("${RUNTIME[@]}") ;;
  --deploy) PACKAGES=("${DEPLOY[@]}") ;;
  *) echo "usage: install-deps.sh [--build|--runtime|--deploy]" >&2; exit 2 ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Podman needs what it recommends (network plugins, conmon's helpers).
recommends=--no-install-recommends
if [ "${1:-}" = "--deploy" ]; then recommends=""; fi
$SUDO apt-get install -y -qq $recommends "${missing[@]}" >/dev/null
# The brokers run only where a test or the demo starts them (ejabberd's
# package would also leave Erlang's port mapper listening on every interface).
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now mosquitto ejabberd epmd.socket epmd.service >/dev/null 2>&1 || true
fi
