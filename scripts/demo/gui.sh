#!/usr/bin/env bash
# The demo's GUI part: a qube's window on the qube compositor.
#   gui.sh BUILD_DIR
# A headless qube-compositor runs as an unprivileged session user (nobody);
# qubed, told where its control socket is, gives each qube it starts a
# Wayland socket of its own and a sandboxed waypipe bridge.  A program run
# in the qube with `qubectl run --gui` shows up framed in the qube's colour
# with its name in the title; the compositor draws the frame, the qube
# cannot.  A screenshot (grim) is saved as BUILD_DIR/demo-window.png; then
# the qube is killed and its window goes with it.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

comp=$build/compositor/qube-compositor client=$build/compositor/qc-test-client
bridge=$build/compositor/qube-gui-bridge startapp=$build/rpc/guest/qube-start-app
for b in "$comp" "$client" "$bridge" "$startapp"; do
  [ -x "$b" ] || { echo "GUI part skipped: $b is not built (the compositor needs wlroots 0.15)"; exit 0; }
done
for tool in waypipe grim setpriv; do
  command -v "$tool" >/dev/null || { echo "GUI part skipped: $tool is not installed"; exit 0; }
done
if ! setpriv --reuid 65534 --regid 65534 --clear-groups unshare -Urmn true 2>/dev/null; then
  echo "GUI part skipped: unprivileged user namespaces are not available (the bridge's sandbox needs them)"
  exit 0
fi
broker=$build/rpc/broker/qube-broker
T=$(mktemp -d "${TMPDIR:-/tmp}/qube-demo-gui.XXXXXX")
chmod 0755 "$T"
S=$T/session
mkdir -m 0700 "$S" && chown 65534:65534 "$S"
qubed_pid= comp_pid=
# shellcheck source=../../tests/lib/libvirt.sh
. "$top/tests/lib/libvirt.sh"
cleanup() {
  if [ -n "$qubed_pid" ]; then kill "$qubed_pid" 2>/dev/null || true; wait "$qubed_pid" 2>/dev/null || true; fi
  virsh -q -c qemu:///system destroy qube-personal >/dev/null 2>&1 || true
  for f in "$T"/run/qubes/*/gui-bridge.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  pkill -f "qube-broker.*$T/" 2>/dev/null || true
  pkill -f "qube-vsockd.*$T/" 2>/dev/null || true
  if [ -n "$comp_pid" ]; then kill "$comp_pid" 2>/dev/null || true; wait "$comp_pid" 2>/dev/null || true; fi
  libvirt_down
  if [ "${KEEP_DEMO_DIR:-0}" = 1 ]; then echo "demo dir kept: $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
libvirt_up

step "7. A qube's window on the qube compositor"
img=$("$top/tests/lib/guest-image.sh" --build-dir "$build" --output "$build/images/demo-gui" --with-gui \
  --add "$startapp:/usr/lib/qube/qube-start-app" --add "$client:/usr/bin/qc-test-client")
kernel=$img/vmlinux; [ -f "$kernel" ] || kernel=$img/vmlinuz
ctl=$S/qube-compositor.ctl
show "qube-compositor --control qube-compositor.ctl &      # headless here, as the session user"
(cd "$S" && exec setpriv --reuid 65534 --regid 65534 --clear-groups env XDG_RUNTIME_DIR="$S" \
  WLR_BACKENDS=headless WLR_RENDERER=pixman WLR_LIBINPUT_NO_DEVICES=1 WLR_HEADLESS_OUTPUTS=1 \
  "$comp" --socket wl-host --control "$ctl") >"$T/compositor.log" 2>&1 &
comp_pid=$!
for _ in $(seq 300); do grep -q 'ready (pid' "$T/compositor.log" && break; sleep 0.1; done
mkdir -p "$T/state" "$T/run" "$T/log" "$T/policy.d"
cat > "$T/policy.d/30-gui.policy" <<'POL'
qube.StartApp  *  dom0  @anyvm  allow
POL
cat > "$T/qubed.conf" <<CONF
state_dir = $T/state
run_dir = $T/run
log_dir = $T/log
broker = $broker
vsockd = $build/vmm/qube-vsockd
policy_dir = $T/policy.d
private_size = 64M
volatile_size = 64M
gui_compositor = $ctl
gui_bridge = $bridge
CONF
export QUBED_SOCKET=$T/run/qubed.sock
qubectl() { "$build/src/qubectl" "$@"; }
"$build/src/qubed/qubed" --config "$T/qubed.conf" >"$T/qubed.log" 2>&1 &
qubed_pid=$!
for _ in $(seq 200); do grep -q " ready (pid $qubed_pid)" "$T/qubed.log" && break; sleep 0.1; done
show "qubectl template import ... --label black minimal-gui      # the minimal image with waypipe"
qubectl template import --kernel "$kernel" --initrd "$img/initramfs.cpio.gz" --label black minimal-gui
show "qubectl create --template minimal-gui --label green --property memory=800 personal"
qubectl create --template minimal-gui --label green --property memory=800 personal
show "qubectl start personal"
qubectl start personal
grep -o 'personal: windows on .*' "$T/qubed.log" | head -n 1 | sed 's/^/    qubed: /'
show "qubectl run --gui personal -- qc-test-client --title 'my bank' &"
qubectl run --gui personal -- qc-test-client --title 'my bank' --color e0e0e0 --size 360x200 \
  >"$T/app.out" 2>&1 </dev/null &
app=$!
ctlpy() { python3 "$top/compositor/tests/ctl.py" "$ctl" "$@"; }
for _ in $(seq 300); do ctlpy WINDOWS | grep -q 'title=\[personal\] my bank' && break; sleep 0.2; done
ctlpy WINDOWS | grep 'title=\[personal\]' | sed 's/^/    compositor: /'
id=$(ctlpy WINDOWS | grep -F 'title=[personal] my bank' | awk '{print $2}')
[ -n "$id" ] && ctlpy "MOVE $id 200 150" >/dev/null || true
sleep 0.5
WAYLAND_DISPLAY=$S/wl-host grim -t png "$build/demo-window.png"
echo "    screenshot: $build/demo-window.png (the window framed in personal's green, titled [personal] my bank)"
show "qubectl kill personal"
qubectl kill personal
for _ in $(seq 100); do ctlpy WINDOWS | grep -q 'title=\[personal\]' || break; sleep 0.1; done
if ctlpy WINDOWS | grep -q 'title=\[personal\]'; then
  echo "    the window is still there" >&2; exit 1
fi
echo "    its window is gone with it"
wait "$app" 2>/dev/null || true
qubectl remove --force personal minimal-gui
