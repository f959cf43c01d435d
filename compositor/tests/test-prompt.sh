#!/usr/bin/env bash
# The graphical ask prompt against the real qube-broker (simulated qubes:
# real qube-agent and qube-call over the unix transport, as tests/rpc
# does): a question appears as a host window, Down changes the target,
# Enter allows the chosen one (the service runs there), Escape denies
# (126), no answer within --ask-timeout denies, keys never reach the
# focused qube window while a question is shown.  CANCEL <id> and junk
# lines are checked against the line protocol with tests/fake-ask.py
# (the broker in this tree does not send CANCEL yet).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
: "${QUBE_BROKER:?}" "${QUBE_AGENT:?}" "${QUBE_CALL:?}"

mkdir -p "$T/policy" "$T/qubes" "$T/rpc"
cat >"$T/policy/50-test.policy" <<'POL'
test.Echo * work @anyvm ask default_target=personal
POL
dom() { echo "\"$1\": {\"type\": \"AppVM\", \"tags\": [], \"icon\": \"red\", \"power_state\": \"Running\", \"template_for_dispvms\": false, \"default_dispvm\": null}"; }
echo "{\"domains\": {\"dom0\": {\"type\": \"AdminVM\", \"tags\": [], \"icon\": \"black\", \"power_state\": \"Running\", \"template_for_dispvms\": false, \"default_dispvm\": null}, $(dom work), $(dom personal), $(dom vault)}}" >"$T/system-info.json"
cat >"$T/rpc/test.Echo" <<'SH'
#!/bin/sh
echo "in=$SIMQUBE from=$QUBE_REMOTE"
SH
chmod +x "$T/rpc/test.Echo"
for q in work personal vault; do
	mkdir -p "$T/qubes/$q"
	SIMQUBE=$q "$QUBE_AGENT" --transport "unix:$T/qubes/$q" --rpc-dir "$T/rpc" --name "$q" >>"$T/agent-$q.log" 2>&1 &
	PIDS+=($!)
	wait_for 20 "agent $q" test -S "$T/qubes/$q/vsock"
done
"$QUBE_BROKER" --policy-dir "$T/policy" --system-info "$T/system-info.json" --qubes-dir "$T/qubes" \
	--ask-socket "$T/ask.sock" --ask-timeout 30000 --log "$T/broker.log" &
BROKER_PID=$!
PIDS+=("$BROKER_PID")
wait_for 30 "broker ready" grep -q ' ready ' "$T/broker.log"

start_compositor --ask-socket "$T/ask.sock" --ask-timeout 8000
wait_for 10 "prompt connected" grep -q "connected to the ask socket" "$T/compositor.log"
ctl "QUBE-ADD work red" >/dev/null
start_client typing "$T/qube-wayland-work" --title typing --color 808080
wait_client typing READY
keys_seen() { grep -c '^KEY ' "$T/client-typing.out" || true; }

call() { echo | "$QUBE_CALL" --transport "unix:$T/qubes/work" "$@"; }
prompt_shown() { ctl PROMPTS | grep -q '^PROMPT .* shown$'; }

# 1. allow, after choosing another target with Down
call vault test.Echo >"$T/call1.out" 2>&1 & c1=$!
wait_for 20 "question 1" prompt_shown
line=$(ctl PROMPTS | grep '^PROMPT')
echo "prompt: $line"
check "the prompt shows source, service, requested target" bash -c "echo '$line' | grep -q '^PROMPT [0-9]* work test.Echo - vault personal selected=personal '"
shot "$T/prompt.png" png
[ -n "${QC_SHOT_DIR:-}" ] && cp "$T/prompt.png" "$QC_SHOT_DIR/compositor-ask-prompt.png"
before=$(keys_seen)
ctl "KEY Down" >/dev/null
sel=$(ctl PROMPTS | sed -n 's/.* selected=\([^ ]*\) .*/\1/p')
check "Down moves the choice off the default ($sel)" test -n "$sel" -a "$sel" != personal
ctl "KEY Return" >/dev/null
rc=0; wait "$c1" || rc=$?
check "Enter allows: qube-call exits 0 ($rc)" test "$rc" = 0
check "the service ran in the chosen target ($sel)" grep -q "in=$sel from=work" "$T/call1.out"
check "no key reached the qube window while the prompt was up" test "$(keys_seen)" = "$before"
check "the prompt is gone" bash -c "! ctl PROMPTS | grep -q '^PROMPT'"

# 2. Escape denies
call vault test.Echo >"$T/call2.out" 2>&1 & c2=$!
wait_for 20 "question 2" prompt_shown
ctl "KEY Escape" >/dev/null
rc=0; wait "$c2" || rc=$?
check "Escape denies: qube-call exits 126 ($rc)" test "$rc" = 126

# 3. no answer: the compositor denies after --ask-timeout (8 s)
call personal test.Echo >"$T/call3.out" 2>&1 & c3=$!
wait_for 20 "question 3" prompt_shown
rc=0; wait "$c3" || rc=$?
check "timeout denies: qube-call exits 126 ($rc)" test "$rc" = 126
check "timeout: logged" grep -q "not answered in time: denied" "$T/compositor.log"

# 4. keys reach the client again once no question is shown
ctl "KEY a" >/dev/null
sleep 0.2
check "keys reach the focused window again" test "$(keys_seen)" -gt "$before"

# 5. the line protocol: CANCEL withdraws, junk is ignored (fake broker)
kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true
wait_for 10 "prompt notices the broker left" grep -q "ask socket closed" "$T/compositor.log"
mkfifo "$T/fake.in"
"$PYTHON" "$HERE/fake-ask.py" "$T/ask.sock" "$T/fake.log" <"$T/fake.in" &
PIDS+=($!)
exec 3>"$T/fake.in"
wait_for 10 "prompt reconnects" grep -q CONNECTED "$T/fake.log" 2>/dev/null
echo "ASK 41 work test.Echo - vault personal personal vault" >&3
wait_for 10 "question 41" bash -c "ctl PROMPTS | grep -q '^PROMPT 41 '"
echo "CANCEL 41" >&3
wait_for 10 "question 41 withdrawn" bash -c "! ctl PROMPTS | grep -q '^PROMPT 41 '"
check "CANCEL withdraws the question, nothing is answered" bash -c "! grep -q ' 41' '$T/fake.log'"
printf 'ASK x work a - b\nHELLO\nASK 43 wo rk\nASK 44 work test.Echo - vault - vault$bad\n' >&3
echo "ASK 42 work test.Echo arg+1 vault - vault personal" >&3
wait_for 10 "question 42" bash -c "ctl PROMPTS | grep -q '^PROMPT 42 work test.Echo arg+1 vault - selected=vault targets=vault,personal shown'"
check "junk lines are ignored" bash -c "[ \$(ctl PROMPTS | grep -c '^PROMPT') = 1 ]"
ctl "KEY Escape" >/dev/null
wait_for 10 "DENY 42" grep -q '^DENY 42$' "$T/fake.log"
echo "ASK 45 work test.Echo - vault vault vault personal" >&3
wait_for 10 "question 45" bash -c "ctl PROMPTS | grep -q '^PROMPT 45 '"
ctl "KEY Up" >/dev/null
ctl "KEY Return" >/dev/null
wait_for 10 "ALLOW 45" grep -q '^ALLOW 45 personal$' "$T/fake.log"
check "Up then Enter answers ALLOW 45 personal" grep -q '^ALLOW 45 personal$' "$T/fake.log"
exec 3>&-
check "compositor still running" compositor_alive
finish
