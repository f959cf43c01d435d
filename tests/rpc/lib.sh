# shellcheck shell=bash
# Shared setup of the RPC integration tests: simulated qubes (a real
# qube-agent each, with its own hybrid-vsock socket directory), a real
# qube-broker, and helpers.  Sourced by tests/rpc/test-*.sh, which get the
# build directory's programs in the environment (see rpc/meson.build):
#   QUBE_BROKER QUBE_AGENT QUBE_CALL RPC_PROMPT RPC_STARTER RPC_HOSTILE RPC_LOAD
set -euo pipefail

: "${QUBE_BROKER:?}" "${QUBE_AGENT:?}" "${QUBE_CALL:?}"

T=$(mktemp -d "${TMPDIR:-/tmp}/qube-rpc-test.XXXXXX")
PIDS=()
BROKER_PID=
fail_count=0

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "${KEEP_TEST_DIR:-0}" = 1 ]; then echo "test dir kept: $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

die() { echo "FATAL: $*" >&2; dump_logs; exit 1; }
dump_logs() {
	echo "---- broker log ----" >&2; cat "$T/broker.log" >&2 2>/dev/null || true
	echo "---- agent logs ----" >&2; cat "$T"/agent-*.log >&2 2>/dev/null || true
}
ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; fail_count=$((fail_count + 1)); }
check() { # check DESCRIPTION COMMAND...
	local d=$1; shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
finish() {
	if [ "$fail_count" -gt 0 ]; then
		dump_logs
		echo "$fail_count check(s) failed" >&2
		exit 1
	fi
	echo "all checks passed"
}

# wait_for TIMEOUT_S DESCRIPTION COMMAND...: polls COMMAND every 50 ms
wait_for() {
	local t=$1 d=$2; shift 2
	local end=$((SECONDS + t))
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || die "timed out after ${t}s waiting for: $d"
		sleep 0.05
	done
}

# qube_uuid NAME: the uuid write_system_info gives qube NAME (lower-case
# 8-4-4-4-12 hex, the same for the same name in every system info a test
# writes; dom0's is the nil UUID, as in Qubes).  Two FNV-1a 64 hashes of
# the name, in bash arithmetic (no fork: tests write thousands of qubes).
# set_qube_uuid NAME sets QUBE_UUID to it without a subshell.
set_qube_uuid() {
	local s=$1 i c h1 h2 x
	if [ "$s" = dom0 ]; then
		QUBE_UUID=00000000-0000-0000-0000-000000000000
		return
	fi
	h1=$((0xcbf29ce484222325)) h2=$((0x84222325cbf29ce4))
	for ((i = 0; i < ${#s}; i++)); do
		printf -v c '%d' "'${s:i:1}"
		h1=$(((h1 ^ c) * 0x100000001b3))
		h2=$(((h2 ^ c) * 0x100000001b3))
	done
	printf -v x '%016x%016x' "$h1" "$h2"
	QUBE_UUID="${x:0:8}-${x:8:4}-${x:12:4}-${x:16:4}-${x:20:12}"
}
qube_uuid() { set_qube_uuid "$1"; echo "$QUBE_UUID"; }

# write_system_info NAME...: every NAME an AppVM; "default-dvm" a DispVM
# template; every qube (dom0 too) has its qube_uuid
write_system_info() {
	local n
	{
		echo '{"domains": {'
		set_qube_uuid dom0
		echo "  \"dom0\": {\"type\": \"AdminVM\", \"tags\": [], \"icon\": \"black\", \"power_state\": \"Running\", \"template_for_dispvms\": false, \"default_dispvm\": \"default-dvm\", \"uuid\": \"$QUBE_UUID\"},"
		set_qube_uuid default-dvm
		echo "  \"default-dvm\": {\"type\": \"AppVM\", \"tags\": [], \"icon\": \"red\", \"power_state\": \"Halted\", \"template_for_dispvms\": true, \"default_dispvm\": \"default-dvm\", \"uuid\": \"$QUBE_UUID\"}"
		for n in "$@"; do
			set_qube_uuid "$n"
			echo "  ,\"$n\": {\"type\": \"AppVM\", \"tags\": [\"sim\"], \"icon\": \"green\", \"power_state\": \"Running\", \"template_for_dispvms\": false, \"default_dispvm\": \"default-dvm\", \"uuid\": \"$QUBE_UUID\"}"
		done
		echo '}}'
	} > "$T/system-info.json.new"
	mv "$T/system-info.json.new" "$T/system-info.json"
}

# Services every simulated qube offers (one shared service directory; the
# agent's environment tells a service where it runs: SIMQUBE).
write_services() {
	mkdir -p "$T/rpc"
	cat > "$T/rpc/test.Echo" <<'SH'
#!/bin/sh
echo "in=$SIMQUBE from=$QUBE_REMOTE arg=$QUBE_SERVICE_ARGUMENT requested=$QUBE_REQUESTED_TARGET"
exec cat
SH
	cat > "$T/rpc/test.Cat" <<'SH'
#!/bin/sh
exec cat
SH
	cat > "$T/rpc/test.Exit" <<'SH'
#!/bin/sh
echo "to stdout"
echo "to stderr: $QUBE_SERVICE_ARGUMENT" >&2
exit "${QUBE_SERVICE_ARGUMENT:-0}"
SH
	cat > "$T/rpc/test.IgnoreStdin" <<'SH'
#!/bin/sh
echo "done without reading"
exit 3
SH
	cat > "$T/rpc/test.Forever" <<'SH'
#!/bin/sh
echo "started"
exec yes "endless output from $SIMQUBE in $SIMDIR"
SH
	cat > "$T/rpc/test.True" <<'SH'
#!/bin/sh
exit 0
SH
	chmod +x "$T"/rpc/*
}

# start_agent NAME: a simulated qube
start_agent() {
	local n=$1
	mkdir -p "$T/qubes/$n"
	SIMQUBE=$n SIMDIR=$T "$QUBE_AGENT" --transport "unix:$T/qubes/$n" --rpc-dir "$T/rpc" --name "$n" \
		>>"$T/agent-$n.log" 2>&1 &
	PIDS+=($!)
	wait_for 20 "agent $n socket" test -S "$T/qubes/$n/vsock"
}

# start_broker [EXTRA ARGS...]
start_broker() {
	: > "$T/broker.log"
	"$QUBE_BROKER" --policy-dir "$T/policy" --system-info "$T/system-info.json" \
		--qubes-dir "$T/qubes" --log "$T/broker.log" "$@" &
	BROKER_PID=$!
	PIDS+=("$BROKER_PID")
	wait_for 30 "broker ready" grep -q ' ready ' "$T/broker.log"
}

broker_sandbox_pid() {
	sed -n 's/.* ready (pid [0-9]*, sandbox pid \([0-9]*\)).*/\1/p' "$T/broker.log" | tail -1
}

# call SOURCE TARGET SERVICE: runs qube-call in SOURCE; stdin from the caller
call() {
	local src=$1; shift
	"$QUBE_CALL" --transport "unix:$T/qubes/$src" "$@"
}

# policy_generation: number of the last policy load logged
policy_generation() {
	sed -n 's/.*policy generation \([0-9]*\) .*/\1/p' "$T/broker.log" | tail -1
}

fd_count() { ls "/proc/$1/fd" | wc -l; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
