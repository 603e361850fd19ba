#!/usr/bin/env bash
# Runs the real BLE test (ble_vm_test.cc) where Bluetooth exists: boots
# Debian's own kernel in QEMU (software emulation) with an initramfs holding
# busybox, the Bluetooth kernel modules, btvirt (two virtual controllers that
# reach each other) and the test binary with its shared libraries. Prints the
# VM's console and exits with the test's status.
#
#   bash tests/ble_vm/run-vm-test.sh BUILD/hubsync_ble_vm_tests
#
# Needs qemu-system-x86, busybox-static, cpio, bluez-test-tools (installed by
# docker/install-deps.sh). The kernel package is downloaded once with
# apt-get and kept in $HUBSYNC_VM_CACHE (default ~/.cache/hubsync-vm).
set -euo pipefail
test_binary=$(readlink -f "${1:?usage: run-vm-test.sh TEST_BINARY}")
cache=${HUBSYNC_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hubsync-vm}
for tool in qemu-system-x86_64 busybox btvirt cpio apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "run-vm-test: $tool is missing (bash docker/install-deps.sh)" >&2; exit 1; }
done
busybox_bin=$(command -v busybox)

# Debian's current kernel image: the package linux-image-amd64 points to.
kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
pkg=$(kernel_pkg)
if [ -z "$pkg" ]; then  # no package lists yet
  $( [ "$(id -u)" -ne 0 ] && echo sudo ) apt-get update -qq && pkg=$(kernel_pkg)
fi
[ -n "$pkg" ] || { echo "run-vm-test: cannot tell which kernel linux-image-amd64 depends on (apt-get update?)" >&2; exit 1; }
kdir=$cache/$pkg
if [ ! -e "$kdir/.complete" ]; then
  echo "run-vm-test: fetching $pkg (once)"
  rm -rf "$kdir" && mkdir -p "$kdir"
  (cd "$kdir" && apt-get download -q "$pkg" >/dev/null && dpkg-deb -x ./*.deb tree && rm -f ./*.deb)
  touch "$kdir/.complete"
fi
vmlinuz=$(ls "$kdir"/tree/boot/vmlinuz-* | head -1)
moddir=$(ls -d "$kdir"/tree/lib/modules/*/kernel | head -1)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp "$busybox_bin" "$root/bin/busybox"

# Loaded in this order. drbg needs ctr(aes) and ecdh needs drbg (SMP's
# P-256), btvirt needs the af_alg sockets, hci_vhci gives /dev/vhci.
modules="sha512_generic ctr drbg ecc ecdh_generic rfkill crc16 cmac ecb af_alg algif_hash algif_skcipher bluetooth hci_vhci"
for m in $modules; do
  ko=$(find "$moddir" -name "$m.ko" -o -name "$m.ko.xz" | head -1)
  [ -n "$ko" ] || { echo "run-vm-test: module $m not in $pkg" >&2; exit 1; }
  case $ko in
    *.xz) xz -dc "$ko" > "$root/lib/modules/$m.ko" ;;
    *) cp "$ko" "$root/lib/modules/$m.ko" ;;
  esac
done

# Binaries and every shared library they load, at the same paths.
copy_with_libs() {
  cp "$1" "$root/bin/"
  ldd "$1" | grep -o '/[^ ]*' | while read -r lib; do cp -L --parents "$lib" "$root"; done
}
copy_with_libs "$(command -v btvirt)"
copy_with_libs "$test_binary"

cat > "$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $modules; do insmod /lib/modules/\$m.ko || echo "VM: insmod \$m failed"; done
btvirt -l2 > /tmp/btvirt.log 2>&1 &
for i in \$(seq 1 100); do [ -e /sys/class/bluetooth/hci1 ] && break; sleep 0.2; done
echo "VM: controllers: \$(ls /sys/class/bluetooth | tr '\n' ' ')"
cd /tmp && /bin/$(basename "$test_binary") --gtest_color=no
echo "HUBSYNC_VM_RESULT=\$?"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz"

echo "run-vm-test: booting $(basename "$vmlinuz") under QEMU (tcg)"
start=$(date +%s)
timeout 600 qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -no-reboot \
  -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 panic=-1 loglevel=4 rdinit=/init" < /dev/null | tr -d '\r' | tee "$work/console.log" || true
echo "run-vm-test: VM ran $(( $(date +%s) - start )) s"
result=$(sed -n 's/^HUBSYNC_VM_RESULT=\([0-9]*\).*/\1/p' "$work/console.log" | tail -1)
[ -n "$result" ] || { echo "run-vm-test: the test did not finish in the VM" >&2; exit 1; }
exit "$result"
