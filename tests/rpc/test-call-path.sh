#!/usr/bin/env bash
# RPC call path, end to end with real processes: qube-broker, one real
# qube-agent per simulated qube (work, personal, vault, sys), real
# qube-call, a prompt program on the ask interface and a start interface
# that starts real agents (tests/rpc/rpc-starter.c).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

write_system_info work personal vault sys lazy down broken
write_services
cp "$T/rpc/test.Echo" "$T/rpc/test.Ask"
mkdir -p "$T/policy"
cat > "$T/policy/10-test.policy" <<'P'
# call-path test policy
test.Echo        *  work  personal    allow
test.Echo        *  work  @default    allow target=personal
test.Echo        *  work  vault       deny
test.Echo        *  work  lazy        allow autostart=yes
test.Echo        *  work  down        allow autostart=no
test.Echo        *  work  broken      allow autostart=yes
test.Echo        *  work  @dispvm     allow target=@dispvm:default-dvm
test.Echo        *  sys   personal    allow
test.Cat         *  work  personal    allow
test.Exit        *  work  personal    allow
test.IgnoreStdin *  work  personal    allow
test.Forever     *  work  personal    allow
test.Silent      *  work  personal    allow
test.Whoami      *  work  personal    allow user=nobody
test.WhoamiMe    *  work  personal    allow user=root
test.Ghost       *  work  personal    allow user=no-such-user
test.Missing     *  work  personal    allow
test.Ask         *  work  @anyvm      ask default_target=personal
P
for q in work personal vault sys; do start_agent "$q"; done
mkdir -p "$T/start"
"$RPC_STARTER" "$T/start/sock" "$T/qubes" "$T/rpc" "$QUBE_AGENT" broken > "$T/starter.log" 2>&1 &
PIDS+=($!)
wait_for 20 "start interface" grep -q listening "$T/starter.log"
start_broker --ask-socket "$T/ask.sock" --ask-group nogroup --start-socket "$T/start/sock" \
	--ask-timeout 5000 --start-timeout 30000
check "ask socket: group nogroup, mode 660" test "$(stat -c %G:%a "$T/ask.sock")" = "nogroup:660"
SB=$(broker_sandbox_pid)
fd_base=$(fd_count "$BROKER_PID"); sbfd_base=$(fd_count "$SB")

# -- allow, with what the service sees
out=$(echo hi | call work personal test.Echo+arg1) && rc=0 || rc=$?
check "allow: exit 0" test "$rc" = 0
check "allow: service ran in personal, saw source/argument/requested target" \
	test "$out" = "in=personal from=work arg=arg1 requested=personal
hi"
check "allow: logged with decision and rule" \
	grep -q "call id=[0-9]* source=work target=personal requested=personal service=test.Echo argument=arg1 decision=allow result=started rule=$T/policy/10-test.policy:2 " "$T/broker.log"

# -- deny
out=$(echo hi | call work vault test.Echo 2>&1) && rc=0 || rc=$?
check "deny: exit 126" test "$rc" = 126
check "deny: logged with rule" grep -q "source=work target=- requested=vault service=test.Echo argument=- decision=deny result=refused rule=$T/policy/10-test.policy:4 " "$T/broker.log"
# -- no rule matches
out=$(echo hi | call sys vault test.Cat 2>&1) && rc=0 || rc=$?
check "no matching rule: exit 126" test "$rc" = 126
check "no matching rule: logged" grep -q 'source=sys target=- requested=vault service=test.Cat argument=- decision=deny result=refused rule=- ' "$T/broker.log"

# -- unknown service (allowed by policy, absent in the target)
out=$(echo hi | call work personal test.Missing 2>&1) && rc=0 || rc=$?
check "unknown service: exit 127" test "$rc" = 127

# -- redirect by target=
out=$(echo hi | call work @default test.Echo) && rc=0 || rc=$?
check "redirect: @default -> personal" test "$rc:$out" = "0:in=personal from=work arg= requested=@default
hi"

# -- identity comes from the transport: sys may call personal, work's socket is work
out=$(echo hi | call sys personal test.Echo) && rc=0 || rc=$?
check "source is the socket's qube (sys)" test "$rc:$(head -1 <<<"$out")" = "0:in=personal from=sys arg= requested=personal"

# -- stderr and exit code relay
call work personal test.Exit+5 </dev/null >"$T/o" 2>"$T/e" && rc=0 || rc=$?
check "exit code relayed (5)" test "$rc" = 5
check "stdout relayed" test "$(cat "$T/o")" = "to stdout"
check "stderr relayed" grep -qx "to stderr: 5" "$T/e"
call work personal test.Exit+0 </dev/null >/dev/null 2>&1 && rc=0 || rc=$?
check "exit code relayed (0)" test "$rc" = 0

# -- a service that ignores stdin while the caller sends 20 MiB
out=$(head -c 20M /dev/zero | call work personal test.IgnoreStdin 2>/dev/null) && rc=0 || rc=$?
check "service ignoring stdin: its exit code (3)" test "$rc" = 3
check "service ignoring stdin: its output" test "$out" = "done without reading"

# -- 100 MiB stdin -> stdout round trip through cat, with checksum
head -c 100M /dev/urandom > "$T/big"
want=$(sha256sum < "$T/big" | cut -d' ' -f1)
got=$(call work personal test.Cat < "$T/big" | sha256sum | cut -d' ' -f1)
check "100 MiB round trip: checksums match" test "$got" = "$want"
rm -f "$T/big"

# -- a caller that closes early: qube-call is killed while an endless
# service streams; the broker must drop the call and close the agent side
"$QUBE_CALL" --transport "unix:$T/qubes/work" personal test.Forever >"$T/forever.out" 2>/dev/null </dev/null &
CP=$!
streaming() { [ "$(stat -c %s "$T/forever.out")" -gt 100000 ]; }
wait_for 30 "endless service streaming" streaming
check "the endless service is running in personal" pgrep -f "endless output from personal in $T"
kill -9 "$CP"; wait "$CP" 2>/dev/null || true
wait_for 20 "early close logged" grep -q "closed the connection early\|went away" "$T/broker.log"
wait_for 20 "the early-closed call ended" grep -q "ended without an exit code" "$T/broker.log"
gone() { ! pgrep -f "endless output from personal in $T" >/dev/null; }
wait_for 20 "service of the early-closed call terminated" gone
ok "caller closing early: call ended, service gone"

# -- a caller killed after its stdin has ended, while its service is
# silent (neither reads nor writes): nothing is ever written toward the
# caller, so only the connection's hang-up can tell the broker it is gone
cat > "$T/rpc/test.Silent" <<'SH'
#!/bin/sh
exec sh -c 'sleep 3600; : "$0"' "silent-in-$SIMDIR"
SH
chmod +x "$T/rpc/test.Silent"
"$QUBE_CALL" --transport "unix:$T/qubes/work" personal test.Silent </dev/null >/dev/null 2>&1 &
CP=$!
silent_running() { pgrep -f "silent-in-$T" >/dev/null; }
wait_for 20 "the silent service runs" silent_running
stdin_ended() { grep -q "source=work target=personal .*service=test.Silent" "$T/broker.log"; }
wait_for 20 "the silent call logged" stdin_ended
sleep 0.5 # qube-call sent EOF(stdin) right after the call was allowed
kill -9 "$CP"; wait "$CP" 2>/dev/null || true
silent_gone() { ! silent_running; }
wait_for 20 "the silent service of a killed caller terminated" silent_gone
ok "caller killed after its stdin ended, service silent: call ended, service gone"

# -- user= (protocol version 2, SERVICE_START_AS): the service runs as the
# policy's user, with its HOME/USER/LOGNAME; an unknown user: 126
for s in test.Whoami test.WhoamiMe test.Ghost; do
	printf '#!/bin/sh\necho "$(id -un) $USER $LOGNAME $HOME"\n' > "$T/rpc/$s"
	chmod 0755 "$T/rpc/$s"
done
if [ "$(id -u)" = 0 ]; then
	chmod 0755 "$T" "$T/rpc" # the service directory must be reachable by nobody
	out=$(call work personal test.Whoami </dev/null) && rc=0 || rc=$?
	check "user=nobody: the service ran as nobody ($rc: $out)" \
		test "$rc:$out" = "0:nobody nobody nobody $(getent passwd nobody | cut -d: -f6)"
	out=$(call work personal test.WhoamiMe </dev/null) && rc=0 || rc=$?
	check "user=root: as root ($rc: $out)" test "$rc:${out%% *}" = "0:root"
else
	echo "# not root: the agent cannot switch users; checking the refusal instead"
	out=$(call work personal test.Whoami </dev/null 2>/dev/null) && rc=0 || rc=$?
	check "user=nobody with a non-root agent: cannot be started (126)" test "$rc" = 126
fi
out=$(call work personal test.Ghost </dev/null 2>/dev/null) && rc=0 || rc=$?
check "user= naming no user in the target: 126, nothing ran ($rc: $out)" test "$rc:$out" = "126:"

# -- a caller that half-closes its socket after EOF(stdin) (as a client
# other than qube-call may) still gets the whole output and the exit code
halfclose_call() {
	python3 - "$T/qubes/work/vsock_513" <<'PY'
import socket, struct, sys
def msg(t, p=b""): return struct.pack("<II", t, len(p)) + p
def s8(x): return bytes([len(x)]) + x
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sys.argv[1])
c.sendall(msg(0x01, struct.pack("<II", 1, 1)) + msg(0x10, s8(b"personal") + s8(b"test.Cat") + s8(b"")))
buf, out, code, allowed = b"", b"", None, False
while code is None:
    d = c.recv(65536)
    if not d: break
    buf += d
    while len(buf) >= 8:
        t, n = struct.unpack("<II", buf[:8])
        if len(buf) < 8 + n: break
        p, buf = buf[8:8 + n], buf[8 + n:]
        if t == 0x11 and not allowed:  # CALL_RESULT: data may flow now
            allowed = True
            c.sendall(msg(0x30, b"half-closed caller") + msg(0x33, struct.pack("<I", 0)))
            c.shutdown(socket.SHUT_WR)
        if t == 0x31: out += p
        if t == 0x40: code = struct.unpack("<I", p)[0]
print(out.decode(), code)
PY
}
check "a caller half-closed after EOF(stdin) gets the output and EXIT 0" \
	test "$(halfclose_call)" = "half-closed caller 0"

# -- backpressure: a caller that stops reading while its service writes
# without end; the broker must buffer a bounded amount and stop reading the
# agent, and still serve other calls
mkfifo "$T/fifo"
exec 9<>"$T/fifo" # holds the fifo open, never reads it
rss0=$(rss_kib "$SB")
"$QUBE_CALL" --transport "unix:$T/qubes/work" personal test.Forever >"$T/fifo" 2>/dev/null </dev/null &
CP=$!
running() { pgrep -f "endless output from personal in $T" >/dev/null; }
wait_for 20 "the endless service for the stalled caller" running
sleep 2 # let every buffer on the way fill up
rss1=$(rss_kib "$SB")
# (unbounded buffering would be hundreds of MiB by now; ASan's quarantine
# and shadow memory need more slack than the buffers themselves)
slack=2048; [ "${RPC_SANITIZED:-0}" = 1 ] && slack=16384
check "stalled caller: sandbox memory stays bounded (${rss0} -> ${rss1} KiB, slack $slack)" test "$rss1" -le $((rss0 + slack))
out=$(echo meanwhile | call work personal test.Cat) && rc=0 || rc=$?
check "other calls are served while one caller is stalled" test "$rc:$out" = "0:meanwhile"
kill -9 "$CP"; wait "$CP" 2>/dev/null || true
exec 9>&-
gone2() { ! running; }
wait_for 20 "stalled call cleaned up" gone2
ok "stalled call ended when its caller was killed"

# -- ask: no prompt program connected -> deny
out=$(echo hi | call work personal test.Ask 2>&1) && rc=0 || rc=$?
check "ask with no prompt connected: 126" test "$rc" = 126
check "ask with no prompt: reason logged" grep -q 'decision=ask-deny result=refused.*no prompt program is connected' "$T/broker.log"

prompt_connected() { test "$(grep -c 'prompt program connected' "$T/broker.log")" -ge "$1"; }
# -- ask answered yes (with a chosen target)
"$RPC_PROMPT" "$T/ask.sock" allow personal > "$T/prompt1.log" &
P1=$!; PIDS+=($P1)
wait_for 20 "prompt 1 connected" prompt_connected 1
out=$(echo hi | call work vault test.Ask) && rc=0 || rc=$?
check "ask answered yes: runs in the chosen target" test "$rc:$(head -1 <<<"$out")" = "0:in=personal from=work arg= requested=vault"
check "ask: question lists source, service, default and targets" \
	grep -q '^ASK [0-9]* work test.Ask - vault personal .*personal' "$T/prompt1.log"
check "ask yes: logged" grep -q 'decision=ask-allow result=started' "$T/broker.log"
kill "$P1"; wait "$P1" 2>/dev/null || true

# -- ask answered no
"$RPC_PROMPT" "$T/ask.sock" deny > "$T/prompt2.log" &
P2=$!; PIDS+=($P2)
wait_for 20 "prompt 2 connected" prompt_connected 2
out=$(echo hi | call work personal test.Ask 2>&1) && rc=0 || rc=$?
check "ask answered no: 126" test "$rc" = 126
kill "$P2"; wait "$P2" 2>/dev/null || true

# -- ask answered with a target that was not offered
"$RPC_PROMPT" "$T/ask.sock" allow dom0 > "$T/prompt3.log" &
P3=$!; PIDS+=($P3)
wait_for 20 "prompt 3 connected" prompt_connected 3
out=$(echo hi | call work personal test.Ask 2>&1) && rc=0 || rc=$?
check "ask answered with an unoffered target: 126" test "$rc" = 126
check "unoffered target: reason logged" grep -q 'which was not offered' "$T/broker.log"
kill "$P3"; wait "$P3" 2>/dev/null || true

# -- ask: a prompt that also sends junk: junk is ignored, the real answer counts
"$RPC_PROMPT" "$T/ask.sock" noisy personal > "$T/prompt5.log" &
P5=$!; PIDS+=($P5)
wait_for 20 "prompt 5 connected" prompt_connected 4
out=$(echo hi | call work personal test.Ask) && rc=0 || rc=$?
check "ask with junk lines before the answer: allowed" test "$rc:$(head -1 <<<"$out")" = "0:in=personal from=work arg= requested=personal"
check "junk from the prompt logged" grep -q 'ask interface: malformed reply "hello broker" ignored' "$T/broker.log"
check "answer for an unknown call logged" grep -q 'reply for unknown or finished call 99999 ignored' "$T/broker.log"
check "answer with an invalid target logged" grep -q 'malformed reply "ALLOW [0-9]* bad/name" ignored' "$T/broker.log"
kill "$P5"; wait "$P5" 2>/dev/null || true

# -- ask: prompt never answers -> deny after --ask-timeout
"$RPC_PROMPT" "$T/ask.sock" silent > "$T/prompt4.log" &
P4=$!; PIDS+=($P4)
wait_for 20 "prompt 4 connected" prompt_connected 5
out=$(echo hi | call work personal test.Ask 2>&1) && rc=0 || rc=$?
check "ask not answered in time: 126" test "$rc" = 126
kill "$P4"; wait "$P4" 2>/dev/null || true

# -- autostart through the start interface
out=$(echo hi | call work lazy test.Echo) && rc=0 || rc=$?
check "autostart: target started and the call ran there" test "$rc:$(head -1 <<<"$out")" = "0:in=lazy from=work arg= requested=lazy"
check "autostart: start interface asked" grep -q 'request: START lazy' "$T/starter.log"
# -- not running, autostart=no
out=$(echo hi | call work down test.Echo 2>&1) && rc=0 || rc=$?
check "not running, autostart=no: 125" test "$rc" = 125
# -- not running and the start interface fails to start it
out=$(echo hi | call work broken test.Echo 2>&1) && rc=0 || rc=$?
check "start interface refuses: 125" test "$rc" = 125
check "start failure: reason logged" grep -q 'result=failed.*could not start broken' "$T/broker.log"

# -- @dispvm: a new disposable from the start interface, destroyed afterwards
out=$(echo hi | call work @dispvm test.Echo) && rc=0 || rc=$?
check "@dispvm: ran in a new disposable" test "$rc:$(head -1 <<<"$out")" = "0:in=disp1 from=work arg= requested=@dispvm"
wait_for 20 "disposable destroyed" grep -q 'request: DESTROY disp1' "$T/starter.log"
ok "@dispvm: destroyed after the call"

# -- everything released
# (the monitor listens on one more socket now: lazy's, started above)
settled() { [ "$(fd_count "$SB")" -le "$sbfd_base" ] && [ "$(fd_count "$BROKER_PID")" -le $((fd_base + 1)) ]; }
wait_for 20 "broker fds back to baseline" settled
ok "broker and sandbox fd counts back to baseline ($fd_base / $sbfd_base)"
finish
