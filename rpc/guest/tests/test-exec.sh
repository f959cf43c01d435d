#!/usr/bin/env bash
# qube.Exec and qube.VMShell (qube-exec) through the real broker and real
# agents (simulated qubes "tester" and "work"): argv arrives verbatim with
# no shell, the caller's stdin after the header reaches the program byte
# for byte, exit codes, a hostile or cut header runs nothing, user switch.
#   QUBE_EXEC: the built qube-exec
set -euo pipefail
. "$(dirname "$0")/../../../tests/rpc/lib.sh"
: "${QUBE_EXEC:?}"

write_system_info tester work other
write_services
ln -s "$QUBE_EXEC" "$T/rpc/qube.Exec"
ln -s "$QUBE_EXEC" "$T/rpc/qube.VMShell"
mkdir -p "$T/policy"
cat > "$T/policy/10-exec.policy" <<'P'
qube.Exec     *  tester  work   allow
qube.VMShell  *  tester  work   allow
qube.Exec     *  tester  other  deny
qube.Exec     *  dom0    work   allow
P
for q in tester work other; do start_agent "$q"; done
mkdir -m 0750 "$T/host"
start_broker --host-calls "$T/host"

# header QUBE_EXEC_USER ARGV...: the qube.Exec header (qube-exec.h) on stdout
header() {
	python3 - "$@" <<'PY'
import struct, sys
user, argv = sys.argv[1].encode(), [a.encode() for a in sys.argv[2:]]
body = b"".join(x + b"\0" for x in [user] + argv)
sys.stdout.buffer.write(b"QX\x01\x00" + struct.pack("<I", len(body)) + body)
PY
}
run_exec() { # run_exec USER ARGV... ; stdin appended after the header
	{ header "$@"; cat; } | call tester work qube.Exec
}

# -- argv verbatim: shell metacharacters, spaces, empty arguments
out=$(run_exec '' printf '<%s>\n' 'a b' '$(id)' '*' ';rm -rf /' '' "quote'd" </dev/null) && rc=0 || rc=$?
check "argv: exit 0" test "$rc" = 0
check "argv: every argument arrives verbatim, none expanded" test "$out" = "<a b>
<\$(id)>
<*>
<;rm -rf />
<>
<quote'd>"

# -- stdin after the header, byte for byte (8 MiB of random data)
head -c 8388608 /dev/urandom > "$T/in.bin"
run_exec '' cat < "$T/in.bin" > "$T/out.bin" && rc=0 || rc=$?
check "stdin relayed: exit 0" test "$rc" = 0
check "stdin relayed: 8 MiB byte for byte" cmp -s "$T/in.bin" "$T/out.bin"

# -- the environment the program sees
out=$(run_exec '' sh -c 'echo "$QUBE_REMOTE $QUBE_SERVICE"' </dev/null)
check "the program sees QUBE_REMOTE and QUBE_SERVICE from the broker" test "$out" = "tester qube.Exec"

# -- exit codes
run_exec '' sh -c 'exit 42' </dev/null && rc=0 || rc=$?
check "exit code 42 relayed" test "$rc" = 42
out=$(run_exec '' no-such-program-here </dev/null 2>&1) && rc=0 || rc=$?
check "missing program: 127 with its name" bash -c "[ $rc = 127 ] && grep -q 'no-such-program-here' <<<'$out'"

# -- hostile or cut headers run nothing
marker=$T/ran
run_bad() { call tester work qube.Exec; }
out=$(printf 'touch %s\n' "$marker" | run_bad 2>&1) && rc=0 || rc=$?
check "no header (a shell line instead): 125, refused by name" \
	bash -c "[ $rc = 125 ] && grep -q 'no qube.Exec header' <<<'$out'"
out=$(printf 'QX\002\000\010\000\000\000\000touch\000x\000' | run_bad 2>&1) && rc=0 || rc=$?
check "unknown header version: 125" bash -c "[ $rc = 125 ] && grep -q 'version 2' <<<'$out'"
out=$(printf 'QX\001\000\377\377\377\177' | run_bad 2>&1) && rc=0 || rc=$?
check "length over the cap: 125" bash -c "[ $rc = 125 ] && grep -q 'over the cap' <<<'$out'"
out=$(printf 'QX\001\000\100\000\000\000\000touch\000' | run_bad 2>&1) && rc=0 || rc=$?
check "header longer than the stream: 125" bash -c "[ $rc = 125 ] && grep -q 'cut short' <<<'$out'"
out=$(printf 'QX\001\000\011\000\000\000\000touch\000xy' | run_bad 2>&1) && rc=0 || rc=$?
check "body without its final NUL: 125" bash -c "[ $rc = 125 ] && grep -q 'NUL' <<<'$out'"
out=$({ header '-root' touch "$marker"; } | run_bad 2>&1) && rc=0 || rc=$?
check "invalid user name: 125" bash -c "[ $rc = 125 ] && grep -q 'user name' <<<'$out'"
check "none of the bad requests ran anything" test ! -e "$marker"

# -- policy still decides
{ header '' touch "$marker"; } | call tester other qube.Exec 2>/dev/null && rc=0 || rc=$?
check "qube.Exec denied by policy: 126, nothing ran" bash -c "[ $rc = 126 ] && [ ! -e '$marker' ]"

# -- user switch (the agent runs as root here, as in a qube)
if [ "$(id -u)" = 0 ]; then
	out=$(run_exec nobody id -un </dev/null) && rc=0 || rc=$?
	check "--user nobody: runs as nobody" test "$rc:$out" = "0:nobody"
	run_exec no-such-user true </dev/null 2>"$T/err" && rc=0 || rc=$?
	check "unknown user: 126, named" bash -c "[ $rc = 126 ] && grep -q \"no user 'no-such-user'\" '$T/err'"
else
	echo "ok - # SKIP user switch: the agent is not root"
fi

# -- the host's own caller socket (--host-calls): the source is dom0
out=$({ header '' sh -c 'echo "$QUBE_REMOTE"'; } | "$QUBE_CALL" --transport "unix:$T/host" work qube.Exec) && rc=0 || rc=$?
check "a call on the host-call socket has source dom0" test "$rc:$out" = "0:dom0"
check "... logged as such" grep -q "source=dom0 target=work requested=work service=qube.Exec .*decision=allow" "$T/broker.log"
{ header '' touch "$marker"; } | "$QUBE_CALL" --transport "unix:$T/host" other qube.Exec 2>/dev/null && rc=0 || rc=$?
check "the policy decides host calls too (no rule: 126)" bash -c "[ $rc = 126 ] && [ ! -e '$marker' ]"
rm "$T/host/vsock_513"
wait_for 10 "host-call socket made again" test -S "$T/host/vsock_513"
ok "a removed host-call socket is made again"
mkdir "$T/qubes/dom0"
sleep 0.5
check "a qube directory named dom0 gets no socket (nothing calls as dom0 from there)" test ! -e "$T/qubes/dom0/vsock_513"

# -- qube.VMShell: the stdin is the script
out=$(printf 'echo "shell in $SIMQUBE for $QUBE_REMOTE"\nexit 3\n' | call tester work qube.VMShell) && rc=0 || rc=$?
check "qube.VMShell: the line ran in a shell in work, exit 3" test "$rc:$out" = "3:shell in work for tester"
finish
