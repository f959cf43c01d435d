#!/usr/bin/env bash
# Object lifetimes under valgrind: the compositor runs under memcheck while
# qube clients come and go in the orders that broke it before (a decoration
# left by a never-committed window, on disconnect and with the surfaces
# destroyed under it; a protocol error before the first commit), and the
# ordinary ones (a framed window with a popup and a subsurface killed, a
# qube removed with its windows open, a clipboard owner gone), then a
# SIGTERM.  AddressSanitizer cannot see these: the freed memory is written
# inside wlroots and libwayland, which are not instrumented.  Valgrind
# must report no error at all (suppressions: none).
set -euo pipefail
command -v valgrind >/dev/null || { echo "SKIP: valgrind not installed"; exit 77; }
if [ "${QC_SANITIZED:-0}" = 1 ]; then
	echo "SKIP: valgrind cannot run an AddressSanitizer build (the gcc build runs this test)"
	exit 77
fi
. "$(dirname "$0")/lib.sh"

VG_LOG=$T/valgrind.log
QC_WRAPPER="valgrind --error-exitcode=99 --num-callers=30 --log-file=$VG_LOG"
QC_START_TIMEOUT=120
start_compositor
ctl "QUBE-ADD work red" >/dev/null
ctl "QUBE-ADD evil blue" >/dev/null
EVIL=$T/qube-wayland-evil

start_client neg "$EVIL" --title neg --viewport -5x-5
wait_client neg PROTOCOL-ERROR 60
start_client orphan-exit "$EVIL" --orphan-decoration exit
wait_client orphan-exit ORPHAN-SENT 60
start_client orphan-destroy "$EVIL" --orphan-decoration destroy
wait_client orphan-destroy ORPHAN-SENT 60
start_client framed "$EVIL" --title framed --size 200x120 --popup 20,20,80x40 \
	--subsurface 10,10,50x30
wait_client framed READY 60
start_client copier "$EVIL" --title copier --copy "lifetimes"
wait_client copier COPY-SET 60
start_client victim "$T/qube-wayland-work" --title victim --size 120x80
wait_client victim READY 60
check "all windows listed" bash -c "ctl WINDOWS | grep -q 'title=\[work\] victim' && ctl WINDOWS | grep -q 'title=\[evil\] framed'"
kill_client framed
kill_client copier
sleep 1
check "QUBE-REMOVE work with its window open" ctl "QUBE-REMOVE work"
sleep 1
check "the orphaned decorations were destroyed (3)" \
	bash -c "test \$(grep -c 'a decoration outlived its never-shown window' '$T/compositor.log') = 3"
stop_compositor
errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$VG_LOG" | tail -n 1)
if ! check "valgrind: no invalid access in the compositor (${errors:-no summary})" test "${errors:-x}" = 0; then
	grep -A 25 -m 3 -E 'Invalid|uninitialised|Mismatched' "$VG_LOG" >&2 || true
fi
finish
