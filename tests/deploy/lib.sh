# Helpers the deployment tests share (sourced, not run).
# shellcheck shell=bash
cache=${HUBSYNC_ROOTFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hubsync-rootfs}
test_name=$(basename "$0" .sh)

step() { echo "[$test_name] $*"; }
fail() { echo "[$test_name] FAILED: $*" >&2; exit 1; }

# Exit 77 (CTest's "skipped") with the reason where this machine cannot run
# the test; anything else missing is a failure.
skip() { echo "[$test_name] skipped: $*"; exit 77; }
need_root_and_tools() {
  [ "$(id -u)" -eq 0 ] || skip "needs root (containers and nspawn machines)"
  # Inside the minbase test's own root (HUBSYNC_MINBASE_FULL=1 runs
  # run-all.sh there): no machines within that machine.
  [ -z "${HUBSYNC_IN_MINBASE:-}" ] || skip "inside the minbase test's root"
  local probe
  probe=$(mktemp -d /tmp/hubsync-probe.XXXXXX)
  mkdir -p "$probe"/{l,u,w,m}
  if ! mount -t overlay overlay -o "lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w" "$probe/m" 2>/dev/null; then
    rm -rf "$probe"
    skip "cannot mount an overlayfs here (the kernel lacks it, or this is an unprivileged container)"
  fi
  umount "$probe/m" && rm -rf "$probe"
  local t
  for t in debootstrap "$@"; do
    command -v "$t" >/dev/null || fail "$t is missing (bash docker/install-deps.sh --deploy)"
  done
}

# wait_for SECONDS WHAT COMMAND...: runs COMMAND until it succeeds; on a
# timeout, fails showing what its last run printed.
wait_for() {
  local limit=$1 what=$2 end=$((SECONDS + $1)) out
  shift 2
  out=$(mktemp)
  until "$@" >"$out" 2>&1; do
    if [ $SECONDS -ge $end ]; then
      sed 's/^/    /' "$out" >&2
      rm -f "$out"
      fail "no $what within $limit s"
    fi
    sleep 0.5
  done
  rm -f "$out"
}

# free_port FROM: the first loopback TCP port from FROM nobody listens on.
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

# overlay_root LOWER DIR: DIR/root, a writable view of LOWER that leaves it
# untouched (the cached rootfs); unmount with `umount DIR/root`.
overlay_root() {
  mkdir -p "$2/upper" "$2/work" "$2/root"
  mount -t overlay overlay -o "lowerdir=$1,upperdir=$2/upper,workdir=$2/work" "$2/root"
}

# copy_tree DEST: the repository's tracked files (no build trees) into DEST.
copy_tree() {
  mkdir -p "$1"
  git -C "$repo" ls-files -z --cached --others --exclude-standard | tar -C "$repo" --null -T - -c | tar -x -C "$1"
}
