#!/usr/bin/env bash
# Frame time of qube-compositor with 1, 8 and 32 qube windows, borders on
# against the same scene with borders off, in the same run.  The
# compositor alternates every frame between drawing the frames and not
# (BORDERS ab, a debug switch that leaves every window where it is), so
# both variants see the same load from the rest of the machine at the same
# moments, and keeps separate frame-time statistics for each.  Headless
# output 1280x720 (pixman renderer), the whole output repainted every
# frame (--bench-full-damage), every window a 400x300 test client
# redrawing on each frame callback.  Timed: wlr_scene_output_commit
# (render + commit), wall time and the CPU time of the compositor's
# thread.  Each round is BENCH_SECONDS of frames; per round the median
# frame of each variant; reported: medians over the rounds of those, and
# of each round's on/off ratio (target <= 1.1).
#   env: QC_COMPOSITOR QC_CLIENT PYTHON; BENCH_ROUNDS (9), BENCH_SECONDS (1),
#        BENCH_COUNTS ("1 8 32"), BENCH_WINDOW_SIZE (400x300)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../compositor/tests/lib.sh
. "$here/../compositor/tests/lib.sh"
rounds=${BENCH_ROUNDS:-9}
secs=${BENCH_SECONDS:-1}

start_compositor --bench-full-damage ${BENCH_COMPOSITOR_ARGS:-}
ctl "QUBE-ADD bench blue" >/dev/null
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
measure() { # one round -> "wall_on cpu_on wall_off cpu_off" (median frames, us)
	ctl STATS-RESET >/dev/null
	sleep "$secs"
	local on off f
	on=$(ctl "STATS on") off=$(ctl "STATS off")
	for st in "$on" "$off"; do
		f=$(echo "$st" | sed -n 's/.*frames=\([0-9]*\) .*/\1/p')
		[ "${f:-0}" -gt 5 ] || die "only ${f:-0} frames of a variant in ${secs}s"
	done
	echo "$(echo "$on" | field p50_us) $(echo "$on" | field cpu_p50_us)" \
		"$(echo "$off" | field p50_us) $(echo "$off" | field cpu_p50_us)"
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
	ctl "BORDERS ab" >/dev/null
	sleep 0.3
	won=() woff=() con=() coff=() wr=() cr=()
	for r in $(seq "$rounds"); do
		read -r aw ac bw bc < <(measure)
		won+=("$aw") woff+=("$bw") con+=("$ac") coff+=("$bc")
		wr+=("$(ratio "$aw" "$bw")") cr+=("$(ratio "$ac" "$bc")")
	done
	ctl "BORDERS on" >/dev/null
	printf '%-8s %-10s %-10s %-7s %-10s %-10s %-7s\n' "$n" \
		"$(echo "${won[*]}" | median)" "$(echo "${woff[*]}" | median)" "$(echo "${wr[*]}" | median)" \
		"$(echo "${con[*]}" | median)" "$(echo "${coff[*]}" | median)" "$(echo "${cr[*]}" | median)"
	echo "  cpu on/off per round: ${cr[*]}"
done
echo "frame time in us (median), borders on vs off, same compositor and clients; target ratio <= 1.1"
finish
