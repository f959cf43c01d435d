#!/usr/bin/env bash
# Issue 9: where an allowed call goes, and the small protocol items.
# Real broker, real agents, a real qube-host-agent, hostile directory
# layouts.  Each part fails against the broker before the fix (noted):
#   adminvm   the host is not a qube: a QUBES_DIR/dom0/ directory gets no
#             socket and never receives a call; calls to @adminvm / dom0 go to
#             the host service runner (qube-host-agent, --adminvm-socket) or
#             fail with 125 and the reason; the start interface never sees
#             dom0 (before: dom0 was routed like a qube)
#   symlinks  QUBES_DIR/T/vsock reached through a symlink (directory or
#             socket), a hard link or another owner is refused (before: the
#             call ran in the qube the link pointed to)
#   requested QUBE_REQUESTED_TARGET is the policy's resolved form: an unknown
#             qube is @default (before: the name the caller typed)
#   hello     SERVICE_START only after the agent's HELLO (before: pipelined)
#   ask       an ASK line longer than 4 KiB (many long-named qubes) reaches
#             the prompt (before: refused); over 64 KiB it is refused with a
#             reason; a reply with a NUL byte is ignored (before: its prefix
#             was taken as the answer)
#   uuid      calls are routed by the qube libqpolicy resolved (target_name),
#             never by a uuid: form: uuid:UUID requested (allowed, denied,
#             unknown = @default), target=uuid: redirects, @dispvm:uuid:TPL
#             (DISPVM names the template by name), an ask offering uuid:UUID
#             answered with it, one offering an unknown uuid (before: every
#             allowed uuid: target failed with 125, "cannot be reached by
#             this broker"; the log had no target_form=)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
: "${QUBE_HOST_AGENT:?}" "${RPC_EVIL_AGENT:?}" "${PYTHON:?}"
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)')
here=$(cd "$(dirname "$0")" && pwd)

# 200 qubes with 31-byte names: an ASK line offering them all is ~6.5 KB
long=()
for i in $(seq -w 1 200); do long+=("longname-$i-xxxxxxxxxxxxxxxxxx"); done
write_system_info work personal vault evilsym evilsock hardlnk alien slowhello "${long[@]}"
write_services
cat > "$T/rpc/test.Host" <<'SH'
#!/bin/sh
# a qube's copy of the host's service: must never run
[ -z "${SIMQUBE-}" ] || touch "$SIMDIR/ran-in-$SIMQUBE"
echo "in=$SIMQUBE"
SH
cp "$T/rpc/test.Echo" "$T/rpc/test.Ask"
cp "$T/rpc/test.Echo" "$T/rpc/test.Nul"
chmod +x "$T/rpc/test.Host"
mkdir -p "$T/policy"
cat > "$T/policy/10-test.policy" <<'P'
test.Host   *  work  @adminvm   allow
test.Host   *  work  dom0       allow
test.Host   *  work  @default   allow target=dom0
test.Echo   *  work  evilsym    allow
test.Echo   *  work  evilsock   allow
test.Echo   *  work  hardlnk    allow
test.Echo   *  work  alien      allow
test.Echo   *  work  slowhello  allow
test.Echo   *  work  personal   allow
test.Echo   *  work  vault      allow
test.Echo   *  work  @default   allow target=personal
test.Echo   *  dom0  personal   allow
test.Ask    *  work  @anyvm     ask default_target=personal
test.Nul    *  work  vault      ask default_target=vault
P
for q in work personal vault; do start_agent "$q"; done
# an impostor: a directory named like the admin qube, with an agent in it
start_agent dom0

# ---- @adminvm without a host service runner
"$PYTHON" "$here/rpc-ifaces.py" starter "$T/start.sock" "$T/starter.log" &
PIDS+=($!)
wait_for 20 "start interface" grep -q listening "$T/starter.log"
start_broker --start-socket "$T/start.sock"
check "QUBES_DIR/dom0: no socket, logged" \
	test ! -e "$T/qubes/dom0/vsock_513" -a -S "$T/qubes/work/vsock_513"
check "... the log says why" grep -q "$T/qubes/dom0: the admin qube's name; not a qube, no socket created" "$T/broker.log"
for tgt in @adminvm dom0 nosuchvm; do
	out=$(call work "$tgt" test.Host </dev/null 2>&1) && rc=0 || rc=$?
	check "work -> $tgt test.Host without --adminvm-socket: 125 ($rc)" test "$rc" = 125
done
check "... reason logged" grep -q 'requested=@adminvm .*result=failed .*reason="target @adminvm cannot be reached by this broker (no --adminvm-socket)"' "$T/broker.log"
check "the impostor in QUBES_DIR/dom0 ran nothing" test ! -e "$T/ran-in-dom0"
check "the start interface never heard of dom0" bash -c "! grep -q dom0 '$T/starter.log'"
kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true

# ---- @adminvm with qube-host-agent
mkdir -p "$T/adminvm" "$T/rpc-host"
cat > "$T/rpc-host/test.Host" <<'SH'
#!/bin/sh
echo "host uid=$(id -u) from=$QUBE_REMOTE requested=$QUBE_REQUESTED_TARGET"
exec cat
SH
chmod 755 "$T/rpc-host/test.Host" "$T/rpc-host"
rc=0; "$QUBE_HOST_AGENT" --transport vsock --rpc-dir "$T/rpc-host" >/dev/null 2>"$T/ha.err" || rc=$?
check "qube-host-agent refuses the vsock transport (2, got $rc)" \
	bash -c "[ $rc = 2 ] && grep -q 'needs --transport unix:DIR' '$T/ha.err'"
ha_args=(--transport "unix:$T/adminvm" --rpc-dir "$T/rpc-host" --name dom0)
if [ "$(id -u)" = 0 ]; then
	# services run as nobody: it must reach them
	chmod 711 "$T"
	ha_args+=(--service-user nobody)
	want_uid=$(id -u nobody)
else
	want_uid=$(id -u)
fi
"$QUBE_HOST_AGENT" "${ha_args[@]}" >>"$T/host-agent.log" 2>&1 &
HA=$!
PIDS+=($HA)
wait_for 20 "host agent socket" test -S "$T/adminvm/vsock"
start_broker --start-socket "$T/start.sock" --adminvm-socket "$T/adminvm/vsock"
# what the service is told was requested is libqpolicy's resolved form:
# @default for an unknown qube; the admin qube by either of its names
for tgt in @adminvm dom0 nosuchvm; do
	out=$(echo payload | call work "$tgt" test.Host) && rc=0 || rc=$?
	case "$(head -1 <<<"$out")" in
	"host uid=$want_uid from=work requested=@default") good=$([ "$tgt" = nosuchvm ] && echo y) ;;
	"host uid=$want_uid from=work requested=@adminvm" | "host uid=$want_uid from=work requested=dom0")
		good=$([ "$tgt" != nosuchvm ] && echo y) ;;
	*) good= ;;
	esac
	check "work -> $tgt test.Host runs on the host as uid $want_uid ($rc: $(head -1 <<<"$out"))" \
		test "$rc:$good:$(tail -1 <<<"$out")" = "0:y:payload"
done
check "logged with target=dom0" grep -q 'source=work target=dom0 requested=@adminvm service=test.Host .*result=started' "$T/broker.log"
check "the impostor in QUBES_DIR/dom0 still ran nothing" test ! -e "$T/ran-in-dom0"
check "the start interface still never heard of dom0" bash -c "! grep -q dom0 '$T/starter.log'"
# a qube's own dom0 directory cannot make calls as dom0 either
check "no socket in QUBES_DIR/dom0 for callers" test ! -e "$T/qubes/dom0/vsock_513"
kill "$HA"; wait "$HA" 2>/dev/null || true
out=$(call work @adminvm test.Host </dev/null 2>&1) && rc=0 || rc=$?
check "host service runner stopped: 125 ($rc)" test "$rc" = 125
check "... reason logged" grep -q "reason=\"the host service runner at $T/adminvm/vsock is not running" "$T/broker.log"

# ---- target sockets: no symlinks, no hard links, no foreign owner
ln -s vault "$T/qubes/evilsym"
mkdir "$T/qubes/evilsock" "$T/qubes/hardlnk"
ln -s ../vault/vsock "$T/qubes/evilsock/vsock"
ln "$T/qubes/vault/vsock" "$T/qubes/hardlnk/vsock"
for tgt in evilsym evilsock hardlnk vault; do
	out=$(echo x | call work "$tgt" test.Echo 2>/dev/null) && rc=0 || rc=$?
	check "work -> $tgt (into vault's socket by a link): 125 and nothing ran ($rc: ${out:0:40})" \
		test "$rc:$out" = "125:"
done
check "a symlink is refused with the reason" \
	grep -q "target=evilsym .*reason=\"target evilsym: $T/qubes/evilsym/vsock is or goes through a symlink; refusing to connect\"" "$T/broker.log"
check "a hard link is refused with the reason" \
	grep -q "target=hardlnk .*not a socket of its own (one link)" "$T/broker.log"
rm "$T/qubes/hardlnk/vsock"
out=$(echo x | call work vault test.Echo) && rc=0 || rc=$?
check "vault's own socket, one link again: served ($rc)" test "$rc:$(head -1 <<<"$out")" = "0:in=vault from=work arg= requested=vault"
if [ "$(id -u)" = 0 ]; then
	start_agent alien
	chown nobody "$T/qubes/alien/vsock"
	out=$(echo x | call work alien test.Echo 2>/dev/null) && rc=0 || rc=$?
	check "a target socket owned by another user: 125 ($rc)" test "$rc:$out" = "125:"
	check "... reason logged" grep -q 'target=alien .*owned by root or the broker.s user' "$T/broker.log"
else
	ok "# SKIP foreign owner: needs root to chown"
fi

# ---- QUBE_REQUESTED_TARGET: the policy's resolved form
out=$(echo x | call work nosuchvm test.Echo) && rc=0 || rc=$?
check "unknown target: redirected, the service sees requested=@default ($rc: $(head -1 <<<"$out"))" \
	test "$rc:$(head -1 <<<"$out")" = "0:in=personal from=work arg= requested=@default"
check "... the log keeps what was asked" grep -q 'source=work target=personal requested=nosuchvm service=test.Echo' "$T/broker.log"

# ---- SERVICE_START only after the agent's HELLO
mkdir -p "$T/qubes/slowhello"
"$RPC_EVIL_AGENT" "$T/qubes/slowhello" hellolate > "$T/evil-hellolate.log" 2>&1 &
PIDS+=($!)
wait_for 20 "hellolate agent" test -S "$T/qubes/slowhello/vsock"
out=$(echo x | call work slowhello test.Echo 2>&1) && rc=0 || rc=$?
check "an agent that sends HELLO late gets nothing but HELLO before it, and serves (rc $rc)" \
	test "$rc" = 0
check "... it says so" grep -q 'hellolate: nothing but HELLO before ours' "$T/evil-hellolate.log"

# ---- uuid: references are routed by the qube they resolve to
# (system info from write_system_info: every qube has its qube_uuid)
set_qube_uuid personal; U_P=$QUBE_UUID
set_qube_uuid vault; U_V=$QUBE_UUID
set_qube_uuid default-dvm; U_D=$QUBE_UUID
U_X=0badc0de-0000-4000-8000-000000000001 # no qube's
U_PU=${U_P^^}                            # personal's, upper case: no qube's (exact text, as Qubes)
cat > "$T/policy/20-uuid.policy" <<P
test.Uuid      *  work  uuid:$U_V   deny
test.Uuid      *  work  personal    allow
test.Uuid      *  work  @default    allow target=uuid:$U_P
test.UuidRedir *  work  vault       allow target=uuid:$U_P
test.UuidDvm   *  work  @dispvm     allow target=@dispvm:uuid:$U_D
test.UuidDvm   *  work  @dispvm:uuid:$U_D  allow
test.UuidAsk   *  work  @anyvm      ask target=uuid:$U_P default_target=uuid:$U_P
test.UuidAskX  *  work  @anyvm      ask target=uuid:$U_X default_target=uuid:$U_X
P
for svc in Uuid UuidRedir UuidDvm UuidAsk UuidAskX; do cp "$T/rpc/test.Echo" "$T/rpc/test.$svc"; done
kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true
mkdir -p "$T/start2"
"$RPC_STARTER" "$T/start2/sock" "$T/qubes" "$T/rpc" "$QUBE_AGENT" > "$T/starter2.log" 2>&1 &
PIDS+=($!)
wait_for 20 "start interface (rpc-starter)" grep -q listening "$T/starter2.log"
start_broker --start-socket "$T/start2/sock" --ask-socket "$T/ask.sock" --ask-timeout 30000
# grep -F of one call's log line: the fields in order (see docs/broker.md)
logged() { grep -F "$1" "$T/broker.log" | grep -qF "$2"; }

out=$(echo x | call work "uuid:$U_P" test.Uuid) && rc=0 || rc=$?
check "work -> uuid:personal, allowed: runs in personal, sees requested=uuid:... ($rc: $(head -1 <<<"$out"))" \
	test "$rc:$(head -1 <<<"$out")" = "0:in=personal from=work arg= requested=uuid:$U_P"
check "... logged with the name and the form" \
	logged "source=work target=personal requested=uuid:$U_P service=test.Uuid argument=- decision=allow result=started" \
	"target_form=uuid:$U_P"
out=$(echo x | call work "uuid:$U_V" test.Uuid 2>/dev/null) && rc=0 || rc=$?
check "work -> uuid:vault, denied by a uuid: rule: 126 ($rc)" test "$rc:$out" = "126:"
check "... logged as denied, no target" \
	logged "source=work target=- requested=uuid:$U_V service=test.Uuid argument=- decision=deny result=refused" \
	"target_form=-"
for u in "$U_X" "$U_PU"; do
	out=$(echo x | call work "uuid:$u" test.Uuid) && rc=0 || rc=$?
	check "work -> uuid:$u (no qube's): @default, redirected to uuid:personal, the service sees requested=@default ($rc: $(head -1 <<<"$out"))" \
		test "$rc:$(head -1 <<<"$out")" = "0:in=personal from=work arg= requested=@default"
	check "... the log keeps what was asked" \
		logged "source=work target=personal requested=uuid:$u service=test.Uuid" "target_form=uuid:$U_P"
	out=$(echo x | call work "uuid:$u" test.UuidRedir 2>/dev/null) && rc=0 || rc=$?
	check "... and where no @default rule matches it reaches no qube: 126 ($rc)" test "$rc:$out" = "126:"
done
out=$(echo x | call work vault test.UuidRedir) && rc=0 || rc=$?
check "target=uuid:personal redirect: runs in personal, requested=vault ($rc: $(head -1 <<<"$out"))" \
	test "$rc:$(head -1 <<<"$out")" = "0:in=personal from=work arg= requested=vault"
check "... logged with the name and the form" \
	logged "source=work target=personal requested=vault service=test.UuidRedir" "target_form=uuid:$U_P"

out=$(echo x | call work @dispvm test.UuidDvm) && rc=0 || rc=$?
check "@dispvm, target=@dispvm:uuid:default-dvm: runs in a new disposable ($rc: $(head -1 <<<"$out"))" \
	test "$rc:$(head -1 <<<"$out")" = "0:in=disp1 from=work arg= requested=@dispvm"
out=$(echo x | call work "@dispvm:uuid:$U_D" test.UuidDvm) && rc=0 || rc=$?
check "@dispvm:uuid:default-dvm requested: runs in a new disposable, requested as asked ($rc: $(head -1 <<<"$out"))" \
	test "$rc:$(head -1 <<<"$out")" = "0:in=disp2 from=work arg= requested=@dispvm:uuid:$U_D"
check "... the start interface was asked by the template's name, twice" \
	test "$(grep -c '^request: DISPVM default-dvm$' "$T/starter2.log")" = 2
check "... and never saw a uuid" bash -c "! grep -q uuid '$T/starter2.log'"
check "... logged with the disposable and the form" \
	logged "source=work target=disp2 requested=@dispvm:uuid:$U_D service=test.UuidDvm" "target_form=@dispvm:uuid:$U_D"
wait_for 20 "both disposables destroyed" grep -q '^request: DESTROY disp2$' "$T/starter2.log"

prompt_n() { test "$(grep -c 'prompt program connected' "$T/broker.log")" -ge "$1"; }
# answers with the offered default: uuid:personal, uuid:U_X
"$RPC_PROMPT" "$T/ask.sock" allow-default > "$T/prompt-uuid.log" &
PU=$!; PIDS+=($PU)
wait_for 20 "prompt connected" prompt_n 1
out=$(echo x | call work vault test.UuidAsk) && rc=0 || rc=$?
check "ask offering uuid:personal, answered with it: runs in personal ($rc: $(head -1 <<<"$out"))" \
	test "$rc:$(head -1 <<<"$out")" = "0:in=personal from=work arg= requested=vault"
check "... the question offered the uuid: form as the rule wrote it" \
	grep -qx "ASK [0-9]* work test.UuidAsk - vault uuid:$U_P uuid:$U_P" "$T/prompt-uuid.log"
check "... logged as allowed by the user, with the name and the form" \
	logged "source=work target=personal requested=vault service=test.UuidAsk argument=- decision=ask-allow result=started" \
	"target_form=uuid:$U_P"
out=$(echo x | call work vault test.UuidAskX 2>/dev/null) && rc=0 || rc=$?
check "ask offering a uuid: that is no qube's, answered with it: 126, no qube reached ($rc)" test "$rc:$out" = "126:"
check "... with the reason" grep -qF "reason=\"the user allowed target uuid:$U_X, which names no qube\"" "$T/broker.log"
kill "$PU"; wait "$PU" 2>/dev/null || true
"$RPC_PROMPT" "$T/ask.sock" allow personal > "$T/prompt-name.log" &
PU=$!; PIDS+=($PU)
wait_for 20 "prompt connected" prompt_n 2
out=$(echo x | call work vault test.UuidAsk 2>/dev/null) && rc=0 || rc=$?
check "ask offering uuid:personal, answered with the name personal (not offered as such): 126 ($rc)" \
	test "$rc:$out" = "126:"
check "... with the reason" grep -qF "reason=\"the prompt chose personal, which was not offered\"" "$T/broker.log"
kill "$PU"; wait "$PU" 2>/dev/null || true

# ---- ask: long lines, NUL bytes
kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true
start_broker --ask-socket "$T/ask.sock" --ask-timeout 30000
"$PYTHON" "$here/rpc-ifaces.py" prompt "$T/ask.sock" "$T/prompt-default.log" default &
P1=$!
PIDS+=($P1)
wait_for 20 "prompt connected" grep -q 'prompt program connected' "$T/broker.log"
out=$(echo asked | call work vault test.Ask) && rc=0 || rc=$?
askline=$(grep -m1 '^ASK ' "$T/prompt-default.log" || true)
check "an ASK line of ${#askline} bytes offering $(($(wc -w <<<"$askline") - 7)) targets reaches the prompt; the call runs ($rc)" \
	test "$rc:$(tail -1 <<<"$out")" = "0:asked" -a "${#askline}" -gt 4096
kill "$P1"; wait "$P1" 2>/dev/null || true
"$PYTHON" "$here/rpc-ifaces.py" prompt "$T/ask.sock" "$T/prompt-nul.log" nul &
PIDS+=($!)
prompts() { test "$(grep -c 'prompt program connected' "$T/broker.log")" -ge "$1"; }
wait_for 20 "prompt connected" prompts 2
out=$(echo x | call work vault test.Nul 2>&1) && rc=0 || rc=$?
check "a reply with a NUL byte is not an answer: the DENY after it counts (126, got $rc)" test "$rc" = 126
check "... logged" grep -q 'ask interface: reply with a NUL byte ignored' "$T/broker.log"
# over 64 KiB: 2,100 long names
many=()
for i in $(seq -w 1 2100); do many+=("manyname-$i-xxxxxxxxxxxxxxxxx"); done
gen=$(policy_generation)
write_system_info work personal vault "${many[@]}"
kill -HUP "$BROKER_PID"
newgen() { test "$(policy_generation)" -gt "$gen"; }
wait_for 30 "system info reloaded" newgen
out=$(echo x | call work vault test.Ask 2>&1) && rc=0 || rc=$?
check "an ASK line over 65,536 bytes is refused (126, got $rc)" test "$rc" = 126
check "... with the reason" grep -q 'reason="ask: the question would be longer than 65536 bytes' "$T/broker.log"
check "the broker is still running" kill -0 "$BROKER_PID"
finish
