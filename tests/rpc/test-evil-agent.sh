#!/usr/bin/env bash
# Hostile target qubes: the agent side of a call is guest-controlled too.
# Each mode of tests/rpc/rpc-evil-agent.c misbehaves on the SERVICE
# channel; the caller must get a clean RPC failure (125) within the
# connect timeout, and the broker must keep serving everyone else.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
: "${RPC_EVIL_AGENT:?}"

modes=(badok longok bigok nook silent garbage wrongdir early huge noeof closes badexit)
write_system_info work personal "${modes[@]}"
write_services
mkdir -p "$T/policy"
echo 'test.Echo * work @anyvm allow' > "$T/policy/10-test.policy"
for q in work personal; do start_agent "$q"; done
for m in "${modes[@]}"; do
	mkdir -p "$T/qubes/$m"
	"$RPC_EVIL_AGENT" "$T/qubes/$m" "$m" > "$T/evil-$m.log" 2>&1 &
	PIDS+=($!)
	wait_for 20 "evil agent $m" test -S "$T/qubes/$m/vsock"
done
start_broker --connect-timeout 2000
SB=$(broker_sandbox_pid)
sbfd_base=$(fd_count "$SB")

for m in "${modes[@]}"; do
	out=$(echo x | timeout 60 "$QUBE_CALL" --transport "unix:$T/qubes/work" "$m" test.Echo 2>"$T/err-$m") && rc=0 || rc=$?
	check "target agent '$m': caller gets 125 and no data ($rc, ${#out} bytes)" test "$rc:$out" = "125:"
done
check "agent misbehaviour logged with the target's name" grep -q 'agent of wrongdir: .*; call failed' "$T/broker.log"
check "silent agent timed out" grep -q 'agent of silent did not answer within 2000 ms' "$T/broker.log"
out=$(echo after | call work personal test.Echo) && rc=0 || rc=$?
check "a normal call afterwards" test "$rc:$(tail -1 <<<"$out")" = "0:after"
check "broker still running" kill -0 "$BROKER_PID"
settled() { [ "$(fd_count "$SB")" -le "$sbfd_base" ]; }
wait_for 20 "sandbox fds back to baseline" settled
ok "sandbox fds back to baseline ($sbfd_base)"
finish
