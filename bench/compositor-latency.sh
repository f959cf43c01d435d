#!/usr/bin/env bash
# Latency of a qube window through the GUI path against the same client
# connected straight to the qube's compositor socket, in the same run:
#  - keystroke to client: the compositor's test keyboard presses a key
#    (KEY-TIMED replies CLOCK_MONOTONIC at the press) until the client's
#    wl_keyboard.key handler runs (it prints CLOCK_MONOTONIC);
#  - commit to screen: the client commits a new buffer at a random moment
#    (0-20 ms after the previous one was shown) with presentation feedback;
#    from just after its wl_surface.commit to the output commit that
#    showed it (wp_presentation_feedback.presented, CLOCK_MONOTONIC).
# "GUI path" is the real one of item 5 up to the vsock device: `waypipe
# server` in a "guest" runtime dir -> <uds-path>_6000 -> qube-gui-bridge ->
# sandboxed `waypipe client` -> the qube's socket (qube-vsockd and the
# guest kernel are not in it).  Headless output at BENCH_REFRESH Hz
# (default 1000, so that waiting for the next frame, up to 1/refresh,
# does not hide the transport; 60 for what a user sees).  Rounds alternate
# direct/GUI path; medians and 90th percentiles in us; ratio = GUI path /
# direct (medians).
#   env: QC_COMPOSITOR QC_CLIENT QC_GUI_BRIDGE PYTHON; BENCH_ROUNDS (4),
#        BENCH_KEYS (25 per round), BENCH_COMMITS (50 per round), BENCH_REFRESH
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../compositor/tests/lib.sh
. "$here/../compositor/tests/lib.sh"
command -v waypipe >/dev/null || { echo "SKIP: waypipe not installed"; exit 77; }
: "${QC_GUI_BRIDGE:?}"
unshare -Urmn true 2>/dev/null || { echo "SKIP: unprivileged user namespaces are not available here"; exit 77; }
rounds=${BENCH_ROUNDS:-4}
nkeys=${BENCH_KEYS:-25}
ncommits=${BENCH_COMMITS:-50}
refresh=${BENCH_REFRESH:-1000}

start_compositor --bench-refresh "$refresh"
user=()
sdir=$T
if [ "$(id -u)" = 0 ]; then
	user=(--user 65534:65534)
	chmod 711 "$T"
	sdir=$T/user
	mkdir "$sdir" && chown 65534:65534 "$sdir" && chmod 700 "$sdir"
fi
SOCK=$sdir/qube-wayland-bench
ctl "QUBE-ADD bench blue $SOCK" >/dev/null
[ "$(id -u)" = 0 ] && chown 65534:65534 "$SOCK"
: >"$T/bridge.log"
"$QC_GUI_BRIDGE" --qube bench --display "$SOCK" --listen "$T/vsock_6000" "${user[@]}" >"$T/bridge.log" 2>&1 &
PIDS+=($!)
wait_for 10 "bridge ready" grep -q ': ready: ' "$T/bridge.log"
mkdir -p "$T/guest" && chmod 700 "$T/guest"
guest_run() { # NAME CMD...: under `waypipe server`, through the bridge
	local name=$1; shift
	XDG_RUNTIME_DIR=$T/guest waypipe --no-gpu --socket "$T/vsock_6000" server -- "$@" \
		>"$T/client-$name.out" 2>&1 &
	PIDS+=($!)
	eval "CLIENT_PID_${name//-/_}=$!"
}
stats() { # stdin: ns values -> "median_us p90_us n"
	sort -g | awk '{a[NR]=$1} END { if (NR == 0) { print "- - 0"; exit }
		m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; p = a[int(NR*0.9) > 0 ? int(NR*0.9) : 1];
		printf "%.0f %.0f %d\n", m/1000, p/1000, NR }'
}

# ---- keystroke to client ----
start_client key-direct "$SOCK" --title key-direct --size 200x120
guest_run key-gui "$QC_CLIENT" --title key-gui --size 200x120
wait_client key-direct READY 30
wait_client key-gui READY 60
presses() { grep -c '^KEY 30 1 ' "$T/client-$1.out" || true; }
key_round() { # NAME TITLE: nkeys presses of 'a' into that window
	local name=$1 title=$2 before i t
	ctl "FOCUS $(window_id "$title")" >/dev/null
	sleep 0.2
	before=$(presses "$name")
	: >"$T/inject-round"
	for i in $(seq "$nkeys"); do
		t=$(ctl "KEY-TIMED a")
		echo "${t#OK t=}" >>"$T/inject-round"
		sleep 0.02
	done
	wait_for 20 "$name to see its keys" test "$(presses "$name")" -ge $((before + nkeys))
	grep '^KEY 30 1 ' "$T/client-$name.out" | tail -n "$nkeys" | sed 's/.* t=//' |
		paste - "$T/inject-round" | awk '{print $1 - $2}' >>"$T/lat-$name"
}
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then
		key_round key-direct '[bench] key-direct'; key_round key-gui '[bench] key-gui'
	else
		key_round key-gui '[bench] key-gui'; key_round key-direct '[bench] key-direct'
	fi
done
kill_client key-direct
kill_client key-gui

# ---- commit to screen ----
commit_round() { # direct|gui
	local name=commit-$1-$2
	if [ "$1" = direct ]; then
		start_client "$name" "$SOCK" --title "$name" --size 200x120 --latency-commits "$ncommits"
	else
		guest_run "$name" "$QC_CLIENT" --title "$name" --size 200x120 --latency-commits "$ncommits"
	fi
	wait_client "$name" LATENCY-DONE 120
	grep '^PRESENT ns=' "$T/client-$name.out" | sed 's/PRESENT ns=//' >>"$T/lat-commit-$1"
	if grep -q DISCARDED "$T/client-$name.out"; then die "$name: a commit was discarded"; fi
	kill_client "$name"
}
for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then commit_round direct "$r"; commit_round gui "$r"; else
		commit_round gui "$r"; commit_round direct "$r"; fi
done

printf '%-22s %-18s %-18s %s\n' "refresh ${refresh} Hz" "direct med/p90 us" "GUI path med/p90" "ratio (n)"
for m in key commit; do
	if [ "$m" = key ]; then d=key-direct g=key-gui label="keystroke to client"; else
		d=commit-direct g=commit-gui label="commit to screen"; fi
	read -r dm dp dn < <(stats <"$T/lat-$d")
	read -r gm gp gn < <(stats <"$T/lat-$g")
	printf '%-22s %-18s %-18s %s\n' "$label" "$dm / $dp" "$gm / $gp" \
		"$(awk -v a="$gm" -v b="$dm" 'BEGIN { printf "%.2f", a / b }') ($dn, $gn)"
done
grep -q SIGSYS "$T/bridge.log" && die "waypipe was killed by its seccomp filter"
finish
