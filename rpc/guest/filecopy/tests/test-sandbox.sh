#!/usr/bin/env bash
# The receiver's confinement: started as root it runs as an unprivileged
# user, with no_new_privs, no capabilities and a seccomp filter; a syscall
# outside its allow-list (socket) kills it with SIGSYS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
new_incoming "$T/in"

# 1. forbidden syscall: killed by SIGSYS (exit status 128+31 in the shell)
rc=0
QUBE_REMOTE=work "$QFC_RECEIVE" "${RECV_ARGS[@]}" --incoming "$T/in" --selftest-seccomp \
	</dev/null >/dev/null 2>"$T/err" || rc=$?
check "--selftest-seccomp: killed by SIGSYS (status $rc)" test "$rc" = 159
check "the forbidden call did not return" bash -c "! grep -q 'NOT blocked' '$T/err'"

# 1b. Landlock: once confined, the receiver can neither read a file
# elsewhere nor create one next to its incoming directory
rc=0
QUBE_REMOTE=work "$QFC_RECEIVE" "${RECV_ARGS[@]}" --incoming "$T/in" --selftest-confinement \
	</dev/null >/dev/null 2>"$T/err" || rc=$?
if grep -q 'Landlock ABI 0;' "$T/err"; then
	echo "# this kernel has no Landlock: only seccomp and the path checks confine the receiver"
else
	check "Landlock: reading /etc/passwd and creating next to the incoming dir refused ($rc: $(cat "$T/err"))" \
		bash -c "test $rc = 0 && grep -q 'reading /etc/passwd: Permission denied; creating next to the incoming directory: Permission denied' '$T/err'"
fi
check "nothing was created next to the incoming directory" test ! -e "$T/in/qfc-selftest-outside"

# 2. a receiver waiting for its stream: inspect /proc
rm -f "$T/s2r"; mkfifo "$T/s2r"
QUBE_REMOTE=work "$QFC_RECEIVE" "${RECV_ARGS[@]}" --incoming "$T/in" <"$T/s2r" >/dev/null 2>&1 &
rp=$!
exec 3>"$T/s2r" # the receiver is now past open(), into its stream
printf 'QFCP' >&3
for _ in $(seq 100); do grep -q '^Seccomp:[[:space:]]*2' "/proc/$rp/status" && break; sleep 0.05; done
st=/proc/$rp/status
check "receiver in seccomp filter mode" grep -q '^Seccomp:[[:space:]]*2' "$st"
check "receiver has NoNewPrivs" grep -q '^NoNewPrivs:[[:space:]]*1' "$st"
check "receiver has no effective capabilities" grep -q '^CapEff:[[:space:]]*0000000000000000' "$st"
if [ "$(id -u)" = 0 ]; then
	nobody=$(id -u nobody)
	check "receiver runs as nobody (uid $nobody) real/effective/saved/fs" \
		grep -q "^Uid:[[:space:]]*$nobody[[:space:]]*$nobody[[:space:]]*$nobody[[:space:]]*$nobody\$" "$st"
	check "receiver has no supplementary groups" grep -q '^Groups:[[:space:]]*$' "$st"
	check "incoming directory owned by nobody" test "$(stat -c %U "$T/in/work")" = nobody
	# root without a usable user: refuses, creates nothing
	rc=0
	QUBE_REMOTE=work "$QFC_RECEIVE" --user no-such-user-qfc --incoming "$T/in2" </dev/null \
		>/dev/null 2>"$T/err" || rc=$?
	check "root with no unprivileged user: refused ($rc), says so" \
		bash -c "test $rc = 1 && grep -q \"refusing to unpack as root: no unprivileged user 'no-such-user-qfc'\" '$T/err' && test ! -e '$T/in2'"
else
	echo "# not root: the user switch is not exercised"
fi
exec 3>&-
wait "$rp" || true

# 3. settings: a bad file is named with its line, and nothing is received
printf 'max-entries = 10\nmax-depth = lots\n' > "$T/bad.conf"
rc=0
QUBE_REMOTE=work QFC_CONF="$T/bad.conf" "$QFC_RECEIVE" "${RECV_ARGS[@]}" \
	--incoming "$T/in3" </dev/null >/dev/null 2>"$T/err" || rc=$?
check "bad settings: refused ($rc) naming file:line" \
	bash -c "test $rc = 1 && grep -q 'bad.conf:2: max-depth: \"lots\" is not a number' '$T/err' && test ! -e '$T/in3'"
finish
