#!/usr/bin/env bash
# The demo's main part: real qubes through qubed and libvirt.
#   qubes.sh BUILD_DIR
# Imports the minimal image as a template, creates "work" (blue) and
# "untrusted" (red) AppVMs, starts both (QEMU through libvirt; TCG where
# KVM is unusable), lets each make one call to the other at boot (one the
# policy allows, one it denies), shows `qubectl ls`, and shuts them down.
# Everything lives in a scratch directory; libvirtd and virtlogd are started
# when they are not running and stopped again at the end.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
demo=$top/scripts/demo
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

for b in src/qubed/qubed src/qubectl vmm/qube-vsockd; do
  [ -x "$build/$b" ] || { echo "qubes.sh: $build/$b is not built" >&2; exit 1; }
done
broker=$build/rpc/broker/qube-broker; [ -x "$broker" ] || broker=$build/rpc/qube-broker
T=$(mktemp -d "${TMPDIR:-/tmp}/qube-demo-qubes.XXXXXX")
chmod 0755 "$T"
qubed_pid=
# shellcheck source=../../tests/lib/libvirt.sh
. "$top/tests/lib/libvirt.sh"
cleanup() {
  if [ -n "$qubed_pid" ]; then kill "$qubed_pid" 2>/dev/null || true; wait "$qubed_pid" 2>/dev/null || true; fi
  for q in work untrusted; do virsh -q -c qemu:///system destroy "qube-$q" >/dev/null 2>&1 || true; done
  pkill -f "qube-broker.*$T/" 2>/dev/null || true
  libvirt_down
  if [ "${KEEP_DEMO_DIR:-0}" = 1 ]; then echo "demo dir kept: $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

# libvirt, as a Debian host with systemd would have it
if [ -c /dev/kvm ] && [ "$(stat -c %G /dev/kvm)" != kvm ] && getent group kvm >/dev/null; then
  echo "    (/dev/kvm has no udev permissions here: applying Debian's rule, root:kvm 0660)"
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi
libvirt_up

# the minimal image with the demo's services in /etc/qube/rpc
adds=()
for s in "$demo"/rpc/*; do adds+=(--add "$s:/etc/qube/rpc/$(basename "$s")"); done
img=$("$top/tests/lib/guest-image.sh" --build-dir "$build" --output "$build/images/demo" "${adds[@]}")
kernel=$img/vmlinux; [ -f "$kernel" ] || kernel=$img/vmlinuz

mkdir -p "$T/state" "$T/run" "$T/log"
cat > "$T/qubed.conf" <<CONF
state_dir = $T/state
run_dir = $T/run
log_dir = $T/log
broker = $broker
vsockd = $build/vmm/qube-vsockd
policy_dir = $demo/qubes-policy.d
private_size = 64M
volatile_size = 64M
CONF
export QUBED_SOCKET=$T/run/qubed.sock
qubectl() { "$build/src/qubectl" "$@"; }

step "2. qubed: the qube database and qubes as libvirt domains"
show "qubed --config qubed.conf &"
"$build/src/qubed/qubed" --config "$T/qubed.conf" >"$T/qubed.log" 2>&1 &
qubed_pid=$!
for _ in $(seq 200); do grep -q ' ready (pid ' "$T/qubed.log" && break; sleep 0.1; done
grep -E 'accelerator|ready' "$T/qubed.log" | sed 's/^[^ ]* qubed: /    qubed: /'

show "qubectl template import --kernel vmlinux --initrd initramfs.cpio.gz --label black minimal"
qubectl template import --kernel "$kernel" --initrd "$img/initramfs.cpio.gz" --label black minimal
# each qube makes one call at boot, to the other one
run_work='qube.run="qube-call --transport vsock untrusted demo.Uname </dev/null; echo work-to-untrusted-exit=$?"'
run_untr='qube.run="echo give me your secrets | qube-call --transport vsock work demo.Echo; echo untrusted-to-work-exit=$?"'
show "qubectl create --template minimal --label red --property kernelopts='...' untrusted"
qubectl create --template minimal --label red --property "kernelopts=$run_untr" untrusted
show "qubectl create --template minimal --label blue --property kernelopts='...' work"
qubectl create --template minimal --label blue --property "kernelopts=$run_work" work
echo "    policy (scripts/demo/qubes-policy.d/30-qubes.policy):"
grep -v '^#' "$demo/qubes-policy.d/30-qubes.policy" | sed 's/^/      /'

show "qubectl start untrusted"
s=$(date +%s); qubectl start untrusted; echo "    (running after $(( $(date +%s) - s )) s: its agent answers over vsock)"
show "qubectl start work"
s=$(date +%s); qubectl start work; echo "    (running after $(( $(date +%s) - s )) s)"
show "qubectl ls"
qubectl ls
for _ in $(seq 600); do grep -a -q '^work-to-untrusted-exit=[0-9]' "$T/log/console-work.log" 2>/dev/null && grep -a -q '^untrusted-to-work-exit=[0-9]' "$T/log/console-untrusted.log" && break; sleep 0.1; done
echo "    untrusted's console (its call to work at boot):"
tr -d '\r' < "$T/log/console-untrusted.log" | grep -a -E '^untrusted-to-work-exit=' | sed 's/^/      /'
echo "    work's console (its call to untrusted at boot):"
tr -d '\r' < "$T/log/console-work.log" | grep -a -E '^(untrusted: Linux|work-to-untrusted-exit=)' | sed 's/^/      /'
echo "    the broker's decisions (the source is the qube's vsock transport, never what the guest says):"
grep ' call id=' "$T/log/broker.log" | sed -E 's/^[^ ]+ qube-broker: //; s/ rule=[^ ]+//; s/ reason=.*//; s/^/      /'

show "qubectl shutdown --wait work untrusted"
qubectl shutdown --wait work untrusted
show "qubectl ls"
qubectl ls
show "qubectl remove --force work untrusted minimal"
qubectl remove --force work untrusted minimal
left=$(ls -A "$T/state/qubes"; virsh -q -c qemu:///system list --all --name | grep -E '^qube-(work|untrusted|minimal)$' || true)
if [ -z "$left" ]; then
  echo "    removed: no file left under the state directory, no libvirt domain left"
else
  echo "    left over after remove: $left" >&2; exit 1
fi
