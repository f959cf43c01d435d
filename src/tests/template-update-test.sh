#!/usr/bin/env bash
# qubectl template update without a guest: qubed's admin socket is
# src/tests/fake-qubesd.py (scripted answers, every request recorded), the
# template "tpl" is a simulated qube (a real qube-agent, as nobody when run
# as root, with the real qube-exec as qube.VMShell), the broker is real
# with the shipped default policy, and the template's "apt-get" is a
# stand-in that fetches a file the way apt would: through the template's
# proxy port (uproxy-peer.py listen: what its systemd socket unit does),
# qube-call, the broker, the real qube-host-agent and qube-updates-proxy,
# to a local mirror on the test's allow-list.  The real apt in a real
# template is the slow template test's (images/debian/tests).
# Checks: a halted template is started, updated (the stand-in's output and
# the mirror's file shown), shut down with Shutdown+wait, in that order;
# --keep-running; a running template is left running; apt's exit status is
# kept and the template still shut down; an AppVM is refused before
# anything runs (125); so is a template an AppVM of which runs; the policy
# refusing (a qube qubed calls a template but the broker's system info
# does not) is 126; a failed shutdown is 1; usage errors are 2.
#   Environment: QUBECTL QUBE_BROKER QUBE_AGENT QUBE_CALL QUBE_EXEC
#   QUBE_HOST_AGENT QUBE_UPDATES_PROXY RPC_LIB FAKE_QUBESD UPROXY_PEER
#   DEFAULT_POLICY
set -euo pipefail
: "${QUBECTL:?}" "${QUBE_EXEC:?}" "${QUBE_HOST_AGENT:?}" "${QUBE_UPDATES_PROXY:?}" "${RPC_LIB:?}"
: "${FAKE_QUBESD:?}" "${UPROXY_PEER:?}" "${DEFAULT_POLICY:?}"
# shellcheck disable=SC1090,SC1091  # tests/rpc/lib.sh: the simulated qubes and the broker
. "$RPC_LIB"
chmod 0711 "$T"
AS=()
if [ "$(id -u)" = 0 ]; then
	AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all --)
fi
owner() { if [ "$(id -u)" = 0 ]; then chown -R nobody:nogroup "$@"; fi; }

# ---- the mirror, the host's proxy and its agent ----
mkdir -p "$T/www/debian" "$T/policy" "$T/rpc-host" "$T/adminvm" "$T/rpc" "$T/bin" "$T/host" "$T/qubes/tpl" "$T/qubes/tpl2"
printf 'Origin: Debian\nSuite: test\n' > "$T/www/debian/Release"
python3 "$UPROXY_PEER" upstream "$T/www" "$T/up.port" "$T/up.log" 2>"$T/up.err" &
PIDS+=($!)
wait_for 20 "the mirror's port" test -s "$T/up.port"
UP=$(cat "$T/up.port")
printf 'allow 127.0.0.1 http=%s\n' "$UP" > "$T/proxy.conf"
cat > "$T/rpc-host/qube.UpdatesProxy" <<SH
#!/bin/sh
exec "$QUBE_UPDATES_PROXY" --config "$T/proxy.conf"
SH
chmod 0755 "$T/rpc-host/qube.UpdatesProxy" "$T/rpc-host"
chmod 0644 "$T/proxy.conf"
ha_args=(--transport "unix:$T/adminvm" --rpc-dir "$T/rpc-host" --name dom0)
[ "$(id -u)" = 0 ] && ha_args+=(--service-user nobody)
"$QUBE_HOST_AGENT" "${ha_args[@]}" >>"$T/host-agent.log" 2>&1 &
PIDS+=($!)
wait_for 20 "host agent socket" test -S "$T/adminvm/vsock"

# ---- the broker: the shipped policy; tpl is a TemplateVM, tpl2 is not ----
cp "$DEFAULT_POLICY" "$T/policy/90-default.policy"
sysinfo() { # NAME TYPE
	echo " ,\"$1\": {\"type\": \"$2\", \"tags\": [], \"icon\": \"black\", \"power_state\": \"Running\", \"template_for_dispvms\": false, \"default_dispvm\": null, \"uuid\": \"$(qube_uuid "$1")\"}"
}
{
	echo '{"domains": {'
	echo ' "dom0": {"type": "AdminVM", "tags": [], "icon": "black", "power_state": "Running", "template_for_dispvms": false, "default_dispvm": null, "uuid": "00000000-0000-0000-0000-000000000000"}'
	sysinfo tpl TemplateVM
	sysinfo tpl2 AppVM
	echo '}}'
} > "$T/system-info.json"
start_broker --host-calls "$T/host" --adminvm-socket "$T/adminvm/vsock"

# ---- the simulated template: qube.VMShell, its proxy port, a stand-in apt-get ----
ln -s "$QUBE_EXEC" "$T/rpc/qube.VMShell"
python3 "$UPROXY_PEER" listen "$T/tpl.port" "$T/call-tpl.log" -- \
	"$QUBE_CALL" --transport "unix:$T/qubes/tpl" @default qube.UpdatesProxy 2>"$T/listen.err" &
PIDS+=($!)
mkdir -p "$T/qubes/tpl"
wait_for 20 "the broker's socket for tpl" test -S "$T/qubes/tpl/vsock_513"
wait_for 20 "tpl's proxy port" test -s "$T/tpl.port"
echo 0 > "$T/apt-upgrade-exit"
chmod 0644 "$T/apt-upgrade-exit"
cat > "$T/bin/apt-get" <<SH
#!/bin/sh
# stand-in for apt-get: 'update' fetches the mirror's Release through the
# template's proxy port, as apt with the proxy configuration would
case "\$1" in
update)
	echo "Get:1 http://127.0.0.1:$UP/debian Release"
	curl -sS --fail --max-time 60 -x "http://127.0.0.1:$(cat "$T/tpl.port")" "http://127.0.0.1:$UP/debian/Release" ;;
*)
	echo "apt-get \$*"
	echo "DEBIAN_FRONTEND=\$DEBIAN_FRONTEND"
	exit "\$(cat "$T/apt-upgrade-exit")" ;;
esac
SH
chmod 0755 "$T/bin/apt-get" "$T/bin"
start_sim() { # NAME: a simulated qube with qube.VMShell
	mkdir -p "$T/qubes/$1" "$T/home/$1"
	owner "$T/qubes/$1" "$T/home/$1"
	HOME=$T/home/$1 PATH="$T/bin:$PATH" "${AS[@]}" "$QUBE_AGENT" \
		--transport "unix:$T/qubes/$1" --rpc-dir "$T/rpc" --name "$1" >>"$T/agent-$1.log" 2>&1 &
	PIDS+=($!)
	wait_for 20 "agent $1 socket" test -S "$T/qubes/$1/vsock"
	if [ "$(id -u)" = 0 ]; then chown root:root "$T/qubes/$1/vsock"; fi
}
start_sim tpl
start_sim tpl2

# ---- qubed's socket ----
FAKE_PID=
# fake RULES...: (re)starts the fake qubed with the rules (JSON objects,
# one an argument, \u0000 for NUL); its requests go to $T/fake.jsonl
fake() {
	if [ -n "$FAKE_PID" ]; then kill "$FAKE_PID" 2>/dev/null || true; wait "$FAKE_PID" 2>/dev/null || true; fi
	rm -f "$T/qubed.sock" "$T/fake.jsonl"
	local IFS=,
	printf '[%s]\n' "$*" > "$T/rules.json"
	python3 "$FAKE_QUBESD" --socket "$T/qubed.sock" --script "$T/rules.json" --log "$T/fake.jsonl" >"$T/fake.log" 2>&1 &
	FAKE_PID=$!
	PIDS+=("$FAKE_PID")
	wait_for 20 "fake qubed socket" test -S "$T/qubed.sock"
}
list() { # NAME CLASS STATE [once]
	printf '{"header": "admin.vm.List+ dom0 name %s", "reply": "0\\u0000%s class=%s state=%s uuid=%s\\n"%s}' \
		"$1" "$1" "$2" "$3" "$(qube_uuid "$1")" "${4:+, \"once\": true}"
}
ALL='{"header": "admin.vm.List+ dom0 name dom0", "reply": "0\u0000dom0 class=AdminVM state=Running uuid=00000000-0000-0000-0000-000000000000\ntpl class=TemplateVM state=Halted uuid=x\nwork class=AppVM state=Running uuid=y\nold class=AppVM state=Halted uuid=z\n"}'
WORK_ON_OTHER='{"header": "admin.vm.property.Get+template dom0 name work", "reply": "0\u0000default=False type=vm other-template"}'
WORK_ON_TPL='{"header": "admin.vm.property.Get+template dom0 name work", "reply": "0\u0000default=False type=vm tpl"}'
START='{"header": "admin.vm.Start+ dom0 name tpl", "reply": "0\u0000"}'
SHUTDOWN='{"header": "admin.vm.Shutdown+wait dom0 name tpl", "reply": "0\u0000"}'
export QUBED_SOCKET=$T/qubed.sock QUBE_HOST_CALLS=$T/host
# requests: the headers the fake received, one a line
requests() { python3 -c 'import json,sys; [print(json.loads(l)["header"]) for l in open(sys.argv[1])]' "$T/fake.jsonl"; }
qc() { RC=0; "$QUBECTL" "$@" </dev/null >"$T/out" 2>"$T/err" || RC=$?; }

# ---- a halted template: started, updated, shut down ----
fake "$(list tpl TemplateVM Halted once)" "$(list tpl TemplateVM Halted once)" "$(list tpl TemplateVM Running)" \
	"$ALL" "$WORK_ON_OTHER" "$START" "$SHUTDOWN"
: > "$T/up.log"
qc template update tpl
check "template update of a halted template: exit 0 ($RC: $(tail -c 300 "$T/err"))" test "$RC" = 0
check "... apt-get update's output, with the mirror's file fetched through the template's proxy port" \
	bash -c "grep -q '^Get:1 ' '$T/out' && grep -q '^Origin: Debian' '$T/out' && grep -q '^Suite: test' '$T/out'"
check "... apt-get -y upgrade ran non-interactive, keeping changed configuration files" \
	bash -c "grep -qx 'apt-get -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold upgrade' '$T/out' && grep -qx 'DEBIAN_FRONTEND=noninteractive' '$T/out'"
check "... the mirror got one GET for /debian/Release" bash -c "[ \$(wc -l < '$T/up.log') = 1 ] && grep -q '\"GET /debian/Release HTTP/1.1\"' '$T/up.log'"
check "... qubed was asked: List tpl, List all, work's template, List tpl, Start, Shutdown+wait, in that order" \
	test "$(requests | tr '\n' ';')" = "admin.vm.List+ dom0 name tpl;admin.vm.List+ dom0 name dom0;admin.vm.property.Get+template dom0 name work;admin.vm.List+ dom0 name tpl;admin.vm.Start+ dom0 name tpl;admin.vm.Shutdown+wait dom0 name tpl;"
check "... the broker ran qube.VMShell from dom0 in tpl by the default policy's rule" \
	grep -q 'source=dom0 target=tpl requested=tpl service=qube.VMShell argument=- decision=allow' "$T/broker.log"
check "... and tpl's proxy call went to the host" \
	grep -q 'source=tpl target=dom0 requested=@default service=qube.UpdatesProxy argument=- decision=allow' "$T/broker.log"
check "... it says the template was updated" grep -q 'tpl updated; its qubes see the change at their next start' "$T/err"

# ---- --keep-running ----
fake "$(list tpl TemplateVM Halted once)" "$(list tpl TemplateVM Halted once)" "$(list tpl TemplateVM Running)" \
	"$ALL" "$WORK_ON_OTHER" "$START" "$SHUTDOWN"
qc template update --keep-running tpl
check "--keep-running: exit 0, started, not shut down ($RC)" \
	bash -c "[ $RC = 0 ] && requests_out=\$(python3 -c 'import json,sys; [print(json.loads(l)[\"header\"]) for l in open(sys.argv[1])]' '$T/fake.jsonl') && grep -q 'admin.vm.Start' <<<\"\$requests_out\" && ! grep -q 'Shutdown' <<<\"\$requests_out\" && grep -q 'keeps running' '$T/err'"

# ---- a template that runs already: left running ----
fake "$(list tpl TemplateVM Running)" "$ALL" "$WORK_ON_OTHER" "$START" "$SHUTDOWN"
qc template update tpl
check "a running template: exit 0, neither started nor shut down ($RC)" \
	bash -c "[ $RC = 0 ] && ! grep -q 'Start\|Shutdown' <<<\"\$(cat '$T/fake.jsonl')\" && grep -q 'was running before the update: left running' '$T/err'"

# ---- apt fails: its status, the template still shut down ----
echo 100 > "$T/apt-upgrade-exit"
fake "$(list tpl TemplateVM Halted once)" "$(list tpl TemplateVM Halted once)" "$(list tpl TemplateVM Running)" \
	"$ALL" "$WORK_ON_OTHER" "$START" "$SHUTDOWN"
qc template update tpl
check "apt-get upgrade exits 100: template update exits 100 and still shuts the template down ($RC)" \
	bash -c "[ $RC = 100 ] && grep -q 'Shutdown+wait' '$T/fake.jsonl' && ! grep -q 'updated;' '$T/err'"
echo 0 > "$T/apt-upgrade-exit"

# ---- refused before anything runs ----
calls_before=$(grep -c ' call id=' "$T/broker.log" || true)
fake "$(list work AppVM Halted)" "$ALL" "$START" "$SHUTDOWN"
qc template update work
check "an AppVM: 125, nothing started, no call ($RC: $(cat "$T/err"))" \
	bash -c "[ $RC = 125 ] && grep -q 'work is an AppVM, not a TemplateVM' '$T/err' && ! grep -q Start '$T/fake.jsonl' && [ \$(grep -c ' call id=' '$T/broker.log') = $calls_before ]"
fake "$(list tpl TemplateVM Halted)" "$ALL" "$WORK_ON_TPL" "$START" "$SHUTDOWN"
qc template update tpl
check "an AppVM based on the template runs: 125, named, nothing started ($RC: $(cat "$T/err"))" \
	bash -c "[ $RC = 125 ] && grep -q 'work (AppVM of tpl) is Running' '$T/err' && ! grep -q Start '$T/fake.jsonl' && [ \$(grep -c ' call id=' '$T/broker.log') = $calls_before ]"
fake '{"header": "admin.vm.List+ dom0 name nosuch", "reply": "2\u0000QubesVMNotFoundError\u0000\u0000No such domain: nosuch\u0000"}'
qc template update nosuch
check "an unknown qube: 125, qubed's message ($RC: $(cat "$T/err"))" \
	bash -c "[ $RC = 125 ] && grep -q 'No such domain: nosuch' '$T/err'"

# ---- the policy refuses (the broker's system info says tpl2 is an AppVM) ----
fake "$(list tpl2 TemplateVM Running)" "$ALL" "$WORK_ON_OTHER"
qc template update tpl2
check "the policy refuses qube.VMShell to a qube that is no TemplateVM: 126 ($RC)" \
	bash -c "[ $RC = 126 ] && grep -q 'refused' '$T/err'"
check "... the broker logged the denial" \
	grep -q 'source=dom0 target=- requested=tpl2 service=qube.VMShell argument=- decision=deny' "$T/broker.log"

# ---- the shutdown fails ----
fake "$(list tpl TemplateVM Halted once)" "$(list tpl TemplateVM Halted once)" "$(list tpl TemplateVM Running)" \
	"$ALL" "$WORK_ON_OTHER" "$START" \
	'{"header": "admin.vm.Shutdown+wait dom0 name tpl", "reply": "2\u0000QubesVMError\u0000\u0000Shutdown timed out\u0000"}'
qc template update tpl
check "updated but the shutdown fails: 1, qubed's message ($RC)" \
	bash -c "[ $RC = 1 ] && grep -q 'cannot shut tpl down: Shutdown timed out' '$T/err'"

# ---- usage ----
qc template update
check "no NAME: 2 ($RC)" bash -c "[ $RC = 2 ] && grep -q 'expected the template' '$T/err'"
qc template update -bad
check "an option it does not know: 2 ($RC)" test "$RC" = 2
qc template update 9bad
check "an invalid name: 2 ($RC)" bash -c "[ $RC = 2 ] && grep -q 'not a valid qube name' '$T/err'"
qc template update a b
check "two names: 2 ($RC)" test "$RC" = 2

finish
