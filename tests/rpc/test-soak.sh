#!/usr/bin/env bash
# Soak: 10 simulated qubes (real qube-agents) call each other for a minute
# (RPC_SOAK_SECONDS) through the real broker, each in its own loop of
# sequential calls with a payload checked byte for byte, while one hostile
# qube floods the broker with connections it abandons.  Every honest call
# must come back with its own bytes (no call lost), the broker must never
# restart (same monitor and sandbox pids, no 'exiting' in its log) and its
# fd count must return to its baseline.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SECS=${RPC_SOAK_SECONDS:-60}

qubes=(q0 q1 q2 q3 q4 q5 q6 q7 q8 q9)
write_system_info "${qubes[@]}" evil
write_services
mkdir -p "$T/policy"
cat > "$T/policy/10-soak.policy" <<'P'
test.Cat  *  evil    @anyvm  deny
test.Cat  *  @anyvm  @anyvm  allow
P
for q in "${qubes[@]}" evil; do start_agent "$q"; done
start_broker
SB=$(broker_sandbox_pid)
sleep 1
fd_m=$(fd_count "$BROKER_PID"); fd_s=$(fd_count "$SB")

# one caller: sequential calls to the next qube until the deadline; prints
# "OK n" or "FAIL why"
caller() {
	local i=$1 src=${qubes[$1]} dst=${qubes[$(( ($1 + 1) % 10 ))]} n=0 end=$((SECONDS + SECS)) want got
	while [ "$SECONDS" -lt "$end" ]; do
		want="$src-$n-$RANDOM$RANDOM"
		got=$(printf '%s' "$want" | call "$src" "$dst" test.Cat 2>&1) ||
			{ echo "FAIL call $n from $src to $dst: exit $? ($got)"; return; }
		[ "$got" = "$want" ] || { echo "FAIL call $n from $src: got '$got' want '$want'"; return; }
		n=$((n + 1))
	done
	echo "OK $n"
}
# the hostile qube: connects and walks away, or sends garbage, in a loop
flood() {
	local end=$((SECONDS + SECS))
	while [ "$SECONDS" -lt "$end" ]; do
		python3 - "$T/qubes/evil/vsock_513" <<'PY' 2>/dev/null || true
import socket, sys, os
for i in range(200):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(sys.argv[1])
        if i % 3 == 0:
            s.send(os.urandom(64))
        elif i % 3 == 1:
            s.send(b"\x01\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00")
    except OSError:
        pass
    s.close()
PY
	done
}
flood &
FP=$!
cps=()
for i in $(seq 0 9); do caller "$i" > "$T/caller.$i" & cps+=($!); done
for p in "${cps[@]}" "$FP"; do wait "$p" 2>/dev/null || true; done

total=0 bad=0
for i in $(seq 0 9); do
	r=$(cat "$T/caller.$i")
	case $r in
		OK*) total=$((total + ${r#OK })) ;;
		*) bad=$((bad + 1)); echo "# ${qubes[$i]}: $r" ;;
	esac
done
echo "# $total calls in ${SECS} s from 10 qubes, all checked; flood from evil meanwhile"
check "the flood reached the broker (lines about evil in its log)" grep -q 'evil' "$T/broker.log"
check "no call lost or garbled (10 callers, $total calls)" test "$bad" = 0
check "calls were made by every caller" test "$total" -ge 10
check "the broker never restarted (same monitor)" kill -0 "$BROKER_PID"
check "... same sandbox" test "$(broker_sandbox_pid)" = "$SB"
check "... and nothing in its log says it exited" bash -c "! grep -q 'exiting\|sandbox process .* killed\|sandbox process .* exited' '$T/broker.log'"
sleep 2
check "monitor fds back to the baseline ($fd_m)" test "$(fd_count "$BROKER_PID")" -le "$fd_m"
check "sandbox fds back to the baseline ($fd_s)" test "$(fd_count "$SB")" -le "$fd_s"
finish
