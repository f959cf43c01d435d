#!/usr/bin/env bash
# Issue 9: one qube must never be able to deny service to the others.
# Hostile qubes (tests/rpc/rpc-flood.py, raw protocol) against a real
# broker, real agents, a scripted start interface and prompt
# (tests/rpc/rpc-ifaces.py).  Each part fails against the broker before
# the fix (noted per part):
#   1  starts   callers that hang up while their disposable is being made
#               stay within the per-qube cap, are cancelled, and a disposable
#               that finished anyway is destroyed (before: 599 starts open)
#   1b cleanup  a call whose disposable's DESTROY is unanswered keeps its
#               slot (before: the slot was free at once)
#   3  asks     abandoned questions are withdrawn (CANCEL), at most
#               --max-asks-per-qube are open, the prompt is never dropped
#               (before: no CANCEL, every question left open, and the
#               prompt disconnected once 256 KiB were queued)
#   5  log      a flood of refusals is rate-limited with a summary (before:
#               two lines per call)
#   2  EMFILE   a monitor at its fd limit pauses accepting, logs once,
#               sheds the calls not yet running of the qube holding most
#               calls, and serves again when fds are back (before: a spin,
#               ~100k lines/s; no shedding)
#   4  CTRUNC   a sandbox at its fd limit loses that one connection, not its
#               life (before: it exited, and the broker with it)
#   4b limit    a broker whose hard fd limit is 400 sizes its caps from it
#               and serves others while two qubes hold 500 idle connections
#               (before: the sandbox ran out of fds and the broker exited)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
: "${PYTHON:?}"
for tool in prlimit setpriv; do
	command -v "$tool" >/dev/null || { echo "SKIP: needs $tool (util-linux)"; exit 77; }
done
# the interpreter itself (a pyenv shim would not pass on kill)
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)')
here=$(cd "$(dirname "$0")" && pwd)
flood() { "$PYTHON" "$here/rpc-flood.py" "$@"; }
# in the background: the interpreter's own pid, so that kill reaches it
flood_bg() { "$PYTHON" "$here/rpc-flood.py" "$@" & PIDS+=($!); }
# lines_from N FILE: the lines of FILE after its first N
lines_from() { tail -n +"$(($1 + 1))" "$2"; }

# 120 qubes with 31-byte names: work's questions offer them all (4 KB
# lines), so that abandoned questions left at the prompt fill its buffer
long=()
for i in $(seq -w 1 120); do long+=("longname-$i-xxxxxxxxxxxxxxxxxx"); done
write_system_info work personal vault evil2 "${long[@]}"
write_services
mkdir -p "$T/policy"
cat > "$T/policy/10-test.policy" <<'P'
test.Echo    *  work   @dispvm   allow
test.Ask     *  work   @anyvm    ask default_target=personal
test.Ask     *  vault  personal  ask default_target=personal
test.Echo    *  vault  personal  allow
test.Denied  *  work   personal  deny
P
cp "$T/rpc/test.Echo" "$T/rpc/test.Ask"
for q in personal vault; do start_agent "$q"; done
mkdir -p "$T/qubes/work" "$T/qubes/evil2"

"$PYTHON" "$here/rpc-ifaces.py" starter "$T/start.sock" "$T/starter.log" &
PIDS+=($!)
wait_for 20 "start interface" grep -q listening "$T/starter.log"
start_broker --start-socket "$T/start.sock" --ask-socket "$T/ask.sock" \
	--max-per-qube 16 --max-total 64 --max-asks-per-qube 8 --log-per-qube 50 \
	--start-timeout 60000 --ask-timeout 60000 --connect-timeout 300
check "the caps are logged at start" \
	grep -q 'caps: 64 calls at once, 16 per qube, 8 questions per qube at the prompt, 50 log lines per qube per 10 s (fd limit [0-9]*)' "$T/broker.log"

# ---- 1. pending starts count against the caps; cancelled; late disposables destroyed
flood "$T/qubes/work/vsock_513" 400 waves:40:300 @dispvm test.Echo > "$T/flood1.out"
maxopen=$(sed -n 's/^OPEN //p' "$T/starter.log" | sort -n | tail -1)
ndisp=$(grep -c '^REQ DISPVM' "$T/starter.log" || true)
check "400 abandoned @dispvm calls (10 waves of 40): at most 16 start requests open at once (max $maxopen, $ndisp made)" \
	test "${maxopen:-0}" -le 16 -a "$ndisp" -ge 1
check "over the cap, connections were closed (logged)" \
	grep -q 'connection from work closed: too many calls' "$T/broker.log"
out=$(echo hi | call vault personal test.Echo) && rc=0 || rc=$?
check "another qube's call works meanwhile ($rc)" test "$rc:$(tail -1 <<<"$out")" = "0:hi"
cancelled() { test "$(grep -c '^CANCELLED DISPVM' "$T/starter.log")" -ge "$ndisp"; }
wait_for 20 "every DISPVM cancelled" cancelled
ok "every DISPVM request was cancelled (the broker ended its side): $(grep -c '^CANCELLED DISPVM' "$T/starter.log")"
nlate=$(grep -c '^LATE-OK' "$T/starter.log" || true)
destroyed() { test "$(grep -c '^DESTROYED dvm' "$T/starter.log" || true)" -ge "$nlate"; }
wait_for 20 "late disposables destroyed" destroyed
check "every disposable that finished after its caller left was destroyed ($nlate)" \
	test "$(grep -c '^DESTROYED dvm' "$T/starter.log")" -eq "$nlate" -a "$nlate" -ge 1
check "the broker logged the destruction" grep -q 'finished starting after its caller left: destroying it' "$T/broker.log"
# the slots are free again once every start request was answered
out=$(call work personal test.Denied </dev/null 2>&1) && rc=0 || rc=$?
check "work's slots are free once the starts finished (deny -> 126, got $rc)" test "$rc" = 126

# ---- 1b. a call whose disposable is still being destroyed keeps its slot
echo fast > "$T/starter.log.mode"
for i in $(seq 16); do
	rc=0; call work @dispvm test.Echo </dev/null >/dev/null 2>&1 || rc=$?
	[ "$rc" = 125 ] || not_ok "disposable call $i: expected 125 (no agent in the disposable), got $rc"
done
held16() { test "$(grep -c '^HELD' "$T/starter.log")" -eq 16; }
wait_for 20 "16 DESTROYs held" held16
ok "16 disposable calls ended (125), their DESTROY requests are held unanswered"
out=$(call work personal test.Denied </dev/null 2>&1) && rc=0 || rc=$?
check "with 16 DESTROYs unanswered, work is at its cap: closed at once (got $rc, not the deny's 126)" test "$rc" = 125
echo release > "$T/starter.log.mode"
released() { test "$(grep -c '^DESTROYED dvm' "$T/starter.log")" -ge $((nlate + 16)); }
wait_for 20 "held DESTROYs answered" released
freed() { rc=0; call work personal test.Denied </dev/null >/dev/null 2>&1 || rc=$?; test "$rc" = 126; }
wait_for 20 "work's slots free after the DESTROYs" freed
ok "once the DESTROYs are answered, work's calls are served again (126)"
echo slow > "$T/starter.log.mode"

# ---- 3. ask floods: CANCEL, a per-qube cap, the prompt stays
"$PYTHON" "$here/rpc-ifaces.py" prompt "$T/ask.sock" "$T/prompt.log" late vault &
PIDS+=($!)
wait_for 20 "prompt connected" grep -q 'prompt program connected' "$T/broker.log"
flood "$T/qubes/work/vsock_513" 6000 hangup personal test.Ask > "$T/flood3.out"
flood "$T/qubes/work/vsock_513" 200 waves:40:200 personal test.Ask > "$T/flood3b.out"
out=$(echo asked | call vault personal test.Ask) && rc=0 || rc=$?
check "after 6200 abandoned asks from work, vault's ask is answered ($rc)" test "$rc:$(tail -1 <<<"$out")" = "0:asked"
check "the prompt program was never disconnected" bash -c "! grep -q 'prompt program disconnected' '$T/broker.log'"
nask() { grep -c '^ASK [0-9]* work ' "$T/prompt.log" || true; }
ncancel() { grep -c '^CANCEL ' "$T/prompt.log" || true; }
all_cancelled() { test "$(ncancel)" -ge 1 -a "$(ncancel)" -eq "$(nask)"; }
wait_for 20 "every abandoned question withdrawn" all_cancelled
ok "every abandoned question was withdrawn: $(nask) asked, $(ncancel) CANCEL lines"
maxpend=$(awk '/^ASK [0-9]+ work /{p++; if (p>m) m=p} /^CANCEL /{p--} END{print m+0}' "$T/prompt.log")
check "at most 8 of work's questions were open at the prompt at once (max $maxpend)" test "$maxpend" -le 8

# ---- 5. the log: a flood of refusals is summarised
sleep 11 # a fresh log window for work
mark=$(wc -l < "$T/broker.log")
t0=$SECONDS
flood "$T/qubes/work/vsock_513" 400 hangup personal test.Denied > /dev/null
windows=$(( (SECONDS - t0) / 10 + 1 ))
sleep 1
nwork=$(lines_from "$mark" "$T/broker.log" | grep -c -E 'source=work |from work |caller work |work: [0-9]* log lines suppressed' || true)
nsum=$(lines_from "$mark" "$T/broker.log" | grep -c 'qube work: [0-9]* log lines suppressed' || true)
# two processes (monitor, sandbox), 50 lines each per window, plus their summaries
check "400 refused calls from work wrote $nwork lines about work (<= $((windows * 2 * 50 + nsum)))" \
	test "$nwork" -ge 1 -a "$nwork" -le $((windows * 2 * 50 + nsum))
wait_for 20 "suppression summary" grep -q 'qube work: [0-9]* log lines suppressed' "$T/broker.log"
ok "summary: $(grep -o 'qube work: [0-9]* log lines suppressed[^"]*' "$T/broker.log" | tail -1)"

# ---- 2. EMFILE: the monitor pauses accepting, once per episode, no spin,
# and sheds the calls not yet running of the qube that holds the most
sleep 11 # a fresh log window for work
# work holds 5 questions at the prompt (it answers vault's only) and 4
# disposables being started (the starter is slow: never answered)
ncx0=$(grep -c '^CANCELLED DISPVM' "$T/starter.log" || true)
nask0=$(nask); nreq0=$(grep -c '^REQ DISPVM' "$T/starter.log" || true)
flood_bg "$T/qubes/work/vsock_513" 5 hold personal test.Ask > "$T/flood2a.out"
flood_bg "$T/qubes/work/vsock_513" 4 hold @dispvm test.Echo > "$T/flood2b.out"
pending_held() {
	test "$(nask)" -ge $((nask0 + 5)) -a "$(grep -c '^REQ DISPVM' "$T/starter.log")" -ge $((nreq0 + 4))
}
wait_for 20 "work's 5 questions and 4 starts open" pending_held
# the limit at the lowest free fd number: the next accept4() fails
free_fd=0
while [ -e "/proc/$BROKER_PID/fd/$free_fd" ]; do free_fd=$((free_fd + 1)); done
mark=$(wc -l < "$T/broker.log")
prlimit --pid "$BROKER_PID" --nofile="$free_fd:4096"
flood_bg "$T/qubes/work/vsock_513" 20 idle > "$T/flood2.out"
fpid=$!
wait_for 20 "idle connections made" grep -q sent "$T/flood2.out"
wait_for 20 "episode logged" grep -q 'cannot accept calls: Too many open files' "$T/broker.log"
check "the episode's line names work and its 9 calls not yet running as shed" \
	grep -q 'most from work (9); 9 of its calls not yet running shed' "$T/broker.log"
wait_for 20 "work's held calls closed" bash -c "grep -qx 'closed 5' '$T/flood2a.out' && grep -qx 'closed 4' '$T/flood2b.out'"
ok "work's 5 asking and 4 starting connections were closed by the broker"
wait_for 20 "the shed questions withdrawn" all_cancelled
ok "the shed questions were withdrawn at the prompt ($(nask) asked, $(ncancel) CANCEL lines)"
cx4() { test "$(grep -c '^CANCELLED DISPVM' "$T/starter.log")" -ge $((ncx0 + 4)); }
wait_for 20 "the shed starts cancelled" cx4
ok "the 4 shed starts were cancelled at the start interface"
sleep 1
mark2=$(wc -l < "$T/broker.log")
ticks=$(awk '{print $14 + $15}' "/proc/$BROKER_PID/stat")
sleep 2
ticks2=$(awk '{print $14 + $15}' "/proc/$BROKER_PID/stat")
lines=$(lines_from "$mark2" "$T/broker.log" | wc -l)
check "at its fd limit with 20 connections pending, the monitor wrote $lines log lines in 2 s (<= 2)" test "$lines" -le 2
nep=$(lines_from "$mark" "$T/broker.log" | grep -c -E 'source=work .*result=abandoned|from work closed before a valid request' || true)
check "the shed calls have no line of their own ($nep)" test "$nep" -eq 0
check "the episode was logged once" test "$(grep -c 'cannot accept calls: Too many open files' "$T/broker.log")" -eq 1
check "the monitor does not spin (CPU ticks in 2 s: $((ticks2 - ticks)), < 100)" test $((ticks2 - ticks)) -lt 100
prlimit --pid "$BROKER_PID" --nofile=4096:4096
kill "$fpid" 2>/dev/null || true
out=$(echo back | call vault personal test.Echo) && rc=0 || rc=$?
check "with fds back, calls are served again ($rc)" test "$rc:$(tail -1 <<<"$out")" = "0:back"
wait_for 10 "resume logged" grep -q 'file descriptors available again' "$T/broker.log"

# ---- 4. MSG_CTRUNC: a sandbox at its fd limit loses one connection, not its life
SB=$(broker_sandbox_pid)
free_fd=0
while [ -e "/proc/$SB/fd/$free_fd" ]; do free_fd=$((free_fd + 1)); done
read -r sb_soft sb_hard < <(awk '/^Max open files/ {print $4, $5}' "/proc/$SB/limits")
# as the sandbox's own user: changing another user's limits needs
# CAP_SYS_RESOURCE, which the test may not have even as root
sb_prlimit() {
	setpriv --reuid="$(stat -c %u "/proc/$SB")" --regid="$(stat -c %g "/proc/$SB")" \
		--clear-groups -- prlimit --pid "$SB" --nofile="$1:$sb_hard"
}
sb_prlimit "$free_fd"
out=$(echo lost | call vault personal test.Echo 2>/dev/null) && rc=0 || rc=$?
check "a call whose connection the sandbox could not receive fails (125, got $rc)" test "$rc" = 125
check "... logged as that call's error" grep -q 'call id=[0-9]*: out of file descriptors, its connection was dropped' "$T/broker.log"
sb_prlimit "$sb_soft"
out=$(echo again | call vault personal test.Echo) && rc=0 || rc=$?
check "the same sandbox serves the next call ($rc)" test "$rc:$(tail -1 <<<"$out")" = "0:again"
check "the sandbox is the same process" test "$(broker_sandbox_pid)" = "$SB" -a -d "/proc/$SB"
check "the broker is still running" kill -0 "$BROKER_PID"

# ---- 4b. a low hard fd limit: the caps are sized from it
kill "$BROKER_PID"
wait "$BROKER_PID" 2>/dev/null || true
: > "$T/broker.log"
# root may raise its hard limit; without CAP_SYS_RESOURCE it is a hard
# limit as for any other user
setpriv --bounding-set=-sys_resource --inh-caps=-sys_resource -- \
	prlimit --nofile=400:400 -- "$QUBE_BROKER" --policy-dir "$T/policy" \
	--system-info "$T/system-info.json" --qubes-dir "$T/qubes" --log "$T/broker.log" &
BROKER_PID=$!
PIDS+=("$BROKER_PID")
wait_for 30 "broker ready" grep -q ' ready ' "$T/broker.log"
check "the fd limit lowered the caps (logged)" \
	grep -q 'fd limit 400: at most 48 calls at once (--max-total 2048 lowered), 6 per qube' "$T/broker.log"
check "... and the caps line says so" grep -q 'caps: 48 calls at once, 6 per qube, .*(fd limit 400)' "$T/broker.log"
flood_bg "$T/qubes/work/vsock_513" 250 idle > "$T/flood4a.out"
flood_bg "$T/qubes/evil2/vsock_513" 250 idle > "$T/flood4b.out"
wait_for 30 "500 idle connections made" bash -c "grep -q sent '$T/flood4a.out' && grep -q sent '$T/flood4b.out'"
out=$(echo low | call vault personal test.Echo) && rc=0 || rc=$?
check "with 500 idle connections from two qubes, vault's call works ($rc)" test "$rc:$(tail -1 <<<"$out")" = "0:low"
check "the broker is still running" kill -0 "$BROKER_PID"
check "no fd error in the sandbox" bash -c "! grep -q 'out of file descriptors\|monitor socket' '$T/broker.log'"
finish
