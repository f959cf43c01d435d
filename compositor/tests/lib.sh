# shellcheck shell=bash
# Shared setup of the compositor tests: a headless qube-compositor (pixman
# renderer, test keyboard), its control socket, clients, screenshots.
# Environment from compositor/meson.build: QC_COMPOSITOR QC_CLIENT PYTHON.
set -euo pipefail
: "${QC_COMPOSITOR:?}" "${QC_CLIENT:?}"
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

for tool in grim; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/qube-comp-test.XXXXXX")
chmod 700 "$T"
export XDG_RUNTIME_DIR=$T
PIDS=()
COMP_PID=
fail_count=0

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ -n "$COMP_PID" ]; then kill "$COMP_PID" 2>/dev/null || true; wait "$COMP_PID" 2>/dev/null || true; fi
	if [ "${KEEP_TEST_DIR:-0}" = 1 ]; then echo "test dir kept: $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

dump_logs() {
	echo "---- compositor log ----" >&2; cat "$T/compositor.log" >&2 2>/dev/null || true
	local f
	for f in "$T"/client-*.out; do [ -f "$f" ] && { echo "---- $f ----" >&2; tail -n 20 "$f" >&2; }; done
}
die() { echo "FATAL: $*" >&2; dump_logs; exit 1; }
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fail_count=$((fail_count + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
# stop_compositor: SIGTERM, a clean exit (0) expected; in the sanitizer
# build, no AddressSanitizer/UBSan/LeakSanitizer report in its log
stop_compositor() {
	local rc=0
	kill -TERM "$COMP_PID" 2>/dev/null || true
	wait "$COMP_PID" || rc=$?
	COMP_PID=
	check "compositor exits cleanly on SIGTERM (exit $rc)" test "$rc" = 0
	if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$T/compositor.log"; then
		not_ok "sanitizer report in the compositor log"
	elif [ "${QC_SANITIZED:-0}" = 1 ]; then
		ok "no sanitizer report (ASan+UBSan build)"
	fi
}
finish() {
	[ -n "$COMP_PID" ] && stop_compositor
	if [ "$fail_count" -gt 0 ]; then dump_logs; echo "$fail_count check(s) failed" >&2; exit 1; fi
	echo "all checks passed"
}
wait_for() { # wait_for TIMEOUT_S DESCRIPTION COMMAND...
	local t=$1 d=$2; shift 2
	local end=$((SECONDS + t))
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || die "timed out after ${t}s waiting for: $d"
		sleep 0.05
	done
}

CTL=$T/ctl
# QC_WRAPPER: a command line the compositor runs under (valgrind)
start_compositor() { # extra options
	# full malloc stacks, so that the one wlroots-internal leak at exit
	# can be suppressed by name (lsan.supp) and nothing else is
	ASAN_OPTIONS=${ASAN_OPTIONS:-fast_unwind_on_malloc=0} \
	LSAN_OPTIONS=suppressions=$HERE/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS} \
	WLR_BACKENDS=headless WLR_RENDERER=pixman WLR_LIBINPUT_NO_DEVICES=1 \
	WLR_HEADLESS_OUTPUTS=1 \
		${QC_WRAPPER:-} "$QC_COMPOSITOR" --debug-control --socket wl-host --control "$CTL" "$@" \
		>"$T/compositor.log" 2>&1 &
	COMP_PID=$!
	wait_for "${QC_START_TIMEOUT:-30}" "compositor ready" grep -q 'ready (pid' "$T/compositor.log"
}
compositor_alive() { kill -0 "$COMP_PID" 2>/dev/null; }
ctl() { "$PYTHON" "$HERE/ctl.py" "$CTL" "$@"; }

# start_client NAME SOCKET ARGS...: runs the test client on SOCKET (a path
# for a qube socket, wl-host for the host); output in $T/client-NAME.out
start_client() {
	local name=$1 sock=$2; shift 2
	WAYLAND_DISPLAY=$sock "$QC_CLIENT" "$@" >"$T/client-$name.out" 2>&1 &
	PIDS+=($!)
	eval "CLIENT_PID_${name//-/_}=$!"
}
kill_client() { local v="CLIENT_PID_${1//-/_}"; kill "${!v}" 2>/dev/null || true; wait "${!v}" 2>/dev/null || true; }
client_says() { grep -q "$2" "$T/client-$1.out" 2>/dev/null; }
wait_client() { wait_for "${3:-20}" "client $1 to say $2" client_says "$1" "$2"; }

# window_field TITLE FIELD: from WINDOWS, the line whose title is TITLE
window_line() { ctl WINDOWS | grep -F "title=$1" | head -n 1; }
window_id() { window_line "$1" | awk '{print $2}'; }
# frame box "x y w h" of the window titled $1
window_frame() { window_line "$1" | sed -n 's/.* frame=\([-0-9]*\),\([-0-9]*\),\([0-9]*\)x\([0-9]*\) .*/\1 \2 \3 \4/p'; }
window_content() { window_line "$1" | sed -n 's/.* content=\([-0-9]*\),\([-0-9]*\),\([0-9]*\)x\([0-9]*\).*/\1 \2 \3 \4/p'; }

shot() { WAYLAND_DISPLAY=wl-host grim -t "${2:-ppm}" "$1"; }
pixels() { "$PYTHON" "$HERE/pixels.py" "$@"; }

RED=cc0000 ORANGE=f57900 YELLOW=edd400 GREEN=73d216 GRAY=555555 BLUE=3465a4 PURPLE=75507b BLACK=000000
# for checks run through bash -c
export CTL PYTHON HERE T
export -f ctl window_line window_id window_frame window_content pixels
