#!/usr/bin/env bash
# Hostile qube clients (the test client's modes): a fullscreen request,
# huge and negative sizes, a subsurface placed over another window plus a
# self-move, a popup out of its window, transparent and frame-coloured
# buffers, a title of bidi/control/zero-width characters, binding a global
# that was not offered, a decoration left behind by its unshown window,
# 1,000 windows.  Each stays inside its own frame,
# the other windows' frames stay intact, and the compositor keeps serving.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

start_compositor
ctl "QUBE-ADD work red" >/dev/null
ctl "QUBE-ADD evil blue" >/dev/null
EVIL=$T/qube-wayland-evil
start_client victim "$T/qube-wayland-work" --title victim --color 808080 --size 200x120
wait_client victim READY
ctl "MOVE $(window_id '[work] victim') 40 40" >/dev/null

in_output() { # every WINDOW/POPUP frame inside 1280x720
	ctl WINDOWS | awk '/^(WINDOW|POPUP)/ { for (i = 1; i <= NF; i++) if ($i ~ /^frame=/) {
		split(substr($i, 7), a, /[,x]/); if (a[1] < 0 || a[2] < 0 || a[1] + a[3] > 1280 || a[2] + a[4] > 720) bad++ } }
		END { exit bad > 0 }'
}
victim_intact() {
	shot "$T/v.ppm"
	# shellcheck disable=SC2046
	pixels frame "$T/v.ppm" $(window_frame '[work] victim') $RED
}

# 1. fullscreen: filled inside a visible blue frame
start_client fs "$EVIL" --title fs --fullscreen --color 20a020
wait_client fs READY
sleep 0.3
shot "$T/fs.ppm"
check "fullscreen: the window keeps its frame on the output" bash -c "window_line '[evil] fs' | grep -q 'frame=0,0,1280x720 .*fullscreen'"
check "fullscreen: the frame is blue all around" pixels frame "$T/fs.ppm" 0 0 1280 720 $BLUE
kill_client fs

# 2. a huge surface (viewport 20000x20000): content hidden, frame on the output
start_client huge "$EVIL" --title huge --viewport 20000x20000
wait_client huge READY
sleep 0.3
check "huge: content hidden" bash -c "window_line '[evil] huge' | grep -q 'hidden=oversize'"
check "huge: frame inside the output" in_output
shot "$T/huge.ppm"
# shellcheck disable=SC2046
check "huge: frame blue all around" pixels frame "$T/huge.ppm" $(window_frame '[evil] huge') $BLUE
kill_client huge

# 3. a negative size is a protocol error for that client only
start_client neg "$EVIL" --title neg --viewport -5x-5
wait_client neg PROTOCOL-ERROR
check "negative size: that client got a protocol error" client_says neg PROTOCOL-ERROR
check "negative size: compositor alive" compositor_alive

# 3b. a decoration that outlives its never-committed window (the client
# above did it too: its viewport error came before its first commit).
# wlroots 0.15 left such a decoration listening on the freed surfaces; the
# compositor now destroys it first (test-lifetimes.sh runs this under
# valgrind, which sees writes inside wlroots that ASan cannot).
start_client orphan-exit "$EVIL" --orphan-decoration exit
wait_client orphan-exit ORPHAN-SENT
start_client orphan-destroy "$EVIL" --orphan-decoration destroy
wait_client orphan-destroy ORPHAN-SENT
kill_client orphan-exit
kill_client orphan-destroy
check "orphaned decorations: each destroyed with its window (3)" \
	bash -c "test \$(grep -c 'a decoration outlived its never-shown window' '$T/compositor.log') = 3"
check "orphaned decoration used after its surfaces: that client got an error" \
	client_says orphan-destroy 'invalid object'
check "orphaned decorations: compositor alive" compositor_alive

# 4. a subsurface at -600,0 (over the victim) and a self-move request
start_client sneak "$EVIL" --title sneak --color 404040 --size 200x120 \
	--subsurface -600,0,300x100 --subsurface-color 00ffff --move
wait_client sneak READY
ctl "MOVE $(window_id '[evil] sneak') 300 40" >/dev/null
sleep 0.3
shot "$T/sneak.ppm"
read -r sx sy sw sh < <(window_frame '[evil] sneak')
echo "sneak frame: $sx $sy $sw $sh"
check "subsurface: the frame grew around it (808 wide)" test "$sw" = 808
check "subsurface: the frame stays right of the victim" test "$sx" -ge 248
check "subsurface: frame blue all around" pixels frame "$T/sneak.ppm" "$sx" "$sy" "$sw" "$sh" $BLUE
check "subsurface: the subsurface is inside the frame" pixels rect "$T/sneak.ppm" $((sx + 4)) $((sy + 20)) 300 100 00ffff
check "subsurface/move: the victim's frame is intact" victim_intact
check "self-move was ignored" grep -q "asked to move itself: ignored" "$T/compositor.log"
kill_client sneak

# 5. popups out of place: outside the window, and larger than it
start_client pop "$EVIL" --title pop --size 200x120 --popup 3000,3000,100x50
wait_client pop READY
sleep 0.3
check "popup far outside: hidden" bash -c "ctl WINDOWS | grep '^POPUP' | grep -q 'hidden=outside'"
kill_client pop
start_client bigpop "$EVIL" --title bigpop --size 200x120 --popup 0,0,600x400
wait_client bigpop READY
sleep 0.3
check "popup larger than its window: hidden" bash -c "ctl WINDOWS | grep '^POPUP' | grep -q 'hidden=outside'"
kill_client bigpop

# 6. transparent and frame-coloured (red, the victim's colour) buffers
start_client clear "$EVIL" --title clear --color 00000000 --size 200x120
start_client fake "$EVIL" --title fake --color cc0000 --size 200x120
wait_client clear READY
wait_client fake READY
ctl "MOVE $(window_id '[evil] clear') 300 300" >/dev/null
ctl "MOVE $(window_id '[evil] fake') 600 300" >/dev/null
sleep 0.3
shot "$T/paint.ppm"
# shellcheck disable=SC2046
check "transparent buffer: the frame stays opaque blue" pixels frame "$T/paint.ppm" $(window_frame '[evil] clear') $BLUE
# shellcheck disable=SC2046
check "transparent buffer: what is behind shows inside only" pixels rect "$T/paint.ppm" $(window_content '[evil] clear') 000000
# shellcheck disable=SC2046
check "red buffer in a blue qube: the frame stays blue" pixels frame "$T/paint.ppm" $(window_frame '[evil] fake') $BLUE
kill_client clear
kill_client fake

# 7. a title of bidi, control and zero-width characters
# U+202E evil U+202C ESC [31m space pay U+200B pal space U+2066 x U+2069, then 300 'A'
hex=$(printf '\xe2\x80\xaeevil\xe2\x80\xac\x1b[31m pay\xe2\x80\x8bpal \xe2\x81\xa6x\xe2\x81\xa9' | od -An -v -tx1 | tr -d ' \n')
hex=$hex$(printf 'A%.0s' $(seq 300) | od -An -v -tx1 | tr -d ' \n')
start_client bidi "$EVIL" --title-hex "$hex"
wait_client bidi READY
want="[evil] evil[31m paypal x$(printf 'A%.0s' $(seq 111))"
got=$(ctl WINDOWS | grep 'qube=evil' | grep -o 'title=.*' | head -n 1)
check "bidi/control/zero-width removed, capped at 128 bytes" test "$got" = "title=$want"
kill_client bidi

# 8. globals: a qube sees only the allow-list; binding another is fatal to it alone
start_client gl-host wl-host --list-globals
start_client gl-qube "$EVIL" --list-globals
wait_for 10 "global lists" bash -c "grep -q GLOBAL '$T/client-gl-host.out' && grep -q GLOBAL '$T/client-gl-qube.out'"
sleep 0.2
check "host sees screencopy and xdg-output" bash -c "grep -q ' zwlr_screencopy_manager_v1 ' '$T/client-gl-host.out' && grep -q ' zxdg_output_manager_v1 ' '$T/client-gl-host.out'"
allowed='wl_compositor|wl_subcompositor|wl_shm|wl_seat|wl_output|wl_data_device_manager|xdg_wm_base|zxdg_decoration_manager_v1|wp_viewporter|wp_presentation|zwp_linux_dmabuf_v1'
check "a qube sees only allow-listed globals" bash -c "! awk '{print \$3}' '$T/client-gl-qube.out' | grep -vxE '$allowed' | grep -q ."
check "a qube sees xdg_wm_base and wl_seat" bash -c "grep -q ' xdg_wm_base ' '$T/client-gl-qube.out' && grep -q ' wl_seat ' '$T/client-gl-qube.out'"
sc_name=$(awk '$3 == "zwlr_screencopy_manager_v1" {print $2}' "$T/client-gl-host.out")
start_client bind "$EVIL" --bind "$sc_name:zwlr_screencopy_manager_v1:1"
wait_client bind PROTOCOL-ERROR
check "binding screencopy from a qube: protocol error" client_says bind PROTOCOL-ERROR
check "binding screencopy: no BOUND" bash -c "! grep -q BOUND '$T/client-bind.out'"
check "binding screencopy: the victim is still connected" kill -0 "$CLIENT_PID_victim"

# 9. 1,000 windows from one qube
start_client many "$EVIL" --title many --windows 1000 --size 8x8
wait_client many READY 120
n=$(ctl WINDOWS | grep -c 'qube=evil .*title=\[evil\] many$' || true)
check "1,000 windows mapped and listed ($n)" test "$n" = 1000
check "1,000 windows: every frame inside the output" in_output
start_client after "$T/qube-wayland-work" --title after --size 100x60 --color 808080
wait_client after READY 60
check "1,000 windows: another qube's new client still served" bash -c "ctl WINDOWS | grep -q 'title=\[work\] after$'"
ctl "FOCUS $(window_id '[work] victim')" >/dev/null
sleep 0.3
check "1,000 windows: the victim's frame is intact once raised" victim_intact
kill_client many
check "compositor still running" compositor_alive
finish
