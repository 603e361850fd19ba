#!/usr/bin/env bash
# The compose home for real, with what Debian 12 ships: Podman (its Docker API
# socket) driven by docker-compose 1.29. A base image from a debootstrapped
# minbase root (no registry), docker/Dockerfile built on it, the home in
# docker/compose.yaml started, converged (`hubsync status` in the primary's
# container exits 0), a change made on the primary and seen on both backups,
# then everything torn down: no container, volume, network or mount left, and
# the images kept for the next run's cache under a size limit.
#
#   bash tests/deploy/compose-test.sh      (as root; exit 77: cannot run here)
#
# Podman's storage lives in $HUBSYNC_ROOTFS_CACHE/podman, its configuration
# in a temporary directory: the host's own Podman setup is never touched.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/deploy/lib.sh
source "$repo/tests/deploy/lib.sh"
need_root_and_tools podman docker-compose
root=$(bash "$repo/tests/deploy/rootfs.sh")
project=hubsync-ci
image_limit_mb=1200

work=$(mktemp -d /tmp/hubsync-compose.XXXXXX)
export CONTAINERS_CONF=$work/containers.conf CONTAINERS_STORAGE_CONF=$work/storage.conf
# runc (crun refuses this kernel's hybrid cgroups), cgroupfs (no systemd as
# PID 1), limits within what this machine grants.
# (runc may not raise a limit here: Podman's defaults, 1048576, fail, and so
# did the shell's own hard nproc limit; these fit every container here.)
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ] && nofile=65536
ulimits=("nofile=$nofile:$nofile" "nproc=4096:4096")
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["${ulimits[0]}", "${ulimits[1]}"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/events.log"
EOF
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$cache/podman"
runroot = "$work/run"
EOF
export DOCKER_HOST=unix://$work/podman.sock
compose() { docker-compose -p "$project" -f "$repo/docker/compose.yaml" "$@"; }
left() { podman ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}'; }
# docker-compose 1.29 on Podman: the first `down` may fail to remove the
# brokers whose network namespace the other services shared (they are still
# going away); a second one removes them with their volumes and network.
down() {
  local i
  for i in 1 2 3; do
    compose down -v --remove-orphans >>"$work/down.log" 2>&1 || true
    downs=$i
    [ -z "$(left)" ] && return 0
  done
  return 1
}
service_pid=
teardown() {
  local rc=$?
  if [ -n "$service_pid" ]; then
    [ $rc -ne 0 ] && compose logs --no-color --tail 30 >&2 2>/dev/null || true
    down || true
    kill "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
    pkill -f "[c]onmon .*$cache/podman/overlay-containers/" || true
  fi
  rm -rf "$work"
  exit $rc
}
trap teardown EXIT
# The service stays up for the whole test (exec and logs go through it).
podman system service --time=0 "$DOCKER_HOST" >"$work/service.log" 2>&1 &
service_pid=$!
wait_for 20 "Podman's API socket" test -S "$work/podman.sock"

t0=$SECONDS
if ! podman image exists debian:12-slim; then
  step "base image from $root"
  tar -C "$root" -c . | podman import -q - debian:12-slim >/dev/null
fi
step "podman build (docker/Dockerfile)"
mkdir -p "$cache/apt-archives/partial"
podman build -q --network host --ulimit "${ulimits[0]}" --ulimit "${ulimits[1]}" -v "$cache/apt-archives:/var/cache/apt/archives" \
  -f "$repo/docker/Dockerfile" -t hubsync:latest "$repo" >"$work/build.log" 2>&1 || {
  tail -40 "$work/build.log" >&2
  fail "the image did not build"
}
podman image prune -f >/dev/null  # the previous run's image, now untagged
step "image built in $((SECONDS - t0)) s ($(podman image inspect hubsync:latest --format '{{.Size}}' | awk '{printf "%d MB", $1 / 1e6}'))"

t1=$SECONDS
lan=$(free_port 18883)
HUBSYNC_LAN_PORT=127.0.0.1:$lan compose up -d >"$work/up.log" 2>&1 || {
  cat "$work/up.log" >&2
  fail "docker-compose up failed"
}
status() { compose exec -T primary hubsync status -c /etc/hubsync/status.json; }
wait_for 120 "the home to converge (hubsync status exits 0)" status
step "converged $((SECONDS - t1)) s after up (pairing over the bridges, then the first sync)"
status | sed 's/^/    /'

step "a change on the primary"
compose exec -T primary sh -c 'echo "{\"id\":\"lamp-2\",\"on\":true}" > /var/lib/hub/data/devices/lamp-2.json'
t2=$SECONDS
for b in kitchen bedroom; do
  wait_for 30 "lamp-2.json on $b" \
    sh -c "docker-compose -p $project -f '$repo/docker/compose.yaml' exec -T $b cat /var/lib/hub/data/devices/lamp-2.json | grep -q lamp-2"
done
wait_for 30 "status after the change" status
step "both backups hold it, status exits 0 ($((SECONDS - t2)) s)"

step "teardown"
down || fail "containers left after three downs: $(left | tr '\n' ' ')"
step "down (docker-compose down ran $downs time(s))"
vols=$(podman volume ls --format '{{.Name}}' | grep -c "^$project" || true)
[ "$vols" -eq 0 ] || fail "volumes left: $(podman volume ls --format '{{.Name}}' | tr '\n' ' ')"
nets=$(podman network ls --format '{{.Name}}' | grep -c "^$project" || true)
[ "$nets" -eq 0 ] || fail "networks left: $(podman network ls --format '{{.Name}}' | tr '\n' ' ')"
kill "$service_pid" && wait "$service_pid" 2>/dev/null || true
service_pid=
# conmon keeps each `exec` session's monitor for 5 minutes after the
# container is gone (--exit-delay 300): ended here, with the containers.
pkill -f "[c]onmon .*$cache/podman/overlay-containers/" || true
wait_for 10 "conmon monitors gone" sh -c "! pgrep -f '[c]onmon .*$cache/podman/overlay-containers/'"
mounts=$(grep -c " $cache/podman/overlay/[^ ]*/merged " /proc/mounts || true)
[ "$mounts" -eq 0 ] || fail "$mounts overlay mounts left under $cache/podman"
images_mb=$(podman images -q | xargs -r podman image inspect --format '{{.Size}}' |
  awk '{s += $1} END {printf "%d", s / 1e6}')
[ "$images_mb" -le "$image_limit_mb" ] || fail "images take $images_mb MB (limit $image_limit_mb MB)"
step "nothing left (no container, volume, network, mount or monitor) but the cached images ($images_mb MB); whole test $((SECONDS - t0)) s"
