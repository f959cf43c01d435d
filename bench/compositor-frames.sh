#!/usr/bin/env bash
# Frame time of qube-compositor with 1, 8 and 32 qube windows, borders on
# against the same scene with borders off (BORDERS off, a debug switch),
# in the same run.  Headless output 1280x720 (pixman renderer), the whole
# output repainted every frame (--bench-full-damage), every window a
# test client redrawing on each frame callback.  The compositor times
# each wlr_scene_output_commit (render + commit).  Rounds alternate the
# order (on/off, off/on); the figure is the median over rounds of each
# round's mean frame time; ratio = on / off (target <= 1.1).
#   env: QC_COMPOSITOR QC_CLIENT PYTHON; BENCH_ROUNDS (3), BENCH_SECONDS (2)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../compositor/tests/lib.sh
. "$here/../compositor/tests/lib.sh"
rounds=${BENCH_ROUNDS:-3}
secs=${BENCH_SECONDS:-2}

start_compositor --bench-full-damage ${BENCH_COMPOSITOR_ARGS:-}
ctl "QUBE-ADD bench blue" >/dev/null
stat_mean() { ctl STATS | sed -n 's/.* mean_us=\([0-9.]*\) .*/\1/p'; }
stat_frames() { ctl STATS | sed -n 's/.*frames=\([0-9]*\) .*/\1/p'; }
measure() { # measure on|off -> mean frame time (us) over $secs
	ctl "BORDERS $1" >/dev/null
	sleep 0.3
	ctl STATS-RESET >/dev/null
	sleep "$secs"
	local f m
	f=$(stat_frames); m=$(stat_mean)
	[ "${f:-0}" -gt 10 ] || die "only ${f:-0} frames in ${secs}s"
	echo "$m"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

printf '%-8s %-12s %-12s %-8s %s\n' windows on_us off_us ratio "per-round on/off (us)"
shown=0
for n in ${BENCH_COUNTS:-1 8 32}; do
	add=$((n - shown))
	start_client "w$n" "$T/qube-wayland-bench" --title "bench" --windows "$add" --size "${BENCH_WINDOW_SIZE:-400x300}" --animate --color 808080
	wait_client "w$n" READY 60
	shown=$n
	got=$(ctl WINDOWS | grep -c 'qube=bench' || true)
	[ "$got" = "$n" ] || die "expected $n windows, have $got"
	ons=() offs=() detail=""
	for r in $(seq "$rounds"); do
		if [ $((r % 2)) = 1 ]; then a=$(measure on); b=$(measure off); else b=$(measure off); a=$(measure on); fi
		ons+=("$a"); offs+=("$b"); detail+=" $a/$b"
	done
	on=$(echo "${ons[*]}" | median); off=$(echo "${offs[*]}" | median)
	ratio=$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.3f", a / b }')
	printf '%-8s %-12s %-12s %-8s%s\n' "$n" "$on" "$off" "$ratio" "$detail"
done
echo "borders on vs off, same compositor, same clients; lower is better; target ratio <= 1.1"
finish
