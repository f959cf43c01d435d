#!/usr/bin/env bash
# A real guest's windows on the compositor, end to end, with one guest boot:
# qubed (real libvirtd, QEMU TCG, qube-vsockd) configured with the control
# socket of a headless qube-compositor run by a session user (nobody); the
# minimal image built --with-gui (waypipe, qube-start-app as qube.StartApp,
# qc-test-client, weston-simple-shm).  Checked:
#   - without gui_compositor qubed says so in one line and nothing else
#   - a qube started while the compositor is down: one "no windows" line,
#     then, once the compositor runs, QUBE-ADD and a qube-gui-bridge (as
#     the session user) within the retry interval
#   - qubectl run --service qube.StartApp (argv in a qube.Exec header):
#     the guest's windows (test client and weston-simple-shm) arrive
#     through qube-start-app, vsock port 6000, qube-vsockd, the bridge and
#     a sandboxed waypipe client, framed in the qube's colour (grim
#     screenshot, pixel checks), titles prefixed "[name] "
#   - qubed killed and started again: the bridge is adopted, the window stays
#   - the bridge killed: qubed restarts it and a new window arrives
#   - the qube killed: its windows and its compositor socket go, the bridge
#     ends, the qubectl run ends
# QC_SHOT_DIR=DIR copies the screenshot there (compositor-guest-window.png).
#
# With --bench (benchmark qubed-gui-latency) it measures instead, on the
# same set-up, keystroke to screen: the compositor's test keyboard presses
# a key (KEY-TIMED: CLOCK_MONOTONIC just before) and the test client,
# started with --key-redraw, commits a new buffer for it; the compositor's
# presentation time of that buffer (wp_presentation, CLOCK_MONOTONIC of
# the host, also when the client runs in the guest) minus the press.  The
# client in the guest (through qube.StartApp, waypipe, vsock, qube-vsockd,
# the bridge) against the same client on the host connected straight to
# the qube's socket, rounds alternating; headless output at BENCH_REFRESH
# Hz (default 1000).  waypipe converts the presentation time to the
# guest's clock through CLOCK_REALTIME; both clients print REALTIME -
# MONOTONIC (CLOCK-DELTA) and the conversion is undone here (its error is
# that of the two estimates, microseconds).  The two directions cannot be
# told apart: the guest's clock is not the host's.  BENCH_ROUNDS (4) x
# BENCH_KEYS (25).
#   gui-test.sh BUILD_DIR [--bench]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
build=$(cd "$1" && pwd)
bench=0
[ "${2:-}" = --bench ] && bench=1
for tool in waypipe grim; do
  command -v "$tool" >/dev/null || skip "$tool not installed (apt-get install $tool)"
done
COMP=$build/compositor/qube-compositor CLIENT=$build/compositor/qc-test-client
BRIDGE=$build/compositor/qube-gui-bridge STARTAPP=$build/rpc/guest/qube-start-app
for b in "$COMP" "$CLIENT" "$BRIDGE" "$STARTAPP"; do
  [ -x "$b" ] || skip "$b is not built (qube-compositor needs wlroots 0.15)"
done
SESSION_UID=65534 SESSION_GID=65534  # the compositor's user: nobody
setpriv --reuid $SESSION_UID --regid $SESSION_GID --clear-groups unshare -Urmn true 2>/dev/null ||
  skip "unprivileged user namespaces are not available (the bridge's waypipe sandbox needs them)"
qd_setup "$build"
PYTHON=python3
CTLPY=$QD_TOP/compositor/tests/ctl.py PIXELS=$QD_TOP/compositor/tests/pixels.py
PURPLE=75507b

# --- the session: a headless compositor run by the session user
S=$T/session
mkdir -m 0700 "$S" && chown $SESSION_UID:$SESSION_GID "$S"
CTL=$S/qube-compositor.ctl
comp_pid=
start_compositor() {
  (cd "$S" && exec setpriv --reuid $SESSION_UID --regid $SESSION_GID --clear-groups env \
    XDG_RUNTIME_DIR="$S" WLR_BACKENDS=headless WLR_RENDERER=pixman WLR_LIBINPUT_NO_DEVICES=1 \
    WLR_HEADLESS_OUTPUTS=1 ASAN_OPTIONS=fast_unwind_on_malloc=0 \
    LSAN_OPTIONS=suppressions=$QD_TOP/compositor/tests/lsan.supp \
    "$COMP" --debug-control --socket wl-host --control "$CTL" "$@") >"$T/compositor.log" 2>&1 &
  comp_pid=$!
  for _ in $(seq 300); do grep -q 'ready (pid' "$T/compositor.log" && return 0; sleep 0.1; done
  return 1
}
ctl() { "$PYTHON" "$CTLPY" "$CTL" "$@"; }
shot() { WAYLAND_DISPLAY=$S/wl-host grim -t "${2:-ppm}" "$1"; }
window_line() { ctl WINDOWS | grep -F "title=$1" | head -n 1; }
window_box() { # window_box TITLE frame|content: "x y w h"
  window_line "$1" | sed -n "s/.* $2=\([-0-9]*\),\([-0-9]*\),\([0-9]*\)x\([0-9]*\).*/\1 \2 \3 \4/p"
}
wait_until() { # wait_until SECONDS CMD...: polls CMD every 0.2 s
  local end=$((SECONDS + $1)); shift
  until "$@"; do [ "$SECONDS" -lt "$end" ] || return 1; sleep 0.2; done
}
bridge_pid() { cat "$T/run/qubes/$GUI/gui-bridge.pid" 2>/dev/null; }
# the bridges qubed leaves running when it is killed, and the compositor
gui_cleanup() {
  local rc=$? p f
  set +e
  for f in "$T"/run/qubes/*/gui-bridge.pid; do
    [ -f "$f" ] || continue
    p=$(cat "$f")
    grep -qF "$T/" "/proc/$p/cmdline" 2>/dev/null && kill "$p" 2>/dev/null
  done
  [ -z "$comp_pid" ] || { kill "$comp_pid" 2>/dev/null; wait "$comp_pid" 2>/dev/null; }
  if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
    for f in "$T/compositor.log" "$T"/log/gui-*.log "$T"/app-*.out "$T"/app-*.err; do
      [ -f "$f" ] && { say "--- $f (last 20 lines)"; tail -n 20 "$f"; }
    done
    grep -q "$GUI halted\$" "$T/qubed.log" 2>/dev/null &&
      say "note: $GUI stopped under the test without being asked to (see its console log)"
  fi
  (exit "$rc")
  qd_cleanup
}
trap gui_cleanup EXIT

GUI=$(uniq_name gui) TPL=$(uniq_name tpl)
img=$("$QD_TOP/tests/lib/guest-image.sh" --build-dir "$build" --output "$build/images/gui-test" --with-gui \
  --add "$STARTAPP:/usr/lib/qube/qube-start-app" --add "$CLIENT:/usr/bin/qc-test-client")
kernel=$img/vmlinux; [ -f "$kernel" ] || kernel=$img/vmlinuz
cat > "$T/policy.d/30-test.policy" <<POL
qube.StartApp * dom0 @anyvm allow
POL

# --- without a compositor configured: one line, nothing else
qd_start
wait_until 10 grep -q 'GUI: no compositor configured' "$T/qubed.log" || true
qd_stop
check "no gui_compositor: qubed says once that qubes run without windows" \
  test "$(grep -c 'GUI: no compositor configured' "$T/qubed.log")" = 1
cat >> "$T/qubed.conf" <<CONF
gui_compositor = $CTL
gui_bridge = $BRIDGE
CONF
qd_start
check "gui_compositor set: qubed names the compositor, the bridge and the session user" \
  wait_until 10 grep -q "GUI: compositor $CTL, bridges $BRIDGE (waypipe /usr/bin/waypipe), session user the control socket's owner" "$T/qubed.log"

check "create TemplateVM" qd_call admin.vm.Create.TemplateVM dom0 --payload "name=$TPL label=black"
check "import kernel" qd_call qube.template.Import+kernel "$TPL" --payload-file "$kernel"
check "import initrd (--with-gui: $(($(stat -c %s "$img/initramfs.cpio.gz") >> 20)) MiB)" \
  qd_call qube.template.Import+initrd "$TPL" --payload-file "$img/initramfs.cpio.gz"
check "create AppVM $GUI (purple)" qctl create --template "$TPL" --label purple "$GUI"
check "memory 800 MiB (waypipe's libraries live in the initramfs)" qctl prefs "$GUI" memory 800

startapp() { # startapp NAME ARGV...: qubectl run --service qube.StartApp in the background
  local name=$1; shift
  "$PYTHON" -c 'import struct, sys
body = b"\0" + b"".join(a.encode() + b"\0" for a in sys.argv[1:])
sys.stdout.buffer.write(b"QX\x01\x00" + struct.pack("<I", len(body)) + body)' "$@" |
    "$QD_QUBECTL" --socket "$QD_SOCK" run --service qube.StartApp "$GUI" >"$T/app-$name.out" 2>"$T/app-$name.err" &
  eval "app_pid_$name=\$!"
}

if [ "$bench" = 1 ]; then
  rounds=${BENCH_ROUNDS:-4} nkeys=${BENCH_KEYS:-25} refresh=${BENCH_REFRESH:-1000}
  start_compositor --bench-refresh "$refresh" || { say "compositor did not start"; exit 1; }
  qctl start "$GUI"
  wait_until 15 grep -q "$GUI: windows on the compositor's socket" "$T/qubed.log"
  startapp guest qc-test-client --key-redraw --title key-guest --size 200x120
  (cd "$S" && exec setpriv --reuid $SESSION_UID --regid $SESSION_GID --clear-groups env XDG_RUNTIME_DIR="$S" \
    WAYLAND_DISPLAY="$S/qube-wayland-$GUI" "$CLIENT" --key-redraw --title key-direct --size 200x120) \
    >"$T/app-direct.out" 2>&1 &
  direct_pid=$!
  wait_until 120 grep -q '^READY$' "$T/app-guest.out"
  wait_until 30 grep -q '^READY$' "$T/app-direct.out"
  shown() { grep -c '^KEY-SHOWN ' "$T/app-$1.out" || true; }
  shown_more() { [ "$(shown "$1")" -gt "$2" ]; }
  # waypipe hands the guest the presentation time converted to the guest's
  # clock through CLOCK_REALTIME: back to the host's with both deltas
  delta() { sed -n 's/^CLOCK-DELTA ns=//p' "$T/app-$1.out" | head -n 1; }
  wait_until 30 grep -q '^CLOCK-DELTA ' "$T/app-guest.out"
  wait_until 30 grep -q '^CLOCK-DELTA ' "$T/app-direct.out"
  fix_guest=$(($(delta guest) - $(delta direct))) fix_direct=0
  key_round() { # NAME TITLE
    local name=$1 title=$2 n t
    ctl "FOCUS $(window_line "$title" | awk '{print $2}')" >/dev/null
    sleep 0.3
    for _ in $(seq "$nkeys"); do
      n=$(shown "$name")
      t=$(ctl "KEY-TIMED a"); t=${t#OK t=}
      wait_until 30 shown_more "$name" "$n" || { say "no KEY-SHOWN from $name"; exit 1; }
      fix=fix_$name
      echo "$(($(grep '^KEY-SHOWN ' "$T/app-$name.out" | tail -n 1 | sed 's/.*ns=//') + ${!fix} - t))" >>"$T/lat-$name"
      sleep 0.02
    done
  }
  for r in $(seq "$rounds"); do
    if [ $((r % 2)) = 1 ]; then key_round direct "[$GUI] key-direct"; key_round guest "[$GUI] key-guest"; else
      key_round guest "[$GUI] key-guest"; key_round direct "[$GUI] key-direct"; fi
  done
  grep -q KEY-DISCARDED "$T"/app-*.out && { say "a key's buffer was discarded"; exit 1; }
  stats() { sort -g | awk '{a[NR]=$1} END { m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2;
    p = a[int(NR*0.9) > 0 ? int(NR*0.9) : 1]; printf "%.0f %.0f %d\n", m/1000, p/1000, NR }'; }
  read -r dm dp dn < <(stats <"$T/lat-direct")
  read -r gm gp gn < <(stats <"$T/lat-guest")
  printf '%-26s %-18s %-20s %s\n' "refresh $refresh Hz" "direct med/p90 us" "real guest med/p90" "ratio (n)"
  printf '%-26s %-18s %-20s %s\n' "keystroke to screen" "$dm / $dp" "$gm / $gp" \
    "$(awk -v a="$gm" -v b="$dm" 'BEGIN { printf "%.2f", a / b }') ($dn, $gn)"
  kill "$direct_pid" 2>/dev/null; wait "$direct_pid" 2>/dev/null || true
  qctl kill "$GUI"
  exit 0
fi

# --- started while the compositor is down; the compositor comes later
t0=$(date +%s.%N)
check "start $GUI (compositor not running yet)" qctl start "$GUI"
t1=$(date +%s.%N)
say "  start to agent answering: $(echo "$t1 - $t0" | bc) s"
check "qubed: one line, no windows for $GUI, trying again" \
  test "$(grep -c "$GUI: no windows: $CTL: No such file or directory (trying again every 5 s" "$T/qubed.log")" = 1
check "start the compositor (as the session user)" start_compositor
check "within the retry interval: QUBE-ADD $GUI purple and a bridge" \
  wait_until 15 grep -q "$GUI: windows on the compositor's socket $S/qube-wayland-$GUI through qube-gui-bridge" "$T/qubed.log"
check "the compositor serves $GUI in purple" bash -c "'$PYTHON' '$CTLPY' '$CTL' LIST | grep -q '^QUBE $GUI purple $S/qube-wayland-$GUI '"
bp=$(bridge_pid)
check "the bridge runs as the session user, listening on vsock_6000 of $GUI" bash -c \
  "grep -qE '^Uid:\s+$SESSION_UID\s' /proc/$bp/status && test -S '$T/run/qubes/$GUI/vsock_6000'"

# --- apps in the guest through qube.StartApp (argv in a qube.Exec header)
TITLE="hello from a guest"
t0=$(date +%s.%N)
startapp one qc-test-client --title "$TITLE" --color 808080 --size 320x180
check "the guest's window arrives, in qube $GUI, purple, title [$GUI] $TITLE" \
  wait_until 120 bash -c "'$PYTHON' '$CTLPY' '$CTL' WINDOWS | grep -q 'qube=$GUI label=purple .*title=\[$GUI\] $TITLE\$'"
t1=$(date +%s.%N)
say "  qubectl run --service qube.StartApp to the window on the compositor: $(echo "$t1 - $t0" | bc) s"
# the second one through qubectl run --gui (the same request, made by qubectl)
"$QD_QUBECTL" --socket "$QD_SOCK" run --gui --no-autostart "$GUI" -- weston-simple-shm \
  >"$T/app-shm.out" 2>"$T/app-shm.err" </dev/null &
app_pid_shm=$!
check "a second app (weston-simple-shm, qubectl run --gui): a second connection, framed too" \
  wait_until 120 bash -c "'$PYTHON' '$CTLPY' '$CTL' WINDOWS | grep -q 'qube=$GUI label=purple .*title=\[$GUI\] simple-shm\$'"
ctl "MOVE $(window_line "[$GUI] $TITLE" | awk '{print $2}') 120 90" >/dev/null || true
ctl "MOVE $(window_line "[$GUI] simple-shm" | awk '{print $2}') 520 160" >/dev/null || true
sleep 0.5
shot "$T/shot.ppm"
# shellcheck disable=SC2046
check "screenshot: the frame of the guest's window is exactly purple all around" \
  "$PYTHON" "$PIXELS" frame "$T/shot.ppm" $(window_box "[$GUI] $TITLE" frame) $PURPLE
# shellcheck disable=SC2046
check "screenshot: its content is what the guest drew" \
  "$PYTHON" "$PIXELS" rect "$T/shot.ppm" $(window_box "[$GUI] $TITLE" content) 808080
# shellcheck disable=SC2046
check "screenshot: weston-simple-shm framed exactly purple" \
  "$PYTHON" "$PIXELS" frame "$T/shot.ppm" $(window_box "[$GUI] simple-shm" frame) $PURPLE
if [ -n "${QC_SHOT_DIR:-}" ]; then
  shot "$QC_SHOT_DIR/compositor-guest-window.png" png && say "  screenshot: $QC_SHOT_DIR/compositor-guest-window.png"
fi
check "the app's output comes back through the call (READY)" grep -q '^READY$' "$T/app-one.out"

# --- qubed killed and started again: the bridge is adopted
kill -9 "$qd_pid"; wait "$qd_pid" 2>/dev/null || true; qd_pid=
qd_start
check "qubed restarted: it adopts the bridge (pid $bp)" \
  wait_until 10 grep -q "$GUI: adopted its qube-gui-bridge (pid $bp)" "$T/qubed.log"
check "... and the window is still there" bash -c "'$PYTHON' '$CTLPY' '$CTL' WINDOWS | grep -q 'title=\[$GUI\] $TITLE\$'"

# --- the bridge dies: qubed starts a new one, new windows arrive
kill -9 "$bp"
check "the bridge killed: qubed notices and restarts it" \
  wait_until 15 bash -c "grep -q '$GUI: qube-gui-bridge (pid $bp) exited' '$T/qubed.log' && [ -n \"\$(cat '$T/run/qubes/$GUI/gui-bridge.pid' 2>/dev/null)\" ] && [ \"\$(cat '$T/run/qubes/$GUI/gui-bridge.pid')\" != $bp ]"
bp=$(bridge_pid)
startapp two qc-test-client --title "after a bridge restart" --color 4080c0 --size 200x100
check "a new app's window arrives through the new bridge (pid $bp)" \
  wait_until 120 bash -c "'$PYTHON' '$CTLPY' '$CTL' WINDOWS | grep -q 'qube=$GUI label=purple .*title=\[$GUI\] after a bridge restart\$'"

# --- the qube killed: its windows go
check "kill $GUI" qctl kill "$GUI"
check "its windows are gone" wait_until 10 bash -c "! '$PYTHON' '$CTLPY' '$CTL' WINDOWS | grep -q 'qube=$GUI'"
check "its compositor socket is gone (QUBE-REMOVE)" bash -c "! '$PYTHON' '$CTLPY' '$CTL' LIST | grep -q '^QUBE $GUI '"
check "its bridge has ended, its pid file is gone" \
  bash -c "! kill -0 $bp 2>/dev/null && ! test -e '$T/run/qubes/$GUI/gui-bridge.pid'"
check "qubed logged it" grep -q "$GUI: its windows and GUI bridge are gone" "$T/qubed.log"
check "the qubectl run calls end with the qube" \
  wait_until 30 bash -c "! kill -0 $app_pid_two 2>/dev/null && ! kill -0 $app_pid_shm 2>/dev/null"
wait "$app_pid_one" "$app_pid_shm" "$app_pid_two" 2>/dev/null || true
check "the compositor kept running" kill -0 "$comp_pid"
kill -TERM "$comp_pid"; rc=0; wait "$comp_pid" || rc=$?; comp_pid=
check "the compositor exits cleanly on SIGTERM ($rc)" test "$rc" = 0
check "no sanitizer report in the compositor's log" \
  bash -c "! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' '$T/compositor.log'"
check "remove $GUI and the template" bash -c "'$QD_QUBECTL' --socket '$QD_SOCK' remove --force '$GUI' && '$QD_QUBECTL' --socket '$QD_SOCK' remove --force '$TPL'"
qd_summary
