#!/usr/bin/env bash
# Two qube sockets and the host socket with real clients (the test client,
# weston-simple-shm): every qube window and popup is framed in exactly its
# label colour, titles are "[qube] title", host windows carry no frame,
# presentation feedback arrives, and removing a qube removes its windows.
# A PNG of the scene is kept when QC_SHOT_DIR is set
# (docs/compositor-two-qubes.png comes from it).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# -s: the session's program starts with SIGTERM and SIGINT unblocked (the
# compositor blocks them for its event loop's signalfd).  Where /bin/sh is
# dash (Debian) the shell clears its mask itself and this holds anyway;
# where it is bash (Fedora) it holds only because the compositor resets it.
start_compositor -s "awk '/^SigBlk:/ { print \$2 }' /proc/self/status > '$T/startup.sigblk'"
check "QUBE-ADD work red" ctl "QUBE-ADD work red"
wait_for 20 "the startup command" test -s "$T/startup.sigblk"
check "-s: the startup command has SIGINT and SIGTERM unblocked" \
	bash -c "(( (16#\$(cat '$T/startup.sigblk') & 0x4002) == 0 ))"
check "QUBE-ADD personal blue" ctl "QUBE-ADD personal blue"
check "a second QUBE-ADD of work is refused" bash -c "! ctl 'QUBE-ADD work green' >/dev/null"
check "a bad label is refused" bash -c "! ctl 'QUBE-ADD vault pink' >/dev/null"
check "a bad name is refused" bash -c "! ctl 'QUBE-ADD -x red' >/dev/null"
check "LIST shows both qubes" bash -c "ctl LIST | grep -q '^QUBE work red $T/qube-wayland-work' && ctl LIST | grep -q '^QUBE personal blue'"

start_client mail "$T/qube-wayland-work" --title mail --color 808080 --size 300x160 \
	--popup 40,30,120x60 --popup-color ffff00
start_client notes "$T/qube-wayland-personal" --title notes --color e0e0e0 --size 260x140
start_client host wl-host --title "host terminal" --color 00cccc --size 240x150
wait_client mail READY
wait_client notes READY
wait_client host READY
have_shm=0
if command -v weston-simple-shm >/dev/null; then
	WAYLAND_DISPLAY=$T/qube-wayland-personal weston-simple-shm >"$T/client-shm.out" 2>&1 &
	PIDS+=($!)
	have_shm=1
	wait_for 20 "simple-shm window" bash -c "ctl WINDOWS | grep -q 'title=\[personal\] simple-shm'"
fi

ctl "MOVE $(window_id '[work] mail') 40 40" >/dev/null
ctl "MOVE $(window_id '[personal] notes') 420 40" >/dev/null
ctl "MOVE $(window_id 'host terminal') 800 60" >/dev/null
[ "$have_shm" = 1 ] && ctl "MOVE $(window_id '[personal] simple-shm') 420 300" >/dev/null
sleep 0.3
ctl WINDOWS
shot "$T/shot.ppm"
shot "$T/shot.png" png
[ -n "${QC_SHOT_DIR:-}" ] && cp "$T/shot.png" "$QC_SHOT_DIR/compositor-two-qubes.png"

# shellcheck disable=SC2046
check "[work] mail: frame exactly red all around" pixels frame "$T/shot.ppm" $(window_frame '[work] mail') $RED
# shellcheck disable=SC2046
check "[personal] notes: frame exactly blue all around" pixels frame "$T/shot.ppm" $(window_frame '[personal] notes') $BLUE
if [ "$have_shm" = 1 ]; then
	# shellcheck disable=SC2046
	check "weston-simple-shm in personal: frame exactly blue" pixels frame "$T/shot.ppm" $(window_frame '[personal] simple-shm') $BLUE
fi
read -r cx cy _ _ < <(window_content '[work] mail')
check "[work] mail: content is the client's colour (left of the popup)" pixels rect "$T/shot.ppm" "$cx" "$cy" 30 100 808080
check "title of the work window is prefixed" bash -c "ctl WINDOWS | grep -q 'qube=work label=red .* title=\[work\] mail$'"
check "title of the personal window is prefixed" bash -c "ctl WINDOWS | grep -q 'qube=personal label=blue .* title=\[personal\] notes$'"
check "host window title has no prefix" bash -c "ctl WINDOWS | grep -q 'qube=- label=- .* title=host terminal$'"
# the host window: its own pixels, no frame (the ring around it is the background)
# shellcheck disable=SC2046
check "host window: content as drawn" pixels rect "$T/shot.ppm" $(window_content 'host terminal') 00cccc
# shellcheck disable=SC2046
check "host window: no frame around it" pixels ring "$T/shot.ppm" $(window_content 'host terminal') 000000
# the popup: framed in red, inside its toplevel
pop=$(ctl WINDOWS | grep '^POPUP' | head -n 1)
echo "popup: $pop"
read -r px py pw ph < <(echo "$pop" | sed -n 's/.* frame=\([-0-9]*\),\([-0-9]*\),\([0-9]*\)x\([0-9]*\).*/\1 \2 \3 \4/p')
check "popup listed, not hidden" bash -c "[ -n '$pop' ] && ! echo '$pop' | grep -q hidden"
check "popup frame exactly red" pixels border "$T/shot.ppm" "$px" "$py" "$pw" "$ph" $RED
check "popup content drawn" pixels rect "$T/shot.ppm" $((px + 4)) $((py + 4)) $((pw - 8)) $((ph - 8)) ffff00
# shellcheck disable=SC2046
read -r wx wy ww wh < <(window_frame '[work] mail')
check "popup inside its window" test "$px" -ge "$wx" -a "$py" -ge "$((wy + 16))" -a $((px + pw)) -le $((wx + ww)) -a $((py + ph)) -le $((wy + wh))

# presentation-time (on the qube allow-list): each commit is reported
# presented, after it was committed (wlroots 0.15's headless backend sends
# no present event by itself: the compositor sends it)
start_client pres "$T/qube-wayland-work" --title pres --size 60x40 --latency-commits 5
wait_client pres LATENCY-DONE 30
check "presentation feedback: 5 commits presented, none discarded" \
	bash -c "test \$(grep -c '^PRESENT ns=[0-9]' '$T/client-pres.out') = 5 && ! grep -q DISCARDED '$T/client-pres.out'"
kill_client pres

# removing a qube closes its socket and every window of it
check "QUBE-REMOVE personal" ctl "QUBE-REMOVE personal"
sleep 0.3
check "personal's windows are gone" bash -c "! ctl WINDOWS | grep -q 'qube=personal'"
check "personal's socket is gone" test ! -e "$T/qube-wayland-personal"
check "work's window stays" bash -c "ctl WINDOWS | grep -q 'title=\[work\] mail'"
check "the personal client was disconnected" bash -c "! kill -0 $CLIENT_PID_notes 2>/dev/null"
check "compositor still running" compositor_alive
finish
