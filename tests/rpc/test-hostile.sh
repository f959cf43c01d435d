#!/usr/bin/env bash
# Hostile peers: a qube writing raw malformed or out-of-order bytes to the
# broker's per-qube socket (tests/rpc/rpc-hostile.c, one case per class).
# Every case must get a clean refusal (nothing but HELLO and a refusal,
# then close), be logged, and the broker must keep serving everyone else.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
: "${RPC_HOSTILE:?}"

write_system_info work personal vault idle
write_services
mkdir -p "$T/policy"
cat > "$T/policy/10-test.policy" <<'P'
test.Echo    *  work   personal  allow
test.Echo    *  vault  personal  allow
test.Secret  *  vault  personal  allow
test.Echo    *  work   idle      allow autostart=yes
P
cp "$T/rpc/test.Echo" "$T/rpc/test.Secret"
for q in work personal vault; do start_agent "$q"; done
start_broker --handshake-timeout 1500 --max-per-qube 64 --max-total 100
SB=$(broker_sandbox_pid)
fd_base=$(fd_count "$BROKER_PID"); sbfd_base=$(fd_count "$SB")
sock="$T/qubes/work/vsock_513"

mapfile -t cases < <("$RPC_HOSTILE" --list)
[ "${#cases[@]}" -ge 30 ] || die "rpc-hostile lists only ${#cases[@]} cases"

# all hostile peers at once, with normal calls from another qube meanwhile
pids=()
for c in "${cases[@]}"; do
	"$RPC_HOSTILE" "$sock" "$c" > "$T/hostile-$c.out" 2>&1 &
	pids+=($!)
done
for i in 1 2 3; do
	out=$(echo "during $i" | call vault personal test.Echo) && rc=0 || rc=$?
	check "normal call $i while ${#cases[@]} hostile peers are connected" \
		test "$rc:$(tail -1 <<<"$out")" = "0:during $i"
done
for i in "${!cases[@]}"; do
	c=${cases[$i]}
	if wait "${pids[$i]}"; then
		ok "hostile $c: $(tail -1 "$T/hostile-$c.out")"
	else
		not_ok "hostile $c: $(tail -1 "$T/hostile-$c.out")"
	fi
done

# each refusal left a reason in the log
check "silent peer timed out and logged" grep -q 'caller work sent no request within 1500 ms' "$T/broker.log"
check "malformed messages logged as such" grep -q 'caller work: malformed message' "$T/broker.log"
check "out-of-order messages logged as such" grep -q 'caller work: .* not allowed now' "$T/broker.log"
check "data before the decision was refused with a refusal message" \
	grep -q 'data-before-allowed: refused cleanly (2 message' "$T/hostile-data-before-allowed.out"
nlogged=$(grep -c 'caller work: \|caller work sent no request\|caller work closed before' "$T/broker.log" || true)
check "every hostile connection logged ($nlogged >= ${#cases[@]})" test "$nlogged" -ge "${#cases[@]}"
check "no hostile request reached the policy as a call" \
	bash -c "! grep -q 'source=work .*service=test\.\(\$\|Echo[^ ]\)' '$T/broker.log'"

# identity: work cannot borrow vault's rights, whatever it sends
out=$(echo x | call work personal test.Secret 2>&1) && rc=0 || rc=$?
check "work calling a service only vault may call: 126" test "$rc" = 126
check "logged with the transport's source (work)" grep -q 'source=work target=- requested=personal service=test.Secret .*decision=deny' "$T/broker.log"

# no start interface configured: a stopped target is "not running", 125
out=$(echo x | call work idle test.Echo 2>&1) && rc=0 || rc=$?
check "autostart without a start interface: 125" test "$rc" = 125

# caps: 80 silent connections from work against --max-per-qube 64; the
# excess is closed at once, and other qubes are still served meanwhile
pids=()
for i in $(seq 80); do
	"$RPC_HOSTILE" "$sock" silent > "$T/flood-$i.out" 2>&1 &
	pids+=($!)
done
capped() { [ "$(grep -c 'connection from work closed: too many calls' "$T/broker.log")" -ge 16 ]; }
wait_for 30 "connections over the per-qube cap closed" capped
out=$(echo during-flood | call vault personal test.Echo) && rc=0 || rc=$?
check "another qube is served while work is at its cap" test "$rc:$(tail -1 <<<"$out")" = "0:during-flood"
nf=0
for p in "${pids[@]}"; do wait "$p" || nf=$((nf + 1)); done
check "every flooding connection was closed (by the cap or the timeout)" test "$nf" = 0

# still serving, and nothing leaked
out=$(echo after | call work personal test.Echo) && rc=0 || rc=$?
check "normal call from the hostile qube afterwards" test "$rc:$(tail -1 <<<"$out")" = "0:after"
check "broker still running" kill -0 "$BROKER_PID"
settled() { [ "$(fd_count "$SB")" -le "$sbfd_base" ] && [ "$(fd_count "$BROKER_PID")" -le "$fd_base" ]; }
wait_for 20 "fd counts back to baseline" settled
ok "fd counts back to baseline (monitor $fd_base, sandbox $sbfd_base)"
finish
