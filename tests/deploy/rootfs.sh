#!/usr/bin/env bash
# Prints the path of a minimal Debian 12 root (debootstrap --variant=minbase
# bookworm, from the mirror apt already uses), making it once and keeping it
# in $HUBSYNC_ROOTFS_CACHE (default ~/.cache/hubsync-rootfs). The deployment
# tests never change it: they run on an overlay above it.
#
#   root=$(bash tests/deploy/rootfs.sh)
set -euo pipefail
cache=${HUBSYNC_ROOTFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hubsync-rootfs}
root=$cache/bookworm-minbase
if [ -e "$root/.complete" ]; then
  echo "$root"
  exit 0
fi
command -v debootstrap >/dev/null || {
  echo "rootfs: debootstrap is missing (bash docker/install-deps.sh --deploy)" >&2
  exit 1
}

# The first Debian mirror apt is configured with (deb822 or one-line form).
mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
[ -n "$mirror" ] || { echo "rootfs: no Debian mirror in apt's sources" >&2; exit 1; }

echo "rootfs: debootstrap --variant=minbase bookworm (once, ~30 s)" >&2
rm -rf "$root" && mkdir -p "$cache"
t0=$SECONDS
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
  tail -20 "$cache/debootstrap.log" >&2
  exit 1
}
# apt inside uses the same mirror.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
rm -rf "$root"/var/cache/apt/archives/*.deb
touch "$root/.complete"
echo "rootfs: made in $((SECONDS - t0)) s ($(du -sm "$root" | cut -f1) MB)" >&2
echo "$root"
