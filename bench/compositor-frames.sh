#!/usr/bin/env bash
# Frame time of qube-compositor with 1, 8 and 32 qube windows, borders on
# against the same scene with borders off (BORDERS off, a debug switch that
# leaves every window where it is and only stops drawing the frames), in
# the same run.  Headless output 1280x720 (pixman renderer), the whole
# output repainted every frame (--bench-full-damage), every window a test
# client redrawing on each frame callback.  The compositor times each
# wlr_scene_output_commit (render + commit): wall time and the CPU time of
# its thread (the machine is shared, so wall time carries other processes'
# load; CPU time does less).  Rounds alternate the order (on/off, off/on);
# each measurement is the median frame of BENCH_SECONDS; the times shown are
# medians over rounds, the ratios the medians of each round's on / off
# (target <= 1.1).
#   env: QC_COMPOSITOR QC_CLIENT PYTHON; BENCH_ROUNDS (15), BENCH_SECONDS (0.7),
#        BENCH_COUNTS ("1 8 32"), BENCH_WINDOW_SIZE (400x300)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../compositor/tests/lib.sh
. "$here/../compositor/tests/lib.sh"
rounds=${BENCH_ROUNDS:-15}
secs=${BENCH_SECONDS:-0.7}

start_compositor --bench-full-damage ${BENCH_COMPOSITOR_ARGS:-}
ctl "QUBE-ADD bench blue" >/dev/null
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
measure() { # measure on|off -> "wall_p50 cpu_p50" frame time (us) over $secs
	ctl "BORDERS $1" >/dev/null
	sleep 0.2
	ctl STATS-RESET >/dev/null
	sleep "$secs"
	local st f
	st=$(ctl STATS)
	f=$(echo "$st" | sed -n 's/.*frames=\([0-9]*\) .*/\1/p')
	[ "${f:-0}" -gt 10 ] || die "only ${f:-0} frames in ${secs}s"
	echo "$(echo "$st" | field p50_us) $(echo "$st" | field cpu_p50_us)"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

printf '%-8s %-10s %-10s %-7s %-10s %-10s %-7s\n' windows wall_on wall_off ratio cpu_on cpu_off ratio
shown=0
for n in ${BENCH_COUNTS:-1 8 32}; do
	add=$((n - shown))
	start_client "w$n" "$T/qube-wayland-bench" --title "bench" --windows "$add" \
		--size "${BENCH_WINDOW_SIZE:-400x300}" --animate --color 808080
	wait_client "w$n" READY 60
	shown=$n
	got=$(ctl WINDOWS | grep -c 'qube=bench' || true)
	[ "$got" = "$n" ] || die "expected $n windows, have $got"
	won=() woff=() con=() coff=() wr=() cr=()
	for r in $(seq "$rounds"); do
		if [ $((r % 2)) = 1 ]; then a=$(measure on); b=$(measure off); else b=$(measure off); a=$(measure on); fi
		read -r aw ac <<<"$a"
		read -r bw bc <<<"$b"
		won+=("$aw") woff+=("$bw") con+=("$ac") coff+=("$bc")
		wr+=("$(ratio "$aw" "$bw")") cr+=("$(ratio "$ac" "$bc")")
	done
	printf '%-8s %-10s %-10s %-7s %-10s %-10s %-7s\n' "$n" \
		"$(echo "${won[*]}" | median)" "$(echo "${woff[*]}" | median)" "$(echo "${wr[*]}" | median)" \
		"$(echo "${con[*]}" | median)" "$(echo "${coff[*]}" | median)" "$(echo "${cr[*]}" | median)"
	echo "  cpu on/off per round: ${cr[*]}"
done
echo "frame time in us (median), borders on vs off, same compositor and clients; target ratio <= 1.1"
finish
