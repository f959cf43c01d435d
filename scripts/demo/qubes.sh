#!/usr/bin/env bash
# The demo's main part: real qubes through qubed and libvirt.
#   qubes.sh BUILD_DIR
# Imports the minimal image as a template, creates "work" (blue) and
# "untrusted" (red) AppVMs, starts both (QEMU through libvirt; TCG where
# KVM is unusable), lets each make one call to the other at boot (one the
# policy allows, one it denies), copies a file from work to untrusted
# (qube.Filecopy; the way back is denied), shows `qubectl ls`, and shuts
# them down.
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
for _ in $(seq 200); do grep -q " ready (pid $qubed_pid)" "$T/qubed.log" && break; sleep 0.1; done
grep -E 'accelerator|ready' "$T/qubed.log" | sed 's/^[^ ]* qubed: /    qubed: /'

show "qubectl template import --kernel vmlinux --initrd initramfs.cpio.gz --label black minimal"
qubectl template import --kernel "$kernel" --initrd "$img/initramfs.cpio.gz" --label black minimal
show "qubectl create --template minimal --label red untrusted"
qubectl create --template minimal --label red untrusted
show "qubectl create --template minimal --label blue work"
qubectl create --template minimal --label blue work
show "qubectl create --template minimal --label red --property template_for_dispvms=True dvm"
qubectl create --template minimal --label red --property template_for_dispvms=True dvm
show "qubectl global-prefs default_dispvm dvm"
qubectl global-prefs default_dispvm dvm
echo "    policy (scripts/demo/qubes-policy.d/30-qubes.policy):"
grep -v '^#' "$demo/qubes-policy.d/30-qubes.policy" | grep -v '^$' | sed 's/^/      /'

step "3. qubes started through libvirt, commands run in them through the broker"
show "qubectl start untrusted work"
s=$(date +%s); qubectl start untrusted work; echo "    (both running after $(( $(date +%s) - s )) s: each agent answers over vsock)"
show "qubectl ls"
qubectl ls
show "qubectl run -p work -- uname -sr"
qubectl run -p work -- uname -sr | sed 's/^/    /'
show "qubectl run -p work -- printf '<%s> ' 'a b' '\$(id)' ';reboot'     # an argv, never a shell line"
qubectl run -p work -- printf '<%s> ' 'a b' '$(id)' ';reboot' | sed 's/^/    /'; echo

step "4. Calls between qubes, decided by the broker from the transport's identity"
show "qubectl run -p work -- qube-call untrusted demo.Uname           # work -> untrusted"
qubectl run -p work -- qube-call untrusted demo.Uname 2>&1 | sed 's/^/    /'
show "qubectl run -p untrusted -- sh -c 'echo secrets | qube-call work demo.Echo'   # untrusted -> work"
set +e
qubectl run -p untrusted -- sh -c 'echo give me your secrets | qube-call work demo.Echo' 2>&1 | sed 's/^/    /'
rc=${PIPESTATUS[0]}
set -e
echo "    exit status $rc (126: refused by the policy; work never saw the call)"
show "qubectl run -p -u user work -- sh -c 'echo quarterly numbers > report.txt && qube-copy-to untrusted report.txt'"
qubectl run -p -u user work -- sh -c 'echo quarterly numbers > report.txt && qube-copy-to untrusted report.txt' 2>&1 | sed 's/^/    /'
show "qubectl run -p -u user untrusted -- cat QubesIncoming/work/report.txt   # the receiver names the source"
qubectl run -p -u user untrusted -- cat QubesIncoming/work/report.txt 2>&1 | sed 's/^/    /'
show "qubectl run -p -u user untrusted -- qube-copy-to work QubesIncoming/work/report.txt   # and back?"
set +e
qubectl run -p -u user untrusted -- qube-copy-to work QubesIncoming/work/report.txt 2>&1 | sed 's/^/    /'
rc=${PIPESTATUS[0]}
set -e
echo "    exit status $rc (126: refused by the policy; nothing reached work)"
echo "    the broker's decisions (the source is the qube's vsock transport, never what the guest says):"
grep ' call id=.* decision=' "$T/log/broker.log" | grep -v 'service=qube.Exec' |
  sed -E 's/^[^ ]+ qube-broker: //; s/ rule=[^ ]+//; s/ reason=.*//; s/^/      /'

step "5. Disposables: one qube per command, gone afterwards"
show "qubectl run -p --dispvm -- sh -c 'echo I am \$(hostname)'"
s=$(date +%s.%N); qubectl run -p --dispvm -- sh -c 'echo I am $(hostname)' | sed 's/^/    /'
echo "    ($(printf '%.1f' "$(echo "$(date +%s.%N) - $s" | bc)") s, the disposable's boot included)"
# the disposable is destroyed after the caller has its result
for _ in $(seq 100); do qubectl ls --all --format names | grep -q '^disp' || break; sleep 0.2; done
show "qubectl ls --all --format names"
qubectl ls --all --format names | sed 's/^/    /'
show "qubectl prefs dvm preload_dispvm 1      # keep one booted and paused"
qubectl prefs dvm preload_dispvm 1
for _ in $(seq 600); do grep -q 'preloaded disposable disp[0-9]* of dvm ready' "$T/qubed.log" && break; sleep 0.2; done
grep -o 'preloaded disposable disp[0-9]* of dvm ready.*' "$T/qubed.log" | tail -n 1 | sed 's/^/    qubed: /'
show "qubectl run -p --dispvm -- sh -c 'echo I am \$(hostname)'"
s=$(date +%s.%N); qubectl run -p --dispvm -- sh -c 'echo I am $(hostname)' | sed 's/^/    /'
echo "    ($(printf '%.2f' "$(echo "$(date +%s.%N) - $s" | bc)") s: served from the preloaded pool)"
qubectl prefs dvm preload_dispvm 0

step "6. Shutdown and removal"
show "qubectl shutdown --all --wait"
qubectl shutdown --all --wait
for _ in $(seq 100); do [ -z "$(qubectl ls --all --format names | grep '^disp' || true)" ] && break; sleep 0.2; done
show "qubectl ls"
qubectl ls
show "qubectl global-prefs --default default_dispvm"
qubectl global-prefs --default default_dispvm
show "qubectl remove --force work untrusted dvm minimal"
qubectl remove --force work untrusted dvm minimal
left=$(ls -A "$T/state/qubes"; virsh -q -c qemu:///system list --all --name | grep -E '^qube-' || true)
if [ -z "$left" ]; then
  echo "    removed: no file left under the state directory, no libvirt domain left"
else
  echo "    left over after remove: $left" >&2; exit 1
fi
