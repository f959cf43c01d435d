#!/usr/bin/env bash
# The KVM probe against the truth: whatever qvmm_kvm_usable() says about
# this machine's /dev/kvm, a real QEMU -accel kvm boot of the minimal image
# must agree (usable: the guest reaches its clean poweroff; not usable: it
# does not, within a time in which TCG boots it several times over).
# Without /dev/kvm the probe must say so.
#   kvm-crosscheck.sh MESON_BUILD_ROOT QVMM_PROBE
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lib=$here/../../tests/lib
build=${1:?usage: kvm-crosscheck.sh BUILD QVMM_PROBE}
probe=${2:?}
limit=45

rc=0
verdict=$("$probe" kvm /dev/kvm) || rc=$?
echo "probe: $verdict (exit $rc)"
if [ ! -e /dev/kvm ]; then
  case $verdict in
    "not usable: /dev/kvm: No such file or directory") echo "PASS: no /dev/kvm, and the probe says so"; exit 0 ;;
    *) echo "FAIL: no /dev/kvm but the probe says: $verdict"; exit 1 ;;
  esac
fi
if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "SKIP: qemu-system-x86_64 not installed"; exit 77
fi
img=$("$lib/guest-image.sh" --build-dir "$build")
kernel=$img/vmlinux
[ -f "$kernel" ] || kernel=$img/vmlinuz
tmp=$(mktemp -d /tmp/qvmm-kvm.XXXXXX)
qpid=
cleanup() {
  [ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true
  [ -z "$qpid" ] || wait "$qpid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

"$lib/qemu-guest.sh" --kernel "$kernel" --initrd "$img/initramfs.cpio.gz" --accel kvm \
  --serial-log "$tmp/serial.log" --append 'qube.rw=none qube.agent=0 qube.poweroff' \
  >"$tmp/qemu.log" 2>&1 &
qpid=$!
booted=no
mrc=0
"$lib/wait-for-marker.sh" "$tmp/serial.log" 'qube-init: poweroff (status 0)' "$limit" "$qpid" \
  >"$tmp/wait.log" 2>&1 || mrc=$?
[ "$mrc" = 0 ] && booted=yes
echo "QEMU -accel kvm, minimal image, ${limit} s: clean poweroff reached: $booted"
echo "--- QEMU stderr ---"; cat "$tmp/qemu.log"
echo "--- console (last lines) ---"; tail -n 5 "$tmp/serial.log" | tr -d '\033' || true
echo
if [ "$rc" = 0 ] && [ "$booted" = yes ]; then
  echo "PASS: KVM usable and a guest boots with it"
elif [ "$rc" = 1 ] && [ "$booted" = no ]; then
  echo "PASS: KVM not usable (${verdict#not usable: }) and indeed a guest does not boot with it"
else
  echo "FAIL: the probe says '$verdict' but the KVM boot reached the poweroff: $booted"
  exit 1
fi
