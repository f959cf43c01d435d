#!/usr/bin/env bash
# The broker's AF_VSOCK transport (--vsock-map) with real kernel vsock
# sockets.  This machine has no /dev/vhost-vsock, so the test boots one TCG
# guest (the minimal image, Debian kernel) that plays the production host:
# its kernel loads vhost_vsock (host-to-guest transport) and vsock_loopback,
# and has no guest-to-host transport.  Qubes are vhost-vsock-peer processes
# (tests/guest/vhost-vsock-peer.c): each registers a guest CID with
# /dev/vhost-vsock, as QEMU does for a VM, and drives the virtqueues itself,
# with a real qube-agent behind it.  The build's unmodified qube-broker,
# qube-agent, qube-call and rpc-starter run in that guest; the checks are in
# tests/guest/broker-vsock-guest.sh and are printed on the console.
#
# Why not plain loopback: over vsock_loopback the accepting side always
# sees peer CID 1 (measured in this kernel, whatever CID was dialled: 1,
# the guest's own CID, or 2 without a guest-to-host transport), and the
# broker's map rightly refuses CIDs below 3 (any local process could
# connect as CID 1).  So loopback can only show that refusal, which this
# test checks too.
#
# Skips (77) without qemu-system-x86_64, without the programs in the build
# dir, or when the guest kernel package has no vhost_vsock/vsock_loopback.
#   broker-vsock-test.sh MESON_BUILD_ROOT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
lib=$here/../lib
build=${1:?usage: broker-vsock-test.sh MESON_BUILD_ROOT}
build=$(cd "$build" && pwd)
start_s=$SECONDS
# checks the guest script makes (it prints one "ok"/"not ok" line each);
# fewer lines than this means it stopped early
expected=45

missing=()
for p in rpc/broker/qube-broker rpc/guest/qube-agent rpc/guest/qube-call rpc/rpc-starter tests/guest/vhost-vsock-peer; do
  [ -x "$build/$p" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "SKIP: not built in $build: ${missing[*]}"
  exit 77
fi
command -v qemu-system-x86_64 >/dev/null ||
  { echo "SKIP: qemu-system-x86_64 not installed (scripts/install-deps.sh installs it)"; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}/qube-bvsock.XXXXXX")
qpid=
cleanup() {
  if [ -n "$qpid" ]; then kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; fi
  if [ "${KEEP_TEST_DIR:-0}" = 1 ]; then echo "test dir kept: $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

mods=$here/broker-vsock.modules
rc=0
"$top/images/minimal/build.sh" --list-modules --modules "$mods" > "$T/modules.out" 2>&1 || rc=$?
if [ "$rc" != 0 ]; then
  if grep -q 'is neither built into' "$T/modules.out"; then
    echo "SKIP: the guest kernel has no vhost_vsock or vsock_loopback: $(grep 'neither built into' "$T/modules.out")"
    exit 77
  fi
  cat "$T/modules.out" >&2
  echo "FAIL: cannot resolve $mods" >&2
  exit 1
fi
grep '^load order:' "$T/modules.out"

img=$("$lib/guest-image.sh" --build-dir "$build" --output "$build/tests/guest/broker-vsock-image" \
  --modules "$mods" \
  --add "$build/rpc/broker/qube-broker:/usr/sbin/qube-broker" \
  --add "$build/rpc/rpc-starter:/usr/bin/rpc-starter" \
  --add "$build/tests/guest/vhost-vsock-peer:/usr/bin/vhost-vsock-peer" \
  --add "$here/broker-vsock-guest.sh:/usr/bin/broker-vsock-guest")
kernel=$img/vmlinux; [ -f "$kernel" ] || kernel=$img/vmlinuz

t0=$SECONDS
"$lib/qemu-guest.sh" --kernel "$kernel" --initrd "$img/initramfs.cpio.gz" \
  --serial-log "$T/serial.log" --memory 512 \
  --append 'qube.agent=0 qube.rw=none qube.name=vsockhost qube.run=/usr/bin/broker-vsock-guest qube.poweroff' &
qpid=$!
if ! "$lib/wait-for-marker.sh" "$T/serial.log" "qube-init: poweroff" 300 "$qpid"; then
  cat "$T/serial.log" >&2
  echo "FAIL: the guest did not finish" >&2
  exit 1
fi
rc=0; wait "$qpid" || rc=$?; qpid=
guest_s=$((SECONDS - t0))
tr -d '\r' < "$T/serial.log" > "$T/console.txt"

fails=0
grep -E '^(ok|not ok) - ' "$T/console.txt" || true
if grep -q '^qube-init: error' "$T/console.txt"; then
  grep '^qube-init: error' "$T/console.txt"
  echo "not ok - guest init reported errors"; fails=$((fails + 1))
fi
[ "$rc" = 0 ] || { echo "not ok - QEMU exited $rc"; fails=$((fails + 1)); }
done_line=$(grep '^broker-vsock-guest: done' "$T/console.txt" || true)
if [ -z "$done_line" ]; then
  echo "not ok - the guest script did not finish"; fails=$((fails + 1))
fi
n_ok=$(grep -c '^ok - ' "$T/console.txt" || true)
n_bad=$(grep -c '^not ok - ' "$T/console.txt" || true)
fails=$((fails + n_bad))
if [ "$((n_ok + n_bad))" != "$expected" ]; then
  echo "not ok - $((n_ok + n_bad)) checks ran in the guest, expected $expected"; fails=$((fails + 1))
fi
# what the broker logged, for the record (names the source of every call)
grep '^broker.log: ' "$T/console.txt" || true
echo "timing: guest boot and checks ${guest_s} s; whole test $((SECONDS - start_s)) s"
if [ "$fails" -gt 0 ]; then
  echo "---- guest console ----" >&2
  cat "$T/console.txt" >&2
  echo "$fails check(s) failed" >&2
  exit 1
fi
echo "all $n_ok checks passed"
