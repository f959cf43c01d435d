#!/usr/bin/env bash
# The GUI path minus vsock: a real `waypipe client` bound to a qube socket
# and a real `waypipe server` running the test client, joined by a unix
# socket on the host (in production the stream crosses vsock).  The
# client's window appears framed in the qube's colour with its title
# prefixed, the qube's allow-list holds through waypipe, and QUBE-REMOVE
# takes the window away.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
command -v waypipe >/dev/null || { echo "SKIP: waypipe not installed"; exit 77; }

start_compositor
ctl "QUBE-ADD work purple" >/dev/null
WAYLAND_DISPLAY=$T/qube-wayland-work waypipe --no-gpu --socket "$T/wp.sock" client >"$T/client-wp-client.out" 2>&1 &
PIDS+=($!); wp_client=$!
wait_for 20 "waypipe client socket" test -S "$T/wp.sock"
# the "guest" side: its own runtime dir, as in a qube
mkdir -p "$T/guest" && chmod 700 "$T/guest"
XDG_RUNTIME_DIR=$T/guest waypipe --no-gpu --socket "$T/wp.sock" server -- \
	"$QC_CLIENT" --title "via waypipe" --color 808080 --size 220x130 >"$T/client-wp-app.out" 2>&1 &
PIDS+=($!)
wait_client wp-app READY 30
check "the window arrived through waypipe in qube work" bash -c "ctl WINDOWS | grep -q 'qube=work label=purple .*title=\[work\] via waypipe$'"
ctl "MOVE $(window_id '[work] via waypipe') 100 100" >/dev/null
sleep 0.3
shot "$T/wp.ppm"
# shellcheck disable=SC2046
check "framed exactly purple all around" pixels frame "$T/wp.ppm" $(window_frame '[work] via waypipe') $PURPLE
# shellcheck disable=SC2046
check "content as the guest drew it" pixels rect "$T/wp.ppm" $(window_content '[work] via waypipe') 808080
XDG_RUNTIME_DIR=$T/guest waypipe --no-gpu --socket "$T/wp.sock" server -- "$QC_CLIENT" --list-globals \
	>"$T/client-wp-globals.out" 2>&1 || true
check "through waypipe the qube sees xdg_wm_base" grep -q ' xdg_wm_base ' "$T/client-wp-globals.out"
check "through waypipe the qube sees no screencopy or xdg-output" \
	bash -c "! grep -qE ' (zwlr_screencopy_manager_v1|zxdg_output_manager_v1) ' '$T/client-wp-globals.out'"
check "QUBE-REMOVE work" ctl "QUBE-REMOVE work"
sleep 0.3
check "the window is gone" bash -c "! ctl WINDOWS | grep -q 'qube=work'"
check "compositor still running" compositor_alive
: "$wp_client"
finish
