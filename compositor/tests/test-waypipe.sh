#!/usr/bin/env bash
# The GUI path of item 5 up to the vsock device: qube-gui-bridge listens
# where qube-vsockd delivers a guest's connections to CID 2 port 6000
# (<uds-path>_6000, a unix socket: the hybrid vsock convention), and for
# each one runs a sandboxed real `waypipe client` feeding the qube's own
# compositor socket.  The "guest" is a real `waypipe server` running the
# test client and weston-simple-shm, connecting to that path exactly as
# qube-vsockd would for a guest connect() (no guest kernel here: the part
# from the guest's AF_VSOCK socket to <uds-path>_6000 is qube-vsockd's,
# tested in vmm/).  Checked: the windows arrive framed in the qube's
# colour (pixels), the allow-list holds through waypipe, the clipboard
# works through it (pipes inside the sandbox), the waypipe process runs
# unprivileged in its own namespaces with seccomp on and sees no other
# qube's socket, a probe in its place is killed for connect(), socket
# (AF_INET), fork and ptrace, and QUBE-REMOVE and SIGTERM end it all.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
command -v waypipe >/dev/null || { echo "SKIP: waypipe not installed"; exit 77; }
: "${QC_GUI_BRIDGE:?}" "${QC_SANDBOX_PROBE:?}"
unshare -Urmn true 2>/dev/null || { echo "SKIP: unprivileged user namespaces are not available here"; exit 77; }

start_compositor
# Started as root, the bridge must be given a user (as qubed does): then
# the qube's socket has to be that user's, as it is in a user's session.
BRIDGE_USER=()
qsock_dir=$T
if [ "$(id -u)" = 0 ]; then
	BRIDGE_UID=65534 BRIDGE_GID=65534
	BRIDGE_USER=(--user "$BRIDGE_UID:$BRIDGE_GID")
	chmod 711 "$T"
	qsock_dir=$T/user
	mkdir "$qsock_dir" && chown "$BRIDGE_UID:$BRIDGE_GID" "$qsock_dir" && chmod 700 "$qsock_dir"
else
	BRIDGE_UID=$(id -u) BRIDGE_GID=$(id -g)
fi
WORK_SOCK=$qsock_dir/qube-wayland-work
ctl "QUBE-ADD work purple $WORK_SOCK" >/dev/null
ctl "QUBE-ADD personal blue" >/dev/null
[ "$(id -u)" = 0 ] && chown "$BRIDGE_UID:$BRIDGE_GID" "$WORK_SOCK"

# bridge NAME LISTEN [--waypipe PROBE]: starts a bridge for qube work
bridge() {
	local name=$1 listen=$2; shift 2
	: >"$T/bridge-$name.log"
	"$QC_GUI_BRIDGE" --qube work --display "$WORK_SOCK" --listen "$listen" "${BRIDGE_USER[@]}" "$@" \
		>"$T/bridge-$name.log" 2>&1 &
	PIDS+=($!)
	eval "BRIDGE_PID_$name=$!"
	wait_for 10 "bridge $name ready" grep -q ': ready: ' "$T/bridge-$name.log"
}
bridge wp "$T/vsock_6000"
check "the bridge refuses to run as root without --user" bash -c \
	"[ \$(id -u) != 0 ] || ! '$QC_GUI_BRIDGE' --qube work --display '$WORK_SOCK' --listen '$T/x_6000' 2>/dev/null"

# the guest side: its own runtime dir, as in a qube
mkdir -p "$T/guest" && chmod 700 "$T/guest"
guest_run() { # NAME CMD...: a Wayland program under `waypipe server` in the "guest"
	local name=$1; shift
	XDG_RUNTIME_DIR=$T/guest waypipe --no-gpu --socket "$T/vsock_6000" server -- "$@" \
		>"$T/client-$name.out" 2>&1 &
	PIDS+=($!)
}
guest_run wp-app "$QC_CLIENT" --title "via waypipe" --color 808080 --size 220x130 --copy "guest text"
wait_client wp-app READY 30
check "the window arrived through the bridge in qube work" \
	bash -c "ctl WINDOWS | grep -q 'qube=work label=purple .*title=\[work\] via waypipe$'"
have_shm=0
if command -v weston-simple-shm >/dev/null; then
	guest_run shm weston-simple-shm
	have_shm=1
	wait_for 30 "simple-shm through waypipe" bash -c "ctl WINDOWS | grep -q 'title=\[work\] simple-shm$'"
	ok "weston-simple-shm arrived through the bridge (a second connection)"
fi
ctl "MOVE $(window_id '[work] via waypipe') 100 100" >/dev/null
[ "$have_shm" = 1 ] && ctl "MOVE $(window_id '[work] simple-shm') 500 100" >/dev/null
sleep 0.3
shot "$T/wp.ppm"
# shellcheck disable=SC2046
check "framed exactly purple all around" pixels frame "$T/wp.ppm" $(window_frame '[work] via waypipe') $PURPLE
# shellcheck disable=SC2046
check "content as the guest drew it" pixels rect "$T/wp.ppm" $(window_content '[work] via waypipe') 808080
if [ "$have_shm" = 1 ]; then
	# shellcheck disable=SC2046
	check "weston-simple-shm framed exactly purple" pixels frame "$T/wp.ppm" $(window_frame '[work] simple-shm') $PURPLE
fi

# the clipboard crosses waypipe through pipes, inside the sandbox
ctl "FOCUS $(window_id '[work] via waypipe')" >/dev/null
ctl "KEY ctrl+shift+c" >/dev/null
wait_for 10 "the copy" bash -c "ctl CLIPBOARD | grep -q 'from=work'"
check "Ctrl+Shift+C through waypipe: 10 bytes from work" bash -c "ctl CLIPBOARD | grep -qx 'OK from=work bytes=10'"

XDG_RUNTIME_DIR=$T/guest waypipe --no-gpu --socket "$T/vsock_6000" server -- "$QC_CLIENT" --list-globals \
	>"$T/client-wp-globals.out" 2>&1 || true
check "through the bridge the qube sees xdg_wm_base" grep -q ' xdg_wm_base ' "$T/client-wp-globals.out"
check "through the bridge the qube sees no screencopy or xdg-output" \
	bash -c "! grep -qE ' (zwlr_screencopy_manager_v1|zxdg_output_manager_v1) ' '$T/client-wp-globals.out'"

# the waypipe process of the first connection: bridge -> sandbox -> init -> waypipe
sb=$(sed -n 's/.*connection 1: waypipe sandbox pid \([0-9]*\).*/\1/p' "$T/bridge-wp.log")
init=$(ps -o pid= --ppid "$sb" | tr -d ' ' | head -n 1)
wp=$(ps -o pid= --ppid "$init" | tr -d ' ' | head -n 1)
echo "sandbox $sb, init $init, waypipe $wp"
check "waypipe runs as $BRIDGE_UID:$BRIDGE_GID" \
	bash -c "grep -qE '^Uid:\s+$BRIDGE_UID\s' /proc/$wp/status && grep -qE '^Gid:\s+$BRIDGE_GID\s' /proc/$wp/status"
check "waypipe: no capabilities" grep -qE '^CapEff:\s+0+$' "/proc/$wp/status"
check "waypipe: no_new_privs and a seccomp filter" \
	bash -c "grep -qE '^NoNewPrivs:\s+1' /proc/$wp/status && grep -qE '^Seccomp:\s+2' /proc/$wp/status"
for ns in user mnt net pid ipc; do
	check "waypipe: its own $ns namespace" test "$(readlink "/proc/$wp/ns/$ns")" != "$(readlink "/proc/self/ns/$ns")"
done
check "waypipe: its root holds only system paths, etc and its channel" bash -c \
	"ls -A /proc/$wp/root | grep -vxE 'usr|lib|lib32|lib64|libx32|bin|sbin|etc|chan' | grep -q . && exit 1; ls -A /proc/$wp/root/etc | grep -vqx ld.so.cache && exit 1; exit 0"
check "waypipe: no other qube's socket, no host socket, no control socket in its view" bash -c \
	"! test -e /proc/$wp/root$T/qube-wayland-personal && ! test -e /proc/$wp/root$T/wl-host && ! test -e /proc/$wp/root$CTL && ! test -e /proc/$wp/root/tmp"

# a probe in waypipe's place, through the same guest path
bridge probe "$T/probe_6000" --waypipe "$QC_SANDBOX_PROBE"
probe() { # COMMAND...: one connection, one command per line; prints the answers
	"$PYTHON" - "$T/probe_6000" "$@" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
for cmd in sys.argv[2:]:
    f.write(cmd + "\n")
    f.flush()
    print(f.readline().strip() or "EOF")
PY
}
got=$(probe id display "stat /usr" "stat $T/qube-wayland-personal" "stat $T/wl-host" "stat $CTL" \
	"stat /tmp" "stat /proc/self" "stat /dev/null" ioctl | tr '\n' '|')
echo "probe: $got"
check "probe: runs as $BRIDGE_UID:$BRIDGE_GID with the display socket" \
	test "$(echo "$got" | cut -d'|' -f1-2)" = "uid=$BRIDGE_UID gid=$BRIDGE_GID|OK socket"
check "probe: sees /usr, not the other qube's, host or control socket, /tmp, /proc or /dev" \
	test "$(echo "$got" | cut -d'|' -f3-9)" = "OK|ERR ENOENT|ERR ENOENT|ERR ENOENT|ERR ENOENT|ERR ENOENT|ERR ENOENT"
check "probe: an ioctl other than TCGETS fails (ENOTTY)" test "$(echo "$got" | cut -d'|' -f10)" = "ERR ENOTTY"
n=1
for bad in "connect $T/qube-wayland-personal" socket-inet fork ptrace; do
	n=$((n + 1))
	got=$(probe "$bad")
	wait_for 10 "probe connection $n to end" grep -q "connection $n: .*\(killed\|ended\|exited\|failed\)" "$T/bridge-probe.log"
	check "probe: '$bad' kills it (SIGSYS), no answer ($got)" \
		bash -c "test '$got' = EOF && grep -q 'connection $n: waypipe killed by signal 31 (SIGSYS' '$T/bridge-probe.log'"
done
check "the bridges are still running" bash -c "kill -0 $BRIDGE_PID_wp && kill -0 $BRIDGE_PID_probe"

check "QUBE-REMOVE work" ctl "QUBE-REMOVE work"
sleep 0.5
check "the windows are gone" bash -c "! ctl WINDOWS | grep -q 'qube=work'"
wait_for 10 "waypipe of connection 1 to end" grep -q 'connection 1: \(ended\|waypipe exited\)' "$T/bridge-wp.log"
check "waypipe ended with the qube's socket" grep -q 'connection 1: \(ended\|waypipe exited\)' "$T/bridge-wp.log"
kill -TERM "$BRIDGE_PID_wp"
rc=0
wait "$BRIDGE_PID_wp" || rc=$?
check "the bridge exits 0 on SIGTERM ($rc)" test "$rc" = 0
check "no waypipe left behind" bash -c "! kill -0 $wp 2>/dev/null"
check "no bridge log line about a SIGSYS of the real waypipe" bash -c "! grep -q SIGSYS '$T/bridge-wp.log'"
check "compositor still running" compositor_alive
finish
