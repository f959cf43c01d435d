# shellcheck shell=bash
# Helpers of the filecopy tests (sourced).  Environment from meson:
#   QFC_RECEIVE QFC_SEND QFC_HOSTILE QFC_BUILD_DIR
set -euo pipefail
: "${QFC_RECEIVE:?}" "${QFC_SEND:?}" "${QFC_HOSTILE:?}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/qube-filecopy-test.XXXXXX")
chmod 0755 "$T"
fails=0
cleanup_qfc() {
	if [ "${KEEP_TEST_DIR:-0}" = 1 ]; then echo "test dir kept: $T"; else rm -rf "$T"; fi
}
trap cleanup_qfc EXIT
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fails=$((fails + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
finish() {
	if [ "$fails" -gt 0 ]; then echo "$fails check(s) failed" >&2; exit 1; fi
	echo "all checks passed"
}

# The receiver runs as root here only when the tests do; then it must
# become an unprivileged user: nobody, with an incoming dir it owns.
RECV_ARGS=()
if [ "$(id -u)" = 0 ]; then RECV_ARGS+=(--user nobody); fi
export QFC_CONF=/dev/null

# new_incoming DIR: a base directory the receiver's user can write
new_incoming() {
	mkdir -p "$1"
	if [ "$(id -u)" = 0 ]; then chown nobody "$1"; fi
}

# pair [-C DIR] SRC_QUBE INCOMING [RECEIVER ARGS...] -- SENDER ARGS...: the
# sender (--stdio, run in DIR) and the receiver joined by two fifos, as a
# call would join them; sets SEND_RC RECV_RC; stderr in $T/send.err
# $T/recv.err
pair() {
	local dir=.
	if [ "$1" = -C ]; then dir=$2; shift 2; fi
	local src=$1 inc=$2; shift 2
	local rargs=()
	while [ "$1" != -- ]; do rargs+=("$1"); shift; done
	shift
	rm -f "$T/s2r" "$T/r2s"
	mkfifo "$T/s2r" "$T/r2s"
	QUBE_REMOTE=$src "$QFC_RECEIVE" "${RECV_ARGS[@]}" --incoming "$inc" "${rargs[@]}" \
		<"$T/s2r" >"$T/r2s" 2>"$T/recv.err" &
	local rp=$!
	SEND_RC=0
	(cd "$dir" && exec "$QFC_SEND" --stdio "$@") >"$T/s2r" <"$T/r2s" 2>"$T/send.err" || SEND_RC=$?
	RECV_RC=0
	wait "$rp" || RECV_RC=$?
}

# hostile CASE INCOMING [RECEIVER ARGS...]: the hostile sender's stream into
# the receiver; sets RECV_RC, stderr in $T/recv.err
# (RECV_TIME: an optional command prefix for the receiver, e.g. /usr/bin/time)
RECV_TIME=()
hostile() {
	local c=$1 inc=$2; shift 2
	RECV_RC=0
	"$QFC_HOSTILE" "$c" | QUBE_REMOTE=hostile "${RECV_TIME[@]}" "$QFC_RECEIVE" "${RECV_ARGS[@]}" \
		--incoming "$inc" "$@" >"$T/reply" 2>"$T/recv.err" || RECV_RC=$?
}

# snapshot DIR: every path with type, size, mode and mtime, sorted
snapshot() { find "$1" -printf '%p %y %s %m %T@\n' | LC_ALL=C sort; }
