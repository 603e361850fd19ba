#!/usr/bin/env bash
# Installs what hubsync needs to build, test, demo and benchmark on Debian 12.
# Used by the README's two commands, by .ci/run and by docker/Dockerfile.
# Installs only what is missing; safe to run again.
#   --runtime   only what the installed program needs to run (the Docker
#               image's final stage): its shared libraries and Mosquitto.
set -euo pipefail

RUNTIME=(
  libpaho-mqttpp3-1 libpaho-mqtt1.3 libcrypto++8 libzstd1  # libraries the program links
  mosquitto mosquitto-clients                     # the hub broker, mosquitto_sub/pub
)
PACKAGES=(
  build-essential cmake pkg-config   # toolchain
  libpaho-mqttpp-dev libpaho-mqtt-dev  # MQTT v5 client (Paho C++ over Paho C)
  libcrypto++-dev                      # AES-256-GCM, SHA-256, X25519, HKDF
  libzstd-dev                          # compression of what is sealed (JSON trees)
  rapidjson-dev                        # config, status and event JSON
  libgtest-dev libgmock-dev            # tests
  mosquitto mosquitto-clients          # broker for tests/demo, mosquitto_sub/pub
  ejabberd                             # a second MQTT 5 broker (mod_mqtt) the tests run on
  libbluetooth-dev                     # L2CAP socket headers for the BLE bridge
  qemu-system-x86 busybox-static cpio  # the BLE test's VM (tests/ble_vm)
  bluez-test-tools                     # btvirt: virtual controllers in that VM
  rsync lsyncd                         # benchmark baselines
  procps                               # ps/pgrep in scripts
  python3-yaml                         # the compose file's structure test
)
if [ "${1:-}" = "--runtime" ]; then PACKAGES=("${RUNTIME[@]}"); fi

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
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The brokers run only where a test or the demo starts them (ejabberd's
# package would also leave Erlang's port mapper listening on every interface).
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now mosquitto ejabberd epmd.socket epmd.service >/dev/null 2>&1 || true
fi
